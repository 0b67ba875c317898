/**
 * The recent past of every consumer's lag, for the console's chart: pgq keeps
 * only the present, so the console samples `pgq.get_consumer_info` on a
 * schedule (every 5 seconds by default) and keeps the last samples in memory
 * (15 minutes by default). A sample the database did not answer is skipped,
 * which shows as a gap in time, not as a lag of zero.
 *
 * @since 0.2.0
 */
import { Clock, Duration, Effect, Schedule, type Scope } from "effect"
import { Pgq } from "../api/Pgq.ts"

/**
 * One consumer's lag at one moment; `null` when pgq did not know it (a
 * consumer that has never finished a batch).
 *
 * @since 0.2.0
 * @category models
 */
export interface LagPoint {
  readonly queue: string
  readonly consumer: string
  readonly lagSeconds: number | null
}

/**
 * Every consumer's lag at one moment (`at`: milliseconds since the epoch).
 *
 * @since 0.2.0
 * @category models
 */
export interface LagSample {
  readonly at: number
  readonly points: ReadonlyArray<LagPoint>
}

/**
 * @since 0.2.0
 * @category models
 */
export interface LagHistoryOptions {
  /** Time between samples. Default 5 seconds. */
  readonly interval?: Duration.Input | undefined
  /** How far back samples are kept. Default 15 minutes. */
  readonly window?: Duration.Input | undefined
}

/**
 * @since 0.2.0
 * @category models
 */
export interface LagHistory {
  /** The samples kept, oldest first. */
  readonly samples: Effect.Effect<ReadonlyArray<LagSample>>
  /** Takes a sample now (besides the schedule's). */
  readonly sample: Effect.Effect<void>
  readonly interval: Duration.Duration
  readonly window: Duration.Duration
}

/**
 * Starts sampling until the scope closes; the first sample is taken at once.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: LagHistoryOptions = {}): Effect.Effect<LagHistory, never, Scope.Scope | Pgq> =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    const interval = Duration.fromInputUnsafe(options.interval ?? "5 seconds")
    const window = Duration.fromInputUnsafe(options.window ?? "15 minutes")
    const capacity = Math.max(2, Math.ceil(Duration.toMillis(window) / Math.max(1, Duration.toMillis(interval))) + 1)
    const ring: Array<LagSample> = []

    const sample = Effect.gen(function*() {
      const consumers = yield* pgq.listConsumers()
      const at = yield* Clock.currentTimeMillis
      ring.push({
        at,
        points: consumers.map((c) => ({
          queue: c.queueName,
          consumer: c.consumerName,
          lagSeconds: c.lag === null ? null : Duration.toMillis(c.lag) / 1000
        }))
      })
      if (ring.length > capacity) ring.splice(0, ring.length - capacity)
    }).pipe(
      // A database away or slow leaves a gap; the sampler goes on.
      Effect.timeoutOption("4 seconds"),
      Effect.ignoreCause
    )

    yield* Effect.forkScoped(Effect.repeat(sample, Schedule.spaced(interval)))
    return {
      samples: Effect.sync(() => ring.slice()),
      sample,
      interval,
      window
    }
  })
