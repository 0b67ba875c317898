/**
 * The handler contract within one delivery of a batch: how often each handler
 * runs when another fails, what happens to the writes of a failing handler,
 * swallowed SQL errors, handlers that break the contract, and a consumer on a
 * one-connection pool.
 */
import { assert, layer } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Fiber, Layer, Option, Redacted, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { FailedEvents } from "../../src/api/FailedEvents.ts"
import { Installer } from "../../src/api/Installer.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import type { PgqEvent } from "../../src/api/PgqEvent.ts"
import { Producer } from "../../src/api/Producer.ts"
import * as PgqServices from "../../src/api/Services.ts"
import type { Isolation } from "../../src/consumer/BatchProcessor.ts"
import * as Consumer from "../../src/consumer/Consumer.ts"
import * as EventResult from "../../src/consumer/EventResult.ts"
import type { EventHandler } from "../../src/consumer/Handler.ts"
import * as InteractiveConsumer from "../../src/consumer/InteractiveConsumer.ts"
import * as TestDb from "../TestDb.ts"

/** A queue with `count` events ticked into one batch, and a table with a primary key for handler writes. */
const setup = (count: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* (yield* Installer).install
    const { queue, consumer } = yield* TestDb.queueWithConsumer("isq")
    const table = TestDb.unique("written")
    yield* sql`create table ${sql(table)} (n int primary key)`
    yield* (yield* Producer).sendMany(queue, Array.from({ length: count }, (_, i) => ({ type: "t", data: String(i + 1) })))
    yield* TestDb.tick(queue)
    const written = sql<{ readonly n: number }>`select n from ${sql(table)} order by n`.pipe(
      Effect.map((rows) => rows.map((row) => row.n))
    )
    const write = (n: number) => Effect.asVoid(sql`insert into ${sql(table)} values (${n})`)
    return { queue, consumer, written, write }
  })

const n = (event: PgqEvent) => Number(event.data)

/** How often each event's handler ran. */
const counter = () => {
  const calls = new Map<number, number>()
  return {
    count: (event: PgqEvent) => calls.set(n(event), (calls.get(n(event)) ?? 0) + 1),
    of: (i: number) => calls.get(i) ?? 0
  }
}

