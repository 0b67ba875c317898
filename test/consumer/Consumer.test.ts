import { assert, layer } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Deferred, Duration, Effect, Fiber, Layer, Option, Redacted, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { FailedEvents } from "../../src/api/FailedEvents.ts"
import { Installer } from "../../src/api/Installer.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import type { PgqEvent } from "../../src/api/PgqEvent.ts"
import { Producer } from "../../src/api/Producer.ts"
import * as PgqServices from "../../src/api/Services.ts"
import * as Consumer from "../../src/consumer/Consumer.ts"
import * as EventResult from "../../src/consumer/EventResult.ts"
import * as InteractiveConsumer from "../../src/consumer/InteractiveConsumer.ts"
import * as TestDb from "../TestDb.ts"

/** A queue with a consumer, `count` events produced and ticked into one batch, and a table for handler writes. */
const setup = (count: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* (yield* Installer).install
    const { queue, consumer } = yield* TestDb.queueWithConsumer("cq")
    const table = TestDb.unique("written")
    yield* sql`create table ${sql(table)} (event_id bigint not null)`
    yield* (yield* Producer).sendMany(
      queue,
      Array.from({ length: count }, (_, i) => ({ type: "test", data: String(i + 1) }))
    )
    yield* TestDb.tick(queue)
    const written = sql<{ readonly event_id: bigint }>`select event_id from ${sql(table)} order by event_id`.pipe(
      Effect.map((rows) => rows.map((row) => Number(row.event_id)))
    )
    /** The handler's side effect: a row in the same transaction as the batch. */
    const write = (event: PgqEvent) => Effect.asVoid(sql`insert into ${sql(table)} values (${event.id})`)
    return { queue, consumer, written, write }
  })

/** Data of the events of the next batch, without finishing it (the batch stays open). */
const peekNextBatch = (queue: string, consumer: string) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    const batch = yield* pgq.nextBatch(queue, consumer)
    if (Option.isNone(batch)) return []
    return (yield* pgq.getBatchEvents(batch.value)).map((e) => e.data)
  })

const processAvailable = InteractiveConsumer.processAvailable

