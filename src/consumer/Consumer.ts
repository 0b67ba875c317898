/**
 * A PgQ consumer as a scoped resource: `run` processes batches until it is
 * stopped, waiting between them; `processNext` processes one;
 * `processAvailable` drains what is there and returns (the interactive
 * consumer).
 *
 * ```mermaid
 * sequenceDiagram
 *   participant C as Consumer
 *   participant DB as PostgreSQL (pgq)
 *   C->>DB: BEGIN; next_batch
 *   alt no batch
 *     C->>C: wait for a NOTIFY on the wake channel, or idleDelay (30 s while a ticker is heard)
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
 * Stopping: `stop` is the soft stop (the batch in hand commits, `run`
 * returns at its next wait), escalating to the hard stop after a timeout;
 * `kill`, or interrupting `run`, is the hard stop (the batch in flight is
 * rolled back and delivered again later).
 *
 * Closing the scope stops listening; it never unregisters the consumer (that
 * would discard its position in the queue).
 *
 * @since 0.1.0
 */
import { Clock, Deferred, Duration, Effect, Option, PubSub, type Scope } from "effect"
import type { SqlClient } from "effect/sql"
import type { FailedEvents } from "../api/FailedEvents.ts"
import { Pgq } from "../api/Pgq.ts"
import type { PgqError } from "../api/PgqError.ts"
import * as BatchProcessor from "./BatchProcessor.ts"
import type { DeliveryPlan } from "./Delivery.ts"
import type { BatchStats } from "./BatchStats.ts"
import { ConsumerEvent } from "./ConsumerEvent.ts"
import * as IdleWait from "./IdleWait.ts"

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
  /**
   * Wait when no batch is ready. Default 1 second. While an effect-pgq
   * ticker is heard on the wake channel (it notifies every tick), the wait
   * is 30 seconds or this, whichever is longer: the notifications end it.
   */
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
  /**
   * While idle, warn (`consumer:ticker:stalled`) when events wait in the
   * queue and no tick has come for this long: without a ticker (pgqd or
   * effect-pgq's) no batch is ever made. Default 1 minute; `false` never checks.
   */
  readonly tickerStallAfter?: Duration.Input | false | undefined
  /** How long `stop` waits for the batch in hand before it escalates to `kill`. Default 30 seconds. */
  readonly stopTimeout?: Duration.Input | undefined
  /** Lifecycle events kept for a subscriber that falls behind; older ones are dropped. Default 1024. */
  readonly eventBuffer?: number | undefined
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
 * How `stop` ended `run`: `graceful` when the batch in hand committed,
 * `forced` when the timeout escalated to `kill`.
 *
 * @since 0.2.0
 * @category models
 */
export type StopOutcome = "graceful" | "forced"

/**
 * @since 0.1.0
 * @category models
 */
export interface Consumer<R> {
  readonly queue: string
  readonly consumer: string
  /** Processes at most one batch; `None` when no batch was ready. */
  readonly processNext: Effect.Effect<Option.Option<BatchStats>, PgqError, R>
  /** Processes batches until none is ready (or one aborts), then returns the totals. */
  readonly processAvailable: Effect.Effect<DrainStats, PgqError, R>
  /**
   * Processes batches until the consumer is stopped, then returns.
   *
   * - Between batches it waits `idleDelay`, or less when the wake channel
   *   is notified.
   * - A handler's failure never ends it: see `EventHandler` for the contract.
   * - A failure worth retrying (a lost connection, a server restart, a
   *   deadlock) is reported and retried with backoff; any other (the queue
   *   dropped, the consumer unregistered) ends it with that typed error.
   * - `stop` makes it return at its next wait, after the batch in hand
   *   commits; `kill` or interrupting it rolls the batch in flight back.
   * - One `run` at a time per consumer; once stopped, a consumer stays stopped.
   */
  readonly run: Effect.Effect<void, PgqError, R>
  /**
   * The soft stop: asks `run` to return at its next wait and waits until it
   * has; after `timeout` (default `stopTimeout`) it escalates to `kill`.
   * Returns at once when `run` is not running.
   */
  readonly stop: (options?: { readonly timeout?: Duration.Input | undefined }) => Effect.Effect<StopOutcome>
  /** The hard stop: interrupts `run` now (the batch in flight rolls back) and waits until it has returned. */
  readonly kill: Effect.Effect<void>
  /** Subscribes to the consumer's lifecycle events, in the order they happen (see `ConsumerEvent`). */
  readonly subscribe: Effect.Effect<PubSub.Subscription<ConsumerEvent>, never, Scope.Scope>
}