layer(TestDb.servicesLayer, { excludeTestServices: true })("Consumer isolation", (it) => {
  it.effect("default: a no-SQL handler runs once, a failing one never again, SQL ones redo their writes once", () =>
    Effect.gen(function*() {
      const { queue, consumer, written, write } = yield* setup(10)
      const calls = counter()
      // Even events write; event 5 writes and then fails; 7 fails without writing.
      const handler: EventHandler<string, never> = (event) =>
        Effect.gen(function*() {
          calls.count(event)
          if (n(event) % 2 === 0 || n(event) === 5) yield* write(n(event)).pipe(Effect.orDie)
          if (n(event) === 5 || n(event) === 7) return yield* Effect.fail(`event ${n(event)} failed`)
        })
      const stats = yield* InteractiveConsumer.processAvailable({ queue, consumer, onEvent: handler })
      assert.deepStrictEqual([stats.ok, stats.retried, stats.failed], [8, 2, 0])
      for (const i of [1, 3, 5, 7, 9]) assert.strictEqual(calls.of(i), 1, `event ${i}`)
      // 2 and 4 wrote before 5 failed: run again to redo their writes; 6, 8, 10 ran once, in the replay.
      assert.deepStrictEqual([2, 4, 6, 8, 10].map(calls.of), [2, 2, 1, 1, 1])
      assert.deepStrictEqual(yield* written, [2, 4, 6, 8, 10])
      yield* TestDb.maintAllRetries
    }))

  it.effect("default: a failing handler that ran no SQL needs no replay", () =>
    Effect.gen(function*() {
      const { queue, consumer, written, write } = yield* setup(4)
      const calls = counter()
      const [stats] = yield* Effect.scoped(Effect.flatMap(
        Consumer.make({
          queue,
          consumer,
          onEvent: (event) => {
            calls.count(event)
            return n(event) === 2 ? Effect.die(new Error("no SQL, just a bug")) : write(n(event)).pipe(Effect.orDie)
          }
        }),
        (c) => Effect.map(c.processNext, Option.toArray)
      ))
      assert.isFalse(stats!.replayed)
      assert.deepStrictEqual([1, 2, 3, 4].map(calls.of), [1, 1, 1, 1])
      assert.deepStrictEqual(yield* written, [1, 3, 4])
      yield* TestDb.maintAllRetries
    }))

  it.effect("savepoint: every handler exactly once, a failing one's writes undone", () =>
    Effect.gen(function*() {
      const { queue, consumer, written, write } = yield* setup(6)
      const calls = counter()
      const stats = yield* InteractiveConsumer.processAvailable({
        queue,
        consumer,
        isolation: "savepoint",
        onEvent: (event) =>
          Effect.gen(function*() {
            calls.count(event)
            yield* write(n(event)).pipe(Effect.orDie)
            if (n(event) === 3) return yield* Effect.die(new Error("after writing"))
          })
      })
      assert.deepStrictEqual([stats.ok, stats.retried], [5, 1])
      assert.deepStrictEqual([1, 2, 3, 4, 5, 6].map(calls.of), [1, 1, 1, 1, 1, 1])
      assert.deepStrictEqual(yield* written, [1, 2, 4, 5, 6])
      yield* TestDb.maintAllRetries
    }))

  for (const isolation of ["default", "savepoint"] satisfies ReadonlyArray<Isolation>) {
    it.effect(`${isolation}: a handler that swallows an SQL error is failed, naming the SQLSTATE; the batch commits`, () =>
      Effect.gen(function*() {
        const { queue, consumer, written, write } = yield* setup(4)
        const failedEvents = yield* FailedEvents
        const stats = yield* InteractiveConsumer.processAvailable({
          queue,
          consumer,
          isolation,
          failurePolicy: { maxRetries: 0, backoff: () => Duration.zero },
          onEvent: (event) =>
            // Event 3 inserts 2 again: a duplicate key it "handles" by ignoring it.
            write(n(event) === 3 ? 2 : n(event)).pipe(Effect.catch(() => Effect.void))
        })
        assert.deepStrictEqual([stats.ok, stats.failed], [3, 1])
        assert.deepStrictEqual(yield* written, [1, 2, 4])
        const [failed] = yield* failedEvents.list(queue, consumer)
        assert.strictEqual(failed!.event.data, "3")
        assert.include(failed!.reason, "23505")
        assert.include(failed!.reason, "SwallowedSqlError")
      }))
  }

  for (const isolation of ["default", "savepoint"] satisfies ReadonlyArray<Isolation>) {
    it.effect(`${isolation}: a handler that times out its own statement is failed (57014); the consumer goes on`, () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { queue, consumer, written, write } = yield* setup(3)
        const failedEvents = yield* FailedEvents
        const stats = yield* InteractiveConsumer.processAvailable({
          queue,
          consumer,
          isolation,
          failurePolicy: { maxRetries: 0, backoff: () => Duration.zero },
          onEvent: (event) =>
            n(event) === 2
              // The interrupted statement is cancelled by the server, which aborts the transaction.
              ? sql`select pg_sleep(5)`.pipe(Effect.timeout("200 millis"), Effect.ignore)
              : write(n(event)).pipe(Effect.orDie)
        })
        assert.deepStrictEqual([stats.ok, stats.failed], [2, 1])
        assert.deepStrictEqual(yield* written, [1, 3])
        const [failed] = yield* failedEvents.list(queue, consumer)
        assert.include(failed!.reason, "57014")
      }))
  }

  it.effect("savepoint: a failing handler's afterCommit callbacks are discarded with its writes", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { queue, consumer, write } = yield* setup(3)
      const mailed: Array<number> = []
      yield* InteractiveConsumer.processAvailable({
        queue,
        consumer,
        isolation: "savepoint",
        onEvent: (event) =>
          Effect.gen(function*() {
            yield* sql.afterCommit(Effect.sync(() => void mailed.push(n(event))))
            if (n(event) === 2) yield* write(2).pipe(Effect.orDie)
            if (n(event) !== 1) return yield* Effect.fail("after registering")
          })
      })
      assert.deepStrictEqual(mailed, [1])
      yield* TestDb.maintAllRetries
    }))

  it.effect("results pgq cannot settle and self-interruption go to the failure policy; the consumer goes on", () =>
    Effect.gen(function*() {
      const { queue, consumer } = yield* setup(5)
      const failedEvents = yield* FailedEvents
      const handler = ((event: PgqEvent) => {
        switch (n(event)) {
          case 1:
            return Effect.succeed(EventResult.Retry(Duration.infinity))
          case 2:
            return Effect.succeed({ _tag: "Retry" })
          case 3:
            return Effect.succeed(EventResult.Failed("a NUL \u0000 in the reason"))
          case 4:
            return Effect.interrupt
          default:
            return Effect.void
        }
      }) as unknown as EventHandler<never, never>
      const stats = yield* InteractiveConsumer.processAvailable({
        queue,
        consumer,
        failurePolicy: { maxRetries: 0, backoff: () => Duration.zero },
        onEvent: handler
      })
      assert.deepStrictEqual([stats.ok, stats.failed, stats.events], [1, 4, 5])
      const reasons = (yield* failedEvents.list(queue, consumer)).map((event) => event.reason)
      assert.include(reasons[0], "not an EventResult")
      assert.include(reasons[1], "not an EventResult")
      assert.include(reasons[2], "a NUL \uFFFD in the reason")
      assert.include(reasons[3], "nterrupt")
    }))

  it.effect("a handler that recovers from an SQL error in its own savepoint is not failed", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { queue, consumer, written, write } = yield* setup(3)
      const stats = yield* InteractiveConsumer.processAvailable({
        queue,
        consumer,
        onEvent: (event) => sql.withTransaction(write(n(event) === 3 ? 1 : n(event))).pipe(Effect.catch(() => Effect.void))
      })
      assert.deepStrictEqual([stats.ok, stats.retried, stats.failed, stats.events], [3, 0, 0, 3])
      assert.deepStrictEqual(yield* written, [1, 2])
    }))

  it.effect("afterCommit in a handler runs once the batch has committed", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const pgq = yield* Pgq
      const { queue, consumer } = yield* setup(2)
      const seen: Array<string> = []
      yield* InteractiveConsumer.processAvailable({
        queue,
        consumer,
        onEvent: (event) =>
          sql.afterCommit(Effect.gen(function*() {
            // By now finish_batch has committed: the consumer holds no batch.
            const info = yield* pgq.getConsumerInfo(queue, consumer).pipe(Effect.orDie)
            seen.push(`${event.data}:${info.currentBatch === null ? "committed" : "open"}`)
          }))
      })
      assert.deepStrictEqual(seen, ["1:committed", "2:committed"])
    }))

  it.effect("a throw, a non-Effect return or a non-result go to the failure policy; the consumer goes on", () =>
    Effect.gen(function*() {
      const { queue, consumer } = yield* setup(4)
      const failedEvents = yield* FailedEvents
      const handler = ((event: PgqEvent) => {
        if (n(event) === 1) throw new Error("thrown before any Effect")
        if (n(event) === 2) return undefined
        if (n(event) === 3) return Effect.succeed("done")
        return Effect.void
      }) as unknown as EventHandler<never, never>
      const stats = yield* InteractiveConsumer.processAvailable({
        queue,
        consumer,
        failurePolicy: { maxRetries: 0, backoff: () => Duration.zero },
        onEvent: handler
      })
      assert.deepStrictEqual([stats.ok, stats.failed], [1, 3])
      const reasons = (yield* failedEvents.list(queue, consumer)).map((event) => event.reason)
      assert.include(reasons[0], "thrown before any Effect")
      assert.include(reasons[1], "the handler returned undefined, not an Effect")
      assert.include(reasons[2], "not an EventResult")
    }))

  it.effect("a batch handler that fails after writing: writes undone, every event decided by the policy, called once", () =>
    Effect.gen(function*() {
      const { queue, consumer, written, write } = yield* setup(3)
      let calls = 0
      const stats = yield* InteractiveConsumer.processAvailable({
        queue,
        consumer,
        onBatch: (events) =>
          Effect.gen(function*() {
            calls++
            yield* write(n(events[0]!)).pipe(Effect.orDie)
            return yield* Effect.fail("the whole batch failed")
          })
      })
      assert.strictEqual(calls, 1)
      assert.deepStrictEqual([stats.ok, stats.retried], [0, 3])
      assert.deepStrictEqual(yield* written, [])
      yield* TestDb.maintAllRetries
    }))
})

