import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { inject } from "vitest"
import { type EventState, EventStatus } from "../../src/api/EventStatus.ts"
import { FailedEvents } from "../../src/api/FailedEvents.ts"
import { EventId } from "../../src/api/Ids.ts"
import { Installer } from "../../src/api/Installer.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import * as TestDb from "../TestDb.ts"

const TestLayer = Layer.mergeAll(FailedEvents.layer, EventStatus.layer).pipe(Layer.provideMerge(TestDb.layer))

/** A queue with consumers `a` and `b` (their real names are unique). */
const twoConsumers = Effect.gen(function*() {
  const pgq = yield* Pgq
  yield* (yield* Installer).install
  const queue = TestDb.unique("es")
  const a = TestDb.unique("a")
  const b = TestDb.unique("b")
  yield* pgq.createQueue(queue)
  yield* pgq.registerConsumer(queue, a)
  yield* pgq.registerConsumer(queue, b)
  return { queue, a, b }
})

/** Each consumer's state (and retry count) for an event, keyed by consumer name. */
const statesOf = (queue: string, eventId: EventId) =>
  Effect.gen(function*() {
    const statuses = yield* (yield* EventStatus).forEvent(queue, eventId)
    const byConsumer: Record<string, { readonly state: EventState; readonly retry: number | null }> = {}
    for (const status of statuses) byConsumer[status.consumer] = { state: status.state, retry: status.retry }
    assert.strictEqual(Object.keys(byConsumer).length, statuses.length, "one status per consumer")
    return byConsumer
  })

/** Just the states, as `{ consumer: state }`. */
const states = (queue: string, eventId: EventId) =>
  Effect.map(
    statesOf(queue, eventId),
    (all) => Object.fromEntries(Object.entries(all).map(([consumer, s]) => [consumer, s.state]))
  )


/** Opens the consumer's batches, finishing those without the event, until one holds it; returns that batch, open. */
const openBatchWith = (queue: string, consumer: string, eventId: EventId) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    for (let guard = 0; guard < 20; guard++) {
      const batch = yield* pgq.nextBatch(queue, consumer)
      if (Option.isNone(batch)) break
      const events = yield* pgq.getBatchEvents(batch.value)
      const event = events.find((e) => e.id === eventId)
      if (event !== undefined) return { batch: batch.value, event }
      yield* pgq.finishBatch(batch.value)
    }
    return yield* Effect.die(new Error(`no batch of ${consumer} holds event ${eventId}`))
  })

