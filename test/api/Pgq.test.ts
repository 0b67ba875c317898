import { assert, layer } from "@effect/vitest"
import { DateTime, Duration, Effect, Option, Schema, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { Pgq } from "../../src/api/Pgq.ts"
import { BatchId, EventId, TickId } from "../../src/api/Ids.ts"
import { PgqEvent } from "../../src/api/PgqEvent.ts"
import * as TestDb from "../TestDb.ts"

/** Produces, ticks and opens the next batch; returns its id. */
const batchOf = (queue: string, consumer: string, events: ReadonlyArray<{ type: string; data: string | null }>) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    for (const event of events) yield* pgq.insertEvent(queue, event)
    yield* TestDb.tick(queue)
    const batch = yield* pgq.nextBatch(queue, consumer)
    return Option.getOrThrow(batch)
  })

layer(TestDb.layer, { excludeTestServices: true })("Pgq", (it) => {
  it.effect("reports the pgq version", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      assert.strictEqual(yield* pgq.version, "3.5")
    }))

  it.effect("creates, describes, lists and drops a queue", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const queue = TestDb.unique("q")
      assert.isTrue(yield* pgq.createQueue(queue))
      assert.isFalse(yield* pgq.createQueue(queue))
      const info = yield* pgq.getQueueInfo(queue)
      assert.strictEqual(info.queueName, queue)
      assert.strictEqual(info.ntables, 3)
      assert.strictEqual(info.tickerMaxCount, 500)
      assert.isFalse(info.tickerPaused)
      assert.isTrue(Option.isSome(Option.fromNullishOr(info.lastTickId)))
      assert.isTrue((yield* pgq.listQueues).some((q) => q.queueName === queue))
      assert.match(yield* pgq.currentEventTable(queue), /^pgq\.event_\d+_\d+$/)
      yield* pgq.dropQueue(queue)
      const error = yield* Effect.flip(pgq.getQueueInfo(queue))
      assert.strictEqual(error._tag, "QueueNotFound")
      assert.include(error.message, queue)
    }))

  it.effect("refuses to drop a queue with consumers unless forced", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const { queue } = yield* TestDb.queueWithConsumer("q")
      const error = yield* Effect.flip(pgq.dropQueue(queue))
      assert.strictEqual(error._tag, "QueueHasConsumers")
      assert.isTrue((yield* pgq.listQueues).some((q) => q.queueName === queue))
      yield* pgq.dropQueue(queue, { force: true })
      assert.isFalse((yield* pgq.listQueues).some((q) => q.queueName === queue))
      assert.strictEqual((yield* Effect.flip(pgq.dropQueue(queue)))._tag, "QueueNotFound")
    }))

  it.effect("runs the batch protocol: next batch, events, finish", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const { queue, consumer } = yield* TestDb.queueWithConsumer("q")
      assert.isTrue(Option.isNone(yield* pgq.nextBatch(queue, consumer)))
      const first = yield* pgq.insertEvent(queue, { type: "plain", data: "one" })
      const second = yield* pgq.insertEvent(queue, {
        type: "extras",
        data: null,
        extra1: "e1",
        extra2: null,
        extra3: "e3",
        extra4: "traceparent"
      })
      assert.isTrue(second > first)
      yield* TestDb.tick(queue)
      const info = Option.getOrThrow(yield* pgq.nextBatchInfo(queue, consumer))
      assert.isTrue(info.curTickId > info.prevTickId)
      // Asking again before finishing hands out the same batch.
      assert.deepStrictEqual(yield* pgq.nextBatch(queue, consumer), Option.some(info.batchId))
      const events = yield* pgq.getBatchEvents(info.batchId)
      assert.deepStrictEqual(events.map((e) => e.id), [first, second])
      assert.strictEqual(events[0]!.data, "one")
      assert.strictEqual(events[0]!.retry, null)
      assert.deepStrictEqual(
        [events[1]!.type, events[1]!.data, events[1]!.extra1, events[1]!.extra2, events[1]!.extra3, events[1]!.extra4],
        ["extras", null, "e1", null, "e3", "traceparent"]
      )
      const batchInfo = yield* pgq.getBatchInfo(info.batchId)
      assert.strictEqual(batchInfo.queueName, queue)
      assert.strictEqual(batchInfo.consumerName, consumer)
      assert.strictEqual(batchInfo.tickId, info.curTickId)
      const consumerInfo = yield* pgq.getConsumerInfo(queue, consumer)
      assert.strictEqual(consumerInfo.currentBatch, info.batchId)
      yield* pgq.finishBatch(info.batchId)
      assert.isTrue(Option.isNone(yield* pgq.nextBatch(queue, consumer)))
      assert.strictEqual((yield* pgq.getConsumerInfo(queue, consumer)).currentBatch, null)
    }))

  it.effect("finishing a batch twice, or an unknown one, is BatchNotFound", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const { queue, consumer } = yield* TestDb.queueWithConsumer("q")
      const batch = yield* batchOf(queue, consumer, [{ type: "t", data: "d" }])
      yield* pgq.finishBatch(batch)
      const twice = yield* Effect.flip(pgq.finishBatch(batch))
      assert.strictEqual(twice._tag, "BatchNotFound")
      assert.include(twice.message, String(batch))
      const unknown = BatchId.make(987_654_321n)
      assert.strictEqual((yield* Effect.flip(pgq.finishBatch(unknown)))._tag, "BatchNotFound")
      assert.strictEqual((yield* Effect.flip(pgq.getBatchEvents(unknown)))._tag, "BatchNotFound")
      assert.strictEqual((yield* Effect.flip(pgq.getBatchInfo(unknown)))._tag, "BatchNotFound")
      assert.strictEqual((yield* Effect.flip(pgq.batchRetry(unknown, "1 second")))._tag, "BatchNotFound")
      // pgq looks the event up by (batch, event): an unknown batch holds no events.
      assert.strictEqual(
        (yield* Effect.flip(pgq.eventRetry(unknown, EventId.make(1n), "1 second")))._tag,
        "EventNotFound"
      )
    }))

  it.effect("next_batch_custom waits for the requested count", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const { queue, consumer } = yield* TestDb.queueWithConsumer("q")
      yield* pgq.insertEvent(queue, { type: "t", data: "1" })
      yield* TestDb.tick(queue)
      assert.isTrue(Option.isNone(yield* pgq.nextBatchCustom(queue, consumer, { minCount: 1_000_000 })))
      assert.isTrue(Option.isNone(yield* pgq.nextBatchCustom(queue, consumer, { minLag: "1 hour" })))
      const batch = yield* pgq.nextBatchCustom(queue, consumer, { minCount: 1, minInterval: "0 millis" })
      assert.isTrue(Option.isSome(batch))
      const invalid = yield* Effect.flip(pgq.nextBatchCustom(queue, consumer, { minCount: -1 }))
      assert.strictEqual(invalid._tag, "InvalidArgument")
    }))

  it.effect("streams a batch through a cursor, in or out of a transaction", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const sql = yield* SqlClient.SqlClient
      const { queue, consumer } = yield* TestDb.queueWithConsumer("q")
      yield* sql`insert into ${sql.literal(yield* pgq.currentEventTable(queue))} (ev_time, ev_type, ev_data)
        select now(), case when i % 2 = 0 then 'even' else 'odd' end, i::text from generate_series(1, 2500) i`.pipe(
        sql.withTransaction
      )
      yield* TestDb.tick(queue)
      const batch = Option.getOrThrow(yield* pgq.nextBatch(queue, consumer))
      const outside = yield* Stream.runCollect(pgq.getBatchCursor(batch, { fetchSize: 1000 }))
      assert.strictEqual(outside.length, 2500)
      assert.deepStrictEqual(outside.slice(0, 3).map((e) => e.data), ["1", "2", "3"])
      const inside = yield* Stream.runCollect(pgq.getBatchCursor(batch, { fetchSize: 333 })).pipe(
        sql.withTransaction
      )
      assert.strictEqual(inside.length, 2500)
      const even = yield* Stream.runCollect(pgq.getBatchCursor(batch, { extraWhere: "ev_type = 'even'" }))
      assert.strictEqual(even.length, 1250)
      const bad = yield* Effect.flip(Stream.runCollect(pgq.getBatchCursor(batch, { fetchSize: 0 })))
      assert.strictEqual(bad._tag, "InvalidArgument")
      const unknown = yield* Effect.flip(Stream.runCollect(pgq.getBatchCursor(BatchId.make(987_654_321n))))
      assert.strictEqual(unknown._tag, "BatchNotFound")
      yield* pgq.finishBatch(batch)
    }))

  it.effect("streams a batch with pgq's own batch query, page by page", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const sql = yield* SqlClient.SqlClient
      const { queue, consumer } = yield* TestDb.queueWithConsumer("q")
      yield* sql`insert into ${sql.literal(yield* pgq.currentEventTable(queue))} (ev_time, ev_type, ev_data, ev_extra2)
        select now(), 't', i::text, 'x' from generate_series(1, 2345) i`.pipe(sql.withTransaction)
      yield* TestDb.tick(queue)
      const batch = Option.getOrThrow(yield* pgq.nextBatch(queue, consumer))
      const expected = Array.from({ length: 2345 }, (_, i) => String(i + 1))
      for (const pageSize of [500, 2345, 2344, 5000]) {
        const events = yield* Stream.runCollect(pgq.streamBatchEvents(batch, { pageSize }))
        assert.deepStrictEqual(events.map((e) => e.data), expected, `page size ${pageSize}`)
      }
      const inside = yield* Stream.runCollect(pgq.streamBatchEvents(batch, { pageSize: 700 })).pipe(sql.withTransaction)
      assert.strictEqual(inside.length, 2345)
      // Events come straight from driver rows: they must satisfy the schema all the same.
      assert.isTrue(inside.every(Schema.is(PgqEvent)))
      assert.isTrue(inside.every((e) => e.extra2 === "x" && e.extra1 === null && DateTime.isDateTime(e.time)))
      const bad = yield* Effect.flip(Stream.runCollect(pgq.streamBatchEvents(batch, { pageSize: 0 })))
      assert.strictEqual(bad._tag, "InvalidArgument")
      const unknown = yield* Effect.flip(Stream.runCollect(pgq.streamBatchEvents(BatchId.make(987_654_321n))))
      assert.strictEqual(unknown._tag, "BatchNotFound")
      yield* pgq.finishBatch(batch)
    }))

  it.effect("takes the next batch with its first page in two round trips", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const sql = yield* SqlClient.SqlClient
      const { queue, consumer } = yield* TestDb.queueWithConsumer("q")
      assert.isTrue(Option.isNone(yield* pgq.takeNextBatch(queue, consumer)))
      for (let i = 1; i <= 30; i++) yield* pgq.insertEvent(queue, { type: "t", data: String(i) })
      yield* TestDb.tick(queue)
      const held = yield* pgq.takeNextBatch(queue, consumer, { conditions: { minCount: 1_000_000 } })
      assert.isTrue(Option.isNone(held))
      yield* Effect.gen(function*() {
        const open = Option.getOrThrow(yield* pgq.takeNextBatch(queue, consumer, { pageSize: 20 }))
        assert.strictEqual(open.firstPage.length, 20)
        const rest = yield* Stream.runCollect(open.rest)
        assert.deepStrictEqual(rest.map((e) => e.data), Array.from({ length: 10 }, (_, i) => String(i + 21)))
        assert.isTrue(open.firstPage.every(Schema.is(PgqEvent)))
        yield* pgq.finishBatch(open.info.batchId)
      }).pipe(sql.withTransaction)
      const missing = yield* Effect.flip(pgq.takeNextBatch(TestDb.unique("none"), consumer))
      assert.strictEqual(missing._tag, "QueueNotFound")
      const notRegistered = yield* Effect.flip(pgq.takeNextBatch(queue, "nobody"))
      assert.strictEqual(notRegistered._tag, "ConsumerNotRegistered")
    }))

  it.effect("retries one event, and a whole batch, through the retry queue", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const { queue, consumer } = yield* TestDb.queueWithConsumer("q")
      const batch = yield* batchOf(queue, consumer, [{ type: "t", data: "a" }, { type: "t", data: "b" }])
      const [a, b] = yield* pgq.getBatchEvents(batch)
      yield* pgq.eventRetry(batch, a!.id, "0 seconds")
      yield* pgq.eventRetry(batch, b!.id, DateTime.makeUnsafe(Date.UTC(2000, 0, 1)))
      const missing = yield* Effect.flip(pgq.eventRetry(batch, EventId.make(a!.id + 1000n), "1 second"))
      assert.strictEqual(missing._tag, "EventNotFound")
      const negative = yield* Effect.flip(pgq.eventRetry(batch, a!.id, "-5 seconds"))
      assert.strictEqual(negative._tag, "InvalidArgument")
      yield* pgq.finishBatch(batch)
      // Retry maintenance is shared by every suite: the next batch shows that both came back.
      yield* TestDb.maintAllRetries
      yield* TestDb.tick(queue)
      const again = Option.getOrThrow(yield* pgq.nextBatch(queue, consumer))
      const retried = yield* pgq.getBatchEvents(again)
      assert.deepStrictEqual(retried.map((e) => [e.id, e.retry]), [[a!.id, 1], [b!.id, 1]])
      assert.strictEqual(yield* pgq.batchRetry(again, "0 seconds"), 2)
      yield* pgq.finishBatch(again)
    }))

  it.effect("re-inserts an event for one consumer with event_retry_raw", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const { queue, consumer } = yield* TestDb.queueWithConsumer("q")
      const other = TestDb.unique("other")
      yield* pgq.registerConsumer(queue, other)
      const batch = yield* batchOf(queue, consumer, [{ type: "t", data: "payload" }])
      const [event] = yield* pgq.getBatchEvents(batch)
      yield* pgq.finishBatch(batch)
      const id = yield* pgq.eventRetryRaw(queue, consumer, {
        retryAfter: DateTime.makeUnsafe(Date.UTC(2000, 0, 1)),
        id: event!.id,
        time: event!.time,
        retry: 3,
        type: event!.type,
        data: event!.data,
        extra1: null,
        extra2: null,
        extra3: null,
        extra4: null
      })
      assert.strictEqual(id, event!.id)
      yield* TestDb.maintAllRetries
      yield* TestDb.tick(queue)
      const again = Option.getOrThrow(yield* pgq.nextBatch(queue, consumer))
      assert.deepStrictEqual((yield* pgq.getBatchEvents(again)).map((e) => [e.data, e.retry]), [["payload", 3]])
      // The other consumer sees the original once and no re-delivery.
      const otherBatch = Option.getOrThrow(yield* pgq.nextBatch(queue, other))
      assert.strictEqual((yield* pgq.getBatchEvents(otherBatch)).length, 1)
      const unknown = yield* Effect.flip(pgq.eventRetryRaw(queue, "nobody", {
        retryAfter: event!.time,
        id: event!.id,
        time: event!.time,
        retry: 1,
        type: null,
        data: null,
        extra1: null,
        extra2: null,
        extra3: null,
        extra4: null
      }))
      assert.strictEqual(unknown._tag, "ConsumerNotRegistered")
    }))

  it.effect("registers, repositions, lists and unregisters consumers", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const { queue, consumer } = yield* TestDb.queueWithConsumer("q")
      assert.isFalse(yield* pgq.registerConsumer(queue, consumer))
      const second = TestDb.unique("c2")
      const lastTick = (yield* pgq.getConsumerInfo(queue, consumer)).lastTick
      assert.isNotNull(lastTick)
      assert.isTrue(yield* pgq.registerConsumerAt(queue, second, lastTick!))
      const names = (yield* pgq.listConsumers(queue)).map((c) => c.consumerName)
      assert.deepStrictEqual(names.toSorted(), [consumer, second].toSorted())
      assert.isTrue((yield* pgq.listConsumers()).some((c) => c.consumerName === second))
      const badTick = yield* Effect.flip(pgq.registerConsumerAt(queue, second, TickId.make(999_999_999n)))
      assert.strictEqual(badTick._tag, "PgqSqlError")
      yield* pgq.unregisterConsumer(queue, second)
      assert.strictEqual((yield* Effect.flip(pgq.unregisterConsumer(queue, second)))._tag, "ConsumerNotRegistered")
      assert.strictEqual((yield* Effect.flip(pgq.getConsumerInfo(queue, second)))._tag, "ConsumerNotRegistered")
    }))

  it.effect("tells an unknown queue from an unknown consumer", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const { queue } = yield* TestDb.queueWithConsumer("q")
      const missingQueue = TestDb.unique("missing")
      const cases = [
        pgq.nextBatch(missingQueue, "c"),
        pgq.nextBatchInfo(missingQueue, "c"),
        pgq.registerConsumer(missingQueue, "c"),
        pgq.unregisterConsumer(missingQueue, "c"),
        pgq.getConsumerInfo(missingQueue, "c"),
        pgq.insertEvent(missingQueue, { type: "t", data: "d" }),
        pgq.currentEventTable(missingQueue),
        pgq.tickQueue(missingQueue),
        pgq.forceTick(missingQueue),
        pgq.setQueueConfig(missingQueue, "ticker_max_count", "10")
      ]
      for (const effect of cases) {
        const error = yield* Effect.flip(effect)
        assert.strictEqual(error._tag, "QueueNotFound", error.message)
        assert.include(error.message, missingQueue)
      }
      const notRegistered = yield* Effect.flip(pgq.nextBatch(queue, "nobody"))
      assert.strictEqual(notRegistered._tag, "ConsumerNotRegistered")
      assert.include(notRegistered.message, "nobody")
    }))

  it.effect("configures the ticker and ticks external-tick queues", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const queue = TestDb.unique("q")
      yield* pgq.createQueue(queue)
      yield* pgq.setQueueConfig(queue, "ticker_max_count", "42")
      yield* pgq.setQueueConfig(queue, "ticker_max_lag", "7 seconds")
      const info = yield* pgq.getQueueInfo(queue)
      assert.strictEqual(info.tickerMaxCount, 42)
      assert.strictEqual(Duration.toMillis(info.tickerMaxLag), 7000)
      assert.isTrue((yield* pgq.ticker) >= 0n)
      yield* pgq.setQueueConfig(queue, "external_ticker", "true")
      const external = yield* Effect.flip(pgq.tickQueue(queue))
      assert.strictEqual(external._tag, "PgqSqlError")
      const last = info.lastTickId!
      const tick = yield* pgq.tickExternal(queue, {
        tickId: TickId.make(last + 10n),
        time: DateTime.makeUnsafe(Date.now()),
        eventSeq: 0n
      })
      assert.strictEqual(tick, last + 10n)
      assert.strictEqual((yield* pgq.getQueueInfo(queue)).lastTickId, last + 10n)
    }))

  it.effect("runs the maintenance functions", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const queue = TestDb.unique("q")
      yield* pgq.createQueue(queue)
      yield* pgq.grantPerms(queue)
      yield* pgq.tuneStorage(queue)
      assert.isAtLeast(yield* pgq.upgradeSchema, 0)
      const operations = yield* pgq.maintOperations
      assert.isTrue(operations.every((op) => op.funcName.startsWith("pgq.") || op.funcName.startsWith("vacuum")))
      assert.isTrue(Array.isArray(yield* pgq.maintTablesToVacuum))
      const before = (yield* pgq.getQueueInfo(queue)).curTable
      yield* pgq.setQueueConfig(queue, "rotation_period", "0")
      assert.strictEqual(yield* pgq.maintRotateTablesStep1(queue), 0)
      yield* pgq.maintRotateTablesStep2
      const after = (yield* pgq.getQueueInfo(queue)).curTable
      assert.strictEqual(after, (before + 1) % 3)
      yield* pgq.dropQueue(queue)
    }))

  it.effect("refuses bad names before touching the database", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const before = (yield* pgq.listQueues).length
      for (const name of ["", " padded", "x".repeat(1000), "tab\there", "nul\u0000"]) {
        const error = yield* Effect.flip(pgq.createQueue(name))
        assert.strictEqual(error._tag, "InvalidName")
        const consumerError = yield* Effect.flip(pgq.registerConsumer("q", name))
        assert.strictEqual(consumerError._tag, "InvalidName")
      }
      assert.strictEqual((yield* pgq.listQueues).length, before)
    }))

  it.effect("accepts quotes, semicolons and unicode in names and payloads", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const queue = `it's; drop table pgq.queue; -- "ünïcödé" 🚀 ${TestDb.unique("q")}`
      const consumer = `o'brien; "select" ✓ ${TestDb.unique("c")}`
      const longest = "é".repeat(255)
      assert.isTrue(yield* pgq.createQueue(queue))
      yield* pgq.registerConsumer(queue, consumer)
      yield* pgq.registerConsumer(queue, longest)
      const payload = `'); delete from pgq.queue; -- ${"🚀".repeat(10)}`
      const batch = yield* batchOf(queue, consumer, [{ type: "t'y\"pe", data: payload }])
      const [event] = yield* pgq.getBatchEvents(batch)
      assert.strictEqual(event!.data, payload)
      assert.strictEqual(event!.type, "t'y\"pe")
      assert.strictEqual((yield* pgq.getQueueInfo(queue)).queueName, queue)
      assert.isTrue((yield* pgq.listConsumers(queue)).some((c) => c.consumerName === longest))
      yield* pgq.finishBatch(batch)
      yield* pgq.dropQueue(queue, { force: true })
    }))

  it.effect("carries 1 MB payloads and NULL data and extras", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const { queue, consumer } = yield* TestDb.queueWithConsumer("q")
      const big = "x".repeat(1024 * 1024)
      yield* pgq.insertEvent(queue, { type: "big", data: big, extra1: "y".repeat(1024 * 1024) })
      yield* pgq.insertEvent(queue, { type: "null", data: null, extra1: null, extra4: null })
      const batch = yield* batchOf(queue, consumer, [])
      const [first, second] = yield* pgq.getBatchEvents(batch)
      assert.strictEqual(first!.data!.length, 1024 * 1024)
      assert.strictEqual(first!.extra1!.length, 1024 * 1024)
      assert.deepStrictEqual([second!.data, second!.extra1, second!.extra4], [null, null, null])
      const streamed = yield* Stream.runCollect(pgq.getBatchCursor(batch, { fetchSize: 1 }))
      assert.strictEqual(streamed[0]!.data, big)
      yield* pgq.finishBatch(batch)
    }))
})
