/**
 * One batch, start to end, in one transaction: `next_batch` → events through
 * a cursor → handler → results settled (`event_retry`, failed-event store) →
 * `finish_batch` → commit. Any failure, defect or interruption of effect-pgq's
 * own work rolls the whole transaction back, so a batch is either finished
 * with every result recorded, or not at all and delivered again.
 *
 * Handlers' failures are results, never a reason to stop. How a failing
 * handler's writes are undone depends on the isolation:
 *
 * - `"default"`: no savepoints. A failing handler that ran no SQL has nothing
 *   to undo: its failure policy decides and the batch goes on. A failing
 *   handler that ran SQL cannot be undone alone: the transaction is rolled
 *   back and the batch taken again (the replay), where handlers that ran no
 *   SQL are not called again (their results are remembered), the failing one
 *   is decided by its failure policy, and handlers that ran SQL run again, each
 *   behind a savepoint, to redo their writes; handlers not reached yet run for
 *   the first time, behind savepoints too.
 * - `"savepoint"`: a savepoint before each handler's first statement, so every
 *   handler runs exactly once per delivery.
 *
 * @since 0.1.0
 */
import { Cause, Clock, Context, Data, Effect, Exit, Metric, Option, Predicate, Random, Stream, type Tracer } from "effect"
import { SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import type { NextBatch } from "../api/BatchInfo.ts"
import { FailedEvents } from "../api/FailedEvents.ts"
import type { BatchId } from "../api/Ids.ts"
import { type BatchConditions, type OpenBatch, Pgq } from "../api/Pgq.ts"
import type { PgqError } from "../api/PgqError.ts"
import type { PgqEvent } from "../api/PgqEvent.ts"
import { BitSet } from "../internal/BitSet.ts"
import { DEFAULT_FETCH_SIZE } from "../internal/fetchSize.ts"
import { mapSqlError } from "../internal/mapSqlError.ts"
import { refineConsumerNotRegistered } from "../internal/refineConsumerNotRegistered.ts"
import { type Abort, type TrackedTransaction, withTrackedTransaction } from "../internal/TrackedTransaction.ts"
import * as Metrics from "../telemetry/Metrics.ts"
import * as Semconv from "../telemetry/Semconv.ts"
import * as SharedAttributes from "../telemetry/SharedAttributes.ts"
import * as SpanRecorder from "../telemetry/SpanRecorder.ts"
import * as TraceContext from "../telemetry/TraceContext.ts"
import { type Settings, TelemetrySettings } from "../telemetry/TelemetrySettings.ts"
import { BatchStats } from "./BatchStats.ts"
import type { DeliveryAborted, DeliveryPlan, RemoteTarget } from "./Delivery.ts"
import { ConsumerEvent } from "./ConsumerEvent.ts"
import { type EventResult, Ok } from "./EventResult.ts"
import * as FailurePolicy from "./FailurePolicy.ts"
import * as Handler from "./Handler.ts"
import { lostConnectionFirst } from "../internal/lostConnection.ts"

/**
 * How a failing handler's writes are undone; see the module's documentation.
 *
 * @since 0.2.0
 * @category models
 */
export type Isolation = "default" | "savepoint"

/**
 * @since 0.1.0
 * @category models
 */
export interface ProcessorSettings {
  readonly queue: string
  readonly consumer: string
  /** Ask for batches with `next_batch_custom` (min lag, count or interval). */
  readonly batchConditions?: BatchConditions | undefined
  /** Events held in memory at once (the cursor's page size). Default `DEFAULT_FETCH_SIZE`. */
  readonly fetchSize?: number | undefined
  readonly failurePolicy?: FailurePolicy.FailurePolicy | undefined
  /** Default `"default"`: no savepoints, a replay when a handler that ran SQL fails. */
  readonly isolation?: Isolation | undefined
}

/**
 * Settings plus `onEvent` or `onBatch`.
 *
 * @since 0.1.0
 * @category models
 */
export type ProcessorOptions<E, R> = ProcessorSettings & Handler.Handler<E, R>

/**
 * A handler's SQL statement failed and the handler went on as if it had not:
 * the transaction was aborted, so the handler's work cannot commit.
 *
 * @since 0.2.0
 * @category errors
 */
export class SwallowedSqlError extends Data.TaggedError("SwallowedSqlError")<{
  readonly sqlState: string | undefined
  readonly detail: string
}> {
  override get message(): string {
    return `the handler went on after an SQL error, which aborts the transaction: ${this.detail}` +
      `${this.sqlState === undefined ? "" : ` (SQLSTATE ${this.sqlState})`}` +
      " (run statements that may fail in their own sql.withTransaction)"
  }
}

/** What became of one event, and why when a failure decided it. */
interface Decision {
  readonly result: EventResult
  readonly reason: string | undefined
  /** The handler's failure, when its failure policy decided. */
  readonly cause?: Cause.Cause<unknown> | undefined
}

const OK: Decision = { result: Ok, reason: undefined }

/**
 * What a first delivery learned before a handler that ran SQL failed: enough
 * for the replay to call no handler it need not call.
 */
interface ReplayPlan {
  readonly prevTickId: bigint
  readonly curTickId: bigint
  /** The failing event's position in the batch, and its handler's failure. */
  readonly failedAt: number
  readonly cause: Cause.Cause<unknown>
  /** Positions of events whose handlers ran SQL: run again to redo their writes. */
  readonly wrote: BitSet
  /** Results other than Ok of handlers that ran no SQL: settled again, not decided again. */
  readonly decided: ReadonlyMap<number, Decision>
}

class ReplayNeeded extends Data.TaggedError("ReplayNeeded")<{ readonly plan: ReplayPlan }> {}

class BatchAborted extends Data.TaggedError("BatchAborted")<{
  readonly batchId: BatchId
  readonly reason: string
  readonly events: number
  readonly replayed: boolean
}> {}

/** Fails a `process` span for an error result; caught right outside it. */
class EventNotOk extends Data.TaggedError("EventNotOk")<{ readonly decision: Decision }> {
  override get message(): string {
    const { reason, result } = this.decision
    return reason ?? (result._tag === "Failed" || result._tag === "AbortBatch" ? `${result._tag}: ${result.reason}` : result._tag)
  }
}

/** The processor's fixed parts. */
interface Processor<E, R> {
  readonly queue: string
  readonly consumer: string
  /** Where handlers work: the queue's database, or the remote one. */
  readonly sql: SqlClient.SqlClient
  /** The queue's database. */
  readonly queueSql: SqlClient.SqlClient
  readonly pgq: Pgq["Service"]
  readonly failedEvents: FailedEvents["Service"]
  readonly policy: FailurePolicy.FailurePolicy
  readonly isolation: Isolation
  readonly handler: Handler.Handler<E, R>
  readonly take: Effect.Effect<Option.Option<OpenBatch>, PgqError>
  readonly finish: (batch: NextBatch) => Effect.Effect<void, PgqError | DeliveryAborted>
  readonly watch: ((batch: NextBatch) => Effect.Effect<never, PgqError | DeliveryAborted>) | undefined
  readonly remote: RemoteTarget | undefined
  readonly report: (event: ConsumerEvent) => Effect.Effect<void>
  readonly attributes: Readonly<Record<string, string>>
  readonly processSpanName: string
  /** A `process` span's attributes that do not change from event to event, keys and values in turn. */
  readonly processAttributes: ReadonlyArray<unknown>
  readonly metrics: ProcessorMetrics
}

/** The processor's series of each metric. */
interface ProcessorMetrics {
  readonly consumed: Metric.Metric<number, unknown>
  readonly batches: Metric.Metric<number, unknown>
  readonly failed: Metric.Metric<number, unknown>
  readonly retried: Metric.Metric<number, unknown>
  readonly duration: Metric.Metric<number, unknown>
}

/** One delivery of a batch: one transaction. */
interface Delivery {
  readonly batch: NextBatch
  readonly context: Handler.BatchContext
  readonly transaction: TrackedTransaction
  /** The batch's span, when a tracer records it and it is sampled: producers' links go to it. */
  readonly span: Tracer.Span | undefined
  /** A `process` span per event: the batch's span is recorded and per-event spans are on. */
  readonly traced: boolean
  /** Where events carry their producer's traceparent; undefined when nothing is linked. */
  readonly field: TraceContext.ExtraField | undefined
  /** The traceparents the batch's span links to already. */
  readonly linked: Set<string>
  /** The `process` span of the event in hand (fast pass), once made. */
  eventSpan: Tracer.Span | undefined
  /** When the event in hand began (fast pass), when traced or metered. */
  started: bigint
  /**
   * The tracer's way to take an event's ended `process` span whole, when it
   * has one and events are traced, with the record reused for each.
   */
  readonly recorder: { readonly record: SpanRecorder.Record; readonly span: SpanRecorder.EndedSpan } | undefined
  /** The parent of `process` spans: the batch's span. */
  readonly parent: Option.Option<Tracer.AnySpan>
  readonly tracer: Tracer.Tracer
  /** The clock's time in nanoseconds, read cheaply (see `nanosFrom`). */
  readonly now: () => bigint
  /** Where metrics are recorded; undefined when they are off. */
  readonly metered: Context.Context<never> | undefined
  /** The second delivery of the batch, after a handler that ran SQL failed. */
  readonly replay: boolean
  /** Set in a replay whose batch is the one the plan was made for. */
  readonly plan: ReplayPlan | undefined
  /** A savepoint around each handler's SQL: isolation "savepoint", and every replay. */
  readonly protect: boolean
  readonly wrote: BitSet
  readonly decided: Map<number, Decision>
  /** Reported once the batch commits. */
  readonly notices: Array<ConsumerEvent>
  /** Where the fast pass is: set before each handler call, read when one fails. */
  inHandler: boolean
  index: number
  position: number
  statementsBefore: number
  events: number
  ok: number
  failed: number
  retried: number
}

/** A committed batch and what to report about it. */
interface Processed {
  readonly stats: BatchStats
  readonly notices: ReadonlyArray<ConsumerEvent>
  readonly metered: Context.Context<never> | undefined
}

/**
 * Builds `processNext`: process at most one batch; `None` when there was none.
 * `report` hears of each batch as it is received, finished or aborted, and of
 * each event retried or failed once its batch has committed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*<E, R>(
  options: ProcessorOptions<E, R>,
  report: (event: ConsumerEvent) => Effect.Effect<void> = () => Effect.void,
  plan?: DeliveryPlan
) {
  const pgq = yield* Pgq
  const { queue, consumer } = options
  const queueSql = yield* SqlClient.SqlClient
  const processor: Processor<E, R> = {
    queue,
    consumer,
    sql: plan?.remote?.sql ?? queueSql,
    queueSql,
    pgq,
    failedEvents: yield* FailedEvents,
    policy: options.failurePolicy ?? FailurePolicy.defaultPolicy,
    isolation: options.isolation ?? "default",
    handler: options,
    take: plan?.take ?? pgq.takeNextBatch(queue, consumer, {
      conditions: options.batchConditions,
      pageSize: options.fetchSize ?? DEFAULT_FETCH_SIZE
    }),
    finish: plan?.finish ?? ((batch) => pgq.finishBatch(batch.batchId)),
    watch: plan?.watch,
    remote: plan?.remote,
    report,
    attributes: Metrics.attributesOf(queue, consumer),
    processSpanName: Semconv.processSpanName(queue),
    processAttributes: SharedAttributes.flatten({
      ...Metrics.attributesOf(queue, consumer),
      [Semconv.MESSAGING_OPERATION_TYPE]: "process"
    }),
    metrics: {
      consumed: Metric.withAttributes(Metrics.consumedMessages, Metrics.attributesOf(queue, consumer)),
      batches: Metric.withAttributes(Metrics.batches, Metrics.attributesOf(queue, consumer)),
      failed: Metric.withAttributes(Metrics.failedEvents, Metrics.attributesOf(queue, consumer)),
      retried: Metric.withAttributes(Metrics.retriedEvents, Metrics.attributesOf(queue, consumer)),
      duration: Metric.withAttributes(Metrics.processDuration, Metrics.attributesOf(queue, consumer))
    }
  }

  /** One delivery; a rollback that failed because the connection is gone reports the connection's error. */
  const attempt = (replayOf: ReplayPlan | undefined) =>
    deliver(processor, replayOf).pipe(Effect.catchCause(lostConnectionFirst))

  const assign = plan?.assign
  const first = assign === undefined
    ? attempt(undefined)
    : Effect.flatMap(assign, (ready) => ready ? attempt(undefined) : Effect.succeedNone)
  const processNext: Effect.Effect<Option.Option<BatchStats>, PgqError, R> = first.pipe(
    Effect.catchTag("ReplayNeeded", (needed) =>
      attempt(needed.plan).pipe(
        // A replay protects every handler it runs: it cannot need another.
        Effect.catchTag("ReplayNeeded", () => Effect.die(new Error("a replay asked for a replay")))
      )),
    Effect.flatMap(Option.match({
      onNone: () => Effect.succeedNone,
      onSome: ({ metered, notices, stats }) =>
        Effect.as(
          Effect.andThen(
            Effect.andThen(recordBatch(processor, stats, metered), Effect.forEach(notices, report, { discard: true })),
            report(ConsumerEvent["consumer:batch:finished"]({ stats }))
          ),
          Option.some(stats)
        )
    })),
    Effect.catchTag("BatchAborted", (aborted) =>
      Effect.as(
        report(ConsumerEvent["consumer:batch:aborted"]({ batchId: aborted.batchId, reason: aborted.reason })),
        Option.some(
          new BatchStats({
            batchId: aborted.batchId,
            events: aborted.events,
            ok: 0,
            failed: 0,
            retried: 0,
            aborted: Option.some(aborted.reason),
            replayed: aborted.replayed
          })
        )
      )),
    // BEGIN, COMMIT or ROLLBACK failed: a lost connection, usually.
    Effect.catchTag("SqlError", (error) =>
      Effect.fail(mapSqlError(error, { operation: "Consumer.processNext", queue, consumer }))),
    // Inside the batch's transaction pgq cannot tell a dropped queue from a removed
    // registration; now that it has rolled back, one pooled query can.
    Effect.catchTag("ConsumerNotRegistered", refineConsumerNotRegistered(processor.queueSql))
  )

  return { processNext }
})

