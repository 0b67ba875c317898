import { assert, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { FailedEvents } from "../../src/api/FailedEvents.ts"
import { Installer } from "../../src/api/Installer.ts"
import type { NewEvent } from "../../src/api/Pgq.ts"
import { Producer } from "../../src/api/Producer.ts"
import type { EventHandler } from "../../src/consumer/BatchProcessor.ts"
import * as Dispatch from "../../src/consumer/Dispatch.ts"
import * as EventResult from "../../src/consumer/EventResult.ts"
import * as InteractiveConsumer from "../../src/consumer/InteractiveConsumer.ts"
import * as TestDb from "../TestDb.ts"

const Order = Schema.Struct({ orderId: Schema.Int, total: Schema.Finite })

/** Produces `events`, runs `handler` over them, and returns the totals and the failed events' reasons. */
const consume = <E>(events: ReadonlyArray<NewEvent>, handler: EventHandler<E, never>) =>
  Effect.gen(function*() {
    yield* (yield* Installer).install
    const { queue, consumer } = yield* TestDb.queueWithConsumer("dq")
    yield* (yield* Producer).sendMany(queue, events)
    yield* TestDb.tick(queue)
    const stats = yield* InteractiveConsumer.processAvailable({ queue, consumer, onEvent: handler })
    const failed = yield* (yield* FailedEvents).list(queue, consumer)
    return { stats, failed: failed.map((f) => [f.event.data, f.reason] as const) }
  })

layer(TestDb.servicesLayer, { excludeTestServices: true })("Dispatch", (it) => {
  it.effect("routes by event type with decoded JSON and text payloads", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      const { stats, failed } = yield* consume(
        [
          { type: "order.placed", data: "{\"orderId\":1,\"total\":9.5}" },
          { type: "note", data: "hello" },
          { type: "amount", data: "42.5" },
          { type: "order.placed", data: "{\"orderId\":2,\"total\":1}" }
        ],
        Dispatch.make({
          "order.placed": Dispatch.json(Order, (order, event) =>
            Effect.sync(() => void seen.push(`order ${order.orderId} ${order.total} (${event.type})`))),
          "note": Dispatch.text(Schema.String, (note) => Effect.sync(() => void seen.push(`note ${note}`))),
          "amount": Dispatch.text(Schema.NumberFromString, (amount) => Effect.sync(() => void seen.push(`amount ${amount + 0.5}`)))
        })
      )
      assert.deepStrictEqual(seen, ["order 1 9.5 (order.placed)", "note hello", "amount 43", "order 2 1 (order.placed)"])
      assert.deepStrictEqual([stats.ok, stats.failed], [4, 0])
      assert.deepStrictEqual(failed, [])
    }))

  it.effect("a payload that does not decode is Failed, with the decode error as the reason", () =>
    Effect.gen(function*() {
      const calls: Array<number> = []
      const { stats, failed } = yield* consume(
        [
          { type: "order.placed", data: "{not json" },
          { type: "order.placed", data: "{\"orderId\":\"seven\",\"total\":1}" },
          { type: "order.placed", data: null },
          { type: "order.placed", data: "{\"orderId\":8,\"total\":1}" }
        ],
        Dispatch.make({
          "order.placed": Dispatch.json(Order, (order) => Effect.sync(() => void calls.push(order.orderId)))
        })
      )
      assert.deepStrictEqual(calls, [8])
      assert.deepStrictEqual([stats.ok, stats.failed], [1, 3])
      assert.deepStrictEqual(failed.map(([data]) => data), ["{not json", "{\"orderId\":\"seven\",\"total\":1}", null])
      for (const [, reason] of failed) assert.include(reason, "cannot decode the payload of event type \"order.placed\"")
      assert.include(failed[1]![1], "orderId")
    }))

  it.effect("unknown event types follow the chosen policy", () =>
    Effect.gen(function*() {
      const events = [{ type: "known", data: "x" }, { type: "mystery", data: "y" }, { type: null as unknown as string, data: "z" }]
      const routes = { known: Dispatch.text(Schema.String, () => Effect.void) }

      const byDefault = yield* consume(events, Dispatch.make(routes))
      assert.deepStrictEqual([byDefault.stats.ok, byDefault.stats.failed], [1, 2])
      assert.include(byDefault.failed[0]![1], "no handler for event type \"mystery\"")

      const ignored = yield* consume(events, Dispatch.make(routes, { onUnknownType: "ok" }))
      assert.deepStrictEqual([ignored.stats.ok, ignored.stats.failed, ignored.failed.length], [3, 0, 0])

      const retried = yield* consume(events, Dispatch.make(routes, { onUnknownType: "retry" }))
      assert.deepStrictEqual([retried.stats.ok, retried.stats.retried], [1, 2])

      const custom = yield* consume(
        events,
        Dispatch.make(routes, {
          onUnknownType: (event) => Effect.succeed(EventResult.Failed(`custom: ${event.data}`))
        })
      )
      assert.deepStrictEqual(custom.failed.map(([, reason]) => reason), ["custom: y", "custom: z"])
    }))

  it.effect("a route's own result is honoured", () =>
    Effect.gen(function*() {
      const { stats, failed } = yield* consume(
        [{ type: "t", data: "ok" }, { type: "t", data: "retry" }, { type: "t", data: "fail" }],
        Dispatch.make({
          t: Dispatch.text(Schema.String, (text) =>
            Effect.succeed(
              text === "retry" ? EventResult.Retry("1 hour") : text === "fail" ? EventResult.Failed("refused") : EventResult.Ok
            ))
        })
      )
      assert.deepStrictEqual([stats.ok, stats.retried, stats.failed], [1, 1, 1])
      assert.deepStrictEqual(failed, [["fail", "refused"]])
    }))
})
