/**
 * Lag gauges from pgq itself: `pgq.consumer.lag`, `pgq.consumer.pending_events`
 * (`pgq.get_consumer_info`) and `pgq.queue.ticker_lag` (`pgq.get_queue_info`).
 * Asking pgq, rather than counting what a consumer did, is what makes the lag
 * of a stopped consumer keep growing.
 *
 * ```ts
 * import { Effect } from "effect"
 * import { LagMetrics } from "effect-pgq"
 *
 * // Beside the consumers of an app: refresh the gauges every 10 seconds.
 * const lag = Effect.forkScoped(LagMetrics.poll("10 seconds"))
 * ```
 *
 * @since 0.2.0
 */
import { Duration, Effect, Metric, Schedule } from "effect"
import { Pgq } from "../api/Pgq.ts"
import type { PgqError } from "../api/PgqError.ts"
import * as Metrics from "./Metrics.ts"

/**
 * Sets the gauges of every consumer and queue pgq knows, in two queries.
 *
 * @since 0.2.0
 * @category metrics
 */
export const refresh: Effect.Effect<void, PgqError, Pgq> = Effect.gen(function*() {
  const pgq = yield* Pgq
  const consumers = yield* pgq.listConsumers()
  const queues = yield* pgq.listQueues
  const context = yield* Effect.context<never>()
  for (const info of consumers) {
    const attributes = Metrics.attributesOf(info.queueName, info.consumerName)
    if (info.lag !== null) {
      Metric.withAttributes(Metrics.consumerLag, attributes).updateUnsafe(Duration.toMillis(info.lag) / 1000, context)
    }
    if (info.pendingEvents !== null) {
      Metric.withAttributes(Metrics.pendingEvents, attributes).updateUnsafe(Number(info.pendingEvents), context)
    }
  }
  for (const info of queues) {
    if (info.tickerLag === null) continue
    Metric.withAttributes(Metrics.tickerLag, Metrics.attributesOf(info.queueName))
      .updateUnsafe(Duration.toMillis(info.tickerLag) / 1000, context)
  }
  // A poll every few seconds is no trace anyone wants to read.
}).pipe(Effect.withTracerEnabled(false))

/**
 * Refreshes the gauges now and every `interval`; a database that is away is
 * logged and asked again at the next turn.
 *
 * @since 0.2.0
 * @category metrics
 */
export const poll = (interval: Duration.Input): Effect.Effect<never, never, Pgq> =>
  refresh.pipe(
    Effect.catch((error) => Effect.logWarning(`lag metrics not refreshed: ${error.message}`)),
    Effect.repeat(Schedule.spaced(interval)),
    Effect.andThen(Effect.never)
  )