/**
 * The channel a ticker notifies after each tick (payload: the queue name).
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_WAKE_CHANNEL = "effect_pgq_tick"

/**
 * Makes a consumer of `queue` as `consumer`, checking now that both exist
 * (or registering it, with `register: true`). Nothing runs until `run`,
 * `processNext` or `processAvailable`.
 *
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
  return yield* assemble(options, undefined)
})

/**
 * The consumer around a batch processor that gets and finishes its batches
 * as `plan` says (the remote and cooperative consumers); the plain
 * consumer's way without one. Checks nothing: the caller has.
 *
 * @since 0.2.0
 * @category constructors
 */
export const assemble = Effect.fnUntraced(function*<E, R>(
  options: ConsumerOptions<E, R>,
  plan: DeliveryPlan | undefined
): Effect.fn.Return<Consumer<R>, never, Scope.Scope | Pgq | FailedEvents | SqlClient.SqlClient> {
  const pgq = yield* Pgq
  const { queue, consumer } = options
  const events = yield* PubSub.sliding<ConsumerEvent>(options.eventBuffer ?? 1024)
  const report = (event: ConsumerEvent) =>
    Effect.andThen(PubSub.publish(events, event), logOf(event)).pipe(Effect.annotateLogs({ queue, consumer }))

  const { processNext } = yield* BatchProcessor.make(options, report, plan)
  const idleDelay = Duration.fromInputUnsafe(options.idleDelay ?? "1 second")
  const abortDelay = Duration.fromInputUnsafe(options.abortDelay ?? "5 seconds")
  const stopTimeout = Duration.fromInputUnsafe(options.stopTimeout ?? "30 seconds")
  const idleWait = yield* IdleWait.make(queue, idleDelay, options.wakeChannel ?? DEFAULT_WAKE_CHANNEL)
  const checkTicker = options.tickerStallAfter === false
    ? Effect.void
    : makeTickerCheck(pgq, queue, Duration.fromInputUnsafe(options.tickerStallAfter ?? "1 minute"), report)

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

  const stopRequested = yield* Deferred.make<void>()
  const killRequested = yield* Deferred.make<void>()
  /** Completed when the `run` in progress ends; none while no `run` is in progress. */
  let runEnded: Deferred.Deferred<void> | undefined = undefined

  /** A wait that a stop request ends early. */
  const pause = (wait: Effect.Effect<void>) => Effect.raceFirst(wait, Deferred.await(stopRequested))

  const loop = Effect.gen(function*() {
    let idle = false
    let lostAt: number | undefined = undefined
    let failures = 0
    while (!(yield* Deferred.isDone(stopRequested))) {
      const next = yield* Effect.result(processNext)
      if (next._tag === "Failure") {
        const error = next.failure
        if (!(error._tag === "PgqSqlError" && error.isRetryable)) return yield* error
        if (lostAt === undefined) {
          lostAt = yield* Clock.currentTimeMillis
          yield* report(ConsumerEvent["consumer:connection:lost"]({ reason: error.message }))
        }
        yield* pause(Effect.sleep(reconnectDelay(failures++)))
        continue
      }
      if (lostAt !== undefined) {
        lostAt = undefined
        failures = 0
        yield* report(ConsumerEvent["consumer:connection:restored"]())
      }
      if (Option.isNone(next.success)) {
        if (!idle) yield* report(ConsumerEvent["consumer:idle"]())
        idle = true
        yield* checkTicker
        yield* pause(idleWait)
        continue
      }
      idle = false
      if (Option.isSome(next.success.value.aborted)) yield* pause(Effect.sleep(abortDelay))
    }
  })

  const run: Effect.Effect<void, PgqError, R> = Effect.suspend(() => {
    if (runEnded !== undefined) return Effect.die(new Error(`${queue}/${consumer}: run is already running`))
    const ended = Deferred.makeUnsafe<void>()
    runEnded = ended
    return report(ConsumerEvent["consumer:started"]({ queue, consumer })).pipe(
      Effect.andThen(Effect.raceFirst(loop, Deferred.await(killRequested))),
      Effect.ensuring(Effect.suspend(() => {
        runEnded = undefined
        return Effect.andThen(report(ConsumerEvent["consumer:stopped"]()), Deferred.succeed(ended, undefined))
      }))
    )
  })

  // Reported before the request takes effect, so `stopping` always precedes `stopped`.
  const request = (deferred: Deferred.Deferred<void>, mode: "graceful" | "forced") =>
    Effect.gen(function*() {
      if (yield* Deferred.isDone(deferred)) return
      yield* report(ConsumerEvent["consumer:stopping"]({ mode }))
      yield* Deferred.succeed(deferred, undefined)
    })

  const kill = Effect.gen(function*() {
    yield* Deferred.succeed(stopRequested, undefined)
    yield* request(killRequested, "forced")
    if (runEnded !== undefined) yield* Deferred.await(runEnded)
  })

  const stop = (stopOptions?: { readonly timeout?: Duration.Input | undefined }) =>
    Effect.gen(function*() {
      yield* request(stopRequested, "graceful")
      const current = runEnded
      if (current === undefined) return (yield* Deferred.isDone(killRequested)) ? "forced" as const : "graceful" as const
      const timeout = stopOptions?.timeout === undefined ? stopTimeout : Duration.fromInputUnsafe(stopOptions.timeout)
      const ended = yield* Deferred.await(current).pipe(Effect.timeoutOption(timeout))
      if (Option.isNone(ended)) yield* kill
      // A kill from elsewhere while waiting makes it forced too.
      return (yield* Deferred.isDone(killRequested)) ? "forced" as const : "graceful" as const
    })

  return { queue, consumer, processNext, processAvailable, run, stop, kill, subscribe: PubSub.subscribe(events) }
})

