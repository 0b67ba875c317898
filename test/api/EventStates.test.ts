import { assert, layer } from "@effect/vitest"
import { Effect, Option } from "effect"
import { EventStatus } from "../../src/api/EventStatus.ts"
import { FailedEvents } from "../../src/api/FailedEvents.ts"
import { EventId } from "../../src/api/Ids.ts"
import { Installer } from "../../src/api/Installer.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import * as TestDb from "../TestDb.ts"

layer(TestDb.servicesLayer, { excludeTestServices: true })("EventStatus", (it) => {
  it.effect("follows one event through each consumer's states", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const status = yield* EventStatus
      yield* (yield* Installer).install
      const queue = TestDb.unique("sq")
      const [a, b] = ["a_" + TestDb.unique("c"), "b_" + TestDb.unique("c")]
      yield* pgq.createQueue(queue)
      yield* pgq.registerConsumer(queue, a)
      yield* pgq.registerConsumer(queue, b)
      const states = (id: EventId) =>
        Effect.map(status.of(queue, id), (all) => all.map((s) => `${s.consumer === a ? "a" : "b"}=${s.state}`).join(" "))

      const id = yield* pgq.insertEvent(queue, { type: "t", data: "d" })
      assert.strictEqual(yield* states(id), "a=pending b=pending")
      yield* TestDb.tick(queue)
      assert.strictEqual(yield* states(id), "a=pending b=pending")

      const batchA = Option.getOrThrow(yield* pgq.nextBatch(queue, a))
      assert.strictEqual(yield* states(id), "a=processing b=pending")
      yield* pgq.finishBatch(batchA)
      assert.strictEqual(yield* states(id), "a=done b=pending")

      const batchB = Option.getOrThrow(yield* pgq.nextBatch(queue, b))
      yield* pgq.eventRetry(batchB, id, "0 seconds")
      yield* pgq.finishBatch(batchB)
      assert.strictEqual(yield* states(id), "a=done b=retry")
      const [, retryOfB] = yield* status.of(queue, id)
      assert.strictEqual(retryOfB!.retry, 1)

      // Back in the queue for b alone, then b takes and finishes it again.
      yield* pgq.maintRetryEvents
      assert.strictEqual(yield* states(id), "a=done b=pending")
      yield* TestDb.tick(queue)
      let batch = yield* pgq.nextBatch(queue, b)
      while (Option.isSome(batch)) {
        yield* pgq.finishBatch(batch.value)
        batch = yield* pgq.nextBatch(queue, b)
      }
      assert.strictEqual(yield* states(id), "a=done b=done")

      const poison = yield* pgq.insertEvent(queue, { type: "t", data: "poison" })
      yield* TestDb.tick(queue)
      // a is a few ticks behind: go through its batches until the poison event.
      let open = yield* pgq.nextBatch(queue, a)
      while (Option.isSome(open)) {
        for (const event of yield* pgq.getBatchEvents(open.value)) {
          if (event.id === poison) yield* (yield* FailedEvents).store(queue, a, event, "poison")
        }
        yield* pgq.finishBatch(open.value)
        open = yield* pgq.nextBatch(queue, a)
      }
      assert.strictEqual(yield* states(poison), "a=failed b=pending")
      assert.strictEqual(yield* states(EventId.make(999_999_999n)), "a=unknown b=unknown")
    }))

  it.effect("an unknown queue or a bad name is a typed error", () =>
    Effect.gen(function*() {
      const status = yield* EventStatus
      yield* (yield* Installer).install
      assert.strictEqual((yield* Effect.flip(status.of(TestDb.unique("none"), EventId.make(1n))))._tag, "QueueNotFound")
      assert.strictEqual((yield* Effect.flip(status.of("", EventId.make(1n))))._tag, "InvalidName")
    }))
})
