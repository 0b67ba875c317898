/**
 * Interrupting a consumer at each step of a batch must roll everything back:
 * no handler write, retry or failed event survives, the batch stays
 * unfinished, and the next run processes every event exactly once.
 *
 * To stop the consumer inside a database call, a trigger (scoped to the
 * test's own consumer) makes that call wait for an advisory lock the test holds.
 */
import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { FailedEvents } from "../../src/api/FailedEvents.ts"
import { Installer } from "../../src/api/Installer.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import type { PgqEvent } from "../../src/api/PgqEvent.ts"
import { Producer } from "../../src/api/Producer.ts"
import type { EventHandler } from "../../src/consumer/Handler.ts"
import * as Consumer from "../../src/consumer/Consumer.ts"
import * as EventResult from "../../src/consumer/EventResult.ts"
import * as TestDb from "../TestDb.ts"

const EVENTS = 20

const setup = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* (yield* Installer).install
  const { queue, consumer } = yield* TestDb.queueWithConsumer("iq")
  const table = TestDb.unique("written")
  yield* sql`create table ${sql(table)} (event_id bigint not null)`
  yield* (yield* Producer).sendMany(queue, Array.from({ length: EVENTS }, (_, i) => ({ type: "t", data: String(i + 1) })))
  yield* TestDb.tick(queue)
  const written = sql<{ readonly event_id: bigint }>`select event_id from ${sql(table)}`.pipe(
    Effect.map((rows) => rows.map((row) => Number(row.event_id)))
  )
  const write = (event: PgqEvent) => Effect.asVoid(sql`insert into ${sql(table)} values (${event.id})`)
  const [ids] = yield* sql<{ readonly co: number; readonly sub: number }>`
    select c.co_id as co, s.sub_id as sub from pgq.consumer c
      join pgq.subscription s on s.sub_consumer = c.co_id
      join pgq.queue q on q.queue_id = s.sub_queue
    where c.co_name = ${consumer} and q.queue_name = ${queue}`
  return { queue, consumer, written, write, consumerId: ids!.co, subId: ids!.sub }
})

let lockKey = 424_200
/**
 * Makes the statements matching `when` on `table` wait for an advisory lock
 * held by a connection of the test; returns how to tell the consumer is
 * waiting, and how to let it go.
 */
const blockAt = (table: "pgq.subscription" | "pgq.retry_queue", event: "update" | "insert", when: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const key = ++lockKey
    const name = TestDb.unique("block")
    const holder = yield* sql.reserve
    yield* holder.executeRaw(`select pg_advisory_lock(${key})`, [])
    yield* sql.unsafe(`create function public.${name}() returns trigger language plpgsql as
      $$ begin perform pg_advisory_xact_lock(${key}); return new; end $$`)
    yield* sql.unsafe(`create trigger ${name} before ${event} on ${table} for each row when (${when})
      execute function public.${name}()`)
    yield* Effect.addFinalizer(() =>
      Effect.ignore(Effect.andThen(
        sql.unsafe(`drop trigger if exists ${name} on ${table}`),
        sql.unsafe(`drop function if exists public.${name}()`)
      ))
    )
    const waiting = sql<{ readonly n: bigint }>`
      select count(*) as n from pg_locks where locktype = 'advisory' and not granted and objid = ${key}`.pipe(
      Effect.map((rows) => (rows[0]?.n ?? 0n) > 0n),
      Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (blocked) => blocked })
    )
    const release = Effect.ignore(holder.executeRaw(`select pg_advisory_unlock(${key})`, []))
    return { waiting, release }
  })

/** Interrupts the consumer, letting a blocked statement go so the rollback can run. */
const interruptWhileBlocked = <A, E>(fiber: Fiber.Fiber<A, E>, release: Effect.Effect<void>) =>
  Effect.gen(function*() {
    const interrupting = yield* Effect.forkChild(Fiber.interrupt(fiber))
    yield* Effect.sleep("100 millis")
    yield* release
    yield* Fiber.join(interrupting)
  })

/** Nothing of the interrupted batch is left, and a new run processes every event once. */
const assertRolledBackThenComplete = (
  state: Effect.Success<typeof setup>
) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    const sql = yield* SqlClient.SqlClient
    assert.deepStrictEqual(yield* state.written, [])
    assert.strictEqual((yield* pgq.getConsumerInfo(state.queue, state.consumer)).currentBatch, null)
    assert.strictEqual(yield* (yield* FailedEvents).count(state.queue, state.consumer), 0)
    const [retries] = yield* sql<{ readonly n: bigint }>`select count(*) as n from pgq.retry_queue where ev_owner = ${state.subId}`
    assert.strictEqual(retries!.n, 0n)
    const stats = yield* Effect.scoped(Effect.flatMap(
      Consumer.make({ queue: state.queue, consumer: state.consumer, wakeChannel: false, onEvent: state.write }),
      (c) => c.processAvailable
    ))
    assert.deepStrictEqual([stats.batches, stats.ok], [1, EVENTS])
    const written = yield* state.written
    assert.strictEqual(written.length, EVENTS)
    assert.strictEqual(new Set(written).size, EVENTS)
  })

