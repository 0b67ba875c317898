/**
 * effect-pgq inside an app that already runs the OpenTelemetry Node SDK
 * (`effect-pgq/opentelemetry`): effect-pgq's spans go to the SDK's global
 * tracer provider, so they join the app's traces (an auto-instrumented `pg`
 * query inside a handler is a child of its event's `process` span), and are
 * sampled and exported the way the SDK is configured.
 *
 * Needs the optional peer dependencies `@effect/opentelemetry` and
 * `@opentelemetry/api` (and `@opentelemetry/sdk-metrics` for `metricReader`).
 *
 * ```ts skip-check
 * import { NodeSDK } from "@opentelemetry/sdk-node"
 * import { PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
 * import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http"
 * import * as PgqOpenTelemetry from "effect-pgq/opentelemetry"
 *
 * new NodeSDK({ instrumentations: [] }).start()
 *
 * const TelemetryLive = PgqOpenTelemetry.layerGlobal({
 *   eventSpans: true,
 *   // effect-pgq's metrics (Effect metrics) through a reader of your SDK setup.
 *   metricReader: () => new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter() })
 * })
 * ```
 *
 * @since 0.2.0
 */
import { OtelMetrics, OtelTracer, Resource } from "@effect/opentelemetry"
import type { MetricReader } from "@opentelemetry/sdk-metrics"
import { Layer } from "effect"
import type { LazyArg } from "effect/Function"
import * as TelemetrySettings from "./TelemetrySettings.ts"

/**
 * @since 0.2.0
 * @category models
 */
export interface Options extends Omit<TelemetrySettings.Input, "samplingRatio"> {
  /**
   * A metric reader for effect-pgq's (and the app's) Effect metrics; `metrics`
   * defaults to true with one. The global meter provider cannot be reached
   * from Effect metrics: without a reader, metrics stay off unless asked
   * for (the daemon's `/metrics`, say).
   */
  readonly metricReader?: LazyArg<MetricReader> | undefined
}

/**
 * effect-pgq's spans through the global OpenTelemetry tracer provider; the
 * SDK's sampler decides what is kept.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerGlobal = (options: Options = {}): Layer.Layer<OtelTracer.OtelTracer> => {
  const settings = TelemetrySettings.layer({
    ...options,
    samplingRatio: 1,
    metrics: options.metrics ?? options.metricReader !== undefined
  })
  const metrics = options.metricReader === undefined
    ? Layer.empty
    : OtelMetrics.layer(options.metricReader).pipe(Layer.provide(Resource.layerFromEnv()))
  return Layer.mergeAll(OtelTracer.layerGlobal, settings, metrics)
}