layer(TestLayer, { excludeTestServices: true })("EventStatus", (it) => {
  it.effect("follows one event through pending, processing, done, retry and failed, per consumer", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const store = yield* FailedEvents
      const { queue, a, b } = yield* twoConsumers

      const id = yield* pgq.insertEvent(queue, { type: "t", data: "d" })
      assert.deepStrictEqual(yield* states(queue, id), { [a]: "pending", [b]: "pending" }, "produced, not ticked")
      yield* TestDb.tick(queue)
      assert.deepStrictEqual(yield* states(queue, id), { [a]: "pending", [b]: "pending" }, "ticked, no batch taken")

      const batchA = yield* openBatchWith(queue, a, id)
      assert.deepStrictEqual(yield* states(queue, id), { [a]: "processing", [b]: "pending" })
      yield* pgq.finishBatch(batchA.batch)
      // a is done while b has not even started.
      assert.deepStrictEqual(yield* statesOf(queue, id), {
        [a]: { state: "done", retry: null },
        [b]: { state: "pending", retry: null }
      })

      const batchB = yield* openBatchWith(queue, b, id)
      assert.deepStrictEqual(yield* states(queue, id), { [a]: "done", [b]: "processing" })
      // Not due at once: another suite's retry maintenance must not move it before the check.
      yield* pgq.eventRetry(batchB.batch, id, "1 second")
      yield* pgq.finishBatch(batchB.batch)
      assert.deepStrictEqual(yield* statesOf(queue, id), {
        [a]: { state: "done", retry: null },
        [b]: { state: "retry", retry: 1 }
      })

      // Back in the queue for b alone: pending again for b, still done for a.
      yield* Effect.sleep("1100 millis")
      yield* TestDb.maintAllRetries
      assert.deepStrictEqual(yield* statesOf(queue, id), {
        [a]: { state: "done", retry: null },
        [b]: { state: "pending", retry: 1 }
      })
      yield* TestDb.tick(queue)
      const again = yield* openBatchWith(queue, b, id)
      assert.strictEqual(again.event.retry, 1)
      assert.deepStrictEqual(yield* states(queue, id), { [a]: "done", [b]: "processing" })

      // b gives up on it: failed for b only.
      yield* store.store(queue, b, again.event, "poison")
      yield* pgq.finishBatch(again.batch)
      assert.deepStrictEqual(yield* states(queue, id), { [a]: "done", [b]: "failed" })

      // Re-delivered from the store: waiting for retry, with a fresh count.
      yield* store.retry(queue, b, id)
      assert.deepStrictEqual(yield* statesOf(queue, id), {
        [a]: { state: "done", retry: null },
        [b]: { state: "retry", retry: 0 }
      })
      yield* TestDb.maintAllRetries
      yield* TestDb.tick(queue)
      const last = yield* openBatchWith(queue, b, id)
      yield* pgq.finishBatch(last.batch)
      assert.deepStrictEqual(yield* statesOf(queue, id), {
        [a]: { state: "done", retry: null },
        [b]: { state: "done", retry: 0 }
      })
    }))

  it.effect("is retry while a retry is due later, even after retry maintenance", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const { queue, a, b } = yield* twoConsumers
      const id = yield* pgq.insertEvent(queue, { type: "t", data: "later" })
      yield* TestDb.tick(queue)
      const batch = yield* openBatchWith(queue, a, id)
      yield* pgq.eventRetry(batch.batch, id, "1 hour")
      yield* pgq.finishBatch(batch.batch)
      assert.deepStrictEqual(yield* states(queue, id), { [a]: "retry", [b]: "pending" })
      yield* TestDb.maintAllRetries
      assert.deepStrictEqual(yield* statesOf(queue, id), {
        [a]: { state: "retry", retry: 1 },
        [b]: { state: "pending", retry: null }
      })
    }))

  it.effect("processing covers only the open batch's events", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const { queue, a, b } = yield* twoConsumers
      const first = yield* pgq.insertEvent(queue, { type: "t", data: "first" })
      yield* TestDb.tick(queue)
      const open = yield* openBatchWith(queue, a, first)
      // Produced, and even ticked, after a took its batch: not in it.
      const second = yield* pgq.insertEvent(queue, { type: "t", data: "second" })
      assert.deepStrictEqual(yield* states(queue, second), { [a]: "pending", [b]: "pending" })
      yield* TestDb.tick(queue)
      assert.deepStrictEqual(yield* states(queue, first), { [a]: "processing", [b]: "pending" })
      assert.deepStrictEqual(yield* states(queue, second), { [a]: "pending", [b]: "pending" })
      yield* pgq.finishBatch(open.batch)
      assert.deepStrictEqual(yield* states(queue, first), { [a]: "done", [b]: "pending" })
      assert.deepStrictEqual(yield* states(queue, second), { [a]: "pending", [b]: "pending" })
      const next = yield* openBatchWith(queue, a, second)
      assert.deepStrictEqual(yield* states(queue, second), { [a]: "processing", [b]: "pending" })
      yield* pgq.finishBatch(next.batch)
      assert.deepStrictEqual(yield* states(queue, second), { [a]: "done", [b]: "pending" })
    }))

  it.effect("failed wins over every other state for that consumer only", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const store = yield* FailedEvents
      const { queue, a, b } = yield* twoConsumers
      const id = yield* pgq.insertEvent(queue, { type: "t", data: "d" })
      yield* TestDb.tick(queue)
      const open = yield* openBatchWith(queue, a, id)
      // Stored while a's batch is still open: failed, not processing.
      yield* store.store(queue, a, open.event, "bad")
      assert.deepStrictEqual(yield* states(queue, id), { [a]: "failed", [b]: "pending" })
      yield* pgq.finishBatch(open.batch)
      assert.deepStrictEqual(yield* states(queue, id), { [a]: "failed", [b]: "pending" })
      // Deleting it from the store leaves it done.
      yield* store.delete(queue, a, id)
      assert.deepStrictEqual(yield* states(queue, id), { [a]: "done", [b]: "pending" })
    }))

  it.effect("an id that was never produced is unknown for every consumer", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const { queue, a, b } = yield* twoConsumers
      const produced = yield* pgq.insertEvent(queue, { type: "t", data: "d" })
      yield* TestDb.tick(queue)
      const never = EventId.make(produced + 1_000_000n)
      assert.deepStrictEqual(yield* statesOf(queue, never), {
        [a]: { state: "unknown", retry: null },
        [b]: { state: "unknown", retry: null }
      })
      // An id of another queue's event is not this queue's.
      const otherQueue = TestDb.unique("es")
      yield* pgq.createQueue(otherQueue)
      yield* pgq.registerConsumer(otherQueue, a)
      assert.deepStrictEqual(yield* states(otherQueue, produced), { [a]: "unknown" })
    }))

  it.effect("lists every registered consumer, and none for a queue without consumers", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const status = yield* EventStatus
      const { queue, a, b } = yield* twoConsumers
      const id = yield* pgq.insertEvent(queue, { type: "t", data: "d" })
      const statuses = yield* status.forEvent(queue, id)
      assert.deepStrictEqual(statuses.map((s) => s.consumer).toSorted(), [a, b].toSorted())
      yield* pgq.unregisterConsumer(queue, b)
      assert.deepStrictEqual(yield* states(queue, id), { [a]: "pending" })
      yield* pgq.unregisterConsumer(queue, a)
      assert.deepStrictEqual(yield* status.forEvent(queue, id), [])
    }))

  it.effect("a consumer registered after an event was ticked will never get it: not pending", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const { queue, a } = yield* twoConsumers
      const id = yield* pgq.insertEvent(queue, { type: "t", data: "before" })
      yield* TestDb.tick(queue)
      const late = TestDb.unique("late")
      yield* pgq.registerConsumer(queue, late)
      yield* TestDb.tick(queue)
      // pgq starts a new consumer at the queue's last tick: its batches never hold the event.
      let batch = yield* pgq.nextBatch(queue, late)
      while (Option.isSome(batch)) {
        assert.isFalse((yield* pgq.getBatchEvents(batch.value)).some((e) => e.id === id))
        yield* pgq.finishBatch(batch.value)
        batch = yield* pgq.nextBatch(queue, late)
      }
      const all = yield* states(queue, id)
      assert.strictEqual(all[a], "pending")
      assert.isDefined(all[late])
      assert.notInclude(["pending", "processing"], all[late])
    }))

  // Needs a cluster of its own to create databases in (not a PGQ_DATABASE_URL one).
  it.effect.skipIf(inject("plainDatabaseUrl") === "")("without effect-pgq's schema it is PgqNotInstalled", () =>
    TestDb.onDatabaseWithoutSchema(Layer.mergeAll(EventStatus.layer, Pgq.layer), Effect.gen(function*() {
      const pgq = yield* Pgq
      const queue = TestDb.unique("es")
      yield* pgq.createQueue(queue)
      yield* pgq.registerConsumer(queue, "c")
      const id = yield* pgq.insertEvent(queue, { type: "t", data: "d" })
      const error = yield* Effect.flip((yield* EventStatus).forEvent(queue, id))
      assert.strictEqual(error._tag, "PgqNotInstalled")
      assert.include(error.message, "installer")
    })))

  it.effect("an unknown queue is QueueNotFound; a bad name is InvalidName", () =>
    Effect.gen(function*() {
      const status = yield* EventStatus
      yield* (yield* Installer).install
      const missing = TestDb.unique("none")
      const error = yield* Effect.flip(status.forEvent(missing, EventId.make(1n)))
      assert.strictEqual(error._tag, "QueueNotFound")
      assert.include(error.message, missing)
      assert.include(error.message, "EventStatus.forEvent")
      for (const name of ["", "x".repeat(1000), " q"]) {
        const invalid = yield* Effect.flip(status.forEvent(name, EventId.make(1n)))
        assert.strictEqual(invalid._tag, "InvalidName")
      }
    }))
})