/** The same services on a pool of one connection. */
const oneConnection = PgqServices.layer.pipe(
  Layer.provideMerge(PgClient.layer({ url: Redacted.make(TestDb.url), maxConnections: 1 }))
)

layer(oneConnection, { excludeTestServices: true })("Consumer on a one-connection pool", (it) => {
  it.effect("runs, listens, replays and reports a removed registration, never waiting for a second connection", () =>
    Effect.gen(function*() {
      const { queue, consumer, written, write } = yield* setup(5)
      const pgq = yield* Pgq
      const result = yield* Effect.scoped(Effect.gen(function*() {
        const c = yield* Consumer.make({
          queue,
          consumer,
          idleDelay: "100 millis",
          onEvent: (event) =>
            Effect.gen(function*() {
              yield* write(n(event)).pipe(Effect.orDie)
              if (n(event) === 4 && event.retry === null) return yield* Effect.fail("once")
            })
        })
        const fiber = yield* Effect.forkChild(c.run)
        // The batch (with a replay) commits; then the registration goes away under the running consumer.
        yield* written.pipe(
          Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (rows) => rows.length === 4 }),
          Effect.timeout("20 seconds")
        )
        yield* pgq.unregisterConsumer(queue, consumer)
        return yield* Fiber.await(fiber).pipe(Effect.timeout("20 seconds"))
      }))
      assert.deepStrictEqual(yield* written, [1, 2, 3, 5])
      assert.isTrue(result._tag === "Failure")
      assert.include(String(result._tag === "Failure" ? result.cause : ""), "ConsumerNotRegistered")
    }).pipe(Effect.timeout("60 seconds")))
})
