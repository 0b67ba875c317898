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

/** Units travel as the `unit` attribute, which Effect's OTLP exporter reads. */
const unit = (value: string) => ({ unit: value })

/** The messaging conventions' recommended buckets for durations, in seconds. */
const DURATION_BOUNDARIES = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]

/** @since 0.2.0 */
export const consumedMessages = Metric.counter(CONSUMED_MESSAGES, {
  description: "Events in batches a consumer committed.",
  incremental: true,
  attributes: unit("{message}")
})
/** @since 0.2.0 */
export const processDuration = Metric.histogram(PROCESS_DURATION, {
  description: "Duration of one handler call, in seconds.",
  boundaries: DURATION_BOUNDARIES,
  attributes: unit("s")
})
/** @since 0.2.0 */
export const sentMessages = Metric.counter(SENT_MESSAGES, {
  description: "Events producers inserted.",
  incremental: true,
  attributes: unit("{message}")
})
/** @since 0.2.0 */
export const batches = Metric.counter(BATCHES, {
  description: "Batches a consumer committed.",
  incremental: true,
  attributes: unit("{batch}")
})
/** @since 0.2.0 */
export const failedEvents = Metric.counter(FAILED_EVENTS, {
  description: "Events stored as failed.",
  incremental: true,
  attributes: unit("{event}")
})
/** @since 0.2.0 */
export const retriedEvents = Metric.counter(RETRIED_EVENTS, {
  description: "Events put back for a retry.",
  incremental: true,
  attributes: unit("{event}")
})
/** @since 0.2.0 */
export const consumerLag = Metric.gauge(CONSUMER_LAG, {
  description: "Age of the last tick the consumer finished (pgq.get_consumer_info), in seconds.",
  attributes: unit("s")
})
/** @since 0.2.0 */
export const pendingEvents = Metric.gauge(PENDING_EVENTS, {
  description: "Events the consumer has not processed yet (pgq.get_consumer_info).",
  attributes: unit("{event}")
})
/** @since 0.2.0 */
export const tickerLag = Metric.gauge(TICKER_LAG, {
  description: "Age of the queue's last tick (pgq.get_queue_info), in seconds.",
  attributes: unit("s")
})

/**
 * Every metric effect-pgq records, by name, with its kind and unit.
 *
 * @since 0.2.0
 * @category names
 */
export const all: ReadonlyArray<{
  readonly name: string
  readonly kind: "counter" | "gauge" | "histogram"
  readonly unit: string
}> = [
  { name: CONSUMED_MESSAGES, kind: "counter", unit: "{message}" },
  { name: PROCESS_DURATION, kind: "histogram", unit: "s" },
  { name: SENT_MESSAGES, kind: "counter", unit: "{message}" },
  { name: BATCHES, kind: "counter", unit: "{batch}" },
  { name: FAILED_EVENTS, kind: "counter", unit: "{event}" },
  { name: RETRIED_EVENTS, kind: "counter", unit: "{event}" },
  { name: CONSUMER_LAG, kind: "gauge", unit: "s" },
  { name: PENDING_EVENTS, kind: "gauge", unit: "{event}" },
  { name: TICKER_LAG, kind: "gauge", unit: "s" }
]

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