/** One transaction: take the next batch, run its events, finish it. */
const deliver = <E, R>(
  p: Processor<E, R>,
  replayOf: ReplayPlan | undefined
): Effect.Effect<Option.Option<Processed>, PgqError | SqlError | ReplayNeeded | BatchAborted, R> =>
  Effect.flatMap(Effect.service(TelemetrySettings), (settings) =>
    Effect.flatMap(
      settings.samplingRatio >= 1 ? Effect.succeed(undefined) : Effect.map(Random.next, (x) => x < settings.samplingRatio),
      (sampled) => deliverSampled(p, replayOf, settings, sampled)
    ))

const deliverSampled = <E, R>(
  p: Processor<E, R>,
  replayOf: ReplayPlan | undefined,
  settings: Settings,
  sampled: boolean | undefined
): Effect.Effect<Option.Option<Processed>, PgqError | SqlError | ReplayNeeded | BatchAborted, R> =>
  inTransactions(p, (transaction) =>
    Effect.gen(function*() {
      const next = yield* p.take
      if (Option.isNone(next)) return Option.none<Processed>()
      const batch = next.value.info
      const sameBatch = replayOf !== undefined && replayOf.prevTickId === batch.prevTickId &&
        replayOf.curTickId === batch.curTickId
      const current = yield* Effect.option(Effect.currentSpan)
      const span = Option.isSome(current) && current.value.sampled && (yield* TraceContext.isRecording)
        ? current.value
        : undefined
      const field = span === undefined ? false : yield* TraceContext.TraceparentField
      const tracer = yield* Effect.tracer
      const traced = span !== undefined && settings.eventSpans
      const record = traced ? SpanRecorder.recordOf(tracer) : undefined
      const d: Delivery = {
        batch,
        context: { queue: p.queue, consumer: p.consumer, batch },
        transaction,
        span,
        traced,
        field: field === false ? undefined : field,
        linked: new Set(),
        eventSpan: undefined,
        started: 0n,
        recorder: record === undefined ? undefined : { record, span: processSpanRecord(p, span!) },
        parent: span === undefined ? Option.none() : Option.some(span),
        tracer,
        now: nanosFrom(yield* Clock.Clock),
        metered: settings.metrics ? yield* Effect.context<never>() : undefined,
        replay: replayOf !== undefined,
        plan: sameBatch ? replayOf : undefined,
        protect: replayOf !== undefined || p.isolation === "savepoint",
        wrote: new BitSet(),
        decided: new Map(),
        notices: [],
        inHandler: false,
        index: 0,
        position: 0,
        statementsBefore: 0,
        events: 0,
        ok: 0,
        failed: 0,
        retried: 0
      }
      yield* p.report(ConsumerEvent["consumer:batch:received"]({ batchId: batch.batchId, replay: d.replay }))
      yield* Effect.annotateCurrentSpan({
        [Semconv.PGQ_BATCH_ID]: String(batch.batchId),
        [Semconv.PGQ_TICK_ID]: String(batch.curTickId),
        [Semconv.PGQ_PREV_TICK_ID]: String(batch.prevTickId)
      })
      // A remote consumer skips a batch its remote database has applied already.
      const applied = p.remote !== undefined && (yield* p.remote.ext.isBatchDone(p.remote.consumer, batch.batchId))
      const work = applied ? Effect.void : Effect.andThen(
        "onEvent" in p.handler
          ? runEvents(p, d, p.handler.onEvent, next.value)
          : runBatchHandler(p, d, p.handler.onBatch, next.value),
        recordApplied(p, d)
      )
      yield* Effect.andThen(
        p.watch === undefined ? work : Effect.raceFirst(work, p.watch(batch)),
        p.finish(batch).pipe(
          Effect.withSpan(Semconv.settleSpanName(p.queue), settleSpan(p, "finish_batch"), NO_STACK)
        )
      ).pipe(
        Effect.catchTag("DeliveryAborted", ({ reason }) =>
          Effect.fail(new BatchAborted({ batchId: batch.batchId, reason, events: d.events, replayed: d.replay })))
      )
      yield* Effect.annotateCurrentSpan({
        [Semconv.MESSAGING_BATCH_MESSAGE_COUNT]: d.events,
        [Semconv.PGQ_BATCH_OK]: d.ok,
        [Semconv.PGQ_BATCH_FAILED]: d.failed,
        [Semconv.PGQ_BATCH_RETRIED]: d.retried,
        [Semconv.PGQ_BATCH_REPLAYED]: d.replay
      })
      const { events, ok, failed, retried } = d
      return Option.some<Processed>({
        stats: new BatchStats({
          batchId: batch.batchId,
          events,
          ok,
          failed,
          retried,
          aborted: Option.none(),
          replayed: d.replay
        }),
        notices: d.notices,
        metered: d.metered
      })
    }).pipe(
      Effect.tapCause((cause) => Effect.annotateCurrentSpan(Semconv.ERROR_TYPE, errorTypeOf(cause))),
      Effect.withSpan(Semconv.receiveSpanName(p.queue), {
        kind: "consumer",
        attributes: { ...p.attributes, [Semconv.MESSAGING_OPERATION_TYPE]: "receive" },
        sampled
      }, NO_STACK)
    ))