/** Backoff between attempts while the database is unreachable: 200 ms doubling, at most 30 s. */
const reconnectDelay = (failures: number): Duration.Duration => Duration.millis(Math.min(30_000, 200 * 2 ** failures))

/**
 * While idle, at most once per `after`: when events wait and the queue's last
 * tick is older than `after`, report a stalled ticker (once, until it ticks).
 */
const makeTickerCheck = (
  pgq: Pgq["Service"],
  queue: string,
  after: Duration.Duration, report: (event: ConsumerEvent) => Effect.Effect<void>) => {
  let checkedAt = Number.NEGATIVE_INFINITY
  let warned = false
  return Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    if (now - checkedAt < Duration.toMillis(after)) return
    checkedAt = now
    const info = yield* Effect.option(pgq.getQueueInfo(queue))
    if (Option.isNone(info)) return
    const { evNew, tickerLag } = info.value
    const stalled = evNew > 0n && tickerLag !== null && Duration.isGreaterThanOrEqualTo(tickerLag, after)
    if (stalled && !warned) {
      yield* report(ConsumerEvent["consumer:ticker:stalled"]({ pendingEvents: evNew, tickerLag }))
    }
    warned = stalled
  })
}

/** How each lifecycle event is logged: failures once, as warnings, with the ids they concern. */
const logOf = (event: ConsumerEvent): Effect.Effect<void> => {
  switch (event._tag) {
    case "consumer:started":
      return Effect.logInfo("consumer started")
    case "consumer:batch:received":
      return Effect.logDebug("batch received").pipe(Effect.annotateLogs({ batchId: String(event.batchId) }))
    case "consumer:event:retried":
      return (event.reason === undefined
        ? Effect.logDebug(`event retried in ${Duration.format(event.delay)}`)
        : Effect.logWarning(`handler failed, event retried in ${Duration.format(event.delay)}: ${event.reason}`)).pipe(
          Effect.annotateLogs({ batchId: String(event.batchId), eventId: String(event.eventId) })
        )
    case "consumer:event:failed":
      return Effect.logWarning(`event failed: ${event.reason}`).pipe(
        Effect.annotateLogs({ batchId: String(event.batchId), eventId: String(event.eventId) })
      )
    case "consumer:batch:finished":
      return Effect.logDebug(
        `batch finished: ${event.stats.events} events, ${event.stats.ok} ok, ${event.stats.retried} retried, ${event.stats.failed} failed`
      ).pipe(Effect.annotateLogs({ batchId: String(event.stats.batchId) }))
    case "consumer:batch:aborted":
      return Effect.logWarning(`batch aborted, rolled back: ${event.reason}`).pipe(
        Effect.annotateLogs({ batchId: String(event.batchId) })
      )
    case "consumer:idle":
      return Effect.logDebug("idle: no batch ready")
    case "consumer:ticker:stalled":
      return Effect.logWarning(
        `${event.pendingEvents} events wait but the queue has not ticked for ${
          Duration.format(event.tickerLag)
        }: is a ticker running (pgqd, or effect-pgq's)?`
      )
    case "consumer:connection:lost":
      return Effect.logWarning(`database unavailable, retrying with backoff: ${event.reason}`)
    case "consumer:connection:restored":
      return Effect.logInfo("database available again")
    case "consumer:stopping":
      return Effect.logInfo(
        event.mode === "graceful" ? "stopping after the batch in hand" : "stopping now, rolling back the batch in flight"
      )
    case "consumer:stopped":
      return Effect.logInfo("consumer stopped")
  }
}
