import { assert, layer } from "@effect/vitest"
import { DateTime, Effect, Option } from "effect"
import { FailedEvents } from "../../src/api/FailedEvents.ts"
import { EventId } from "../../src/api/Ids.ts"
import { Installer } from "../../src/api/Installer.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import type { PgqEvent } from "../../src/api/PgqEvent.ts"
import * as TestDb from "../TestDb.ts"

/** `count` events produced, taken in one batch and finished; returns them. */
const deliveredEvents = (queue: string, consumer: string, count: number) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    for (let i = 1; i <= count; i++) {
      yield* pgq.insertEvent(queue, { type: "order", data: `order ${i}`, extra1: `e1-${i}`, extra4: null })
    }
    yield* TestDb.tick(queue)
    const batch = Option.getOrThrow(yield* pgq.nextBatch(queue, consumer))
    const events = yield* pgq.getBatchEvents(batch)
    yield* pgq.finishBatch(batch)
    return events
  })

const setup = (count: number) =>
  Effect.gen(function*() {
    yield* (yield* Installer).install
    const { queue, consumer } = yield* TestDb.queueWithConsumer("fq")
    const events = yield* deliveredEvents(queue, consumer, count)
    return { queue, consumer, events }
  })

/** The events the consumer gets from every ready batch, after retry maintenance. */
const redelivered = (queue: string, consumer: string) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    yield* pgq.maintRetryEvents
    yield* TestDb.tick(queue)
    const events: Array<PgqEvent> = []
    while (true) {
      const batch = yield* pgq.nextBatch(queue, consumer)
      if (Option.isNone(batch)) return events
      events.push(...(yield* pgq.getBatchEvents(batch.value)))
      yield* pgq.finishBatch(batch.value)
    }
  })

layer(TestDb.servicesLayer, { excludeTestServices: true })("FailedEvents", (it) => {
  it.effect("stores failed events with their fields and lists them, one row per event", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      const { queue, consumer, events } = yield* setup(2)
      const [first, second] = events
      yield* store.store(queue, consumer, first!, "first reason")
      yield* store.store(queue, consumer, second!, "second reason")
      yield* store.store(queue, consumer, first!, "failed again")
      assert.strictEqual(yield* store.count(queue, consumer), 2)
      const listed = yield* store.list(queue, consumer)
      assert.deepStrictEqual(listed.map((f) => [f.event.id, f.reason]), [[first!.id, "failed again"], [second!.id, "second reason"]])
      const entry = listed[0]!
      assert.deepStrictEqual(
        [entry.queue, entry.consumer, entry.event.type, entry.event.data, entry.event.extra1, entry.event.extra4],
        [queue, consumer, "order", "order 1", "e1-1", null]
      )
      assert.strictEqual(DateTime.toEpochMillis(entry.event.time), DateTime.toEpochMillis(first!.time))
      assert.isTrue(DateTime.isDateTime(entry.failedAt))
    }))

  it.effect("pages by id", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      const { queue, consumer, events } = yield* setup(25)
      for (const event of events) yield* store.store(queue, consumer, event, "bad")
      const pages: Array<ReadonlyArray<bigint>> = []
      let afterId: EventId | undefined = undefined
      while (true) {
        const page: ReadonlyArray<{ readonly event: PgqEvent }> = yield* store.list(queue, consumer, { limit: 10, afterId })
        if (page.length === 0) break
        pages.push(page.map((f) => f.event.id))
        afterId = page.at(-1)!.event.id
      }
      assert.deepStrictEqual(pages.map((p) => p.length), [10, 10, 5])
      assert.deepStrictEqual(pages.flat(), events.map((e) => e.id))
      assert.strictEqual((yield* Effect.flip(store.list(queue, consumer, { limit: 0 })))._tag, "InvalidArgument")
      assert.strictEqual((yield* Effect.flip(store.list(queue, consumer, { limit: 20_000 })))._tag, "InvalidArgument")
    }))

  it.effect("deletes one event or all, and says when an id is not there", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      const { queue, consumer, events } = yield* setup(3)
      for (const event of events) yield* store.store(queue, consumer, event, "bad")
      assert.strictEqual(yield* store.delete(queue, consumer, events[0]!.id), 1)
      const missing = yield* Effect.flip(store.delete(queue, consumer, events[0]!.id))
      assert.strictEqual(missing._tag, "FailedEventNotFound")
      assert.include(missing.message, String(events[0]!.id))
      assert.strictEqual(yield* store.delete(queue, consumer, "all"), 2)
      assert.strictEqual(yield* store.delete(queue, consumer, "all"), 0)
      assert.strictEqual(yield* store.count(queue, consumer), 0)
    }))

  it.effect("keeps each consumer's failed events apart", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      const { queue, consumer, events } = yield* setup(2)
      const other = TestDb.unique("other")
      yield* (yield* Pgq).registerConsumer(queue, other)
      yield* store.store(queue, consumer, events[0]!, "mine")
      assert.deepStrictEqual(yield* store.list(queue, other), [])
      assert.strictEqual(yield* store.count(queue, other), 0)
      assert.strictEqual(yield* store.delete(queue, other, "all"), 0)
      assert.strictEqual(yield* store.count(queue, consumer), 1)
    }))

  it.effect("retries to the failing consumer only, with a fresh retry count", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const store = yield* FailedEvents
      const { queue, consumer, events } = yield* setup(3)
      const other = TestDb.unique("other")
      yield* pgq.registerConsumer(queue, other)
      for (const event of events) yield* store.store(queue, consumer, event, "bad")
      assert.strictEqual(yield* store.retry(queue, consumer, events[1]!.id), 1)
      assert.strictEqual(yield* store.count(queue, consumer), 2)
      const back = yield* redelivered(queue, consumer)
      assert.deepStrictEqual(back.map((e) => [e.id, e.type, e.data, e.extra1, e.retry]), [
        [events[1]!.id, "order", "order 2", "e1-2", 0]
      ])
      // The other consumer gets nothing again: the re-delivery is not a new event.
      assert.deepStrictEqual(yield* redelivered(queue, other), [])
      assert.strictEqual(yield* store.retry(queue, consumer, "all"), 2)
      assert.deepStrictEqual((yield* redelivered(queue, consumer)).map((e) => e.id), [events[0]!.id, events[2]!.id])
      const missing = yield* Effect.flip(store.retry(queue, consumer, events[0]!.id))
      assert.strictEqual(missing._tag, "FailedEventNotFound")
    }))

  it.effect("a retry for a consumer that is gone fails and keeps the events", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const store = yield* FailedEvents
      const { queue, consumer, events } = yield* setup(2)
      for (const event of events) yield* store.store(queue, consumer, event, "bad")
      yield* pgq.unregisterConsumer(queue, consumer)
      const error = yield* Effect.flip(store.retry(queue, consumer, "all"))
      assert.strictEqual(error._tag, "ConsumerNotRegistered")
      assert.strictEqual(yield* store.count(queue, consumer), 2)
    }))

  it.effect("refuses bad names", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      yield* (yield* Installer).install
      for (const name of ["", "x".repeat(1000)]) {
        assert.strictEqual((yield* Effect.flip(store.count(name, "c")))._tag, "InvalidName")
        assert.strictEqual((yield* Effect.flip(store.list("q", name)))._tag, "InvalidName")
        assert.strictEqual((yield* Effect.flip(store.retry(name, "c", "all")))._tag, "InvalidName")
        assert.strictEqual((yield* Effect.flip(store.delete("q", name, EventId.make(1n))))._tag, "InvalidName")
      }
    }))
})
