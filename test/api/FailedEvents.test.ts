import { assert, layer } from "@effect/vitest"
import { DateTime, Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { inject } from "vitest"
import { EventStatus } from "../../src/api/EventStatus.ts"
import { type FailedEvent, FailedEvents } from "../../src/api/FailedEvents.ts"
import { EventId } from "../../src/api/Ids.ts"
import { Installer } from "../../src/api/Installer.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import { isPgqError, type PgqError } from "../../src/api/PgqError.ts"
import type { PgqEvent } from "../../src/api/PgqEvent.ts"
import * as TestDb from "../TestDb.ts"

const TestLayer = Layer.mergeAll(FailedEvents.layer, EventStatus.layer).pipe(Layer.provideMerge(TestDb.layer))

/** Narrows a typed error to one tag, failing the test otherwise. */
const expectTag = <T extends PgqError["_tag"]>(error: PgqError, tag: T): Extract<PgqError, { readonly _tag: T }> => {
  assert.strictEqual(error._tag, tag, error.message)
  return error as Extract<PgqError, { readonly _tag: T }>
}

/** Installs the schema, makes a queue with one consumer, and returns `count` delivered events (batch finished). */
const setup = (count: number, options?: { readonly otherConsumer?: boolean }) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    yield* (yield* Installer).install
    const { queue, consumer } = yield* TestDb.queueWithConsumer("fe")
    // Registered before the tick, so it receives the original events too.
    const other = TestDb.unique("other")
    if (options?.otherConsumer === true) yield* pgq.registerConsumer(queue, other)
    for (let i = 1; i <= count; i++) {
      yield* pgq.insertEvent(queue, {
        type: `type.${i}`,
        data: `{"n":${i}}`,
        extra1: `e1-${i}`,
        extra2: i % 2 === 0 ? null : "odd",
        extra3: "ünï 🚀 'q'",
        extra4: `trace-${i}`
      })
    }
    yield* TestDb.tick(queue)
    const batch = Option.getOrThrow(yield* pgq.nextBatch(queue, consumer))
    const events = yield* pgq.getBatchEvents(batch)
    yield* pgq.finishBatch(batch)
    assert.strictEqual(events.length, count)
    return { queue, consumer, other, events }
  })


/** Every event the consumer receives from the batches ready after retry maintenance and a tick. */
const drain = (queue: string, consumer: string) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    yield* TestDb.maintAllRetries
    yield* TestDb.tick(queue)
    const events: Array<PgqEvent> = []
    while (true) {
      const batch = yield* pgq.nextBatch(queue, consumer)
      if (Option.isNone(batch)) return events
      events.push(...(yield* pgq.getBatchEvents(batch.value)))
      yield* pgq.finishBatch(batch.value)
    }
  })

const ids = (failed: ReadonlyArray<FailedEvent>) => failed.map((f) => f.event.id)