/**
 * The delivery's transactions: one on the queue's database, where handlers
 * work too; or, for a remote consumer, the queue's around the remote one,
 * where handlers work, so the remote commits first and a crash between the
 * two commits leaves a batch recorded as applied, skipped when delivered
 * again.
 */
const inTransactions = <A, E, R, E2>(
  p: Processor<E2, R>,
  use: (transaction: TrackedTransaction) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError, R> =>
  p.remote === undefined
    ? withTrackedTransaction(p.sql, use)
    : p.queueSql.withTransaction(withTrackedTransaction(p.sql, use))

/**
 * Records the batch as applied in the remote transaction. Another instance
 * that applied it meanwhile (two remote consumers of one name) wins: this
 * delivery is rolled back on both sides.
 */
const recordApplied = <E, R>(p: Processor<E, R>, d: Delivery): Effect.Effect<void, PgqError | BatchAborted> =>
  p.remote === undefined ? Effect.void : Effect.flatMap(
    p.remote.ext.setBatchDone(p.remote.consumer, d.batch.batchId),
    (recorded) =>
      recorded ? Effect.void : Effect.fail(
        new BatchAborted({
          batchId: d.batch.batchId,
          reason: "the remote database has this batch applied already (another instance of this consumer?)",
          events: d.events,
          replayed: d.replay
        })
      )
  )

/** The first page as a plain loop; a Stream only for the pages after it. */
const runEvents = <E, R>(p: Processor<E, R>, d: Delivery, onEvent: Handler.EventHandler<E, R>, batch: OpenBatch) =>
  Effect.andThen(
    runPage(p, d, onEvent, batch.firstPage),
    Stream.runForEachArray(batch.rest, (page) => runPage(p, d, onEvent, page))
  )

const runPage = <E, R>(
  p: Processor<E, R>,
  d: Delivery,
  onEvent: Handler.EventHandler<E, R>,
  events: ReadonlyArray<PgqEvent>
): Effect.Effect<void, PgqError | ReplayNeeded | BatchAborted, R> =>
  !d.protect ? fastPage(p, d, onEvent, events, 0) : Effect.gen(function*() {
    for (const event of events) {
      const position = d.events++
      if (d.span !== undefined) link(d, event)
      if (d.traced) yield* tracedStep(p, d, onEvent, event, position)
      else yield* settle(p, d, event, yield* decide(p, d, onEvent, event, position))
    }
  })

/**
 * The fast pass over a page, from `from`: a plain loop in which an Ok costs
 * one handler call and two counter reads, plus, when traced, a `process`
 * span made straight from the tracer (no `withSpan` per event). A handler's
 * failure is caught once per page rather than once per event; the loop then
 * resumes after the failed event.
 */
const fastPage = <E, R>(
  p: Processor<E, R>,
  d: Delivery,
  onEvent: Handler.EventHandler<E, R>,
  events: ReadonlyArray<PgqEvent>,
  from: number
): Effect.Effect<void, PgqError | ReplayNeeded | BatchAborted, R> =>
  Effect.catchCause(
    Effect.gen(function*() {
      // When an event's span ends, the next one's starts: one clock read for both.
      let boundary: bigint | undefined = undefined
      for (let i = from; i < events.length; i++) {
        const event = events[i]!
        d.index = i
        d.position = d.events++
        if (d.span !== undefined) link(d, event)
        const started = d.traced || d.metered !== undefined ? boundary ?? d.now() : 0n
        boundary = undefined
        d.started = started
        d.statementsBefore = d.transaction.statements()
        d.inHandler = true
        // A throw here, a failure or defect of the handler's Effect, and the checks below
        // all end up in the catch below while `inHandler` is set.
        const returned: unknown = onEvent(event, d.context)
        if (!Effect.isEffect(returned)) return yield* Effect.die(Handler.notAnEffect(returned))
        const handled = returned as Effect.Effect<unknown, E, R>
        // A handler's completed result (`Effect.succeed(…)`, `Effect.void`) runs no code that could
        // see the span: no context switch for it, and, where the tracer takes ended spans whole,
        // no span object unless the event needs one for what follows.
        const completed = Exit.isExit(handled)
        const span = d.traced && !(completed && d.recorder !== undefined) ? startEventSpan(p, d, event) : undefined
        const result: unknown = yield* (span === undefined || completed
          ? handled
          : Effect.withParentSpan(handled, span, NO_STACK))
        if (!Handler.isResult(result)) return yield* Effect.failCause(Handler.notAResult(result))
        const aborted = d.transaction.abortedBy()
        if (aborted !== undefined) return yield* Effect.failCause(swallowed(aborted))
        d.inHandler = false
        if (d.metered !== undefined) recordDuration(p, d, started)
        const wrote = d.transaction.statements() !== d.statementsBefore
        const decision = handlerSucceeded(d, d.position, result ?? Ok, wrote)
        if (decision === OK) {
          d.ok++
          if (d.traced) {
            boundary = d.now()
            if (span === undefined) recordEventSpan(d, event, boundary)
            else endEventSpan(d, OK, undefined, boundary)
          }
        } else if (!d.traced) {
          yield* settle(p, d, event, decision)
        } else {
          if (span === undefined) startEventSpan(p, d, event)
          yield* settleInSpan(p, d, event, decision)
        }
      }
    }),
    (cause) => {
      // Outside a handler only effect-pgq's own failures (settling) can happen. An interruption
      // of the consumer never gets here; one the handler caused itself is its failure.
      if (!d.inHandler) {
        if (d.eventSpan !== undefined) endEventSpan(d, undefined, cause)
        return Effect.failCause(cause as Cause.Cause<PgqError | BatchAborted>)
      }
      d.inHandler = false
      const event = events[d.index]!
      if (d.traced && d.eventSpan === undefined) startEventSpan(p, d, event)
      const wrote = d.transaction.statements() !== d.statementsBefore
      return handlerFailed(p, d, event, d.position, cause, wrote).pipe(
        Effect.tapCause((failure) => Effect.sync(() => d.eventSpan !== undefined && endEventSpan(d, undefined, failure))),
        Effect.flatMap((decision) =>
          d.eventSpan === undefined ? settle(p, d, event, decision) : settleInSpan(p, d, event, decision)
        ),
        Effect.andThen(fastPage(p, d, onEvent, events, d.index + 1))
      )
    }
  )

const EMPTY_CONTEXT = Context.empty()

/**
 * The `process` span of `event`, from when it began: child of the batch's
 * span, linked to its producer. The retry count is left out when 0, as the
 * result is when Ok (their defaults).
 */
const startEventSpan = <E, R>(p: Processor<E, R>, d: Delivery, event: PgqEvent): Tracer.Span => {
  const span = d.tracer.span({
    name: p.processSpanName,
    parent: d.parent,
    annotations: EMPTY_CONTEXT,
    links: producerLinks(d, event),
    startTime: d.started,
    kind: "consumer",
    root: false,
    sampled: true
  })
  SharedAttributes.set(span, p.processAttributes)
  span.attribute(Semconv.MESSAGING_MESSAGE_ID, String(event.id))
  span.attribute(Semconv.PGQ_EVENT_TYPE, event.type)
  if (event.retry !== null && event.retry !== 0) span.attribute(Semconv.PGQ_EVENT_RETRY, event.retry)
  d.eventSpan = span
  return span
}

/** The span that produced `event`, from its traceparent. */
const producerOf = (d: Delivery, event: PgqEvent): Tracer.ExternalSpan | undefined => {
  const traceparent = d.field === undefined ? null : event[d.field]
  if (traceparent === null) return undefined
  const producer = TraceContext.parse(traceparent)
  return Option.isSome(producer) ? producer.value : undefined
}

/** The record of a `process` span the tracer takes whole; its times and event's values change from event to event. */
const processSpanRecord = <E, R>(p: Processor<E, R>, batchSpan: Tracer.AnySpan): SpanRecorder.EndedSpan => ({
  name: p.processSpanName,
  parent: batchSpan,
  kind: "consumer",
  startTime: 0n,
  endTime: 0n,
  shared: p.processAttributes,
  attributes: [],
  link: undefined
})

/** The `process` span of an event whose handler returned Ok at once, handed to the tracer whole. */
const recordEventSpan = (d: Delivery, event: PgqEvent, endTime: bigint): void => {
  const { record, span } = d.recorder!
  span.startTime = d.started
  span.endTime = endTime
  const attributes = span.attributes
  attributes.length = 0
  attributes.push(Semconv.MESSAGING_MESSAGE_ID, String(event.id), Semconv.PGQ_EVENT_TYPE, event.type)
  if (event.retry !== null && event.retry !== 0) attributes.push(Semconv.PGQ_EVENT_RETRY, event.retry)
  span.link = producerOf(d, event)
  record(span)
}

/**
 * The clock's time in nanoseconds, read once, then moved on by the process's
 * monotonic clock: a read is one `hrtime` (the Clock's own takes two clocks
 * and several BigInt steps), and spans and durations keep the Clock's time.
 */
const nanosFrom = (clock: Clock.Clock): () => bigint => {
  const origin = clock.currentTimeNanosUnsafe() - process.hrtime.bigint()
  return () => origin + process.hrtime.bigint()
}

/**
 * Ends the event's `process` span: an error for Failed, AbortBatch and
 * failed handlers; its result unless Ok.
 */
const endEventSpan = (
  d: Delivery,
  decision: Decision | undefined,
  failure?: Cause.Cause<unknown>,
  endTime?: bigint
): void => {
  const span = d.eventSpan
  if (span === undefined) return
  d.eventSpan = undefined
  if (decision !== undefined && decision.result._tag !== "Ok") span.attribute(Semconv.PGQ_EVENT_RESULT, decision.result._tag)
  const cause = failure ?? (decision !== undefined && isError(decision) ? decisionCause(decision) : undefined)
  if (cause !== undefined) span.attribute(Semconv.ERROR_TYPE, errorTypeOf(cause))
  span.end(endTime ?? d.now(), cause === undefined ? Exit.void : Exit.failCause(cause))
}

/** Settles under the event's span (an `event_retry` settle span is its child), then ends it. */
const settleInSpan = <E, R>(p: Processor<E, R>, d: Delivery, event: PgqEvent, decision: Decision) => {
  const span = d.eventSpan!
  // AbortBatch fails the settle: the span ends first, as an error.
  if (decision.result._tag === "AbortBatch") endEventSpan(d, decision)
  return Effect.withParentSpan(settle(p, d, event, decision), span, NO_STACK).pipe(
    Effect.tap(() => Effect.sync(() => endEventSpan(d, decision)))
  )
}

/** The failure a span reports for a decision: the handler's own, else the result. */
const decisionCause = (decision: Decision): Cause.Cause<unknown> =>
  decision.cause ?? Cause.fail(new EventNotOk({ decision }))

/**
 * `error.type`: a tagged error's tag, an exception's name, or the result
 * (`Failed`, `AbortBatch`) when a handler returned it.
 */
const errorTypeOf = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  if (error instanceof EventNotOk) return error.decision.result._tag
  if (error instanceof BatchAborted) return "AbortBatch"
  if (Predicate.hasProperty(error, "_tag") && Predicate.isString(error._tag)) return error._tag
  if (error instanceof Error) return error.name
  return Cause.hasInterruptsOnly(cause) ? "interrupted" : "_OTHER"
}

