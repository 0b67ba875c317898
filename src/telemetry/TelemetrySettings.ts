/**
 * What effect-pgq records beyond the spans a tracer asks for: per-event
 * spans, the share of batches traced, and metrics. The defaults cost nothing
 * measurable: without a tracer other than Effect's built-in one no per-event
 * span is made, and metrics stay off until a telemetry layer (or the daemon)
 * turns them on.
 *
 * @since 0.2.0
 */
import { Context, Layer } from "effect"

/**
 * @since 0.2.0
 * @category models
 */
export interface Settings {
  /** A `process <queue>` span per event, child of its batch's span. Default true. */
  readonly eventSpans: boolean
  /**
   * The share of batches (`receive`) and of producer calls without a parent
   * span (`send`) that are traced, from 0 to 1. Default 1. A tracer bridged
   * to an OpenTelemetry SDK samples with the SDK's sampler instead.
   */
  readonly samplingRatio: number
  /** Counters and histograms of consumed, sent, failed and retried events. Default false. */
  readonly metrics: boolean
}

/**
 * Settings where any field may be left out.
 *
 * @since 0.2.0
 * @category models
 */
export type Input = { readonly [K in keyof Settings]?: Settings[K] | undefined }

/**
 * @since 0.2.0
 * @category references
 */
export const TelemetrySettings: Context.Reference<Settings> = Context.Reference<Settings>(
  "effect-pgq/telemetry/TelemetrySettings",
  { defaultValue: () => ({ eventSpans: true, samplingRatio: 1, metrics: false }) }
)

/**
 * Settings for everything run with this layer; fields left out keep their
 * defaults.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (settings: Input): Layer.Layer<never> =>
  Layer.succeed(TelemetrySettings, {
    eventSpans: settings.eventSpans ?? true,
    samplingRatio: clampRatio(settings.samplingRatio ?? 1),
    metrics: settings.metrics ?? false
  })

const clampRatio = (ratio: number): number => Number.isFinite(ratio) ? Math.min(1, Math.max(0, ratio)) : 1