layer(TestDb.servicesLayer, { excludeTestServices: true })("Consumer", (it) => {
  it.effect("commits Ok events with the handler's writes and finishes the batch", () =>
    Effect.gen(function*() {
      const { queue, consumer, written, write } = yield* setup(25)
      const stats = yield* processAvailable({ queue, consumer, onEvent: (event) => write(event) })
      assert.deepStrictEqual(stats, { batches: 1, events: 25, ok: 25, failed: 0, retried: 0, aborted: 0 })
      assert.strictEqual((yield* written).length, 25)
      const info = yield* (yield* Pgq).getConsumerInfo(queue, consumer)
      assert.strictEqual(info.currentBatch, null)
      assert.deepStrictEqual(yield* processAvailable({ queue, consumer, onEvent: () => Effect.void }), {
        batches: 0,
        events: 0,
        ok: 0,
        failed: 0,
        retried: 0,
        aborted: 0
      })
    }))

  it.effect("settles Failed into the failed-event store and Retry into pgq's retry queue", () =>
    Effect.gen(function*() {
      const failedEvents = yield* FailedEvents
      const { queue, consumer } = yield* setup(6)
      const seen: Array<string> = []
      const stats = yield* processAvailable({
        queue,
        consumer,
        onEvent: (event) => {
          seen.push(`${event.data}:${event.retry ?? 0}`)
          return Effect.succeed(
            event.data === "2" ? EventResult.Failed("bad order") : event.data === "4" && event.retry === null
              ? EventResult.Retry("0 seconds")
              : EventResult.Ok
          )
        }
      })
      assert.deepStrictEqual([stats.ok, stats.failed, stats.retried], [4, 1, 1])
      const failed = yield* failedEvents.list(queue, consumer)
      assert.deepStrictEqual(failed.map((f) => [f.event.data, f.reason]), [["2", "bad order"]])
      yield* TestDb.maintAllRetries
      yield* TestDb.tick(queue)
      const again = yield* processAvailable({ queue, consumer, onEvent: (event) => Effect.sync(() => void seen.push(`${event.data}:${event.retry}`)) })
      assert.strictEqual(again.ok, 1)
      assert.deepStrictEqual(seen.slice(-1), ["4:1"])
    }))

  it.effect("AbortBatch rolls everything back and the batch is delivered again", () =>
    Effect.gen(function*() {
      const { queue, consumer, written, write } = yield* setup(10)
      const aborted = yield* processAvailable({
        queue,
        consumer,
        onEvent: (event) =>
          Effect.as(write(event), event.data === "7" ? EventResult.AbortBatch("downstream is down") : EventResult.Ok)
      })
      assert.deepStrictEqual([aborted.batches, aborted.aborted, aborted.events], [1, 1, 7])
      assert.deepStrictEqual(yield* written, [])
      assert.strictEqual((yield* (yield* FailedEvents).count(queue, consumer)), 0)
      const retried = yield* processAvailable({ queue, consumer, onEvent: write })
      assert.deepStrictEqual([retried.ok, retried.aborted], [10, 0])
      assert.strictEqual((yield* written).length, 10)
    }))

  it.effect("a handler that dies or fails: its writes are undone, the others' kept once, the event retried", () =>
    Effect.gen(function*() {
      const { queue, consumer, written, write } = yield* setup(5)
      const calls: Array<string> = []
      const stats = yield* processAvailable({
        queue,
        consumer,
        onEvent: (event) =>
          Effect.gen(function*() {
            calls.push(event.data ?? "")
            yield* write(event)
            if (event.data === "3") return yield* Effect.die(new Error("boom in handler"))
            if (event.data === "4") return yield* Effect.fail("typed failure" as const)
          })
      })
      // The fast pass stopped at event 3, whose handler wrote; the replay redid the writes of 1 and 2,
      // decided 3 by its failure policy without calling it, and ran 4 and 5 behind savepoints.
      assert.deepStrictEqual(calls, ["1", "2", "3", "1", "2", "4", "5"])
      assert.deepStrictEqual([stats.ok, stats.retried, stats.failed], [3, 2, 0])
      const ids = yield* written
      assert.strictEqual(ids.length, 3)
      assert.strictEqual(new Set(ids).size, 3)
      yield* TestDb.maintAllRetries
      assert.deepStrictEqual(yield* peekNextBatch(queue, consumer), [])
    }))

  it.effect("after the last allowed retry a failing event is stored as failed, with the cause", () =>
    Effect.gen(function*() {
      const failedEvents = yield* FailedEvents
      const { queue, consumer } = yield* setup(2)
      const stats = yield* processAvailable({
        queue,
        consumer,
        failurePolicy: { maxRetries: 0, backoff: () => Duration.zero },
        onEvent: (event) => event.data === "2" ? Effect.die(new Error("cannot parse order 2")) : Effect.void
      })
      assert.deepStrictEqual([stats.ok, stats.failed], [1, 1])
      const [failed] = yield* failedEvents.list(queue, consumer)
      assert.strictEqual(failed!.event.data, "2")
      assert.include(failed!.reason, "cannot parse order 2")
    }))

  it.effect("a batch handler sees the batch and returns one result per event", () =>
    Effect.gen(function*() {
      const { queue, consumer } = yield* setup(4)
      const sizes: Array<number> = []
      const stats = yield* processAvailable({
        queue,
        consumer,
        onBatch: (events) =>
          Effect.sync(() => {
            sizes.push(events.length)
            return events.map((e) => e.data === "4" ? EventResult.Failed("no") : EventResult.Ok)
          })
      })
      assert.deepStrictEqual(sizes, [4])
      assert.deepStrictEqual([stats.ok, stats.failed], [3, 1])
      const { queue: q2, consumer: c2 } = yield* setup(3)
      const failing = yield* processAvailable({
        queue: q2,
        consumer: c2,
        onBatch: () => Effect.fail("whole batch failed" as const)
      })
      assert.deepStrictEqual([failing.events, failing.retried], [3, 3])
    }))

  it.effect("checks the queue and the registration when made, or registers", () =>
    Effect.gen(function*() {
      const { queue } = yield* setup(0)
      const missing = yield* Effect.flip(Effect.scoped(Consumer.make({ queue, consumer: "nobody", onEvent: () => Effect.void })))
      assert.strictEqual(missing._tag, "ConsumerNotRegistered")
      const noQueue = yield* Effect.flip(
        Effect.scoped(Consumer.make({ queue: TestDb.unique("none"), consumer: "c", onEvent: () => Effect.void }))
      )
      assert.strictEqual(noQueue._tag, "QueueNotFound")
      const fresh = TestDb.unique("fresh")
      yield* Effect.scoped(Consumer.make({ queue, consumer: fresh, register: true, onEvent: () => Effect.void }))
      assert.strictEqual((yield* (yield* Pgq).getConsumerInfo(queue, fresh)).consumerName, fresh)
    }))

  it.effect("batch conditions hold a batch back until they are met", () =>
    Effect.gen(function*() {
      const { queue, consumer } = yield* setup(3)
      const held = yield* processAvailable({
        queue,
        consumer,
        // force_tick adds a few thousand to the event count: ask for far more.
        batchConditions: { minCount: 1_000_000 },
        onEvent: () => Effect.void
      })
      assert.strictEqual(held.batches, 0)
      const taken = yield* processAvailable({ queue, consumer, batchConditions: { minCount: 1 }, onEvent: () => Effect.void })
      assert.strictEqual(taken.ok, 3)
    }))

  it.effect("pages through batches larger than the fetch size, in order", () =>
    Effect.gen(function*() {
      const { queue, consumer } = yield* setup(2345)
      const seen: Array<number> = []
      const stats = yield* processAvailable({
        queue,
        consumer,
        fetchSize: 500,
        onEvent: (event) => Effect.sync(() => void seen.push(Number(event.data)))
      })
      assert.strictEqual(stats.ok, 2345)
      assert.deepStrictEqual(seen, Array.from({ length: 2345 }, (_, i) => i + 1))
    }))

  it.effect("run waits idle, and a notification on the wake channel ends the wait", () =>
    Effect.gen(function*() {
      const pg = yield* PgClient.PgClient
      const { queue, consumer } = yield* setup(0)
      const processed = yield* Deferred.make<string>()
      const fiber = yield* Effect.forkChild(Effect.scoped(Effect.flatMap(
        Consumer.make({
          queue,
          consumer,
          idleDelay: "60 seconds",
          onEvent: (event) => Effect.asVoid(Deferred.succeed(processed, event.data ?? ""))
        }),
        (c) => c.run
      )))
      // Let the consumer find nothing and start its 60-second wait.
      yield* Effect.sleep("500 millis")
      yield* (yield* Producer).send(queue, { type: "t", data: "wake up" })
      yield* TestDb.tick(queue)
      yield* pg.notify(Consumer.DEFAULT_WAKE_CHANNEL, queue)
      const data = yield* Deferred.await(processed).pipe(Effect.timeout("20 seconds"))
      assert.strictEqual(data, "wake up")
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("once it hears a ticker on the wake channel, an idle consumer stops polling and wakes for notifications", () =>
    Effect.gen(function*() {
      const pg = yield* PgClient.PgClient
      const sql = yield* SqlClient.SqlClient
      const { queue, consumer } = yield* setup(0)
      const channel = TestDb.unique("wake")
      const processed = yield* Deferred.make<string>()
      // The consumer on a client of its own, whose sessions can be watched.
      const applicationName = TestDb.unique("idle_consumer")
      const fiber = yield* Effect.forkChild(Effect.scoped(Effect.flatMap(
        Consumer.make({
          queue,
          consumer,
          wakeChannel: channel,
          idleDelay: "100 millis",
          onEvent: (event) => Effect.asVoid(Deferred.succeed(processed, event.data ?? ""))
        }),
        (c) => c.run
      )).pipe(
        Effect.provide(Layer.fresh(PgqServices.layer).pipe(
          Layer.provideMerge(PgClient.layer({ url: Redacted.make(TestDb.url), applicationName }))
        ))
      ))
      yield* sql`select 1 from pg_stat_activity where query = ${`LISTEN "${channel}"`} or query = ${`LISTEN ${channel}`}`.pipe(
        Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (rows) => rows.length > 0 }),
        Effect.timeout("10 seconds")
      )
      // When the consumer's sessions last started a statement other than LISTEN: each poll is one.
      const lastActive = Effect.map(
        sql<{ readonly started: string | null }>`
          select max(query_start)::text as started from pg_stat_activity
          where application_name = ${applicationName} and query not like 'LISTEN%'`,
        (rows) => rows[0]?.started ?? ""
      )
      const polled = (within: Duration.Input) =>
        Effect.gen(function*() {
          const before = yield* lastActive
          yield* Effect.sleep(within)
          return (yield* lastActive) !== before
        })
      assert.isTrue(yield* polled("1 second"), "polls every idleDelay while no ticker is heard")

      // A ticker's heartbeat: an empty notification.
      yield* pg.notify(channel, "")
      yield* Effect.sleep("300 millis")
      assert.isFalse(yield* polled("1500 millis"), "no polling while a ticker is heard")

      yield* (yield* Producer).send(queue, { type: "t", data: "woken" })
      yield* TestDb.tick(queue)
      yield* pg.notify(channel, queue)
      assert.strictEqual(yield* Deferred.await(processed).pipe(Effect.timeout("5 seconds")), "woken")
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a lost LISTEN connection falls back to polling, and the consumer goes on", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { queue, consumer } = yield* setup(0)
      const channel = TestDb.unique("wake")
      const processed = yield* Deferred.make<string>()
      const fiber = yield* Effect.forkChild(Effect.scoped(Effect.flatMap(
        Consumer.make({
          queue,
          consumer,
          wakeChannel: channel,
          idleDelay: "200 millis",
          onEvent: (event) => Effect.asVoid(Deferred.succeed(processed, event.data ?? ""))
        }),
        (c) => c.run
      )))
      const listener = sql<{ readonly pid: number }>`
        select pid from pg_stat_activity where query = ${`LISTEN "${channel}"`} or query = ${`LISTEN ${channel}`}`
      const [found] = yield* listener.pipe(
        Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (rows) => rows.length > 0 }),
        Effect.timeout("10 seconds")
      )
      yield* sql`select pg_terminate_backend(${found!.pid})`
      yield* (yield* Producer).send(queue, { type: "t", data: "after the listener died" })
      yield* TestDb.tick(queue)
      assert.strictEqual(yield* Deferred.await(processed).pipe(Effect.timeout("20 seconds")), "after the listener died")
      // After a backoff (about a second, with jitter) it listens again, on one connection, not one per attempt.
      const [again] = yield* listener.pipe(
        Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (rows) => rows.length > 0 && rows[0]!.pid !== found!.pid }),
        Effect.timeout("10 seconds")
      )
      assert.notStrictEqual(again!.pid, found!.pid)
      assert.strictEqual((yield* listener).length, 1)
      yield* Fiber.interrupt(fiber)
    }))
})