/** At most this many producer links on a batch's span (OpenTelemetry's default link limit). */
const MAX_LINKS = 128

/** Links the batch's span to the producer of `event`, once per producer span. */
const link = (d: Delivery, event: PgqEvent): void => {
  if (d.field === undefined || d.linked.size >= MAX_LINKS) return
  const traceparent = event[d.field]
  if (traceparent === null || d.linked.has(traceparent)) return
  d.linked.add(traceparent)
  const producer = TraceContext.parse(traceparent)
  if (Option.isSome(producer)) d.span!.addLinks([{ span: producer.value, attributes: {} }])
}

const recordDuration = <E, R>(p: Processor<E, R>, d: Delivery, started: bigint): void => {
  p.metrics.duration.updateUnsafe(Number(d.now() - started) / 1e9, d.metered!)
}

/** Counts a committed batch. */
const recordBatch = <E, R>(p: Processor<E, R>, stats: BatchStats, metered: Context.Context<never> | undefined) =>
  metered === undefined ? Effect.void : Effect.sync(() => {
    p.metrics.consumed.updateUnsafe(stats.events, metered)
    p.metrics.batches.updateUnsafe(1, metered)
    if (stats.failed > 0) p.metrics.failed.updateUnsafe(stats.failed, metered)
    if (stats.retried > 0) p.metrics.retried.updateUnsafe(stats.retried, metered)
  })

