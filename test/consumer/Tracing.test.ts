import { assert, layer } from "@effect/vitest"
import { Effect, Option } from "effect"
import { Installer } from "../../src/api/Installer.ts"
import { Producer } from "../../src/api/Producer.ts"
import * as EventResult from "../../src/consumer/EventResult.ts"
import * as InteractiveConsumer from "../../src/consumer/InteractiveConsumer.ts"
import * as Semconv from "../../src/telemetry/Semconv.ts"
import * as TestDb from "../TestDb.ts"
import * as TestTracer from "../TestTracer.ts"

const setup = (events: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    yield* (yield* Installer).install
    const { queue, consumer } = yield* TestDb.queueWithConsumer("tq")
    yield* (yield* Producer).sendMany(queue, events.map((data) => ({ type: "order", data })))
    yield* TestDb.tick(queue)
    return { queue, consumer }
  })

const parentId = (span: { readonly parent: Option.Option<{ readonly spanId: string }> }) =>
  Option.getOrUndefined(Option.map(span.parent, (p) => p.spanId))

layer(TestDb.servicesLayer, { excludeTestServices: true })("Consumer spans", (it) => {
  it.effect("a receive span per batch with a process span per event as its children", () =>
    Effect.gen(function*() {
      const { queue, consumer } = yield* setup(["ok", "failed", "retry", "ok"])
      const recorded = TestTracer.make()
      yield* TestTracer.traced(
        recorded,
        InteractiveConsumer.processAvailable({
          queue,
          consumer,
          onEvent: (event) =>
            Effect.succeed(
              event.data === "failed"
                ? EventResult.Failed("no such customer")
                : event.data === "retry"
                ? EventResult.Retry("1 minute")
                : EventResult.Ok
            )
        })
      )
      const [receive, ...more] = recorded.named(Semconv.receiveSpanName(queue))
        .filter((span) => span.attributes.has(Semconv.PGQ_BATCH_ID))
      assert.strictEqual(more.length, 0)
      assert.strictEqual(receive!.kind, "consumer")
      assert.strictEqual(TestTracer.outcome(receive!), "ok")
      assert.deepStrictEqual(
        [
          Semconv.MESSAGING_SYSTEM,
          Semconv.MESSAGING_DESTINATION_NAME,
          Semconv.MESSAGING_CONSUMER_GROUP_NAME,
          Semconv.MESSAGING_OPERATION_TYPE,
          Semconv.MESSAGING_BATCH_MESSAGE_COUNT,
          Semconv.PGQ_BATCH_OK,
          Semconv.PGQ_BATCH_FAILED,
          Semconv.PGQ_BATCH_RETRIED
        ].map((key) => receive!.attributes.get(key)),
        ["pgq", queue, consumer, "receive", 4, 2, 1, 1]
      )

      const process = recorded.named(Semconv.processSpanName(queue))
      assert.strictEqual(process.length, 4)
      for (const span of process) {
        assert.strictEqual(parentId(span), receive!.spanId)
        assert.strictEqual(span.kind, "consumer")
        assert.strictEqual(span.attributes.get(Semconv.MESSAGING_SYSTEM), "pgq")
        assert.strictEqual(span.attributes.get(Semconv.PGQ_EVENT_TYPE), "order")
        assert.isString(span.attributes.get(Semconv.MESSAGING_MESSAGE_ID))
      }
      assert.deepStrictEqual(
        process.map((span) => [span.attributes.get(Semconv.PGQ_EVENT_RESULT), TestTracer.outcome(span)]),
        // An Ok result is the default, left out.
        [[undefined, "ok"], ["Failed", "error"], ["Retry", "ok"], [undefined, "ok"]]
      )
      // event_retry is settled under its event's span; finish_batch under the batch's.
      const settles = recorded.named(Semconv.settleSpanName(queue))
      const retrySettle = settles.find((s) => s.attributes.get(Semconv.MESSAGING_OPERATION_NAME) === "event_retry")
      const finishSettle = settles.find((s) => s.attributes.get(Semconv.MESSAGING_OPERATION_NAME) === "finish_batch")
      assert.strictEqual(parentId(retrySettle!), process[2]!.spanId)
      assert.strictEqual(parentId(finishSettle!), receive!.spanId)
    }))

  it.effect("AbortBatch and handler defects mark their spans as errors", () =>
    Effect.gen(function*() {
      const { queue, consumer } = yield* setup(["a", "boom", "abort"])
      const recorded = TestTracer.make()
      let attempt = 0
      yield* TestTracer.traced(
        recorded,
        InteractiveConsumer.processAvailable({
          queue,
          consumer,
          onEvent: (event) => {
            if (event.data === "boom" && attempt++ === 0) return Effect.die(new Error("handler defect"))
            return Effect.succeed(event.data === "abort" ? EventResult.AbortBatch("stop") : EventResult.Ok)
          }
        })
      )
      const process = recorded.named(Semconv.processSpanName(queue))
      // The defect's handler ran no SQL: its failure policy decides at once, with no replay.
      assert.deepStrictEqual(process.map((span) => TestTracer.outcome(span)), ["ok", "error", "error"])
      assert.deepStrictEqual(process.map((span) => span.attributes.get(Semconv.PGQ_EVENT_RESULT)), [
        undefined,
        "Retry",
        "AbortBatch"
      ])
      assert.strictEqual(attempt, 1)
      const receives = recorded.named(Semconv.receiveSpanName(queue))
        .filter((span) => span.attributes.has(Semconv.PGQ_BATCH_ID))
      assert.deepStrictEqual(receives.map((span) => TestTracer.outcome(span)), ["error"])
    }))

  it.effect("without a recording tracer the handler runs in the batch's span, with no span per event", () =>
    Effect.gen(function*() {
      const { queue, consumer } = yield* setup(["x", "y"])
      const seen: Array<string> = []
      const handler = () =>
        Effect.flatMap(Effect.currentSpan, (span) => Effect.sync(() => void seen.push(span.name))).pipe(Effect.orDie)
      yield* InteractiveConsumer.processAvailable({ queue, consumer, onEvent: handler })
      assert.deepStrictEqual(seen, [Semconv.receiveSpanName(queue), Semconv.receiveSpanName(queue)])
      const { queue: q2, consumer: c2 } = yield* setup(["x"])
      seen.length = 0
      yield* TestTracer.traced(TestTracer.make(), InteractiveConsumer.processAvailable({ queue: q2, consumer: c2, onEvent: handler }))
      assert.deepStrictEqual(seen, [Semconv.processSpanName(q2)])
    }))
})
