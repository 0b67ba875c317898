/**
 * One batch, start to end, in one transaction: `next_batch` → events through
 * a cursor → handler → results settled (`event_retry`, failed-event store) →
 * `finish_batch` → commit. Any failure, defect or interruption rolls the
 * whole transaction back, so a batch is either finished with every result
 * recorded, or not at all and delivered again.
 *
 * Handlers run without savepoints, at full speed. When a handler fails (a
 * typed error or a defect), its partial writes must not commit with the
 * batch: the transaction is rolled back and the batch replayed with a
 * savepoint around each event, so the failing event's writes are undone, its
 * failure policy applies, and the other events' writes are kept.
 *
 * @since 0.1.0
 */
import { Cause, Data, Effect, Option, References, Stream, Tracer } from "effect"
import { SqlClient } from "effect/sql"
import { isSqlError } from "effect/sql/SqlError"
import type { NextBatch } from "../api/BatchInfo.ts"
import { FailedEvents } from "../api/FailedEvents.ts"
import type { BatchId } from "../api/Ids.ts"
import { type BatchConditions, type OpenBatch, Pgq } from "../api/Pgq.ts"
import { mapSqlError } from "../api/mapSqlError.ts"
import { isPgqError, type PgqError } from "../api/PgqError.ts"
import type { PgqEvent } from "../api/PgqEvent.ts"
import * as Semconv from "../telemetry/Semconv.ts"
import { type EventResult, Ok as OK } from "./EventResult.ts"
import * as FailurePolicy from "./FailurePolicy.ts"

/**
 * What a handler knows about the batch it is in.
 *
 * @since 0.1.0
 * @category models
 */
export interface BatchContext {
  readonly queue: string
  readonly consumer: string
  readonly batch: NextBatch
}

/**
 * A handler for one event. Returning nothing means `Ok`. It runs inside the
 * batch's transaction: writes made through the same `SqlClient` commit
 * together with `finish_batch`.
 *
 * @since 0.1.0
 * @category models
 */
export type EventHandler<E, R> = (event: PgqEvent, context: BatchContext) => Effect.Effect<EventResult | void, E, R>

/**
 * A handler for a whole batch: one result per event, in order, or nothing
 * for all `Ok`. The batch is held in memory.
 *
 * @since 0.1.0
 * @category models
 */
export type BatchHandler<E, R> = (
  events: ReadonlyArray<PgqEvent>,
  context: BatchContext
) => Effect.Effect<ReadonlyArray<EventResult> | void, E, R>

/**
 * @since 0.1.0
 * @category models
 */
export type Handler<E, R> =
  | { readonly onEvent: EventHandler<E, R> }
  | { readonly onBatch: BatchHandler<E, R> }

/**
 * @since 0.1.0
 * @category models
 */
export interface ProcessorSettings {
  readonly queue: string
  readonly consumer: string
  /** Ask for batches with `next_batch_custom` (min lag, count or interval). */
  readonly batchConditions?: BatchConditions | undefined
  /** Events held in memory at once (the cursor's page size). Default 1000. */
  readonly fetchSize?: number | undefined
  readonly failurePolicy?: FailurePolicy.FailurePolicy | undefined
}

/**
 * Settings plus `onEvent` or `onBatch`.
 *
 * @since 0.1.0
 * @category models
 */
export type ProcessorOptions<E, R> = ProcessorSettings & Handler<E, R>

/**
 * What happened to one batch.
 *
 * @since 0.1.0
 * @category models
 */
export class BatchStats extends Data.Class<{
  readonly batchId: BatchId
  readonly events: number
  readonly ok: number
  readonly failed: number
  readonly retried: number
  /** Set when a handler returned `AbortBatch`: nothing was committed. */
  readonly aborted: Option.Option<string>
  /** True when a handler failure made the batch run again with savepoints. */
  readonly replayed: boolean
}> {}

/** A handler failed in the fast pass: roll back and replay with savepoints. */
class ReplayRequested extends Data.TaggedError("ReplayRequested")<{
  readonly cause: Cause.Cause<unknown>
}> {}

/** A handler returned AbortBatch. */
class BatchAborted extends Data.TaggedError("BatchAborted")<{
  readonly batchId: BatchId
  readonly reason: string
  readonly events: number
  readonly replayed: boolean
}> {}

/** Keeps effect-pgq's own failures (cursor, settling) apart from a handler's while both travel up one loop. */
class OwnFailure extends Data.TaggedError("OwnFailure")<{ readonly error: PgqError }> {}

