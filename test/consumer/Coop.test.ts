/**
 * CoopConsumer: subconsumers sharing one consumer's batches, a heartbeat
 * that keeps a live subconsumer's long batch its own, and a batch taken over
 * from a silent subconsumer, whose delivery then rolls back.
 */
import { assert, layer } from "@effect/vitest"
import { Deferred, type Duration, Effect, Fiber, Option } from "effect"
import { SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import { Installer } from "../../src/api/Installer.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import type { PgqEvent } from "../../src/api/PgqEvent.ts"
import { Producer } from "../../src/api/Producer.ts"
import * as CoopConsumer from "../../src/consumer/CoopConsumer.ts"
import type { EventResult } from "../../src/consumer/EventResult.ts"
import * as TestDb from "../TestDb.ts"

/** A queue ticked after each produced event, and a table handlers write to in the batch's transaction. */
const setup = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* (yield* Installer).install
  const pgq = yield* Pgq
  const queue = TestDb.unique("coop")
  yield* pgq.createQueue(queue)
  const table = TestDb.unique("coop_seen")
  yield* sql`create table ${sql(table)} (data text not null, worker text not null)`
  const producer = yield* Producer
  const produce = (...data: ReadonlyArray<string>) =>
    Effect.forEach(data, (d) => Effect.andThen(producer.send(queue, { type: "t", data: d }), TestDb.tick(queue)), {
      discard: true
    })
  const record = (worker: string) => (event: PgqEvent) =>
    Effect.asVoid(sql`insert into ${sql(table)} (data, worker) values (${event.data ?? ""}, ${worker})`)
  const seen = Effect.map(
    sql<{ readonly data: string; readonly worker: string }>`select data, worker from ${sql(table)} order by data`,
    (rows) => rows
  )
  return { sql, queue, produce, record, seen }
})

layer(TestDb.servicesLayer, { excludeTestServices: true })("CoopConsumer", (it) => {
  it.effect("subconsumers share the batches: every event once, and each of them gets some", () =>
    Effect.gen(function*() {
      const { queue, produce, record, seen } = yield* setup
      const make = (name: string) =>
        CoopConsumer.make({
          queue,
          consumer: "workers",
          subconsumer: name,
          register: true,
          onEvent: (event) => Effect.andThen(record(name)(event), Effect.sleep("20 millis"))
        })
      // Registered before the events, so the group sees all of them.
      const workers = yield* Effect.all(["a", "b", "c"].map(make))
      yield* produce(...Array.from({ length: 24 }, (_, i) => `e${String(i).padStart(2, "0")}`))
      yield* Effect.all(workers.map((w) => w.processAvailable), { concurrency: "unbounded" })
      const rows = yield* seen
      assert.deepStrictEqual(rows.map((r) => r.data), Array.from({ length: 24 }, (_, i) => `e${String(i).padStart(2, "0")}`))
      assert.strictEqual(new Set(rows.map((r) => r.worker)).size, 3, "every subconsumer got batches")
    }))

  /** A subconsumer whose handler holds its batch until released, and a peer that takes over after 800 ms. */
  const slowAndPeer = (heartbeat: Duration.Input) =>
    Effect.gen(function*() {
      const { queue, produce, record, seen } = yield* setup
      const release = yield* Deferred.make<void>()
      const started = yield* Deferred.make<void>()
      const slow = yield* CoopConsumer.make({
        queue,
        consumer: "group",
        subconsumer: "slow",
        register: true,
        heartbeat,
        onEvent: (event): Effect.Effect<EventResult | void, SqlError> =>
          Effect.andThen(
            Effect.andThen(record("slow")(event), Deferred.succeed(started, undefined)),
            Deferred.await(release)
          )
      })
      const peer = yield* CoopConsumer.make({
        queue,
        consumer: "group",
        subconsumer: "peer",
        register: true,
        deadInterval: "800 millis",
        heartbeat: "200 millis",
        onEvent: record("peer")
      })
      yield* produce("long")
      const slowFiber = yield* Effect.forkChild(slow.processNext)
      yield* Deferred.await(started)
      yield* Effect.sleep("1200 millis")
      const taken = yield* peer.processNext
      yield* Deferred.succeed(release, undefined)
      const outcome = Option.getOrThrow(yield* Fiber.join(slowFiber))
      return { taken, outcome, seen: (yield* seen).map((r) => `${r.data}:${r.worker}`) }
    })

  it.effect("a heartbeat keeps a live subconsumer's long batch its own", () =>
    Effect.gen(function*() {
      const { taken, outcome, seen } = yield* slowAndPeer("200 millis")
      assert.isTrue(Option.isNone(taken), "the peer took nothing over")
      assert.isTrue(Option.isNone(outcome.aborted))
      assert.deepStrictEqual(seen, ["long:slow"])
    }))

  it.effect("a silent subconsumer's batch is taken over, and its own delivery then rolls back", () =>
    Effect.gen(function*() {
      const { taken, outcome, seen } = yield* slowAndPeer("1 hour")
      assert.isTrue(Option.isSome(taken), "the peer took the batch over")
      assert.isTrue(Option.isSome(outcome.aborted))
      assert.deepStrictEqual(seen, ["long:peer"])
    }))

  it.effect("a dead interval within two heartbeats is refused before anything is registered", () =>
    Effect.gen(function*() {
      const { queue } = yield* setup
      const error = yield* Effect.flip(CoopConsumer.make({
        queue,
        consumer: "careless",
        subconsumer: "a",
        register: true,
        deadInterval: "15 seconds",
        onEvent: () => Effect.void
      }))
      assert.strictEqual(error._tag, "InvalidArgument")
      assert.include(error.message, "deadInterval")
      const names = (yield* (yield* Pgq).listConsumers(queue)).map((c) => c.consumerName)
      assert.notInclude(names, "careless.a")
    }))
})
