/**
 * effect-pgq's metrics, as Effect metrics: whatever exports Effect's metric
 * registry (the OTLP layer, `@effect/opentelemetry`'s metric reader, the
 * daemon's `/metrics`) exports them.
 *
 * | name | kind | unit | what |
 * |---|---|---|---|
 * | `messaging.client.consumed.messages` | counter | `{message}` | events in committed batches |
 * | `messaging.process.duration` | histogram | `s` | one handler call (an event, or a batch for `onBatch`) |
 * | `messaging.client.sent.messages` | counter | `{message}` | events committed by `send` / `sendMany` calls |
 * | `pgq.consumer.batches` | counter | `{batch}` | committed batches (batch size = consumed / batches) |
 * | `pgq.consumer.failed_events` | counter | `{event}` | events stored as failed |
 * | `pgq.consumer.retried_events` | counter | `{event}` | events put back for retry |
 * | `pgq.consumer.lag` | gauge | `s` | `pgq.get_consumer_info` lag: age of the last finished tick |
 * | `pgq.consumer.pending_events` | gauge | `{event}` | `pgq.get_consumer_info` pending events |
 * | `pgq.queue.ticker_lag` | gauge | `s` | `pgq.get_queue_info` ticker lag: age of the queue's last tick |
 *
 * Series carry `messaging.system`, `messaging.destination.name` (the queue)
 * and, for consumers, `messaging.consumer.group.name` (the consumer). The
 * gauges are set by `LagMetrics`, from pgq itself: a stopped consumer's lag
 * keeps growing.
 *
 * @since 0.2.0
 */
import { Metric } from "effect"
import * as Semconv from "./Semconv.ts"

/**
 * @since 0.2.0
 * @category names
 */
export const CONSUMED_MESSAGES = "messaging.client.consumed.messages"
/** @since 0.2.0 */
export const PROCESS_DURATION = "messaging.process.duration"
/** @since 0.2.0 */
export const SENT_MESSAGES = "messaging.client.sent.messages"
/** @since 0.2.0 */
export const BATCHES = "pgq.consumer.batches"
/** @since 0.2.0 */
export const FAILED_EVENTS = "pgq.consumer.failed_events"
/** @since 0.2.0 */
export const RETRIED_EVENTS = "pgq.consumer.retried_events"
/** @since 0.2.0 */
export const CONSUMER_LAG = "pgq.consumer.lag"
/** @since 0.2.0 */
export const PENDING_EVENTS = "pgq.consumer.pending_events"
/** @since 0.2.0 */
export const TICKER_LAG = "pgq.queue.ticker_lag"

/**
 * A metric as effect-pgq exports it: its name, kind and unit.
 *
 * @since 0.2.0
 * @category models
 */
export interface Description {
  readonly name: string
  readonly kind: "counter" | "gauge" | "histogram"
  readonly unit: string
}

/** Filled as the metrics below are defined: `all` lists exactly what is recorded. */
const described: Array<Description> = []

/** Units travel as the `unit` attribute, which Effect's OTLP exporter reads. */
const define = <M>(description: Description, make: (attributes: { readonly unit: string }) => M): M => {
  described.push(description)
  return make({ unit: description.unit })
}

const counter = (name: string, unit: string, description: string) =>
  define({ name, kind: "counter", unit }, (attributes) =>
    Metric.counter(name, { description, incremental: true, attributes }))

const gauge = (name: string, unit: string, description: string) =>
  define({ name, kind: "gauge", unit }, (attributes) => Metric.gauge(name, { description, attributes }))

/** The messaging conventions' recommended buckets for durations, in seconds. */
const DURATION_BOUNDARIES = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]

/** @since 0.2.0 */
export const consumedMessages = counter(CONSUMED_MESSAGES, "{message}", "Events in batches a consumer committed.")
/** @since 0.2.0 */
export const processDuration = define(
  { name: PROCESS_DURATION, kind: "histogram", unit: "s" },
  (attributes) =>
    Metric.histogram(PROCESS_DURATION, {
      description: "Duration of one handler call, in seconds.",
      boundaries: DURATION_BOUNDARIES,
      attributes
    })
)
/** @since 0.2.0 */
export const sentMessages = counter(SENT_MESSAGES, "{message}", "Events producers inserted.")
/** @since 0.2.0 */
export const batches = counter(BATCHES, "{batch}", "Batches a consumer committed.")
/** @since 0.2.0 */
export const failedEvents = counter(FAILED_EVENTS, "{event}", "Events stored as failed.")
/** @since 0.2.0 */
export const retriedEvents = counter(RETRIED_EVENTS, "{event}", "Events put back for a retry.")
/** @since 0.2.0 */
export const consumerLag = gauge(
  CONSUMER_LAG,
  "s",
  "Age of the last tick the consumer finished (pgq.get_consumer_info), in seconds."
)
/** @since 0.2.0 */
export const pendingEvents = gauge(
  PENDING_EVENTS,
  "{event}",
  "Events the consumer has not processed yet (pgq.get_consumer_info)."
)
/** @since 0.2.0 */
export const tickerLag = gauge(TICKER_LAG, "s", "Age of the queue's last tick (pgq.get_queue_info), in seconds.")

/**
 * Every metric effect-pgq records, by name, with its kind and unit.
 *
 * @since 0.2.0
 * @category names
 */
export const all: ReadonlyArray<Description> = described

/**
 * The attributes of a queue's series, and of a consumer's when `consumer`
 * is given.
 *
 * @since 0.2.0
 * @category attributes
 */
export const attributesOf = (queue: string, consumer?: string): Record<string, string> =>
  consumer === undefined
    ? { [Semconv.MESSAGING_SYSTEM]: Semconv.MESSAGING_SYSTEM_PGQ, [Semconv.MESSAGING_DESTINATION_NAME]: queue }
    : {
      [Semconv.MESSAGING_SYSTEM]: Semconv.MESSAGING_SYSTEM_PGQ,
      [Semconv.MESSAGING_DESTINATION_NAME]: queue,
      [Semconv.MESSAGING_CONSUMER_GROUP_NAME]: consumer
    }

/**
 * The name a metric gets in Prometheus, the way the OpenTelemetry Collector's
 * Prometheus exporter writes it: dots become underscores, `_seconds` for
 * unit `s`, `_total` for counters. The daemon's `/metrics` uses the same
 * names, so one dashboard reads both.
 *
 * @since 0.2.0
 * @category names
 */
export const prometheusName = (name: string, kind: "counter" | "gauge" | "histogram", unitName: string): string =>
  `${name.replace(/[^a-zA-Z0-9_:]/g, "_")}${unitName === "s" ? "_seconds" : ""}${kind === "counter" ? "_total" : ""}`