const own = Effect.mapError((error: PgqError) => new OwnFailure({ error }))

/** Marks a process span as failed for a Failed result, then is caught. */
class EventNotOk extends Data.TaggedError("EventNotOk")<{ readonly result: EventResult }> {}

interface Counters {
  events: number
  ok: number
  failed: number
  retried: number
}

/**
 * How one batch is run. `fast`: handlers run back to back; any handler
 * failure replays the batch. `isolated` (the replay): a savepoint around each
 * handler, whose failure becomes the failure policy's result. `traced`: a
 * `process` span per event, made only when a tracer records them (not
 * Effect's built-in in-memory one), so an untraced consumer pays nothing.
 */
interface RunMode {
  readonly isolated: boolean
  readonly traced: boolean
}

/**
 * Builds `processNext`: process at most one batch; `None` when there was none.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*<E, R>(options: ProcessorOptions<E, R>) {
  const sql = yield* SqlClient.SqlClient
  const pgq = yield* Pgq
  const failedEvents = yield* FailedEvents
  const { queue, consumer } = options
  const policy = options.failurePolicy ?? FailurePolicy.defaultPolicy
  const fetchSize = options.fetchSize ?? DEFAULT_FETCH_SIZE
  const processSpan = Semconv.processSpanName(queue)
  const settleSpan = Semconv.settleSpanName(queue)
  const baseAttributes = {
    [Semconv.MESSAGING_SYSTEM]: Semconv.MESSAGING_SYSTEM_PGQ,
    [Semconv.MESSAGING_DESTINATION_NAME]: queue,
    [Semconv.MESSAGING_CONSUMER_GROUP_NAME]: consumer
  }
  const settleAttributes = (operation: string) => ({
    ...baseAttributes,
    [Semconv.MESSAGING_OPERATION_TYPE]: "settle",
    [Semconv.MESSAGING_OPERATION_NAME]: operation
  })
  const noStack = { captureStackTrace: false } as const

  const takeNextBatch = pgq.takeNextBatch(queue, consumer, { conditions: options.batchConditions, pageSize: fetchSize })

  /** Records a Retry or Failed result; Ok only counts. */
  const settle = (
    batchId: BatchId,
    event: PgqEvent,
    result: EventResult,
    counters: Counters
  ): Effect.Effect<void, OwnFailure> => {
    switch (result._tag) {
      case "Ok":
        counters.ok++
        return Effect.void
      case "Retry":
        counters.retried++
        return pgq.eventRetry(batchId, event.id, result.delay).pipe(
          Effect.withSpan(settleSpan, { kind: "consumer", attributes: settleAttributes("event_retry") }, noStack),
          own
        )
      case "Failed":
        counters.failed++
        return own(failedEvents.store(queue, consumer, event, result.reason))
      case "AbortBatch":
        return Effect.void
    }
  }

  const abort = (context: BatchContext, reason: string, counters: Counters, mode: RunMode) =>
    Effect.fail(
      new BatchAborted({ batchId: context.batch.batchId, reason, events: counters.events, replayed: mode.isolated })
    )

  /** In a replay, a handler's failure is settled by the policy, its writes undone by the savepoint. */
  const isolatedResult = (onEvent: EventHandler<E, R>, event: PgqEvent, context: BatchContext) =>
    Effect.matchCauseEffect(sql.withTransaction(onEvent(event, context)), {
      onSuccess: (result) => Effect.succeed(result ?? OK),
      onFailure: (cause) =>
        Cause.hasInterrupts(cause)
          ? Effect.failCause(cause as Cause.Cause<never>)
          : Effect.succeed(FailurePolicy.decide(policy, event, cause))
    })

  /** One event, inside its `process` span; Failed and AbortBatch mark the span as an error. */
  const tracedEvent = (
    onEvent: EventHandler<E, R>,
    event: PgqEvent,
    context: BatchContext,
    counters: Counters,
    mode: RunMode
  ) =>
    Effect.withSpan(
      Effect.gen(function*() {
        const result = mode.isolated
          ? yield* isolatedResult(onEvent, event, context)
          : (yield* onEvent(event, context)) ?? OK
        yield* Effect.annotateCurrentSpan(Semconv.PGQ_EVENT_RESULT, result._tag)
        yield* settle(context.batch.batchId, event, result, counters)
        if (result._tag === "Failed" || result._tag === "AbortBatch") return yield* new EventNotOk({ result })
        return result
      }),
      processSpan,
      {
        kind: "consumer",
        attributes: {
          ...baseAttributes,
          [Semconv.MESSAGING_OPERATION_TYPE]: "process",
          [Semconv.MESSAGING_MESSAGE_ID]: String(event.id),
          [Semconv.PGQ_EVENT_TYPE]: event.type,
          [Semconv.PGQ_EVENT_RETRY]: event.retry ?? 0
        },
        captureStackTrace: false
      }
    ).pipe(
      Effect.catch((error) => error instanceof EventNotOk ? Effect.succeed(error.result) : Effect.fail(error))
    )

  /** One page of events. The untraced fast pass is a plain loop: Ok costs one handler call. */
  const runPage = (
    onEvent: EventHandler<E, R>,
    events: ReadonlyArray<PgqEvent>,
    context: BatchContext,
    counters: Counters,
    mode: RunMode
  ) =>
    Effect.gen(function*() {
      for (const event of events) {
        counters.events++
        const result = mode.traced
          ? yield* tracedEvent(onEvent, event, context, counters, mode)
          : mode.isolated
          ? yield* isolatedResult(onEvent, event, context)
          : (yield* onEvent(event, context)) ?? OK
        if (mode.traced) {
          if (result._tag === "AbortBatch") return yield* abort(context, result.reason, counters, mode)
          continue
        }
        if (result._tag === "Ok") counters.ok++
        else if (result._tag === "AbortBatch") return yield* abort(context, result.reason, counters, mode)
        else yield* settle(context.batch.batchId, event, result, counters)
      }
    })

  /** The first page as a plain loop; a Stream only for the pages after it. */
  const runEvents = (
    onEvent: EventHandler<E, R>,
    batch: OpenBatch,
    context: BatchContext,
    counters: Counters,
    mode: RunMode
  ) =>
    Effect.andThen(
      runPage(onEvent, batch.firstPage, context, counters, mode),
      Stream.runForEachArray(
        Stream.mapError(batch.rest, (error) => new OwnFailure({ error })),
        (page) => runPage(onEvent, page, context, counters, mode)
      )
    )

  const runBatchHandler = (
    onBatch: BatchHandler<E, R>,
    batch: OpenBatch,
    context: BatchContext,
    counters: Counters,
    mode: RunMode,
    replayOf: Option.Option<Cause.Cause<unknown>>
  ) =>
    Effect.gen(function*() {
      const events = yield* own(Stream.runCollect(batch.events))
      counters.events = events.length
      // On replay the handler is not called again: its failure decides every event.
      const results: ReadonlyArray<EventResult> = Option.isSome(replayOf)
        ? events.map((event) => FailurePolicy.decide(policy, event, replayOf.value))
        : yield* Effect.map(onBatch(events, context), (results) => results ?? events.map(() => OK)).pipe(
          Effect.withSpan(processSpan, {
            kind: "consumer",
            attributes: {
              ...baseAttributes,
              [Semconv.MESSAGING_OPERATION_TYPE]: "process",
              [Semconv.MESSAGING_BATCH_MESSAGE_COUNT]: events.length
            }
          }, noStack)
        )
      if (results.length !== events.length) {
        return yield* Effect.die(
          new Error(`batch handler returned ${results.length} results for ${events.length} events`)
        )
      }
      const aborted = results.find((result) => result._tag === "AbortBatch")
      if (aborted !== undefined && aborted._tag === "AbortBatch") {
        return yield* abort(context, aborted.reason, counters, mode)
      }
      for (let i = 0; i < events.length; i++) yield* settle(context.batch.batchId, events[i]!, results[i]!, counters)
    })

  /** One transaction: take the next batch, run it, finish it. */
  const attempt = (replayOf: Option.Option<Cause.Cause<unknown>>) =>
    Effect.gen(function*() {
      const next = yield* takeNextBatch
      if (Option.isNone(next)) return Option.none<BatchStats>()
      const batch = next.value.info
      const context: BatchContext = { queue, consumer, batch }
      const counters: Counters = { events: 0, ok: 0, failed: 0, retried: 0 }
      const mode: RunMode = { isolated: Option.isSome(replayOf), traced: yield* isRecording }
      yield* Effect.annotateCurrentSpan({
        [Semconv.PGQ_BATCH_ID]: String(batch.batchId),
        [Semconv.PGQ_TICK_ID]: String(batch.curTickId),
        [Semconv.PGQ_PREV_TICK_ID]: String(batch.prevTickId)
      })
      const run = "onEvent" in options
        ? runEvents(options.onEvent, next.value, context, counters, mode)
        : runBatchHandler(options.onBatch, next.value, context, counters, mode, replayOf)
      // A handler's own failure or defect (never ours, never an interruption) asks for the replay.
      yield* Effect.catchCause(run, (cause): Effect.Effect<never, PgqError | BatchAborted | ReplayRequested> => {
        if (Cause.hasInterrupts(cause)) return Effect.failCause(cause as Cause.Cause<never>)
        const error = Cause.findErrorOption(cause)
        if (Option.isSome(error) && error.value instanceof OwnFailure) return Effect.fail(error.value.error)
        if (Option.isSome(error) && error.value instanceof BatchAborted) return Effect.fail(error.value)
        return Effect.fail(new ReplayRequested({ cause }))
      })
      yield* pgq.finishBatch(batch.batchId).pipe(
        Effect.withSpan(settleSpan, { kind: "consumer", attributes: settleAttributes("finish_batch") }, noStack)
      )
      yield* Effect.annotateCurrentSpan({
        [Semconv.MESSAGING_BATCH_MESSAGE_COUNT]: counters.events,
        [Semconv.PGQ_BATCH_OK]: counters.ok,
        [Semconv.PGQ_BATCH_FAILED]: counters.failed,
        [Semconv.PGQ_BATCH_RETRIED]: counters.retried,
        [Semconv.PGQ_BATCH_REPLAYED]: mode.isolated
      })
      return Option.some(new BatchStats({ batchId: batch.batchId, ...counters, aborted: Option.none(), replayed: mode.isolated }))
    }).pipe(
      Effect.withSpan(Semconv.receiveSpanName(queue), {
        kind: "consumer",
        attributes: { ...baseAttributes, [Semconv.MESSAGING_OPERATION_TYPE]: "receive" }
      }, noStack),
      sql.withTransaction
    )

  /**
   * Process at most one batch. Fails only with PgqError; handler failures
   * become event results.
   */
  const processNext: Effect.Effect<Option.Option<BatchStats>, PgqError, R> = attempt(Option.none()).pipe(
    Effect.catchTag("ReplayRequested", (replay) =>
      attempt(Option.some(replay.cause)).pipe(
        // The replay turns handler failures into results; it cannot ask for another replay.
        Effect.catchTag("ReplayRequested", (again) => Effect.die(Cause.squash(again.cause)))
      )),
    Effect.catchTag("BatchAborted", (aborted) =>
      Effect.succeed(Option.some(
        new BatchStats({
          batchId: aborted.batchId,
          events: aborted.events,
          ok: 0,
          failed: 0,
          retried: 0,
          aborted: Option.some(aborted.reason),
          replayed: aborted.replayed
        })
      ))),
    // BEGIN or COMMIT itself failed: a lost connection, usually.
    Effect.catchTag("SqlError", (error) =>
      Effect.fail(mapSqlError(error, { operation: "Consumer.processNext", queue, consumer }))),
    Effect.catchCause(withoutRollbackNoise(queue, consumer)<Option.Option<BatchStats>>)
  )

  return { processNext }
})