/** One event inside its `process` span; Failed, AbortBatch or a failed handler mark the span as an error. */
const tracedStep = <E, R>(
  p: Processor<E, R>,
  d: Delivery,
  onEvent: Handler.EventHandler<E, R>,
  event: PgqEvent,
  position: number
) =>
  Effect.gen(function*() {
    const started = d.metered === undefined ? 0n : d.now()
    const decision = yield* decide(p, d, onEvent, event, position)
    if (d.metered !== undefined) recordDuration(p, d, started)
    if (decision.result._tag !== "Ok") yield* Effect.annotateCurrentSpan(Semconv.PGQ_EVENT_RESULT, decision.result._tag)
    if (isError(decision)) yield* Effect.annotateCurrentSpan(Semconv.ERROR_TYPE, errorTypeOf(decisionCause(decision)))
    yield* settle(p, d, event, decision)
    if (isError(decision)) return yield* new EventNotOk({ decision })
  }).pipe(
    Effect.withSpan(p.processSpanName, {
      kind: "consumer",
      links: producerLinks(d, event),
      attributes: {
        ...p.attributes,
        [Semconv.MESSAGING_OPERATION_TYPE]: "process",
        [Semconv.MESSAGING_MESSAGE_ID]: String(event.id),
        [Semconv.PGQ_EVENT_TYPE]: event.type,
        ...(event.retry !== null && event.retry !== 0 ? { [Semconv.PGQ_EVENT_RETRY]: event.retry } : undefined)
      }
    }, NO_STACK),
    Effect.catchTag("EventNotOk", () => Effect.void)
  )

