import { assert, layer } from "@effect/vitest"
import { Effect, Option, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { Pgq } from "../../src/api/Pgq.ts"
import { Producer } from "../../src/api/Producer.ts"
import * as TestDb from "../TestDb.ts"

/** Ticks and reads everything the consumer has been sent. */
const consumeAll = (queue: string, consumer: string) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    yield* TestDb.tick(queue)
    const batch = yield* pgq.nextBatch(queue, consumer)
    if (Option.isNone(batch)) return []
    const events = yield* Stream.runCollect(pgq.getBatchCursor(batch.value, { fetchSize: 5000 }))
    yield* pgq.finishBatch(batch.value)
    return events
  })

layer(TestDb.layer, { excludeTestServices: true })("Producer", (it) => {
  it.effect("sends one event and returns its id", () =>
    Effect.gen(function*() {
      const producer = yield* Producer
      const { queue, consumer } = yield* TestDb.queueWithConsumer("p")
      const id = yield* producer.send(queue, { type: "user.created", data: "{\"id\":1}", extra4: "trace" })
      const [event] = yield* consumeAll(queue, consumer)
      assert.strictEqual(event!.id, id)
      assert.strictEqual(event!.extra4, "trace")
    }))

  it.effect("bulk-inserts thousands of events in chunks, in order, with pgq's ids and times", () =>
    Effect.gen(function*() {
      const producer = yield* Producer
      const { queue, consumer } = yield* TestDb.queueWithConsumer("p")
      const events = Array.from({ length: 12_345 }, (_, i) => ({ type: "bulk", data: `event ${i}` }))
      assert.strictEqual(yield* producer.sendMany(queue, events, { chunkSize: 5_000 }), 12_345)
      const consumed = yield* consumeAll(queue, consumer)
      assert.strictEqual(consumed.length, 12_345)
      assert.deepStrictEqual(consumed.slice(0, 2).map((e) => e.data), ["event 0", "event 1"])
      assert.strictEqual(consumed.at(-1)!.data, "event 12344")
      assert.strictEqual(new Set(consumed.map((e) => e.id)).size, 12_345)
      assert.isTrue(consumed.every((e) => e.txid !== null && e.retry === null))
      // A single insert after the bulk one continues the same id sequence.
      const next = yield* producer.send(queue, { type: "single", data: "after" })
      assert.isTrue(next > consumed.at(-1)!.id)
    }))

  it.effect("bulk-inserts extras, NULLs, quotes and unicode unchanged", () =>
    Effect.gen(function*() {
      const producer = yield* Producer
      const { queue, consumer } = yield* TestDb.queueWithConsumer("p")
      const events = [
        { type: "a", data: "x'); drop table pgq.queue; --", extra1: "e1", extra4: "{\"q\":\"\\\"\"}" },
        { type: "b", data: null, extra2: "ünï 🚀", extra3: null },
        { type: "c", data: "" }
      ]
      yield* producer.sendMany(queue, events)
      const consumed = yield* consumeAll(queue, consumer)
      assert.deepStrictEqual(
        consumed.map((e) => [e.type, e.data, e.extra1, e.extra2, e.extra3, e.extra4]),
        [
          ["a", "x'); drop table pgq.queue; --", "e1", null, null, "{\"q\":\"\\\"\"}"],
          ["b", null, null, "ünï 🚀", null, null],
          ["c", "", null, null, null, null]
        ]
      )
    }))

  it.effect("commits with the caller's transaction, and rolls back with it", () =>
    Effect.gen(function*() {
      const producer = yield* Producer
      const sql = yield* SqlClient.SqlClient
      const { queue, consumer } = yield* TestDb.queueWithConsumer("p")
      const failed = yield* Effect.flip(
        Effect.gen(function*() {
          yield* producer.sendMany(queue, [{ type: "t", data: "lost" }, { type: "t", data: "lost" }])
          yield* producer.send(queue, { type: "t", data: "lost" })
          return yield* Effect.fail("business failure" as const)
        }).pipe(sql.withTransaction)
      )
      assert.strictEqual(failed, "business failure")
      yield* producer.sendMany(queue, [{ type: "t", data: "kept" }]).pipe(sql.withTransaction)
      assert.deepStrictEqual((yield* consumeAll(queue, consumer)).map((e) => e.data), ["kept"])
    }))

  it.effect("reports bad input with typed errors and inserts nothing", () =>
    Effect.gen(function*() {
      const producer = yield* Producer
      const { queue, consumer } = yield* TestDb.queueWithConsumer("p")
      const missing = yield* Effect.flip(producer.sendMany(TestDb.unique("missing"), [{ type: "t", data: "d" }]))
      assert.strictEqual(missing._tag, "QueueNotFound")
      assert.strictEqual((yield* Effect.flip(producer.send("", { type: "t", data: "d" })))._tag, "InvalidName")
      const chunk = yield* Effect.flip(producer.sendMany(queue, [{ type: "t", data: "d" }], { chunkSize: 0 }))
      assert.strictEqual(chunk._tag, "InvalidArgument")
      assert.strictEqual(yield* producer.sendMany(queue, []), 0)
      assert.deepStrictEqual(yield* consumeAll(queue, consumer), [])
    }))
})
