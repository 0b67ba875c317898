/**
 * The pgq_coop API: effect-pgq's implementation, installed where the real
 * extension is missing, with pgq_coop's semantics (the scenario of its own
 * regression test), takeover of a dead subconsumer's batch, the heartbeat
 * that keeps a live one's, and Skytools' Python CoopConsumer sharing one
 * consumer with an effect-pgq subconsumer.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Option, Schema } from "effect"
import { SqlClient } from "effect/sql"
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import type { NextBatch } from "../../src/api/BatchInfo.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import * as PgqCoop from "../../src/api/PgqCoop.ts"
import * as CoopConsumer from "../../src/consumer/CoopConsumer.ts"
import { Producer } from "../../src/api/Producer.ts"
import * as DebianPackage from "../DebianPackage.ts"
import * as TestDb from "../TestDb.ts"

const skytoolsSkip = DebianPackage.ensureSkytools()
if (skytoolsSkip !== undefined) console.warn(`skipping the Skytools CoopConsumer test: ${skytoolsSkip}`)

/** A queue where each event calls for a tick, with pgq_coop installed. */
const setup = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const coop = PgqCoop.make(sql)
  assert.include(["effect-pgq", "pgq_coop"], yield* coop.install)
  const pgq = yield* Pgq
  const queue = TestDb.unique("coopq")
  yield* pgq.createQueue(queue)
  yield* pgq.setQueueConfig(queue, "ticker_max_count", "1")
  const producer = yield* Producer
  const produce = (...data: ReadonlyArray<string>) =>
    Effect.andThen(producer.sendMany(queue, data.map((d) => ({ type: "t", data: d }))), TestDb.tick(queue))
  const dataOf = (batch: Option.Option<NextBatch>) =>
    Effect.map(pgq.getBatchEvents(Option.getOrThrow(batch).batchId), (events) => events.map((e) => e.data))
  return { sql, coop, pgq, queue, produce, dataOf }
})