/** A link to the span that produced `event`, if it carries one. */
const producerLinks = (d: Delivery, event: PgqEvent): Array<Tracer.SpanLink> => {
  const producer = producerOf(d, event)
  return producer === undefined ? [] : [{ span: producer, attributes: {} }]
}

const isError = (decision: Decision): boolean =>
  decision.reason !== undefined || decision.result._tag === "Failed" || decision.result._tag === "AbortBatch"

/** The event's result: remembered, decided by a failure seen before, or from its handler. */
const decide = <E, R>(
  p: Processor<E, R>,
  d: Delivery,
  onEvent: Handler.EventHandler<E, R>,
  event: PgqEvent,
  position: number
): Effect.Effect<Decision, PgqError | ReplayNeeded, R> => {
  const plan = d.plan
  if (plan !== undefined && position <= plan.failedAt) {
    if (position === plan.failedAt) return Effect.succeed(byPolicy(p, event, plan.cause))
    if (!plan.wrote.has(position)) return Effect.succeed(plan.decided.get(position) ?? OK)
  }
  const call = callEventHandler(onEvent, event, d.context)
  return d.protect ? runProtected(p, d, event, call) : runFast(p, d, event, position, call)
}

/** No savepoint (the traced fast pass): a handler that ran SQL and failed sends the batch to its replay. */
const runFast = <E, R>(
  p: Processor<E, R>,
  d: Delivery,
  event: PgqEvent,
  position: number,
  call: Effect.Effect<EventResult, E, R>
): Effect.Effect<Decision, ReplayNeeded, R> =>
  Effect.suspend(() => {
    const before = d.transaction.statements()
    return Effect.flatMap(Effect.exit(call), (exit) => {
      const wrote = d.transaction.statements() !== before
      const failure = failureOf(exit, d.transaction)
      if (failure === undefined) {
        return Effect.succeed(handlerSucceeded(d, position, (exit as Exit.Success<EventResult>).value, wrote))
      }
      return handlerFailed(p, d, event, position, failure, wrote)
    })
  })

