import { assert, layer } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Layer } from "effect"
import { OtlpExporter } from "effect/observability"
import { Installer } from "../../src/api/Installer.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import type { PgqEvent } from "../../src/api/PgqEvent.ts"
import { Producer } from "../../src/api/Producer.ts"
import * as EventResult from "../../src/consumer/EventResult.ts"
import * as InteractiveConsumer from "../../src/consumer/InteractiveConsumer.ts"
import * as LagMetrics from "../../src/telemetry/LagMetrics.ts"
import * as Metrics from "../../src/telemetry/Metrics.ts"
import * as OtlpExport from "../../src/telemetry/OtlpExport.ts"
import * as Semconv from "../../src/telemetry/Semconv.ts"
import * as TestDb from "../TestDb.ts"
import * as OtlpReceiver from "./OtlpReceiver.ts"

const { attribute, SPAN_KIND, STATUS } = OtlpReceiver

/** Exports to `receiver`, only when flushed or when the layer closes. */
const exportTo = (receiver: OtlpReceiver.Receiver, options: OtlpExport.Options = {}) =>
  OtlpExport.layer({
    endpoint: receiver.url,
    serviceName: "otlp-test",
    tracesExportInterval: "1 hour",
    metricsExportInterval: "1 hour",
    ...options
  })