layer(TestDb.servicesLayer, { excludeTestServices: true })("PgqCoop", (it) => {
  it.effect("subconsumers take the main consumer's batches in turn; register, unregister, auto-registration", () =>
    Effect.gen(function*() {
      const { sql, coop, pgq, queue, produce, dataOf } = yield* setup
      assert.isTrue(yield* coop.registerSubconsumer(queue, "main", "s1"))
      assert.isFalse(yield* coop.registerSubconsumer(queue, "main", "s1"))
      assert.isTrue(yield* coop.registerSubconsumer(queue, "main", "s2"))
      assert.isTrue(Option.isNone(yield* coop.nextBatch(queue, "main", "s1")))

      yield* produce("ev0", "ev1", "ev2")
      const b1 = yield* coop.nextBatch(queue, "main", "s1")
      assert.deepStrictEqual(yield* dataOf(b1), ["ev0", "ev1", "ev2"])
      // A subconsumer keeps its batch until it finishes it; the others get the next ones.
      assert.strictEqual(Option.getOrThrow(yield* coop.nextBatch(queue, "main", "s1")).batchId, Option.getOrThrow(b1).batchId)
      assert.isTrue(Option.isNone(yield* coop.nextBatch(queue, "main", "s2")))
      yield* produce("ev3", "ev4", "ev5")
      const b2 = yield* coop.nextBatch(queue, "main", "s2")
      assert.deepStrictEqual(yield* dataOf(b2), ["ev3", "ev4", "ev5"])
      assert.isTrue(yield* coop.finishBatch(Option.getOrThrow(b2).batchId))
      assert.isFalse(yield* coop.finishBatch(Option.getOrThrow(b2).batchId))

      // The main consumer has moved past both batches.
      const main = yield* pgq.getConsumerInfo(queue, "main")
      assert.strictEqual(main.pendingEvents, 0n)

      // An open batch refuses a plain unregister; closing it sends its events to retry.
      const refused = yield* Effect.flip(coop.unregisterSubconsumer(queue, "main", "s1"))
      assert.include(refused.message, "subconsumer has active batch")
      assert.strictEqual(yield* coop.unregisterSubconsumer(queue, "main", "s1", { closeBatch: true }), 1)
      const [retried] = yield* sql<{ readonly n: number }>`
        select count(*)::int as n from pgq.retry_queue r join pgq.queue q on q.queue_id = r.ev_queue
        where q.queue_name = ${queue}`
      assert.strictEqual(retried!.n, 3)
      assert.strictEqual(yield* coop.unregisterSubconsumer(queue, "main", "s1"), 0)
      assert.strictEqual(yield* coop.unregisterSubconsumer(queue, "main", "s2"), 0)

      // next_batch registers what is missing; pgq's unregister_consumer removes the whole group.
      assert.isTrue(Option.isNone(yield* coop.nextBatch(queue, "cmain", "sc1")))
      const names = (yield* pgq.listConsumers(queue)).map((c) => c.consumerName).sort()
      assert.deepStrictEqual(names, ["cmain", "cmain.sc1", "main"])
      yield* sql`select pgq.unregister_consumer(${queue}, 'cmain')`
      assert.deepStrictEqual((yield* pgq.listConsumers(queue)).map((c) => c.consumerName), ["main"])
    }))

  it.effect("a dead subconsumer's batch is taken over after the dead interval; a heartbeat keeps a live one's", () =>
    Effect.gen(function*() {
      const { coop, queue, produce } = yield* setup
      yield* coop.registerSubconsumer(queue, "main", "live")
      yield* produce("slow")
      const held = Option.getOrThrow(yield* coop.nextBatch(queue, "main", "live"))
      yield* Effect.sleep("700 millis")
      assert.isTrue(yield* coop.heartbeat(queue, "main", "live", held.batchId))
      // Alive half a second ago: not taken over.
      assert.isTrue(Option.isNone(yield* coop.nextBatch(queue, "main", "other", { deadInterval: "600 millis" })))
      // Silent for longer than the interval: taken over, and the first holder learns it at its next heartbeat.
      yield* Effect.sleep("700 millis")
      const taken = Option.getOrThrow(yield* coop.nextBatch(queue, "main", "other", { deadInterval: "600 millis" }))
      assert.strictEqual(taken.batchId, held.batchId)
      assert.strictEqual(taken.curTickId, held.curTickId)
      assert.isFalse(yield* coop.heartbeat(queue, "main", "live", held.batchId))
      assert.isTrue(yield* coop.heartbeat(queue, "main", "other", held.batchId))
      assert.isTrue(Option.isNone(yield* coop.nextBatch(queue, "main", "live")))
      assert.isTrue(yield* coop.finishBatch(taken.batchId))
    }))

  it.effect("only consumers (pgq_reader) may call the API, as pgq's own batch functions", () =>
    Effect.gen(function*() {
      const { sql, coop, queue } = yield* setup
      const outsider = TestDb.unique("outsider").toLowerCase()
      const reader = TestDb.unique("reader").toLowerCase()
      yield* Effect.acquireRelease(
        Effect.andThen(sql.unsafe(`create role ${outsider}`), sql.unsafe(`create role ${reader} in role pgq_reader`)),
        () => Effect.orDie(Effect.andThen(sql.unsafe(`drop role ${outsider}`), sql.unsafe(`drop role ${reader}`)))
      )
      const as = (role: string) =>
        sql.withTransaction(Effect.gen(function*() {
          yield* sql.unsafe(`set local role ${role}`)
          return yield* coop.nextBatch(queue, "main", "roles")
        }))
      const refused = yield* Effect.flip(as(outsider))
      assert.strictEqual(refused._tag === "PgqSqlError" ? refused.sqlState : refused._tag, "42501")
      yield* as(reader)
    }))

  it.effect("subconsumers asking at once each get a different batch; every event goes to exactly one", () =>
    Effect.gen(function*() {
      const { coop, queue, produce, dataOf } = yield* setup
      yield* coop.registerSubconsumer(queue, "main", "a")
      for (let i = 0; i < 12; i++) yield* produce(`e${i}`)
      const worker = (name: string) =>
        Effect.gen(function*() {
          const seen: Array<string | null> = []
          while (true) {
            const batch = yield* coop.nextBatch(queue, "main", name)
            if (Option.isNone(batch)) return seen
            seen.push(...(yield* dataOf(batch)))
            yield* coop.finishBatch(batch.value.batchId)
          }
        })
      const results = yield* Effect.all(["a", "b", "c"].map(worker), { concurrency: "unbounded" })
      const all = results.flat().sort()
      assert.deepStrictEqual(all, Array.from({ length: 12 }, (_, i) => `e${i}`).sort())
    }))

  it.effect.skipIf(skytoolsSkip !== undefined)(
    "Skytools' Python CoopConsumer and an effect-pgq subconsumer share one consumer: each batch processed once",
    () =>
      Effect.gen(function*() {
        const { sql, coop, queue, produce } = yield* setup
        const table = TestDb.unique("coop_seen")
        yield* sql`create table ${sql(table)} (ev_id bigint not null, data text, worker text not null)`
        yield* coop.registerSubconsumer(queue, "shared", "node")
        const total = 40
        for (let i = 0; i < total; i++) yield* produce(`e${i}`)

        const script = Path.join(import.meta.dirname, "skytools_coop_consumer.py")
        const python = Effect.callback<string, Error>((resume) => {
          ChildProcess.execFile(
            DebianPackage.DEBIAN_PYTHON,
            [script, TestDb.url, queue, "shared", "python", table],
            { encoding: "utf8" },
            (error, stdout, stderr) => resume(error ? Effect.fail(new Error(`${error.message}\n${stderr}`)) : Effect.succeed(stdout))
          )
        })
        // effect-pgq's subconsumer, pausing a little per event so that the Python one gets batches too.
        const subconsumer = yield* CoopConsumer.make({
          queue,
          consumer: "shared",
          subconsumer: "node",
          onEvent: (event) =>
            Effect.andThen(
              sql`insert into ${sql(table)} (ev_id, data, worker) values (${event.id}, ${event.data}, 'node')`,
              Effect.sleep("30 millis")
            )
        })
        const node = Effect.map(subconsumer.processAvailable, (totals) => totals.batches)
        const [out, nodeBatches] = yield* Effect.all([python, node], { concurrency: 2 })
        const pythonBatches = Schema.decodeUnknownSync(Schema.fromJsonString(Schema.Struct({ batches: Schema.Number })))(out)
          .batches
        assert.isAbove(pythonBatches, 0, "the Python subconsumer got batches")
        assert.isAbove(nodeBatches, 0, "the effect-pgq subconsumer got batches")
        const [row] = yield* sql<{ readonly n: number; readonly distinct: number }>`
          select count(*)::int as n, count(distinct data)::int as distinct from ${sql(table)}`
        assert.deepStrictEqual({ n: row!.n, distinct: row!.distinct }, { n: total, distinct: total })
      })
  )
})