/** Remembers what the replay needs of a handler that worked: whether it wrote, else its result if not Ok. */
const handlerSucceeded = (d: Delivery, position: number, result: EventResult, wrote: boolean): Decision => {
  if (wrote) d.wrote.add(position)
  else if (result._tag !== "Ok") d.decided.set(position, { result, reason: undefined })
  return result._tag === "Ok" ? OK : { result, reason: undefined }
}

/** A failed handler that ran no SQL left nothing to undo: its policy decides. One that wrote needs the replay. */
const handlerFailed = <E, R>(
  p: Processor<E, R>,
  d: Delivery,
  event: PgqEvent,
  position: number,
  cause: Cause.Cause<unknown>,
  wrote: boolean
): Effect.Effect<Decision, ReplayNeeded> => {
  if (wrote) {
    return Effect.fail(
      new ReplayNeeded({
        plan: {
          prevTickId: d.batch.prevTickId,
          curTickId: d.batch.curTickId,
          failedAt: position,
          cause,
          wrote: d.wrote,
          decided: d.decided
        }
      })
    )
  }
  const decision = byPolicy(p, event, cause)
  d.decided.set(position, decision)
  return Effect.succeed(decision)
}

/**
 * The handler in a nested transaction of its own: its savepoint is taken
 * before its first statement (none when it runs no SQL), rolled back with its
 * `afterCommit` callbacks when it fails or swallows an SQL error.
 */
const runProtected = <E, R>(
  p: Processor<E, R>,
  d: Delivery,
  event: PgqEvent,
  call: Effect.Effect<EventResult, E, R>
): Effect.Effect<Decision, never, R> =>
  Effect.map(
    Effect.exit(protect(p, d, p.remote?.undoFailedResults === true ? undoUnlessOk(call) : call)),
    (exit) => {
      if (exit._tag === "Success") return { result: exit.value, reason: undefined }
      const undone = Cause.findErrorOption(exit.cause)
      return Option.isSome(undone) && undone.value instanceof Undone
        ? { result: undone.value.result, reason: undefined }
        : byPolicy(p, event, exit.cause)
    }
  )

/** A Failed or Retry result, failed so that its savepoint rolls back (the event-remote consumer). */
class Undone extends Data.TaggedError("Undone")<{ readonly result: EventResult }> {}

const undoUnlessOk = <E, R>(call: Effect.Effect<EventResult, E, R>): Effect.Effect<EventResult, E | Undone, R> =>
  Effect.flatMap(call, (result) =>
    result._tag === "Failed" || result._tag === "Retry" ? Effect.fail(new Undone({ result })) : Effect.succeed(result))

