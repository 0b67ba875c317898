/**
 * An app that runs the OpenTelemetry Node SDK sees effect-pgq's spans in its
 * own traces: `layerGlobal` sends them to the SDK's global tracer provider.
 */
import { assert, layer } from "@effect/vitest"
import { trace } from "@opentelemetry/api"
import { NodeSDK } from "@opentelemetry/sdk-node"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect } from "effect"
import { Installer } from "../../src/api/Installer.ts"
import { Producer } from "../../src/api/Producer.ts"
import * as EventResult from "../../src/consumer/EventResult.ts"
import * as InteractiveConsumer from "../../src/consumer/InteractiveConsumer.ts"
import * as PgqOpenTelemetry from "../../src/telemetry/OpenTelemetry.ts"
import * as Semconv from "../../src/telemetry/Semconv.ts"
import * as TestDb from "../TestDb.ts"

layer(TestDb.servicesLayer, { excludeTestServices: true })("with the OpenTelemetry Node SDK", (it) => {
  it.effect("effect-pgq's spans join the app's trace and link the consumer to the producer", () =>
    Effect.gen(function*() {
      yield* (yield* Installer).install
      const exporter = new InMemorySpanExporter()
      const sdk = new NodeSDK({ spanProcessors: [new SimpleSpanProcessor(exporter)], instrumentations: [] })
      sdk.start()
      yield* Effect.addFinalizer(() => Effect.promise(() => sdk.shutdown()))
      const { queue, consumer } = yield* TestDb.queueWithConsumer("sdk")

      // The app's own span, made with the OpenTelemetry API, around effect-pgq's producer.
      const appTracer = trace.getTracer("app")
      const send = (yield* Producer).send(queue, { type: "t", data: "1" }).pipe(Effect.provide(PgqOpenTelemetry.layerGlobal()))
      yield* Effect.promise(() =>
        appTracer.startActiveSpan("checkout", (span) => Effect.runPromise(send).finally(() => span.end()))
      )
      yield* TestDb.tick(queue)
      yield* InteractiveConsumer.processAvailable({ queue, consumer, onEvent: () => Effect.succeed(EventResult.Ok) })
        .pipe(Effect.provide(PgqOpenTelemetry.layerGlobal()))

      const spans = exporter.getFinishedSpans()
      const checkout = spans.find((s) => s.name === "checkout")!
      const sent = spans.find((s) => s.name === Semconv.sendSpanName(queue))!
      assert.strictEqual(sent.spanContext().traceId, checkout.spanContext().traceId)
      assert.strictEqual(sent.parentSpanContext?.spanId, checkout.spanContext().spanId)
      const receive = spans.find((s) => s.name === Semconv.receiveSpanName(queue) && s.attributes[Semconv.PGQ_BATCH_ID] !== undefined)!
      const process = spans.find((s) => s.name === Semconv.processSpanName(queue))!
      assert.strictEqual(process.parentSpanContext?.spanId, receive.spanContext().spanId)
      assert.deepStrictEqual(process.links.map((l) => l.context.spanId), [sent.spanContext().spanId])
      assert.deepStrictEqual(receive.links.map((l) => l.context.traceId), [checkout.spanContext().traceId])
    }).pipe(Effect.scoped))
})
