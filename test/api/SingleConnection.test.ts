import { PgClient } from "@effect/sql-pg"
import { assert, layer } from "@effect/vitest"
import { type Cause, Effect, Layer, Option, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import { FailedEvents } from "../../src/api/FailedEvents.ts"
import { Installer } from "../../src/api/Installer.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import type { ConsumerNotRegistered, PgqError } from "../../src/api/PgqError.ts"
import { refineConsumerNotRegistered } from "../../src/internal/refineConsumerNotRegistered.ts"
import * as TestDb from "../TestDb.ts"

/**
 * One pooled connection: inside a transaction there is no second one to
 * take, so anything that asks for one hangs. The timeout turns such a
 * regression into a failure.
 */
const SingleConnection = Layer.mergeAll(Pgq.layer, FailedEvents.layer, Installer.layer).pipe(
  Layer.provideMerge(PgClient.layer({ url: Redacted.make(TestDb.url), maxConnections: 1 }))
)

const within = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.timeout(effect, "10 seconds")

/** Narrows a failure to ConsumerNotRegistered, failing the test on anything else (a timeout included). */
const expectConsumerNotRegistered = (error: PgqError | SqlError | Cause.TimeoutError): ConsumerNotRegistered => {
  if (error._tag !== "ConsumerNotRegistered") return assert.fail(`expected ConsumerNotRegistered: ${error.message}`)
  return error
}

layer(SingleConnection, { excludeTestServices: true })("Pgq on a single connection", (it) => {
  it.effect("inside a transaction, reports ConsumerNotRegistered without taking a second connection", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const sql = yield* SqlClient.SqlClient
      const queue = TestDb.unique("q")
      yield* pgq.createQueue(queue)

      const unregistered = expectConsumerNotRegistered(
        yield* Effect.flip(within(pgq.nextBatchInfo(queue, "nobody").pipe(sql.withTransaction)))
      )
      expectConsumerNotRegistered(
        yield* Effect.flip(within(pgq.takeNextBatch(queue, "nobody").pipe(sql.withTransaction)))
      )

      // The transaction is aborted: an unknown queue cannot be told apart inside it...
      const missingQueue = TestDb.unique("missing")
      const inside = expectConsumerNotRegistered(
        yield* Effect.flip(within(pgq.nextBatchInfo(missingQueue, "c").pipe(sql.withTransaction)))
      )
      assert.strictEqual(inside.queue, missingQueue)

      // ...but after its rollback, on the same single connection, it can.
      const refined = yield* Effect.flip(within(refineConsumerNotRegistered(sql)(inside)))
      assert.strictEqual(refined._tag, "QueueNotFound", refined.message)
      assert.include(refined.message, missingQueue)
      // A consumer that really is not registered stays so.
      expectConsumerNotRegistered(yield* Effect.flip(within(refineConsumerNotRegistered(sql)(unregistered))))

      // Outside a transaction, one ordinary pooled query tells them apart at once.
      const outside = yield* Effect.flip(within(pgq.nextBatchInfo(missingQueue, "c")))
      assert.strictEqual(outside._tag, "QueueNotFound", outside.message)
    }))

  it.effect("inside a transaction, an empty answer is told apart on the transaction's own connection", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const sql = yield* SqlClient.SqlClient
      const queue = TestDb.unique("q")
      yield* pgq.createQueue(queue)
      const missingQueue = TestDb.unique("missing")
      // These statements succeed with nothing to report, so the transaction stays usable.
      const results = yield* within(Effect.gen(function*() {
        return [
          yield* Effect.flip(pgq.getConsumerInfo(queue, "nobody")),
          yield* Effect.flip(pgq.getConsumerInfo(missingQueue, "nobody")),
          yield* Effect.flip(pgq.unregisterConsumer(queue, "nobody")),
          yield* Effect.flip(pgq.unregisterConsumer(missingQueue, "nobody"))
        ]
      }).pipe(sql.withTransaction))
      assert.deepStrictEqual(results.map((error) => error._tag), [
        "ConsumerNotRegistered",
        "QueueNotFound",
        "ConsumerNotRegistered",
        "QueueNotFound"
      ])
    }))

  it.effect("a failed-event retry inside a transaction does not wait for a second connection", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const store = yield* FailedEvents
      const sql = yield* SqlClient.SqlClient
      yield* (yield* Installer).install
      const { queue, consumer } = yield* TestDb.queueWithConsumer("q")
      yield* pgq.insertEvent(queue, { type: "t", data: "d" })
      yield* TestDb.tick(queue)
      const batch = Option.getOrThrow(yield* pgq.nextBatch(queue, consumer))
      const [event] = yield* pgq.getBatchEvents(batch)
      yield* pgq.finishBatch(batch)
      yield* store.store(queue, consumer, event!, "bad")
      yield* pgq.dropQueue(queue, { force: true })

      const inside = expectConsumerNotRegistered(
        yield* Effect.flip(within(store.retry(queue, consumer, "all").pipe(sql.withTransaction)))
      )
      const refined = yield* Effect.flip(within(refineConsumerNotRegistered(sql)(inside)))
      assert.strictEqual(refined._tag, "QueueNotFound", refined.message)
      assert.strictEqual(yield* store.count(queue, consumer), 1)
    }))
})