/** Runs `effect` in a nested transaction that fails, and so rolls back, when the handler swallowed an SQL error. */
const protect = <A, E, R>(p: Processor<E, R>, d: Delivery, effect: Effect.Effect<A, E, R>) =>
  p.sql.withTransaction(Effect.flatMap(effect, (value) => {
    const aborted = d.transaction.abortedBy()
    return aborted === undefined ? Effect.succeed(value) : Effect.failCause(swallowed(aborted))
  }))

/**
 * The handler's failure: its own (typed, defect, interruption), or the SQL
 * error that aborted the transaction while it ran, when it carried on.
 */
const failureOf = (exit: Exit.Exit<EventResult, unknown>, transaction: TrackedTransaction): Cause.Cause<unknown> | undefined => {
  if (Exit.isFailure(exit)) return exit.cause
  const aborted = transaction.abortedBy()
  return aborted === undefined ? undefined : swallowed(aborted)
}

const swallowed = (abort: Abort): Cause.Cause<SwallowedSqlError> => Cause.fail(new SwallowedSqlError(abort))

const callEventHandler = <E, R>(
  onEvent: Handler.EventHandler<E, R>,
  event: PgqEvent,
  context: Handler.BatchContext
): Effect.Effect<EventResult, E, R> =>
  Effect.flatMap(
    Handler.call(() => onEvent(event, context)),
    (result) => Handler.isResult(result) ? Effect.succeed(result ?? Ok) : Effect.failCause(Handler.notAResult(result))
  )

const byPolicy = <E, R>(p: Processor<E, R>, event: PgqEvent, cause: Cause.Cause<unknown>): Decision => ({
  result: FailurePolicy.decide(p.policy, event, cause),
  reason: FailurePolicy.reasonOf(cause),
  cause
})

/** Records a Retry or Failed result; Ok only counts; AbortBatch ends the delivery. */
const settle = <E, R>(
  p: Processor<E, R>,
  d: Delivery,
  event: PgqEvent,
  decision: Decision
): Effect.Effect<void, PgqError | BatchAborted> => {
  const { result } = decision
  switch (result._tag) {
    case "Ok":
      d.ok++
      return Effect.void
    case "Retry":
      d.retried++
      d.notices.push(ConsumerEvent["consumer:event:retried"]({
        batchId: d.batch.batchId,
        eventId: event.id,
        delay: result.delay,
        reason: decision.reason
      }))
      return p.pgq.eventRetry(d.batch.batchId, event.id, result.delay).pipe(
        Effect.withSpan(Semconv.settleSpanName(p.queue), settleSpan(p, "event_retry"), NO_STACK)
      )
    case "Failed":
      d.failed++
      d.notices.push(ConsumerEvent["consumer:event:failed"]({
        batchId: d.batch.batchId,
        eventId: event.id,
        reason: result.reason
      }))
      return p.failedEvents.store(p.queue, p.consumer, event, FailurePolicy.storableReason(result.reason))
    case "AbortBatch":
      return Effect.fail(
        new BatchAborted({
          batchId: d.batch.batchId,
          reason: result.reason,
          events: d.events,
          replayed: d.replay
        })
      )
  }
}

/**
 * The whole batch in memory, one handler call behind a savepoint: when it
 * fails, the failure policy decides for every event.
 */
const runBatchHandler = <E, R>(
  p: Processor<E, R>,
  d: Delivery,
  onBatch: Handler.BatchHandler<E, R>,
  batch: OpenBatch
) =>
  Effect.gen(function*() {
    const events = yield* Stream.runCollect(batch.events)
    d.events = events.length
    const call = Effect.flatMap(Handler.call(() => onBatch(events, d.context)), (results) => {
      if (results === undefined) return Effect.succeed(events.map(() => Ok))
      if (!Array.isArray(results) || results.length !== events.length || !results.every(Handler.isResult)) {
        return Effect.die(
          new Handler.HandlerContractViolation(
            `the batch handler must return one EventResult per event (${events.length}), or nothing`
          )
        )
      }
      return Effect.succeed(results.map((result: EventResult | undefined) => result ?? Ok))
    }).pipe(
      Effect.withSpan(Semconv.processSpanName(p.queue), {
        kind: "consumer",
        attributes: {
          ...p.attributes,
          [Semconv.MESSAGING_OPERATION_TYPE]: "process",
          [Semconv.MESSAGING_BATCH_MESSAGE_COUNT]: events.length
        }
      }, NO_STACK)
    )
    const exit = yield* Effect.exit(protect(p, d, call))
    const decisions: ReadonlyArray<Decision> = exit._tag === "Failure"
      ? events.map((event) => byPolicy(p, event, exit.cause))
      : exit.value.map((result) => ({ result, reason: undefined }))
    const aborted = decisions.find((decision) => decision.result._tag === "AbortBatch")
    if (aborted !== undefined) return yield* settle(p, d, events[0]!, aborted)
    for (let i = 0; i < events.length; i++) yield* settle(p, d, events[i]!, decisions[i]!)
  })

const NO_STACK = { captureStackTrace: false } as const

const settleSpan = <E, R>(p: Processor<E, R>, operation: string) => ({
  kind: "consumer" as const,
  attributes: {
    ...p.attributes,
    [Semconv.MESSAGING_OPERATION_TYPE]: "settle",
    [Semconv.MESSAGING_OPERATION_NAME]: operation
  }
})

