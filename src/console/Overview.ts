/**
 * What the console's front page shows, gathered in one go: every queue with
 * its event rate and ticker lag, every consumer with its lag, last seen,
 * pending and failed events (and its state when a daemon runs it), and the
 * lag samples of the recent past. The same value is the page and the JSON of
 * `api/overview`.
 *
 * Numbers PostgreSQL keeps as int8 (event counts) are strings, so no reader
 * loses precision; durations are seconds.
 *
 * @since 0.2.0
 */
import { Clock, Duration, Effect, Option } from "effect"
import { SqlClient } from "effect/sql"
import type { ConsumerInfo } from "../api/ConsumerInfo.ts"
import { Pgq } from "../api/Pgq.ts"
import type { QueueInfo } from "../api/QueueInfo.ts"
import type { ConsumerStatus } from "../daemon/Supervisor.ts"
import type { LagSample } from "./LagHistory.ts"

/**
 * @since 0.2.0
 * @category models
 */
export interface QueueView {
  readonly name: string
  /** Events per second between the last two ticks; null when pgq does not know. */
  readonly eventsPerSecond: number | null
  /** Seconds since the queue's last tick. */
  readonly tickerLagSeconds: number | null
  /** Events inserted since the last tick. */
  readonly newEvents: string
  readonly tickerPaused: boolean
}

/**
 * @since 0.2.0
 * @category models
 */
export interface ConsumerView {
  readonly queue: string
  readonly consumer: string
  /** Age of the newest event the consumer has finished. */
  readonly lagSeconds: number | null
  /** Seconds since the consumer last asked for a batch. */
  readonly lastSeenSeconds: number | null
  /** Events not yet seen by the consumer (pgq's estimate). */
  readonly pendingEvents: string | null
  /** Events in the failed-event store; null without effect-pgq's schema. */
  readonly failedEvents: number | null
  /** Whether the consumer holds an open batch. */
  readonly inBatch: boolean
  /** The state a daemon in this process gives it (`running`, `idle`, `backoff`, …); null when none runs it here. */
  readonly state: string | null
}

/**
 * @since 0.2.0
 * @category models
 */
export interface Overview {
  /** Milliseconds since the epoch. */
  readonly at: number
  readonly queues: ReadonlyArray<QueueView>
  readonly consumers: ReadonlyArray<ConsumerView>
  readonly lag: ReadonlyArray<LagSample>
  /** Why queues and consumers are empty: the database did not answer. */
  readonly error: string | null
}

const seconds = (duration: Duration.Duration | null): number | null =>
  duration === null ? null : Math.round(Duration.toMillis(duration)) / 1000

/**
 * @since 0.2.0
 * @category constructors
 */
export const queueView = (info: QueueInfo): QueueView => ({
  name: info.queueName,
  eventsPerSecond: info.evPerSec,
  tickerLagSeconds: seconds(info.tickerLag),
  newEvents: info.evNew.toString(),
  tickerPaused: info.tickerPaused
})

/**
 * @since 0.2.0
 * @category constructors
 */
export const consumerView = (
  info: ConsumerInfo,
  failed: number | null,
  status: ConsumerStatus | undefined
): ConsumerView => ({
  queue: info.queueName,
  consumer: info.consumerName,
  lagSeconds: seconds(info.lag),
  lastSeenSeconds: seconds(info.lastSeen),
  pendingEvents: info.pendingEvents === null ? null : info.pendingEvents.toString(),
  failedEvents: failed,
  inBatch: info.currentBatch !== null,
  state: status?.state ?? null
})

const key = (queue: string, consumer: string) => `${queue}\u0000${consumer}`

/**
 * Failed events per consumer in one statement (a count per consumer would be
 * a round trip each, at every refresh). None when effect-pgq's schema is not
 * installed.
 *
 * @since 0.2.0
 * @category queries
 */
export const failedCounts: Effect.Effect<Option.Option<ReadonlyMap<string, number>>, never, SqlClient.SqlClient> = Effect
  .gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ readonly queue_name: string; readonly consumer_name: string; readonly n: string }>`
      select queue_name, consumer_name, count(*)::text as n
      from effect_pgq.failed_event group by queue_name, consumer_name`
    return new Map(rows.map((row) => [key(row.queue_name, row.consumer_name), Number(row.n)])) as ReadonlyMap<
      string,
      number
    >
  }).pipe(Effect.option)

/**
 * @since 0.2.0
 * @category models
 */
export interface OverviewSources {
  /** The lag samples to chart. */
  readonly lag: Effect.Effect<ReadonlyArray<LagSample>>
  /** The consumers a daemon in this process runs, for their state. */
  readonly daemonStatus?: Effect.Effect<ReadonlyArray<ConsumerStatus>> | undefined
}

/**
 * Gathers the overview. A database that fails or is slow to answer gives an
 * overview with `error` set, not a failure: the page says so and refreshes.
 *
 * @since 0.2.0
 * @category constructors
 */
export const gather = (sources: OverviewSources): Effect.Effect<Overview, never, Pgq | SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    const at = yield* Clock.currentTimeMillis
    const lag = yield* sources.lag
    const statuses = sources.daemonStatus === undefined ? [] : yield* sources.daemonStatus
    // One after the other: one connection of the daemon's small pool at a time.
    const found = yield* Effect.all([pgq.listQueues, pgq.listConsumers(), failedCounts]).pipe(
      Effect.timeout("5 seconds"),
      Effect.result
    )
    if (found._tag === "Failure") return { at, queues: [], consumers: [], lag, error: found.failure.message }
    const [queues, consumers, failed] = found.success
    return {
      at,
      queues: queues.map(queueView),
      consumers: consumers.map((info) =>
        consumerView(
          info,
          Option.match(failed, {
            onNone: () => null,
            onSome: (counts) => counts.get(key(info.queueName, info.consumerName)) ?? 0
          }),
          statuses.find((s) => s.queue === info.queueName && s.consumer === info.consumerName)
        )
      ),
      lag,
      error: null
    }
  })
