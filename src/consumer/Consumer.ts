/**
 * A PgQ consumer as a scoped resource: `run` processes batches forever,
 * waiting between them; `processNext` processes one; `processAvailable`
 * drains what is there and returns (the interactive consumer).
 *
 * ```mermaid
 * sequenceDiagram
 *   participant C as Consumer
 *   participant DB as PostgreSQL (pgq)
 *   C->>DB: BEGIN; next_batch
 *   alt no batch
 *     C->>C: wait idleDelay, or a NOTIFY on the wake channel
 *   else batch
 *     loop pages of the cursor
 *       C->>DB: get_batch_cursor / FETCH
 *       C->>C: handler per event
 *       C->>DB: event_retry / store failed
 *     end
 *     C->>DB: finish_batch; COMMIT
 *   end
 * ```
 *
 * Closing the scope stops listening; it never unregisters the consumer (that
 * would discard its position in the queue).
 *
 * @since 0.1.0
 */
import { PgClient } from "@effect/sql-pg"
import { Clock, Duration, Effect, Option, Queue, Schedule, Scope } from "effect"
import type { SqlClient } from "effect/sql"
import type { FailedEvents } from "../api/FailedEvents.ts"
import { Pgq } from "../api/Pgq.ts"
import type { PgqError } from "../api/PgqError.ts"
import * as BatchProcessor from "./BatchProcessor.ts"

/**
 * @since 0.1.0
 * @category models
 */
export type ConsumerOptions<E, R> = BatchProcessor.ProcessorOptions<E, R> & ConsumerSettings

/**
 * @since 0.1.0
 * @category models
 */
export interface ConsumerSettings {
  /** Wait when no batch is ready. Default 1 second. */
  readonly idleDelay?: Duration.Input | undefined
  /** Wait after a batch was aborted, before it is tried again. Default 5 seconds. */
  readonly abortDelay?: Duration.Input | undefined
  /**
   * LISTEN channel whose notifications end an idle wait early: a notification
   * with the queue's name as payload (or an empty one) wakes the consumer.
   * Default `effect_pgq_tick`; `false` to only poll.
   */
  readonly wakeChannel?: string | false | undefined
  /** Register the consumer on the queue if it is not yet. Default false: it must be registered. */
  readonly register?: boolean | undefined
}

/**
 * Totals of `processAvailable`.
 *
 * @since 0.1.0
 * @category models
 */
export interface DrainStats {
  readonly batches: number
  readonly events: number
  readonly ok: number
  readonly failed: number
  readonly retried: number
  /** Batches rolled back by `AbortBatch`; draining stops at the first. */
  readonly aborted: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Consumer<R> {
  readonly queue: string
  readonly consumer: string
  /** Processes at most one batch; `None` when no batch was ready. */
  readonly processNext: Effect.Effect<Option.Option<BatchProcessor.BatchStats>, PgqError, R>
  /** Processes batches until none is ready (or one aborts), then returns the totals. */
  readonly processAvailable: Effect.Effect<DrainStats, PgqError, R>
  /**
   * Processes batches forever. Retryable database failures (a lost
   * connection) are retried with backoff; other failures end it.
   * Interrupting it rolls back the batch in progress.
   */
  readonly run: Effect.Effect<never, PgqError, R>
}

/** The channel a ticker notifies after each tick (payload: the queue name). */
export const DEFAULT_WAKE_CHANNEL = "effect_pgq_tick"

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("Consumer.make")(function*<E, R>(
  options: ConsumerOptions<E, R>
): Effect.fn.Return<Consumer<R>, PgqError, Scope.Scope | Pgq | FailedEvents | SqlClient.SqlClient> {
  const pgq = yield* Pgq
  const { queue, consumer } = options
  if (options.register === true) yield* pgq.registerConsumer(queue, consumer)
  // Fail now, with a typed error, if the queue or the registration is missing.
  yield* pgq.getConsumerInfo(queue, consumer)

  const { processNext } = yield* BatchProcessor.make(options)
  const idleDelay = Duration.fromInputUnsafe(options.idleDelay ?? "1 second")
  const abortDelay = Duration.fromInputUnsafe(options.abortDelay ?? "5 seconds")
  const wait = yield* makeWait(queue, idleDelay, options.wakeChannel ?? DEFAULT_WAKE_CHANNEL)

  const processAvailable = Effect.gen(function*() {
    const totals = { batches: 0, events: 0, ok: 0, failed: 0, retried: 0, aborted: 0 }
    while (true) {
      const next = yield* processNext
      if (Option.isNone(next)) return totals as DrainStats
      const stats = next.value
      totals.batches++
      totals.events += stats.events
      if (Option.isSome(stats.aborted)) {
        totals.aborted++
        return totals as DrainStats
      }
      totals.ok += stats.ok
      totals.failed += stats.failed
      totals.retried += stats.retried
    }
  }).pipe(Effect.withSpan("Consumer.processAvailable", { attributes: { queue, consumer } }))

  const retryable = processNext.pipe(
    Effect.tapError((error) => Effect.logWarning(`${queue}/${consumer}: ${error.message}`)),
    Effect.retry({
      schedule: Schedule.min([Schedule.exponential("200 millis"), Schedule.spaced("30 seconds")]),
      while: (error) => error._tag === "PgqSqlError" && error.isRetryable
    })
  )

  const run = Effect.forever(
    Effect.gen(function*() {
      const next = yield* retryable
      if (Option.isNone(next)) return yield* wait
      if (Option.isSome(next.value.aborted)) {
        yield* Effect.logWarning(`${queue}/${consumer}: batch ${next.value.batchId} aborted: ${next.value.aborted.value}`)
        yield* Effect.sleep(abortDelay)
      }
    })
  ) as Effect.Effect<never, PgqError, R>

  return { queue, consumer, processNext, processAvailable, run }
})

/**
 * The idle wait: a sleep, ended early by a matching notification when a
 * `PgClient` can LISTEN. A broken listener falls back to sleeping, and
 * listening is tried again at the next wait.
 */
const makeWait = Effect.fnUntraced(function*(queue: string, delay: Duration.Duration, channel: string | false) {
  const client = yield* Effect.serviceOption(PgClient.PgClient)
  if (channel === false || Option.isNone(client)) return Effect.sleep(delay)
  const scope = yield* Effect.scope
  let listener: Option.Option<Queue.Dequeue<{ readonly payload: string }, unknown>> = Option.none()

  const listen = client.value.listen(channel).pipe(
    Scope.provide(scope),
    Effect.tap((queue) => Effect.sync(() => listener = Option.some(queue))),
    Effect.tapError((error) => Effect.logDebug(`LISTEN ${channel} failed, polling instead: ${error.message}`)),
    Effect.option
  )
  yield* listen

  const untilWoken = (notifications: Queue.Dequeue<{ readonly payload: string }, unknown>) =>
    Queue.take(notifications).pipe(
      Effect.repeat({ until: (n) => n.payload === queue || n.payload === "" })
    )

  return Effect.gen(function*() {
    if (Option.isNone(listener)) yield* listen
    if (Option.isNone(listener)) return yield* Effect.sleep(delay)
    const start = yield* Clock.currentTimeMillis
    const woken = yield* untilWoken(listener.value).pipe(Effect.timeoutOption(delay), Effect.result)
    if (woken._tag === "Failure") {
      // The listening connection is gone: sleep out the rest, listen again next time.
      listener = Option.none()
      const elapsed = (yield* Clock.currentTimeMillis) - start
      yield* Effect.sleep(Duration.millis(Math.max(0, Duration.toMillis(delay) - elapsed)))
    }
  })
})