layer(TestLayer, { excludeTestServices: true })("FailedEvents", (it) => {
  it.effect("stores an event and lists it with every field", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      const { queue, consumer, events } = yield* setup(1)
      const event = events[0]!
      const reason = "handler said no: 'quoted' \"double\"\nsecond line ✗"
      const before = Date.now()
      yield* store.store(queue, consumer, event, reason)
      const listed = yield* store.list(queue, consumer)
      assert.strictEqual(listed.length, 1)
      const failed = listed[0]!
      assert.strictEqual(failed.queue, queue)
      assert.strictEqual(failed.consumer, consumer)
      assert.strictEqual(failed.reason, reason)
      assert.strictEqual(failed.event.id, event.id)
      assert.strictEqual(failed.event.txid, event.txid)
      assert.isNotNull(failed.event.txid)
      assert.strictEqual(failed.event.retry, null)
      assert.deepStrictEqual(
        [failed.event.type, failed.event.data, failed.event.extra1, failed.event.extra2, failed.event.extra3, failed.event.extra4],
        ["type.1", "{\"n\":1}", "e1-1", "odd", "ünï 🚀 'q'", "trace-1"]
      )
      assert.strictEqual(DateTime.toEpochMillis(failed.event.time), DateTime.toEpochMillis(event.time))
      // failed_at is the database's now(): after the event was produced, and close to this test's clock.
      const failedAt = DateTime.toEpochMillis(failed.failedAt)
      assert.isAtLeast(failedAt, DateTime.toEpochMillis(event.time))
      assert.isAtMost(Math.abs(failedAt - before), 60_000)
      assert.strictEqual(yield* store.count(queue, consumer), 1)
    }))

  it.effect("keeps a non-null retry count and NULL payload fields", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const store = yield* FailedEvents
      yield* (yield* Installer).install
      const { queue, consumer } = yield* TestDb.queueWithConsumer("fe")
      const id = yield* pgq.insertEvent(queue, { type: "t", data: null })
      yield* TestDb.tick(queue)
      // Retry once so the stored copy carries pgq's retry count.
      const first = Option.getOrThrow(yield* pgq.nextBatch(queue, consumer))
      yield* pgq.eventRetry(first, id, "0 seconds")
      yield* pgq.finishBatch(first)
      const [again] = (yield* drain(queue, consumer)).filter((e) => e.id === id)
      assert.strictEqual(again!.retry, 1)
      yield* store.store(queue, consumer, again!, "still bad")
      const [failed] = yield* store.list(queue, consumer)
      assert.strictEqual(failed!.event.retry, 1)
      assert.deepStrictEqual(
        [failed!.event.data, failed!.event.extra1, failed!.event.extra2, failed!.event.extra3, failed!.event.extra4],
        [null, null, null, null, null]
      )
    }))

  it.effect("stores a modified copy of a delivered event", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      const { queue, consumer, events } = yield* setup(1)
      // A handler redacting the payload before keeping it: a plain object spread of the delivered event.
      const redacted: PgqEvent = { ...events[0]!, data: "<redacted>" }
      yield* store.store(queue, consumer, redacted, "redacted copy")
      const [failed] = yield* store.list(queue, consumer)
      assert.strictEqual(failed!.event.data, "<redacted>")
      assert.strictEqual(DateTime.toEpochMillis(failed!.event.time), DateTime.toEpochMillis(events[0]!.time))
    }))

  it.effect("storing the same event again replaces its row", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      const { queue, consumer, events } = yield* setup(2)
      const [event, untouched] = events
      yield* store.store(queue, consumer, event!, "first reason")
      yield* store.store(queue, consumer, untouched!, "other event")
      const [firstRow] = yield* store.list(queue, consumer, { limit: 1 })
      yield* store.store(queue, consumer, event!, "second reason")
      assert.strictEqual(yield* store.count(queue, consumer), 2)
      const listed = yield* store.list(queue, consumer)
      assert.deepStrictEqual(listed.map((f) => [f.event.id, f.reason]), [
        [event!.id, "second reason"],
        [untouched!.id, "other event"]
      ])
      assert.strictEqual(listed[0]!.event.data, event!.data)
      assert.isAtLeast(DateTime.toEpochMillis(listed[0]!.failedAt), DateTime.toEpochMillis(firstRow!.failedAt))
    }))

  it.effect("pages through 25 events by id", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      const { queue, consumer, events } = yield* setup(25)
      for (const event of events) yield* store.store(queue, consumer, event, `reason ${event.id}`)
      assert.strictEqual(yield* store.count(queue, consumer), 25)

      const pages: Array<ReadonlyArray<EventId>> = []
      let afterId: EventId | undefined = undefined
      for (let guard = 0; guard < 10; guard++) {
        const page: ReadonlyArray<FailedEvent> = yield* store.list(queue, consumer, { limit: 10, afterId })
        if (page.length === 0) break
        pages.push(ids(page))
        afterId = page.at(-1)!.event.id
      }
      assert.deepStrictEqual(pages.map((page) => page.length), [10, 10, 5])
      const all = pages.flat()
      assert.strictEqual(new Set(all).size, 25, "no event on two pages")
      assert.deepStrictEqual(all, events.map((e) => e.id).toSorted((a, b) => (a < b ? -1 : a > b ? 1 : 0)))
      for (let i = 1; i < all.length; i++) assert.isTrue(all[i]! > all[i - 1]!, "ids ascend")

      // The default page holds all 25; afterId past the last id gives an empty page.
      assert.deepStrictEqual(ids(yield* store.list(queue, consumer)), all)
      assert.deepStrictEqual(yield* store.list(queue, consumer, { afterId: all.at(-1)! }), [])
      assert.deepStrictEqual(ids(yield* store.list(queue, consumer, { limit: 1, afterId: all[3]! })), [all[4]!])
      assert.strictEqual((yield* store.list(queue, consumer, { limit: 10_000 })).length, 25)
    }))

  it.effect("refuses list limits outside 1 to 10,000", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      const { queue, consumer, events } = yield* setup(1)
      yield* store.store(queue, consumer, events[0]!, "bad")
      for (const limit of [0, -1, 10_001, 20_000, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        const error = expectTag(yield* Effect.flip(store.list(queue, consumer, { limit })), "InvalidArgument")
        assert.strictEqual(error.argument, "limit", `limit ${limit}`)
        assert.strictEqual(error.operation, "FailedEvents.list")
      }
      assert.strictEqual((yield* store.list(queue, consumer, { limit: 1 })).length, 1)
    }))

  it.effect("counts per queue and consumer", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      const { queue, consumer, events } = yield* setup(3)
      assert.strictEqual(yield* store.count(queue, consumer), 0)
      for (const event of events) yield* store.store(queue, consumer, event, "bad")
      assert.strictEqual(yield* store.count(queue, consumer), 3)
      yield* store.delete(queue, consumer, events[1]!.id)
      assert.strictEqual(yield* store.count(queue, consumer), 2)
    }))

  it.effect("deletes one event, says which id is missing, and deletes all", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      const { queue, consumer, events } = yield* setup(3)
      for (const event of events) yield* store.store(queue, consumer, event, "bad")
      assert.strictEqual(yield* store.delete(queue, consumer, events[0]!.id), 1)
      assert.deepStrictEqual(ids(yield* store.list(queue, consumer)), [events[1]!.id, events[2]!.id])

      const unknownId = EventId.make(987_654_321n)
      const missing = expectTag(yield* Effect.flip(store.delete(queue, consumer, unknownId)), "FailedEventNotFound")
      assert.strictEqual(missing.eventId, unknownId)
      assert.strictEqual(missing.queue, queue)
      assert.strictEqual(missing.consumer, consumer)
      assert.include(missing.message, "987654321")
      assert.include(missing.message, consumer)
      // Deleting an id twice: the second time it is gone.
      const twice = expectTag(yield* Effect.flip(store.delete(queue, consumer, events[0]!.id)), "FailedEventNotFound")
      assert.include(twice.message, String(events[0]!.id))
      assert.strictEqual(yield* store.count(queue, consumer), 2)

      assert.strictEqual(yield* store.delete(queue, consumer, "all"), 2)
      assert.strictEqual(yield* store.count(queue, consumer), 0)
      assert.strictEqual(yield* store.delete(queue, consumer, "all"), 0)
    }))

  it.effect("stores in the caller's transaction and rolls back with it", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      const sql = yield* SqlClient.SqlClient
      const { queue, consumer, events } = yield* setup(2)
      const failure = yield* Effect.flip(
        Effect.gen(function*() {
          yield* store.store(queue, consumer, events[0]!, "lost")
          return yield* Effect.fail("business failure" as const)
        }).pipe(sql.withTransaction)
      )
      assert.strictEqual(failure, "business failure")
      assert.strictEqual(yield* store.count(queue, consumer), 0)
      yield* store.store(queue, consumer, events[1]!, "kept").pipe(sql.withTransaction)
      assert.deepStrictEqual(ids(yield* store.list(queue, consumer)), [events[1]!.id])
    }))

  it.effect("retries one event to its consumer only, with the same payload and retry count 0", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      const { queue, consumer, other, events } = yield* setup(3, { otherConsumer: true })
      // The other consumer takes the original events once.
      const otherFirst = yield* drain(queue, other)
      assert.deepStrictEqual(otherFirst.map((e) => e.id), events.map((e) => e.id))

      for (const event of events) yield* store.store(queue, consumer, event, "bad")
      const target = events[1]!
      assert.strictEqual(yield* store.retry(queue, consumer, target.id), 1)
      assert.strictEqual(yield* store.count(queue, consumer), 2)
      assert.deepStrictEqual(ids(yield* store.list(queue, consumer)), [events[0]!.id, events[2]!.id])

      const back = yield* drain(queue, consumer)
      assert.deepStrictEqual(
        back.map((e) => [e.id, e.type, e.data, e.extra1, e.extra2, e.extra3, e.extra4, e.retry]),
        [[target.id, target.type, target.data, target.extra1, target.extra2, target.extra3, target.extra4, 0]]
      )
      assert.strictEqual(DateTime.toEpochMillis(back[0]!.time), DateTime.toEpochMillis(target.time))
      assert.deepStrictEqual(yield* drain(queue, other), [], "no second copy for the other consumer")
      assert.deepStrictEqual(yield* drain(queue, consumer), [], "delivered once")

      // Retrying an id that already left the store is an error.
      const gone = expectTag(yield* Effect.flip(store.retry(queue, consumer, target.id)), "FailedEventNotFound")
      assert.strictEqual(gone.eventId, target.id)
    }))

  it.effect("retries all of a consumer's events", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      const { queue, consumer, other, events } = yield* setup(4, { otherConsumer: true })
      yield* drain(queue, other)
      for (const event of events) yield* store.store(queue, consumer, event, "bad")
      assert.strictEqual(yield* store.retry(queue, consumer, "all"), 4)
      assert.strictEqual(yield* store.count(queue, consumer), 0)
      const back = yield* drain(queue, consumer)
      assert.deepStrictEqual(back.map((e) => e.id), events.map((e) => e.id))
      assert.isTrue(back.every((e) => e.retry === 0))
      assert.deepStrictEqual(yield* drain(queue, other), [])
      // Nothing left: "all" is zero, not an error.
      assert.strictEqual(yield* store.retry(queue, consumer, "all"), 0)
    }))

  it.effect("a retried event shows as waiting for retry, not failed", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      const status = yield* EventStatus
      const { queue, consumer, events } = yield* setup(1)
      yield* store.store(queue, consumer, events[0]!, "bad")
      assert.deepStrictEqual((yield* status.forEvent(queue, events[0]!.id)).map((s) => [s.state, s.retry]), [["failed", null]])
      yield* store.retry(queue, consumer, events[0]!.id)
      assert.deepStrictEqual((yield* status.forEvent(queue, events[0]!.id)).map((s) => [s.state, s.retry]), [["retry", 0]])
      // Take it back so no due retry is left for other suites' maintenance counts.
      assert.deepStrictEqual((yield* drain(queue, consumer)).map((e) => e.id), [events[0]!.id])
    }))

  it.effect("a retry for a consumer that is not registered fails and keeps the events", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const store = yield* FailedEvents
      const { queue, consumer, events } = yield* setup(2)
      for (const event of events) yield* store.store(queue, consumer, event, "bad")
      yield* pgq.unregisterConsumer(queue, consumer)

      const all = expectTag(yield* Effect.flip(store.retry(queue, consumer, "all")), "ConsumerNotRegistered")
      assert.strictEqual(all.consumer, consumer)
      assert.include(all.message, consumer)
      const one = expectTag(yield* Effect.flip(store.retry(queue, consumer, events[0]!.id)), "ConsumerNotRegistered")
      assert.strictEqual(one.queue, queue)
      assert.strictEqual(yield* store.count(queue, consumer), 2)

      // A consumer that never was registered: same.
      const stranger = TestDb.unique("stranger")
      yield* store.store(queue, stranger, events[0]!, "bad")
      expectTag(yield* Effect.flip(store.retry(queue, stranger, "all")), "ConsumerNotRegistered")
      assert.strictEqual(yield* store.count(queue, stranger), 1)

      // Once registered again, the kept events can be retried.
      yield* pgq.registerConsumer(queue, consumer)
      assert.strictEqual(yield* store.retry(queue, consumer, "all"), 2)
      assert.deepStrictEqual((yield* drain(queue, consumer)).map((e) => e.id), events.map((e) => e.id))
    }))

  it.effect("a retry on a queue that is gone fails with a typed error and keeps the events", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const store = yield* FailedEvents
      const { queue, consumer, events } = yield* setup(1)
      yield* store.store(queue, consumer, events[0]!, "bad")
      yield* pgq.dropQueue(queue, { force: true })
      // Pgq's own event_retry_raw call reports the missing queue as QueueNotFound...
      const event = events[0]!
      const viaPgq = yield* Effect.flip(pgq.eventRetryRaw(queue, consumer, {
        id: event.id,
        time: event.time,
        type: event.type,
        data: event.data,
        extra1: event.extra1,
        extra2: event.extra2,
        extra3: event.extra3,
        extra4: event.extra4,
        retry: 0,
        retryAfter: yield* DateTime.now
      }))
      assert.strictEqual(viaPgq._tag, "QueueNotFound")
      // ...and the store, which calls the same function, should say the same.
      const error = yield* Effect.flip(store.retry(queue, consumer, "all"))
      assert.isTrue(isPgqError(error))
      assert.strictEqual(error._tag, "QueueNotFound", error.message)
      assert.strictEqual(yield* store.count(queue, consumer), 1)
    }))

  it.effect("retry is all or nothing when one re-insert fails", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const store = yield* FailedEvents
      yield* (yield* Installer).install
      const { queue, consumer } = yield* TestDb.queueWithConsumer("fe")
      const first = yield* pgq.insertEvent(queue, { type: "t", data: "1" })
      const second = yield* pgq.insertEvent(queue, { type: "t", data: "2" })
      yield* TestDb.tick(queue)
      const batch = Option.getOrThrow(yield* pgq.nextBatch(queue, consumer))
      const events = yield* pgq.getBatchEvents(batch)
      // The second event already waits in pgq's retry queue: re-inserting it there again must fail.
      yield* pgq.eventRetry(batch, second, "1 hour")
      yield* pgq.finishBatch(batch)
      for (const event of events) yield* store.store(queue, consumer, event, "bad")

      const error = yield* Effect.flip(store.retry(queue, consumer, "all"))
      assert.isTrue(isPgqError(error))
      assert.strictEqual(yield* store.count(queue, consumer), 2)
      assert.deepStrictEqual(yield* drain(queue, consumer), [], "the first event was not re-inserted either")
      assert.strictEqual(yield* store.retry(queue, consumer, first), 1)
      assert.deepStrictEqual((yield* drain(queue, consumer)).map((e) => e.id), [first])
    }))

  it.effect("keeps each consumer's and each queue's failed events apart", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const store = yield* FailedEvents
      const { queue, consumer, other, events } = yield* setup(2, { otherConsumer: true })
      const otherQueue = TestDb.unique("feq")
      yield* pgq.createQueue(otherQueue)
      yield* pgq.registerConsumer(otherQueue, consumer)
      yield* store.store(queue, consumer, events[0]!, "mine")
      yield* store.store(queue, consumer, events[1]!, "mine too")

      for (const [q, c] of [[queue, other], [otherQueue, consumer]] as const) {
        assert.deepStrictEqual(yield* store.list(q, c), [])
        assert.strictEqual(yield* store.count(q, c), 0)
        assert.strictEqual(yield* store.delete(q, c, "all"), 0)
        assert.strictEqual(yield* store.retry(q, c, "all"), 0)
        expectTag(yield* Effect.flip(store.delete(q, c, events[0]!.id)), "FailedEventNotFound")
        expectTag(yield* Effect.flip(store.retry(q, c, events[0]!.id)), "FailedEventNotFound")
      }
      // The other consumer's identical event id is its own row.
      yield* store.store(queue, other, events[0]!, "theirs")
      assert.strictEqual(yield* store.delete(queue, other, events[0]!.id), 1)
      assert.deepStrictEqual(
        (yield* store.list(queue, consumer)).map((f) => [f.event.id, f.reason]),
        [[events[0]!.id, "mine"], [events[1]!.id, "mine too"]]
      )
    }))

  it.effect("refuses bad queue and consumer names before touching the database", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      const { queue, consumer, events } = yield* setup(1)
      const event = events[0]!
      const bad = ["", "x".repeat(1000), " padded", "tab\there", "x".repeat(256), "🚀".repeat(256)]
      for (const name of bad) {
        const operations: ReadonlyArray<readonly [kind: "queue" | "consumer", Effect.Effect<unknown, PgqError>]> = [
          ["queue", store.store(name, consumer, event, "r")],
          ["consumer", store.store(queue, name, event, "r")],
          ["queue", store.list(name, consumer)],
          ["consumer", store.list(queue, name)],
          ["queue", store.count(name, consumer)],
          ["consumer", store.count(queue, name)],
          ["queue", store.delete(name, consumer, "all")],
          ["consumer", store.delete(queue, name, event.id)],
          ["queue", store.retry(name, consumer, event.id)],
          ["consumer", store.retry(queue, name, "all")]
        ]
        for (const [kind, operation] of operations) {
          const error = expectTag(yield* Effect.flip(operation), "InvalidName")
          assert.strictEqual(error.kind, kind)
          assert.strictEqual(error.name, name)
          // Long names are shortened in the message.
          assert.isBelow(error.message.length, 200)
        }
      }
      assert.strictEqual(yield* store.count(queue, consumer), 0)
    }))

  // Needs a cluster of its own to create databases in (not a PGQ_DATABASE_URL one).
  it.effect.skipIf(inject("plainDatabaseUrl") === "")("without effect-pgq's schema every call is PgqNotInstalled", () =>
    TestDb.onDatabaseWithoutSchema(FailedEvents.layer, Effect.gen(function*() {
      const store = yield* FailedEvents
      const event: PgqEvent = {
        id: EventId.make(1n),
        time: yield* DateTime.now,
        txid: 1n,
        retry: null,
        type: "t",
        data: "d",
        extra1: null,
        extra2: null,
        extra3: null,
        extra4: null
      }
      const calls: ReadonlyArray<Effect.Effect<unknown, PgqError>> = [
        store.store("q", "c", event, "r"),
        store.list("q", "c"),
        store.count("q", "c"),
        store.delete("q", "c", "all"),
        store.retry("q", "c", "all")
      ]
      for (const call of calls) {
        const error = expectTag(yield* Effect.flip(call), "PgqNotInstalled")
        assert.include(error.message, "installer")
      }
    })))

  it.effect("accepts names of exactly 255 characters, counted as code points", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      const { queue, events } = yield* setup(1)
      for (const name of ["c".repeat(255), "🚀".repeat(255)]) {
        yield* store.store(queue, name, events[0]!, "long name")
        const [failed] = yield* store.list(queue, name)
        assert.strictEqual(failed!.consumer, name)
        assert.strictEqual(yield* store.delete(queue, name, "all"), 1)
      }
    }))
})
