/**
 * The ready layer for an app without an OpenTelemetry SDK of its own:
 * effect-pgq's spans and metrics (and the app's Effect spans and metrics)
 * exported over OTLP/HTTP (no OpenTelemetry SDK needed): spans with protobuf
 * bodies unless told otherwise, by an exporter that encodes them straight
 * from the spans (a span per event costs little), metrics with JSON bodies by
 * Effect's own exporter.
 *
 * Configured by the standard variables unless `endpoint` is given:
 * `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` /
 * `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`), `OTEL_EXPORTER_OTLP_HEADERS`,
 * `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_SCHEDULE_DELAY`,
 * `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_EXPORTER_OTLP_PROTOCOL` (or
 * `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`), `OTEL_METRIC_EXPORT_INTERVAL`,
 * `OTEL_SDK_DISABLED`, and `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER`
 * (default `otlp`; `none` turns one off). Without an endpoint, nothing is
 * exported.
 *
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Consumer, EventResult, OtlpExport } from "effect-pgq"
 *
 * // OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_SERVICE_NAME=mailer node main.ts
 * const TelemetryLive = OtlpExport.layer({ eventSpans: true, samplingRatio: 0.1 })
 *
 * const main = Effect.scoped(Effect.gen(function*() {
 *   const consumer = yield* Consumer.make({
 *     queue: "orders",
 *     consumer: "mailer",
 *     onEvent: () => Effect.succeed(EventResult.Ok)
 *   })
 *   yield* consumer.run
 * })).pipe(Effect.provide(TelemetryLive))
 * ```
 *
 * An app that already runs the OpenTelemetry Node SDK uses
 * `effect-pgq/opentelemetry` instead, so effect-pgq's spans join its traces.
 *
 * @since 0.2.0
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Config, ConfigProvider, Duration, Effect, Layer } from "effect"
import { OtlpExporter, OtlpMetrics, OtlpSerialization } from "effect/observability"
import * as OtlpTraces from "./OtlpTraces.ts"
import * as TelemetrySettings from "./TelemetrySettings.ts"

/**
 * @since 0.2.0
 * @category models
 */
export interface Options extends TelemetrySettings.Input {
  /** Export spans. Default true; false leaves Effect's built-in tracer, and no per-event span is made. */
  readonly tracing?: boolean | undefined
  /** OTLP/HTTP base URL such as `http://localhost:4318`; default from the `OTEL_*` variables. */
  readonly endpoint?: string | undefined
  /** Default `OTEL_SERVICE_NAME`, else `effect-pgq`. */
  readonly serviceName?: string | undefined
  /** How often spans are sent. Default `OTEL_BSP_SCHEDULE_DELAY`, else 5 seconds. */
  readonly tracesExportInterval?: Duration.Input | undefined
  /**
   * The spans' encoding: `http/protobuf` (default; half the bytes of JSON) or
   * `http/json`. Default `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` /
   * `OTEL_EXPORTER_OTLP_PROTOCOL` when the endpoint comes from the variables.
   */
  readonly tracesProtocol?: "http/protobuf" | "http/json" | undefined
  /** How often metrics are sent. Default `OTEL_METRIC_EXPORT_INTERVAL`, else 10 seconds. */
  readonly metricsExportInterval?: Duration.Input | undefined
}

/**
 * Exports until the layer's scope closes, then flushes what is left;
 * `OtlpExporter.Flusher` sends what is buffered now. `metrics` defaults to
 * true here.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<OtlpExporter.Flusher> => {
  const tracing = options.tracing ?? true
  const metrics = options.metrics ?? true
  const settings = TelemetrySettings.layer({ ...options, metrics })
  const exporters = Layer.unwrap(Effect.gen(function*() {
    const resource = { serviceName: yield* serviceName(options.serviceName) }
    const base = options.endpoint?.replace(/\/+$/, "")
    const traces = !tracing ? OtlpExporter.layerFlusher : base === undefined
      ? OtlpTraces.layerFromConfig({ resource, protocol: options.tracesProtocol })
      : OtlpTraces.layer({
        url: `${base}/v1/traces`,
        resource,
        protocol: options.tracesProtocol ?? "http/protobuf",
        exportInterval: options.tracesExportInterval
      })
    const metered = !metrics ? OtlpExporter.layerFlusher : base === undefined
      ? OtlpMetrics.layerFromConfig({ resource })
      : OtlpMetrics.layer({
        url: `${base}/v1/metrics`,
        resource,
        exportInterval: options.metricsExportInterval
      })
    return Layer.mergeAll(traces, metered)
  })).pipe(
    Layer.provide(OtlpSerialization.layerJson),
    // node:http rather than fetch: a body goes to the socket as it is, not copied through a web
    // stream; one kept-alive connection rather than one per batch.
    Layer.provide(NodeHttpClient.layerNodeHttpOptions({ keepAlive: true })),
    Layer.provide(otlpByDefault)
  )
  return Layer.mergeAll(settings, exporters)
}

/**
 * `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER` default to `otlp`, as the
 * OpenTelemetry spec says: Effect's readers export nothing unless they are
 * set, and an endpoint alone must be enough (`none` still turns one off).
 */
const otlpByDefault = ConfigProvider.layerAdd(
  ConfigProvider.fromUnknown({ OTEL_TRACES_EXPORTER: "otlp", OTEL_METRICS_EXPORTER: "otlp" })
)

/** The service's name: the option, else the standard variables, else `effect-pgq`. */
const serviceName = (name: string | undefined) =>
  Effect.gen(function*() {
    if (name !== undefined) return name
    const fromEnv = yield* Config.option(Config.String("OTEL_SERVICE_NAME"))
    if (fromEnv._tag === "Some") return fromEnv.value
    const attributes = yield* Config.option(Config.String("OTEL_RESOURCE_ATTRIBUTES"))
    return attributes._tag === "Some" && /(^|,)\s*service\.name\s*=/.test(attributes.value) ? undefined : "effect-pgq"
  }).pipe(Effect.orElseSucceed(() => "effect-pgq"))