const startConsumer = <E>(state: Effect.Success<typeof setup>, onEvent: EventHandler<E, never>) =>
  Effect.forkChild(Effect.scoped(Effect.flatMap(
    Consumer.make({ queue: state.queue, consumer: state.consumer, wakeChannel: false, onEvent }),
    (c) => c.processNext
  )))

layer(TestDb.servicesLayer, { excludeTestServices: true })("Consumer interruption", (it) => {
  it.effect("before the batch: waiting in next_batch", () =>
    Effect.gen(function*() {
      const state = yield* setup
      const block = yield* blockAt(
        "pgq.subscription",
        "update",
        `old.sub_consumer = ${state.consumerId} and old.sub_batch is null and new.sub_batch is not null`
      )
      const fiber = yield* startConsumer(state, state.write)
      yield* block.waiting
      yield* interruptWhileBlocked(fiber, block.release)
      yield* assertRolledBackThenComplete(state)
    }))

  it.effect("mid-handler, after earlier events wrote", () =>
    Effect.gen(function*() {
      const state = yield* setup
      const reached = yield* Deferred.make<void>()
      const fiber = yield* startConsumer(state, (event) =>
        event.data === "10"
          ? Effect.andThen(Deferred.succeed(reached, undefined), Effect.never)
          : state.write(event))
      yield* Deferred.await(reached)
      yield* Fiber.interrupt(fiber)
      yield* assertRolledBackThenComplete(state)
    }))

  it.effect("after the last event: while settling its retry", () =>
    Effect.gen(function*() {
      const state = yield* setup
      const block = yield* blockAt("pgq.retry_queue", "insert", `new.ev_owner = ${state.subId}`)
      const fiber = yield* startConsumer(state, (event) =>
        Effect.as(state.write(event), event.data === String(EVENTS) ? EventResult.Retry("1 hour") : EventResult.Ok))
      yield* block.waiting
      yield* interruptWhileBlocked(fiber, block.release)
      yield* assertRolledBackThenComplete(state)
    }))

  it.effect("during finish_batch", () =>
    Effect.gen(function*() {
      const state = yield* setup
      const block = yield* blockAt(
        "pgq.subscription",
        "update",
        `old.sub_consumer = ${state.consumerId} and old.sub_batch is not null and new.sub_batch is null`
      )
      const fiber = yield* startConsumer(state, (event) =>
        Effect.as(state.write(event), event.data === "3" ? EventResult.Failed("stored, then rolled back") : EventResult.Ok))
      yield* block.waiting
      yield* interruptWhileBlocked(fiber, block.release)
      yield* assertRolledBackThenComplete(state)
    }))

  it.effect("a connection lost mid-batch: nothing commits, and run() carries on on a new connection", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const state = yield* setup
      const block = yield* blockAt(
        "pgq.subscription",
        "update",
        `old.sub_consumer = ${state.consumerId} and old.sub_batch is not null and new.sub_batch is null`
      )
      const processed = yield* Effect.scoped(Effect.flatMap(
        Consumer.make({ queue: state.queue, consumer: state.consumer, wakeChannel: false, onEvent: state.write }),
        (c) =>
          Effect.gen(function*() {
            const fiber = yield* Effect.forkChild(c.run)
            yield* block.waiting
            // Kill the consumer's backend while it waits inside finish_batch.
            yield* sql`select pg_terminate_backend(pid) from pg_locks
              where locktype = 'advisory' and not granted and objid = ${lockKey}`
            yield* block.release
            const written = yield* state.written.pipe(
              Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (w) => w.length >= EVENTS }),
              Effect.timeout("30 seconds")
            )
            yield* Fiber.interrupt(fiber)
            return written
          })
      ))
      assert.strictEqual(processed.length, EVENTS)
      assert.strictEqual(new Set(processed).size, EVENTS)
    }))

  it.effect("a running consumer stops when interrupted while idle", () =>
    Effect.gen(function*() {
      const state = yield* setup
      const done = yield* Effect.scoped(Effect.flatMap(
        Consumer.make({ queue: state.queue, consumer: state.consumer, onEvent: state.write, idleDelay: "1 minute" }),
        (c) => Effect.gen(function*() {
          const fiber = yield* Effect.forkChild(c.run)
          // The first batch is processed, then the consumer waits.
          yield* state.written.pipe(Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (w) => w.length === EVENTS }))
          yield* Fiber.interrupt(fiber)
          return yield* state.written
        })
      ))
      assert.strictEqual(done.length, EVENTS)
    }))
})
