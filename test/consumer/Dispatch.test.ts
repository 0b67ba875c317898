import { assert, layer } from "@effect/vitest"
import { Data, Duration, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { EventStatus } from "../../src/api/EventStatus.ts"
import { FailedEvents } from "../../src/api/FailedEvents.ts"
import type { EventId } from "../../src/api/Ids.ts"
import { Installer } from "../../src/api/Installer.ts"
import type { NewEvent } from "../../src/api/Pgq.ts"
import type { PgqEvent } from "../../src/api/PgqEvent.ts"
import { Producer } from "../../src/api/Producer.ts"
import type { BatchContext, EventHandler } from "../../src/consumer/Handler.ts"
import * as Dispatch from "../../src/consumer/Dispatch.ts"
import * as EventResult from "../../src/consumer/EventResult.ts"
import type { FailurePolicy } from "../../src/consumer/FailurePolicy.ts"
import * as InteractiveConsumer from "../../src/consumer/InteractiveConsumer.ts"
import * as TestDb from "../TestDb.ts"

const TestLayer = Layer.mergeAll(FailedEvents.layer, EventStatus.layer).pipe(Layer.provideMerge(TestDb.layer))

const Order = Schema.Struct({
  orderId: Schema.Int,
  // Decoded, not just parsed: the JSON holds a string, the handler gets a number.
  total: Schema.FiniteFromString,
  items: Schema.Array(Schema.Struct({ sku: Schema.String, qty: Schema.Int })),
  note: Schema.NullOr(Schema.String)
})

/** Produces `events` (keeping their ids), runs `handler` over every ready batch, and reports what happened. */
const consume = <E>(
  events: ReadonlyArray<NewEvent>,
  handler: EventHandler<E, never>,
  options?: { readonly failurePolicy?: FailurePolicy }
) =>
  Effect.gen(function*() {
    yield* (yield* Installer).install
    const producer = yield* Producer
    const { queue, consumer } = yield* TestDb.queueWithConsumer("dq")
    const ids: Array<EventId> = []
    for (const event of events) ids.push(yield* producer.send(queue, event))
    yield* TestDb.tick(queue)
    const stats = yield* InteractiveConsumer.processAvailable({
      queue,
      consumer,
      onEvent: handler,
      failurePolicy: options?.failurePolicy
    })
    const failed = yield* (yield* FailedEvents).list(queue, consumer)
    return { queue, consumer, ids, stats, failed }
  })

const DECODE_REASON = (type: string) => `cannot decode the payload of event type ${JSON.stringify(type)}`

class Refused extends Data.TaggedError("Refused")<{ readonly message: string }> {}

layer(TestLayer, { excludeTestServices: true })("Dispatch", (it) => {
  it.effect("a json route gets the decoded payload, the event and the batch", () =>
    Effect.gen(function*() {
      const seen: Array<{ payload: typeof Order.Type; event: PgqEvent; context: BatchContext }> = []
      const first = "{\"orderId\":1,\"total\":\"9.5\",\"items\":[{\"sku\":\"a\",\"qty\":2}],\"note\":null}"
      const second = "{\"orderId\":2,\"total\":\"-1e3\",\"items\":[],\"note\":\"ünï \\\"q\\\"\"}"
      const { queue, consumer, ids, stats, failed } = yield* consume(
        [
          { type: "order.placed", data: first, extra1: "x1" },
          { type: "order.placed", data: second }
        ],
        Dispatch.make({
          "order.placed": Dispatch.json(Order, (payload, event, context) =>
            Effect.sync(() => {
              seen.push({ payload, event, context })
            }))
        })
      )
      assert.deepStrictEqual(stats, { batches: 1, events: 2, ok: 2, failed: 0, retried: 0, aborted: 0 })
      assert.deepStrictEqual(failed, [])
      assert.deepStrictEqual(seen.map((s) => s.payload), [
        { orderId: 1, total: 9.5, items: [{ sku: "a", qty: 2 }], note: null },
        { orderId: 2, total: -1000, items: [], note: "ünï \"q\"" }
      ])
      assert.deepStrictEqual(seen.map((s) => [s.event.id, s.event.type, s.event.data, s.event.extra1]), [
        [ids[0]!, "order.placed", first, "x1"],
        [ids[1]!, "order.placed", second, null]
      ])
      for (const { context } of seen) {
        assert.strictEqual(context.queue, queue)
        assert.strictEqual(context.consumer, consumer)
      }
      assert.strictEqual(seen[0]!.context.batch.batchId, seen[1]!.context.batch.batchId)
    }))

  it.effect("text routes pass the payload as text, or decoded from text", () =>
    Effect.gen(function*() {
      const seen: Array<readonly [string, unknown]> = []
      const { stats, failed } = yield* consume(
        [
          { type: "note", data: "hello" },
          { type: "note", data: "" },
          { type: "note", data: "ünï 🚀 {\"not\": \"parsed\"}" },
          { type: "amount", data: "42.5" },
          { type: "amount", data: "-7" },
          { type: "finite", data: "1e3" }
        ],
        Dispatch.make({
          note: Dispatch.text(Schema.String, (note) => Effect.sync(() => void seen.push(["note", note]))),
          amount: Dispatch.text(Schema.NumberFromString, (amount) => Effect.sync(() => void seen.push(["amount", amount]))),
          finite: Dispatch.text(Schema.FiniteFromString, (n) => Effect.sync(() => void seen.push(["finite", n])))
        })
      )
      assert.deepStrictEqual(seen, [
        ["note", "hello"],
        ["note", ""],
        ["note", "ünï 🚀 {\"not\": \"parsed\"}"],
        ["amount", 42.5],
        ["amount", -7],
        ["finite", 1000]
      ])
      assert.deepStrictEqual([stats.ok, stats.failed, stats.retried], [6, 0, 0])
      assert.deepStrictEqual(failed, [])
    }))

  it.effect("NumberFromString, which Dispatch.text's docs suggest, lets any text through as NaN", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      const { stats, failed } = yield* consume(
        [{ type: "amount", data: "twelve" }, { type: "amount", data: "" }],
        Dispatch.make({ amount: Dispatch.text(Schema.NumberFromString, (n) => Effect.sync(() => void seen.push(n))) })
      )
      // Not a decode failure: the handler gets NaN, and 0 for empty text. FiniteFromString refuses NaN (tested below).
      assert.deepStrictEqual(seen, [Number.NaN, 0])
      assert.deepStrictEqual([stats.ok, stats.failed, failed.length], [2, 0, 0])
    }))

  it.effect("a json payload that does not decode is Failed and stored, without calling the handler", () =>
    Effect.gen(function*() {
      const calls: Array<number> = []
      const good = "{\"orderId\":8,\"total\":\"1\",\"items\":[],\"note\":null}"
      const bad: ReadonlyArray<string | null> = [
        "{not json",
        "{\"orderId\":\"seven\",\"total\":\"1\",\"items\":[],\"note\":null}",
        "{\"orderId\":1.5,\"total\":\"1\",\"items\":[],\"note\":null}",
        "{\"orderId\":9,\"total\":\"lots\",\"items\":[],\"note\":null}",
        "{\"orderId\":9,\"items\":[],\"note\":null}",
        "[1,2]",
        "",
        null
      ]
      const { ids, stats, failed } = yield* consume(
        [...bad.map((data) => ({ type: "order.placed", data })), { type: "order.placed", data: good }],
        Dispatch.make({
          "order.placed": Dispatch.json(Order, (order) => Effect.sync(() => void calls.push(order.orderId)))
        })
      )
      assert.deepStrictEqual(calls, [8])
      // Decode failures are final: stored at once, never retried by the failure policy.
      assert.deepStrictEqual(stats, { batches: 1, events: 9, ok: 1, failed: 8, retried: 0, aborted: 0 })
      assert.deepStrictEqual(failed.map((f) => [f.event.id, f.event.type, f.event.data, f.event.retry]), [
        ...bad.map((data, i) => [ids[i]!, "order.placed", data, null])
      ])
      for (const f of failed) assert.include(f.reason, DECODE_REASON("order.placed"), f.reason)
      // The reason says what is wrong.
      assert.include(failed[0]!.reason, "JSON")
      assert.include(failed[1]!.reason, "orderId")
      assert.include(failed[3]!.reason, "total")
      assert.include(failed[4]!.reason, "total")
    }))

  it.effect("a text payload that does not decode is Failed and stored", () =>
    Effect.gen(function*() {
      const calls: Array<unknown> = []
      const { stats, failed } = yield* consume(
        [
          { type: "note", data: null },
          { type: "count", data: "twelve" },
          { type: "count", data: "12" }
        ],
        Dispatch.make({
          note: Dispatch.text(Schema.String, (note) => Effect.sync(() => void calls.push(note))),
          count: Dispatch.text(Schema.FiniteFromString, (n) => Effect.sync(() => void calls.push(n)))
        })
      )
      assert.deepStrictEqual(calls, [12])
      assert.deepStrictEqual([stats.ok, stats.failed, stats.retried], [1, 2, 0])
      assert.deepStrictEqual(failed.map((f) => f.event.data), [null, "twelve"])
      assert.include(failed[0]!.reason, DECODE_REASON("note"))
      assert.include(failed[1]!.reason, DECODE_REASON("count"))
    }))

  it.effect("an unknown event type is Failed by default, with the type in the reason", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      const routes = { known: Dispatch.text(Schema.String, (text) => Effect.sync(() => void seen.push(text))) }
      const events: ReadonlyArray<NewEvent> = [
        { type: "known", data: "1" },
        { type: "mystery", data: "2" },
        // Lookups are exact, and Object.prototype's names are no routes.
        { type: "Known", data: "3" },
        { type: "constructor", data: "4" },
        { type: "toString", data: "5" },
        { type: "__proto__", data: "6" }
      ]
      for (const handler of [Dispatch.make(routes), Dispatch.make(routes, { onUnknownType: "failed" })]) {
        seen.length = 0
        const { stats, failed } = yield* consume(events, handler)
        assert.deepStrictEqual(seen, ["1"])
        assert.deepStrictEqual([stats.ok, stats.failed, stats.retried], [1, 5, 0])
        assert.deepStrictEqual(
          failed.map((f) => [f.event.data, f.reason]),
          ["mystery", "Known", "constructor", "toString", "__proto__"].map((type, i) => [
            String(i + 2),
            `no handler for event type ${JSON.stringify(type)}`
          ])
        )
      }
    }))

  it.effect("an event without a type is unknown", () =>
    Effect.gen(function*() {
      yield* (yield* Installer).install
      const sql = yield* SqlClient.SqlClient
      const { queue, consumer } = yield* TestDb.queueWithConsumer("dq")
      // pgq.insert_event takes a type, but a producer writing the event table directly may leave it NULL.
      yield* sql`select pgq.insert_event(${queue}, null, 'typeless')`
      yield* TestDb.tick(queue)
      const stats = yield* InteractiveConsumer.processAvailable({
        queue,
        consumer,
        onEvent: Dispatch.make({ null: Dispatch.text(Schema.String, () => Effect.void) })
      })
      assert.deepStrictEqual([stats.ok, stats.failed], [0, 1])
      const [failed] = yield* (yield* FailedEvents).list(queue, consumer)
      assert.strictEqual(failed!.event.type, null)
      assert.strictEqual(failed!.reason, "no handler for event type null")
    }))

  it.effect("onUnknownType ok: counted ok, nothing stored or retried", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      const { queue, consumer, ids, stats, failed } = yield* consume(
        [{ type: "known", data: "1" }, { type: "mystery", data: "2" }, { type: "other", data: "3" }],
        Dispatch.make(
          { known: Dispatch.text(Schema.String, (text) => Effect.sync(() => void seen.push(text))) },
          { onUnknownType: "ok" }
        )
      )
      assert.deepStrictEqual(seen, ["1"])
      assert.deepStrictEqual(stats, { batches: 1, events: 3, ok: 3, failed: 0, retried: 0, aborted: 0 })
      assert.deepStrictEqual(failed, [])
      const status = yield* EventStatus
      for (const id of ids) {
        assert.deepStrictEqual((yield* status.forEvent(queue, id)).map((s) => [s.consumer, s.state]), [[consumer, "done"]])
      }
    }))

  it.effect("onUnknownType retry: retried in about a minute, nothing stored", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const status = yield* EventStatus
      const { queue, consumer, ids, stats, failed } = yield* consume(
        [{ type: "known", data: "1" }, { type: "from.the.future", data: "2" }],
        Dispatch.make({ known: Dispatch.text(Schema.String, () => Effect.void) }, { onUnknownType: "retry" })
      )
      assert.deepStrictEqual(stats, { batches: 1, events: 2, ok: 1, failed: 0, retried: 1, aborted: 0 })
      assert.deepStrictEqual(failed, [])
      assert.deepStrictEqual((yield* status.forEvent(queue, ids[0]!)).map((s) => [s.consumer, s.state]), [[consumer, "done"]])
      assert.deepStrictEqual((yield* status.forEvent(queue, ids[1]!)).map((s) => [s.state, s.retry]), [["retry", 1]])
      const [due] = yield* sql<{ readonly seconds: number }>`
        select extract(epoch from ev_retry_after - now())::float8 as seconds from pgq.retry_queue where ev_id = ${ids[1]!}
          and ev_queue = (select queue_id from pgq.queue where queue_name = ${queue})`
      assert.isAbove(due!.seconds, 30)
      assert.isAtMost(due!.seconds, 60)
    }))

  it.effect("a custom unknown-type handler decides, and sees the event and batch", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      const { queue, consumer, stats, failed } = yield* consume(
        [
          { type: "known", data: "k" },
          { type: "fail.me", data: "f" },
          { type: "retry.me", data: "r" },
          { type: "ok.me", data: "o" },
          { type: "void.me", data: "v" }
        ],
        Dispatch.make({ known: Dispatch.text(Schema.String, () => Effect.void) }, {
          onUnknownType: (event, context) =>
            Effect.sync(() => {
              seen.push(`${event.type}@${context.queue}/${context.consumer}`)
              switch (event.type) {
                case "fail.me":
                  return EventResult.Failed(`custom: ${event.data}`)
                case "retry.me":
                  return EventResult.Retry("1 hour")
                case "ok.me":
                  return EventResult.Ok
                default:
                  return undefined
              }
            })
        })
      )
      assert.deepStrictEqual(seen, ["fail.me", "retry.me", "ok.me", "void.me"].map((t) => `${t}@${queue}/${consumer}`))
      assert.deepStrictEqual(stats, { batches: 1, events: 5, ok: 3, failed: 1, retried: 1, aborted: 0 })
      assert.deepStrictEqual(failed.map((f) => [f.event.type, f.reason]), [["fail.me", "custom: f"]])
    }))

  it.effect("a route's own result is honoured: Ok, nothing, Retry, Failed", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { queue, ids, stats, failed } = yield* consume(
        ["ok", "void", "retry", "fail"].map((data) => ({ type: "t", data })),
        Dispatch.make({
          t: Dispatch.text(Schema.String, (text) =>
            Effect.succeed(
              text === "ok"
                ? EventResult.Ok
                : text === "retry"
                ? EventResult.Retry("2 hours")
                : text === "fail"
                ? EventResult.Failed("refused by route")
                : undefined
            ))
        })
      )
      assert.deepStrictEqual(stats, { batches: 1, events: 4, ok: 2, failed: 1, retried: 1, aborted: 0 })
      assert.deepStrictEqual(failed.map((f) => [f.event.id, f.reason]), [[ids[3]!, "refused by route"]])
      // The route's own delay, not the unknown-type one.
      const [due] = yield* sql<{ readonly seconds: number }>`
        select extract(epoch from ev_retry_after - now())::float8 as seconds from pgq.retry_queue where ev_id = ${ids[2]!}
          and ev_queue = (select queue_id from pgq.queue where queue_name = ${queue})`
      assert.isAbove(due!.seconds, Duration.toSeconds(Duration.hours(2)) - 60)
    }))

  it.effect("a route returning AbortBatch rolls the batch back, decode failures included", () =>
    Effect.gen(function*() {
      let abort = true
      const seen: Array<string> = []
      const handler = Dispatch.make({
        n: Dispatch.json(Schema.Struct({ n: Schema.Int }), ({ n }) =>
          Effect.sync(() => {
            seen.push(`n${n}`)
            return abort && n === 2 ? EventResult.AbortBatch("not now") : undefined
          }))
      })
      const { queue, consumer, stats, failed } = yield* consume(
        [{ type: "n", data: "{\"n\":1}" }, { type: "n", data: "bad" }, { type: "n", data: "{\"n\":2}" }],
        handler
      )
      assert.deepStrictEqual(stats, { batches: 1, events: 3, ok: 0, failed: 0, retried: 0, aborted: 1 })
      assert.deepStrictEqual(failed, [], "the decode failure was rolled back with the batch")
      abort = false
      const again = yield* InteractiveConsumer.processAvailable({ queue, consumer, onEvent: handler })
      assert.deepStrictEqual(again, { batches: 1, events: 3, ok: 2, failed: 1, retried: 0, aborted: 0 })
      assert.deepStrictEqual(seen, ["n1", "n2", "n1", "n2"])
      assert.deepStrictEqual((yield* (yield* FailedEvents).list(queue, consumer)).map((f) => f.event.data), ["bad"])
    }))

  it.effect("a route's typed failure goes through the failure policy", () =>
    Effect.gen(function*() {
      const handler = Dispatch.make({
        t: Dispatch.text(Schema.String, (text) => text === "boom" ? new Refused({ message: `refused ${text}` }) : Effect.void)
      })
      const events = [{ type: "t", data: "fine" }, { type: "t", data: "boom" }]

      const retried = yield* consume(events, handler)
      assert.deepStrictEqual([retried.stats.ok, retried.stats.retried, retried.stats.failed], [1, 1, 0])
      assert.deepStrictEqual(retried.failed, [])

      const noRetries = yield* consume(events, handler, {
        failurePolicy: { maxRetries: 0, backoff: () => Duration.seconds(1) }
      })
      assert.deepStrictEqual([noRetries.stats.ok, noRetries.stats.retried, noRetries.stats.failed], [1, 0, 1])
      assert.strictEqual(noRetries.failed.length, 1)
      assert.strictEqual(noRetries.failed[0]!.event.data, "boom")
      assert.include(noRetries.failed[0]!.reason, "failed after 0 retries")
      assert.include(noRetries.failed[0]!.reason, "refused boom")
    }))
})
