/**
 * Queue settings a daemon config declares (`queues` in `DaemonConfig`),
 * applied with `pgq.set_queue_config` when the daemon starts and at each
 * reload. pgq's ticker ticks a queue with new events only once
 * `tickerMaxLag` has passed since its last tick or `tickerMaxCount` events
 * wait (pgq's defaults: 3 seconds, 500): `tickerMaxLag` is what bounds the
 * latency from an insert to its consumer, whichever ticker runs.
 *
 * @since 0.2.0
 */
import { Duration, Effect } from "effect"
import { Pgq, type QueueSetting } from "../api/Pgq.ts"
import type { PgqError } from "../api/PgqError.ts"

/**
 * @since 0.2.0
 * @category models
 */
export interface QueueSettings {
  /** Longest wait before a queue with new events is ticked. pgq's default: 3 seconds. */
  readonly tickerMaxLag?: Duration.Input | undefined
  /** Events that make a tick at once. pgq's default: 500. */
  readonly tickerMaxCount?: number | undefined
  /** Ticks of a queue without events, at most this far apart. pgq's default: 1 minute. */
  readonly tickerIdlePeriod?: Duration.Input | undefined
  /** How often the queue's event tables rotate. pgq's default: 2 hours. */
  readonly rotationPeriod?: Duration.Input | undefined
}

const interval = (input: Duration.Input): string => `${Duration.toMillis(Duration.fromInputUnsafe(input))} milliseconds`

/**
 * Applies each queue's declared settings; returns how many were set.
 *
 * @since 0.2.0
 * @category constructors
 */
export const apply = (
  queues: Readonly<Record<string, QueueSettings>>
): Effect.Effect<number, PgqError, Pgq> =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    let applied = 0
    for (const [queue, settings] of Object.entries(queues)) {
      const values: ReadonlyArray<readonly [QueueSetting, string | undefined]> = [
        ["ticker_max_lag", settings.tickerMaxLag === undefined ? undefined : interval(settings.tickerMaxLag)],
        ["ticker_max_count", settings.tickerMaxCount === undefined ? undefined : String(settings.tickerMaxCount)],
        ["ticker_idle_period", settings.tickerIdlePeriod === undefined ? undefined : interval(settings.tickerIdlePeriod)],
        ["rotation_period", settings.rotationPeriod === undefined ? undefined : interval(settings.rotationPeriod)]
      ]
      for (const [setting, value] of values) {
        if (value === undefined) continue
        yield* pgq.setQueueConfig(queue, setting, value)
        applied++
      }
    }
    return applied
  })