layer(TestDb.servicesLayer, { excludeTestServices: true })("OTLP export", (it) => {
  it.effect("a producer's trace leads to the consumer's receive, process and settle spans", () =>
    Effect.gen(function*() {
      yield* (yield* Installer).install
      const receiver = yield* OtlpReceiver.make
      const { queue, consumer } = yield* TestDb.queueWithConsumer("otq")
      const carried: Array<string | null> = []
      yield* Effect.gen(function*() {
        const producer = yield* Producer
        yield* producer.sendMany(queue, [{ type: "order", data: "ok" }, { type: "order", data: "failed" }])
        yield* producer.send(queue, { type: "refund", data: "ok" })
        yield* TestDb.tick(queue)
        yield* InteractiveConsumer.processAvailable({
          queue,
          consumer,
          onEvent: (event) => {
            carried.push(event.extra4)
            return Effect.succeed(event.data === "failed" ? EventResult.Failed("no such customer") : EventResult.Ok)
          }
        })
      }).pipe(Effect.provide(exportTo(receiver)))

      const spans = receiver.spans()
      const named = (name: string) => spans.filter((span) => span.name === name)
      const sends = named(Semconv.sendSpanName(queue))
      assert.strictEqual(sends.length, 2)
      for (const send of sends) {
        assert.strictEqual(send.kind, SPAN_KIND.producer)
        assert.strictEqual(attribute(send.attributes, Semconv.MESSAGING_SYSTEM), "pgq")
        assert.strictEqual(attribute(send.attributes, Semconv.MESSAGING_DESTINATION_NAME), queue)
      }
      const [many, one] = [
        sends.find((s) => attribute(s.attributes, Semconv.MESSAGING_OPERATION_NAME) === "sendMany")!,
        sends.find((s) => attribute(s.attributes, Semconv.MESSAGING_OPERATION_NAME) === "send")!
      ]
      // Each event carries its producer span's traceparent in ev_extra4.
      const traceparent = (span: OtlpReceiver.OtlpSpan) => `00-${span.traceId}-${span.spanId}-01`
      assert.deepStrictEqual(carried, [traceparent(many), traceparent(many), traceparent(one)])

      const receives = named(Semconv.receiveSpanName(queue)).filter((s) =>
        attribute(s.attributes, Semconv.PGQ_BATCH_ID) !== undefined
      )
      assert.strictEqual(receives.length, 1)
      const receive = receives[0]!
      assert.strictEqual(receive.kind, SPAN_KIND.consumer)
      assert.strictEqual(attribute(receive.attributes, Semconv.MESSAGING_BATCH_MESSAGE_COUNT), 3)
      assert.strictEqual(attribute(receive.attributes, Semconv.MESSAGING_CONSUMER_GROUP_NAME), consumer)
      assert.isString(attribute(receive.attributes, Semconv.PGQ_TICK_ID))
      // The batch links to both producer spans, once each.
      assert.sameDeepMembers(
        receive.links.map((l) => `${l.traceId}/${l.spanId}`),
        [`${many.traceId}/${many.spanId}`, `${one.traceId}/${one.spanId}`]
      )

      const processes = named(Semconv.processSpanName(queue))
      assert.strictEqual(processes.length, 3)
      for (const [i, span] of processes.entries()) {
        const producer = i < 2 ? many : one
        assert.strictEqual(span.parentSpanId, receive.spanId)
        assert.strictEqual(span.traceId, receive.traceId)
        assert.strictEqual(span.kind, SPAN_KIND.consumer)
        assert.deepStrictEqual(span.links.map((l) => [l.traceId, l.spanId]), [[producer.traceId, producer.spanId]])
        assert.strictEqual(attribute(span.attributes, Semconv.MESSAGING_SYSTEM), "pgq")
        assert.strictEqual(attribute(span.attributes, Semconv.MESSAGING_DESTINATION_NAME), queue)
        assert.strictEqual(attribute(span.attributes, Semconv.MESSAGING_CONSUMER_GROUP_NAME), consumer)
        assert.isString(attribute(span.attributes, Semconv.MESSAGING_MESSAGE_ID))
        // A first delivery's retry count (0) is left out, as is an Ok result.
        assert.strictEqual(attribute(span.attributes, Semconv.PGQ_EVENT_RETRY), undefined)
      }
      assert.deepStrictEqual(
        processes.map((s) => [
          attribute(s.attributes, Semconv.PGQ_EVENT_TYPE),
          attribute(s.attributes, Semconv.PGQ_EVENT_RESULT),
          s.status.code,
          attribute(s.attributes, Semconv.ERROR_TYPE)
        ]),
        [
          ["order", undefined, STATUS.ok, undefined],
          ["order", "Failed", STATUS.error, "Failed"],
          ["refund", undefined, STATUS.ok, undefined]
        ]
      )
      const settle = named(Semconv.settleSpanName(queue))
        .find((s) => attribute(s.attributes, Semconv.MESSAGING_OPERATION_NAME) === "finish_batch")
      assert.strictEqual(settle?.parentSpanId, receive.spanId)
    }).pipe(Effect.scoped))

  it.effect("a process span names its event and its retry count, whether the handler ran code or returned at once", () =>
    Effect.gen(function*() {
      yield* (yield* Installer).install
      const receiver = yield* OtlpReceiver.make
      const { queue, consumer } = yield* TestDb.queueWithConsumer("otr")
      const ids: Array<string> = []
      yield* Effect.gen(function*() {
        yield* (yield* Producer).sendMany(queue, ["at once", "running"].map((data) => ({ type: "t", data })))
        yield* TestDb.tick(queue)
        // Both sent back once: then delivered again with a retry count of 1.
        const onEvent = (event: PgqEvent) => {
          ids.push(String(event.id))
          const result = event.retry === null ? EventResult.Retry("0 seconds") : EventResult.Ok
          return event.data === "at once" ? Effect.succeed(result) : Effect.yieldNow.pipe(Effect.as(result))
        }
        yield* InteractiveConsumer.processAvailable({ queue, consumer, onEvent })
        yield* TestDb.maintAllRetries
        yield* TestDb.tick(queue)
        yield* InteractiveConsumer.processAvailable({ queue, consumer, onEvent })
      }).pipe(Effect.provide(exportTo(receiver)))
      const processes = receiver.spans().filter((span) => span.name === Semconv.processSpanName(queue))
      assert.deepStrictEqual(
        processes.map((span) => [
          attribute(span.attributes, Semconv.MESSAGING_MESSAGE_ID),
          attribute(span.attributes, Semconv.PGQ_EVENT_RETRY),
          attribute(span.attributes, Semconv.PGQ_EVENT_RESULT),
          span.status.code
        ]),
        [
          [ids[0], undefined, "Retry", STATUS.ok],
          [ids[1], undefined, "Retry", STATUS.ok],
          [ids[0], 1, undefined, STATUS.ok],
          [ids[1], 1, undefined, STATUS.ok]
        ]
      )
      // Each span of its own, from start to end.
      assert.strictEqual(new Set(processes.map((span) => span.spanId)).size, 4)
      for (const span of processes) assert.isTrue(BigInt(span.endTimeUnixNano) >= BigInt(span.startTimeUnixNano))
    }).pipe(Effect.scoped))

  it.effect("metrics: consumed, sent, failed, retried, durations, and lag as pgq reports it", () =>
    Effect.gen(function*() {
      yield* (yield* Installer).install
      const pgq = yield* Pgq
      const receiver = yield* OtlpReceiver.make
      const { queue, consumer } = yield* TestDb.queueWithConsumer("otm")
      const labels = Metrics.attributesOf(queue, consumer)
      const lag = yield* Effect.gen(function*() {
        const producer = yield* Producer
        const flusher = yield* OtlpExporter.Flusher
        yield* producer.sendMany(queue, ["ok", "failed", "retry", "ok"].map((data) => ({ type: "t", data })))
        yield* TestDb.tick(queue)
        yield* InteractiveConsumer.processAvailable({
          queue,
          consumer,
          onEvent: (event) =>
            Effect.succeed(
              event.data === "failed"
                ? EventResult.Failed("no")
                : event.data === "retry"
                ? EventResult.Retry("1 hour")
                : EventResult.Ok
            )
        })
        // Events the consumer does not take: pending grows, and so does lag while it stays away.
        yield* producer.send(queue, { type: "t", data: "later" })
        yield* TestDb.tick(queue)
        const before = yield* pgq.getConsumerInfo(queue, consumer)
        yield* LagMetrics.refresh
        const after = yield* pgq.getConsumerInfo(queue, consumer)
        yield* flusher.flush
        const first = OtlpReceiver.valueOf(OtlpReceiver.latestPoint(receiver.metrics(), Metrics.CONSUMER_LAG, labels))
        yield* Effect.sleep("1200 millis")
        yield* LagMetrics.refresh
        yield* flusher.flush
        const second = OtlpReceiver.valueOf(OtlpReceiver.latestPoint(receiver.metrics(), Metrics.CONSUMER_LAG, labels))
        return { before, after, first, second }
      }).pipe(Effect.provide(exportTo(receiver)))

      const metrics = receiver.metrics()
      const value = (name: string, match: Record<string, string>) =>
        OtlpReceiver.valueOf(OtlpReceiver.latestPoint(metrics, name, match))
      assert.strictEqual(value(Metrics.CONSUMED_MESSAGES, labels), 4)
      assert.strictEqual(value(Metrics.BATCHES, labels), 1)
      assert.strictEqual(value(Metrics.FAILED_EVENTS, labels), 1)
      assert.strictEqual(value(Metrics.RETRIED_EVENTS, labels), 1)
      assert.strictEqual(value(Metrics.SENT_MESSAGES, Metrics.attributesOf(queue)), 5)
      const duration = OtlpReceiver.latestPoint(metrics, Metrics.PROCESS_DURATION, labels)
      assert.strictEqual(Number(duration?.count), 4)
      assert.strictEqual(metrics.find((m) => m.name === Metrics.PROCESS_DURATION)?.unit, "s")
      assert.isTrue(metrics.find((m) => m.name === Metrics.CONSUMED_MESSAGES)?.sum?.isMonotonic)

      // Lag is pgq's own figure, read between the two get_consumer_info calls around the refresh.
      const seconds = (d: Duration.Duration | null) => d === null ? NaN : Duration.toMillis(d) / 1000
      assert.isAtLeast(lag.first!, seconds(lag.before.lag) - 0.001)
      assert.isAtMost(lag.first!, seconds(lag.after.lag) + 0.001)
      assert.isAtLeast(lag.second! - lag.first!, 1)
      assert.strictEqual(value(Metrics.PENDING_EVENTS, labels), Number(lag.after.pendingEvents))
      assert.isAbove(value(Metrics.PENDING_EVENTS, labels)!, 0)
      assert.isNumber(value(Metrics.TICKER_LAG, Metrics.attributesOf(queue)))
    }).pipe(Effect.scoped))

  it.effect("the OTEL_* variables alone: an endpoint is enough; OTEL_TRACES_EXPORTER=none, OTEL_METRICS_EXPORTER=none turn them off", () =>
    Effect.gen(function*() {
      const receiver = yield* OtlpReceiver.make
      const { queue } = yield* TestDb.queueWithConsumer("otenv")
      const sends = () => receiver.spans().filter((span) => span.name === Semconv.sendSpanName(queue))
      const sent = () =>
        receiver.metrics().filter((m) =>
          m.name === Metrics.SENT_MESSAGES &&
          (m.sum?.dataPoints ?? []).some((p) => attribute(p.attributes, Semconv.MESSAGING_DESTINATION_NAME) === queue)
        )
      const sendUnder = (env: Record<string, string>) =>
        Effect.gen(function*() {
          yield* (yield* Producer).send(queue, { type: "t", data: null })
        }).pipe(Effect.provide(OtlpExport.layer().pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(env))))))
      const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SERVICE_NAME: "otlp-env-test" }

      yield* sendUnder(env)
      assert.strictEqual(sends().length, 1)
      assert.strictEqual(sent().length, 1)
      yield* sendUnder({ ...env, OTEL_TRACES_EXPORTER: "none", OTEL_METRICS_EXPORTER: "none" })
      assert.strictEqual(sends().length, 1)
      assert.strictEqual(sent().length, 1)
    }).pipe(Effect.scoped))

  it.effect("per-event spans off: batch spans only, still linked to producers", () =>
    Effect.gen(function*() {
      yield* (yield* Installer).install
      const receiver = yield* OtlpReceiver.make
      const { queue, consumer } = yield* TestDb.queueWithConsumer("otb")
      yield* Effect.gen(function*() {
        yield* (yield* Producer).sendMany(queue, [{ type: "t", data: "1" }, { type: "t", data: "2" }])
        yield* TestDb.tick(queue)
        yield* InteractiveConsumer.processAvailable({ queue, consumer, onEvent: () => Effect.succeed(EventResult.Ok) })
      }).pipe(Effect.provide(exportTo(receiver, { eventSpans: false })))
      const spans = receiver.spans()
      assert.strictEqual(spans.filter((s) => s.name === Semconv.processSpanName(queue)).length, 0)
      const receive = spans.find((s) =>
        s.name === Semconv.receiveSpanName(queue) && attribute(s.attributes, Semconv.PGQ_BATCH_ID) !== undefined
      )
      const send = spans.find((s) => s.name === Semconv.sendSpanName(queue))
      assert.deepStrictEqual(receive?.links.map((l) => l.spanId), [send?.spanId])
    }).pipe(Effect.scoped))

  it.effect("sampling ratio 0: nothing traced, no traceparent written", () =>
    Effect.gen(function*() {
      yield* (yield* Installer).install
      const receiver = yield* OtlpReceiver.make
      const { queue, consumer } = yield* TestDb.queueWithConsumer("ots")
      const carried: Array<string | null> = []
      yield* Effect.gen(function*() {
        yield* (yield* Producer).send(queue, { type: "t", data: "1" })
        yield* TestDb.tick(queue)
        yield* InteractiveConsumer.processAvailable({
          queue,
          consumer,
          onEvent: (event) => Effect.sync(() => carried.push(event.extra4)).pipe(Effect.as(EventResult.Ok))
        })
      }).pipe(Effect.provide(exportTo(receiver, { samplingRatio: 0 })))
      assert.deepStrictEqual(carried, [null])
      assert.strictEqual(receiver.spans().filter((s) => s.name.endsWith(queue)).length, 0)
    }).pipe(Effect.scoped))

  it.effect("protobuf (the default) and JSON bodies carry the same spans", () =>
    Effect.gen(function*() {
      yield* (yield* Installer).install
      /** A producer's send and a consumer's batch, exported with `protocol`; spans without their ids and times. */
      const exported = (protocol: "http/protobuf" | "http/json") =>
        Effect.gen(function*() {
          const receiver = yield* OtlpReceiver.make
          const { queue, consumer } = yield* TestDb.queueWithConsumer("otp")
          yield* Effect.gen(function*() {
            yield* (yield* Producer).sendMany(queue, [{ type: "a", data: "1" }, { type: "b", data: "2" }])
            yield* TestDb.tick(queue)
            yield* InteractiveConsumer.processAvailable({
              queue,
              consumer,
              onEvent: (event) => Effect.succeed(event.type === "a" ? EventResult.Ok : EventResult.Failed("no"))
            })
          }).pipe(Effect.provide(exportTo(receiver, { tracesProtocol: protocol })))
          const byId = new Map(receiver.spans().map((span) => [span.spanId, span.name.replace(queue, "<queue>")]))
          return receiver.spans().filter((span) => span.name.endsWith(queue)).map((span) => ({
            name: span.name.replace(queue, "<queue>"),
            kind: span.kind,
            parent: span.parentSpanId === undefined ? undefined : byId.get(span.parentSpanId),
            links: span.links.map((link) => byId.get(link.spanId)),
            status: span.status.code,
            attributes: span.attributes
              .map(({ key }) => [key, attribute(span.attributes, key)] as const)
              .filter(([key]) => !key.startsWith("messaging.pgq.") || key.startsWith("messaging.pgq.event."))
              .map(([key, value]) => `${key}=${key.startsWith("messaging.") && typeof value === "string" ? value.replace(queue, "<queue>").replace(/^c_.*/, "<consumer>") : value}`)
              .filter((text) => !text.startsWith("messaging.message.id="))
              .sort()
          })).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))
        }).pipe(Effect.scoped)
      const protobuf = yield* exported("http/protobuf")
      const json = yield* exported("http/json")
      assert.isAbove(protobuf.length, 4)
      assert.deepStrictEqual(protobuf, json)
    }))
})