const DEFAULT_FETCH_SIZE = 2000

/** Effect's built-in tracer keeps spans in memory only: per-event spans are worth making for any other. */
const isRecording = Effect.gen(function*() {
  if (!(yield* References.TracerEnabled)) return false
  return (yield* Effect.tracer) !== Tracer.nativeTracer
})

/**
 * When the connection is lost mid-batch, the statement fails, then the
 * ROLLBACK fails too, and the transaction reports both as defects. The server
 * has rolled back already: what the caller needs is the typed database error
 * (retryable), not a defect. Anything else passes through unchanged.
 */
const withoutRollbackNoise = (queue: string, consumer: string) =>
<A>(cause: Cause.Cause<PgqError>): Effect.Effect<A, PgqError> => {
  if (Cause.hasInterrupts(cause)) return Effect.failCause(cause)
  const errors = cause.reasons.map((reason) =>
    Cause.isFailReason(reason) ? reason.error : Cause.isDieReason(reason) ? reason.defect : undefined
  )
  if (!errors.every((error) => isPgqError(error) || isSqlError(error))) return Effect.failCause(cause)
  const first = errors.find(isPgqError)
  if (first !== undefined) return Effect.fail(first)
  const sqlError = errors.find(isSqlError)
  return sqlError === undefined
    ? Effect.failCause(cause)
    : Effect.fail(mapSqlError(sqlError, { operation: "Consumer.processNext", queue, consumer }))
}
