/**
 * The PgQ SQL API as an Effect service: one method per external function of
 * pgq 3.5, typed rows, branded ids and typed errors.
 *
 * Every name, payload and number travels as a bind parameter. Methods run on
 * the current `SqlClient` transaction when there is one, so a consumer's
 * `nextBatch`, handler writes and `finishBatch` can commit together.
 *
 * @since 0.1.0
 */
import { Context, DateTime, Duration, Effect, Layer, Option, Schema, type Scope, Stream } from "effect"
import { SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import { DEFAULT_FETCH_SIZE } from "../internal/fetchSize.ts"
import type { ErrorContext } from "../internal/mapSqlError.ts"
import { consumerOrQueueMissing } from "../internal/refineConsumerNotRegistered.ts"
import { findAll, findOne, findOneOption } from "../internal/rows.ts"
import { makeSqlRunner } from "../internal/sqlRunner.ts"
import { validateQueue, validateQueueConsumer } from "../internal/validateName.ts"
import { BatchInfo, NextBatch } from "./BatchInfo.ts"
import { ConsumerInfo } from "./ConsumerInfo.ts"
import { BatchId, EventId, TickId } from "./Ids.ts"
import { BatchNotFound, ConsumerNotRegistered, InvalidArgument, type PgqError, QueueNotFound } from "./PgqError.ts"
import { fromValues, type PgqEvent } from "./PgqEvent.ts"
import { QueueInfo } from "./QueueInfo.ts"

/**
 * An event to insert. `type` and `data` are free text (JSON is common);
 * the four extra fields carry routing or tracing data.
 *
 * @since 0.1.0
 * @category models
 */
export interface NewEvent {
  readonly type: string
  readonly data: string | null
  readonly extra1?: string | null | undefined
  readonly extra2?: string | null | undefined
  readonly extra3?: string | null | undefined
  readonly extra4?: string | null | undefined
}

/**
 * Conditions for `nextBatchCustom`: a batch is handed out only when it is at
 * least `minLag` old, holds at least `minCount` events, or spans at least
 * `minInterval`.
 *
 * @since 0.1.0
 * @category models
 */
export interface BatchConditions {
  readonly minLag?: Duration.Input | undefined
  readonly minCount?: number | undefined
  readonly minInterval?: Duration.Input | undefined
}

/**
 * Queue settings accepted by `pgq.set_queue_config`.
 *
 * @since 0.1.0
 * @category models
 */
export type QueueSetting =
  | "ticker_max_count"
  | "ticker_max_lag"
  | "ticker_idle_period"
  | "ticker_paused"
  | "rotation_period"
  | "external_ticker"
  | "disable_insert"

/**
 * One step proposed by `pgq.maint_operations`.
 *
 * @since 0.1.0
 * @category models
 */
export class MaintOperation extends Schema.Class<MaintOperation>("effect-pgq/MaintOperation")({
  funcName: Schema.String,
  funcArg: Schema.NullOr(Schema.String)
}) {}

/**
 * An event to put back for one consumer: the event as it was delivered, the
 * retry count it should carry, and when it becomes due.
 *
 * @since 0.1.0
 * @category models
 */
export interface RetryRawEvent extends Omit<PgqEvent, "txid" | "retry"> {
  readonly retry: number
  readonly retryAfter: DateTime.DateTime
}

/**
 * A batch handed to a consumer, with its events to stream.
 *
 * @since 0.1.0
 * @category models
 */
export interface OpenBatch {
  readonly info: NextBatch
  /** The batch's first events (all of them when the batch fits a page), already fetched. */
  readonly firstPage: ReadonlyArray<PgqEvent>
  /** The events after the first page, through a cursor; empty when the batch fit one page. */
  readonly rest: Stream.Stream<PgqEvent, PgqError>
  /** All the batch's events: `firstPage`, then `rest`. */
  readonly events: Stream.Stream<PgqEvent, PgqError>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface CursorOptions {
  /** Rows fetched per round trip; memory holds at most one such page. Default 1000 (`DEFAULT_FETCH_SIZE`). */
  readonly fetchSize?: number | undefined
  /**
   * SQL condition pgq appends to its event query (`pgq.get_batch_cursor`'s
   * `extra_where`). It is SQL, not data: pass only trusted text.
   */
  readonly extraWhere?: string | undefined
}

/**
 * The PgQ SQL API.
 *
 * pgq answers "Not subscriber to queue" both for a consumer that is not
 * registered and for a queue that does not exist. Outside a transaction the
 * methods tell the two apart (`ConsumerNotRegistered` or `QueueNotFound`).
 * Inside a caller's transaction, a failed pgq call has aborted the
 * transaction and asking on a second connection could wait forever for the
 * pool, so an unknown queue may be reported as `ConsumerNotRegistered`;
 * after the transaction has rolled back, the same call (or a
 * `getQueueInfo`) gives the precise error.
 *
 * @since 0.1.0
 * @category services
 */
export class Pgq extends Context.Service<Pgq, {
  /** `pgq.version()`. */
  readonly version: Effect.Effect<string, PgqError>

  /** Creates a queue; `false` when it already existed. */
  readonly createQueue: (queue: string) => Effect.Effect<boolean, PgqError>
  /** Drops a queue; with `force`, even when consumers are still registered. */
  readonly dropQueue: (queue: string, options?: { readonly force?: boolean }) => Effect.Effect<void, PgqError>
  readonly setQueueConfig: (queue: string, setting: QueueSetting, value: string) => Effect.Effect<void, PgqError>
  /** The event table producers may write to directly during the current transaction. */
  readonly currentEventTable: (queue: string) => Effect.Effect<string, PgqError>

  /** `pgq.insert_event`: the 3-argument form, or the 7-argument one when extras are given. */
  readonly insertEvent: (queue: string, event: NewEvent) => Effect.Effect<EventId, PgqError>

  /** Registers a consumer; `false` when it was already registered. */
  readonly registerConsumer: (queue: string, consumer: string) => Effect.Effect<boolean, PgqError>
  /** Registers (or repositions) a consumer at a given tick. */
  readonly registerConsumerAt: (queue: string, consumer: string, tickId: TickId) => Effect.Effect<boolean, PgqError>
  /** Unregisters a consumer, dropping its position and pending retries. */
  readonly unregisterConsumer: (queue: string, consumer: string) => Effect.Effect<void, PgqError>

  /** The next batch id, or none when no tick has happened since the last batch. */
  readonly nextBatch: (queue: string, consumer: string) => Effect.Effect<Option.Option<BatchId>, PgqError>
  readonly nextBatchInfo: (queue: string, consumer: string) => Effect.Effect<Option.Option<NextBatch>, PgqError>
  readonly nextBatchCustom: (
    queue: string,
    consumer: string,
    conditions: BatchConditions
  ) => Effect.Effect<Option.Option<NextBatch>, PgqError>

  /** All events of a batch at once: for small batches. */
  readonly getBatchEvents: (batchId: BatchId) => Effect.Effect<ReadonlyArray<PgqEvent>, PgqError>
  /**
   * The events of a batch through a server-side cursor, one page in memory at
   * a time. Runs in the current transaction, or in its own when there is none.
   */
  readonly getBatchCursor: (batchId: BatchId, options?: CursorOptions) => Stream.Stream<PgqEvent, PgqError>

  /**
   * The events of a batch, in id order, with at most `pageSize + 1` in
   * memory: what `pgq.get_batch_events` returns, read by running pgq's own
   * batch query (`pgq.batch_event_sql`) directly. A batch that fits one page
   * costs one query; a bigger one continues through a cursor. Faster than
   * both pgq functions, which materialise their result on the server first.
   * Runs in the current transaction, or in its own when there is none.
   * `pageSize` defaults to 1000 (`DEFAULT_FETCH_SIZE`).
   */
  readonly streamBatchEvents: (
    batchId: BatchId,
    options?: { readonly pageSize?: number | undefined }
  ) => Stream.Stream<PgqEvent, PgqError>

  /**
   * `nextBatchInfo` (or `nextBatchCustom` with conditions) and the batch's
   * events as `streamBatchEvents` gives them: the batch and its query in one
   * round trip, the first page in a second. The consumer's way to take a
   * batch; read `rest` in the same transaction. `pageSize` defaults to 1000
   * (`DEFAULT_FETCH_SIZE`).
   */
  readonly takeNextBatch: (
    queue: string,
    consumer: string,
    options?: {
      readonly conditions?: BatchConditions | undefined
      readonly pageSize?: number | undefined
    }
  ) => Effect.Effect<Option.Option<OpenBatch>, PgqError>

  /** Puts an event back into the queue for this consumer after `retryAfter` (or at a time). */
  readonly eventRetry: (
    batchId: BatchId,
    eventId: EventId,
    retryAfter: Duration.Input | DateTime.DateTime
  ) => Effect.Effect<void, PgqError>
  /** Puts every event of the batch back for retry; returns how many. */
  readonly batchRetry: (batchId: BatchId, retryAfter: Duration.Input) => Effect.Effect<number, PgqError>
  /** Marks the batch done; `BatchNotFound` if it is unknown or already finished. */
  readonly finishBatch: (batchId: BatchId) => Effect.Effect<void, PgqError>

  readonly getQueueInfo: (queue: string) => Effect.Effect<QueueInfo, PgqError>
  readonly listQueues: Effect.Effect<ReadonlyArray<QueueInfo>, PgqError>
  readonly getConsumerInfo: (queue: string, consumer: string) => Effect.Effect<ConsumerInfo, PgqError>
  /** Every consumer, or those of one queue. */
  readonly listConsumers: (queue?: string) => Effect.Effect<ReadonlyArray<ConsumerInfo>, PgqError>
  readonly getBatchInfo: (batchId: BatchId) => Effect.Effect<BatchInfo, PgqError>

  /** `pgq.ticker()`: ticks every queue that needs it; returns how many queues were checked. */
  readonly ticker: Effect.Effect<bigint, PgqError>
  /** `pgq.ticker(queue)`: ticks one queue if needed; the new tick, if any. */
  readonly tickQueue: (queue: string) => Effect.Effect<Option.Option<TickId>, PgqError>
  /** `pgq.ticker(queue, tick_id, time, event_seq)`: for queues with an external tick source. */
  readonly tickExternal: (
    queue: string,
    tick: { readonly tickId: TickId; readonly time: DateTime.DateTime; readonly eventSeq: bigint }
  ) => Effect.Effect<TickId, PgqError>
  /** Makes the next `ticker` run tick this queue even if it has few events; returns the last tick. */
  readonly forceTick: (queue: string) => Effect.Effect<TickId, PgqError>

  /**
   * Moves due retry events back into their queues; returns how many. pgq
   * moves at most 10 per call, across all queues: call it until it returns 0.
   */
  readonly maintRetryEvents: Effect.Effect<number, PgqError>
  readonly maintRotateTablesStep1: (queue: string) => Effect.Effect<number, PgqError>
  readonly maintRotateTablesStep2: Effect.Effect<number, PgqError>
  readonly maintTablesToVacuum: Effect.Effect<ReadonlyArray<string>, PgqError>
  /** The maintenance steps to run now, in order, each in its own transaction. */
  readonly maintOperations: Effect.Effect<ReadonlyArray<MaintOperation>, PgqError>
  /** Applies the queue's grants to its event tables. */
  readonly grantPerms: (queue: string) => Effect.Effect<void, PgqError>
  /** Applies pgq's storage tuning to the queue's event tables. */
  readonly tuneStorage: (queue: string) => Effect.Effect<void, PgqError>
  /** Upgrades pgq's internal tables after an extension update; returns the number of fixes. */
  readonly upgradeSchema: Effect.Effect<number, PgqError>

  /**
   * `pgq.event_retry_raw`: re-inserts an event for one consumer's retry queue.
   * The building block for re-delivering stored failed events.
   */
  readonly eventRetryRaw: (
    queue: string,
    consumer: string,
    event: RetryRawEvent
  ) => Effect.Effect<EventId, PgqError>
}>()("effect-pgq/api/Pgq") {
  /**
   * @since 0.1.0
   * @category layers
   */
  static readonly layer: Layer.Layer<Pgq, never, SqlClient.SqlClient> = Layer.effect(
    Pgq,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return make(sql)
    })
  )
}

/**
 * The one value of a `select pgq.f(...) as r`, which always returns one row.
 * Built once per type; `statement` names the call in the defect if no row came.
 */
const scalar = <S extends Schema.Top>(Value: S) => {
  const decode = findOne(Schema.Struct({ r: Value }))
  return (statement: string) => {
    const decodeRow = decode(statement)
    return (rows: ReadonlyArray<unknown>): Effect.Effect<S["Type"], never, S["DecodingServices"]> =>
      // TypeScript cannot resolve a generic Struct's type; it is `{ readonly r: S["Type"] }`.
      Effect.map(decodeRow(rows), (row) => (row as { readonly r: S["Type"] }).r)
  }
}

/** int4 results: pgq's 0/1 flags and counts. */
const int4Result = scalar(Schema.Number)
const textResult = scalar(Schema.String)
const int8Result = scalar(Schema.BigInt)
const eventIdResult = scalar(EventId)
const tickIdResult = scalar(TickId)
/** pgq returns null for "no batch" or "no tick". */
const optionalBatchIdResult = scalar(Schema.OptionFromNullOr(BatchId))
const optionalTickIdResult = scalar(Schema.OptionFromNullOr(TickId))

const decodeQueueInfos = findAll(QueueInfo)
const decodeQueueInfo = findOneOption(QueueInfo)
const decodeConsumerInfos = findAll(ConsumerInfo)
const decodeConsumerInfo = findOneOption(ConsumerInfo)
const decodeNextBatch = findOneOption(NextBatch)
const decodeBatchQuery = findOne(Schema.Struct({ query: Schema.String }))("pgq.batch_event_sql()")
const decodeBatchInfo = findOneOption(BatchInfo)
const decodeMaintOperations = findAll(MaintOperation)
const decodeTablesToVacuum = findAll(Schema.Struct({ t: Schema.String }))

/** Interval columns arrive as milliseconds, ready for `Schema.DurationFromMillis`. */
const ms = (column: string) => `(extract(epoch from ${column}) * 1000)::float8`

const QUEUE_INFO_COLUMNS = `queue_name as "queueName", queue_ntables as "ntables", queue_cur_table as "curTable",
  ${ms("queue_rotation_period")} as "rotationPeriod", queue_switch_time as "switchTime",
  queue_external_ticker as "externalTicker", queue_ticker_paused as "tickerPaused",
  queue_ticker_max_count as "tickerMaxCount", ${ms("queue_ticker_max_lag")} as "tickerMaxLag",
  ${ms("queue_ticker_idle_period")} as "tickerIdlePeriod", ${ms("ticker_lag")} as "tickerLag",
  ev_per_sec::float8 as "evPerSec", ev_new as "evNew", last_tick_id as "lastTickId"`

const CONSUMER_INFO_COLUMNS = `queue_name as "queueName", consumer_name as "consumerName",
  ${ms("lag")} as "lag", ${ms("last_seen")} as "lastSeen", last_tick as "lastTick",
  current_batch as "currentBatch", next_tick as "nextTick", pending_events as "pendingEvents"`

const NEXT_BATCH_COLUMNS = `batch_id as "batchId", cur_tick_id as "curTickId", prev_tick_id as "prevTickId",
  cur_tick_time as "curTickTime", prev_tick_time as "prevTickTime",
  cur_tick_event_seq as "curTickEventSeq", prev_tick_event_seq as "prevTickEventSeq"`

const BATCH_INFO_COLUMNS = `queue_name as "queueName", consumer_name as "consumerName",
  batch_start as "batchStart", batch_end as "batchEnd", prev_tick_id as "prevTickId", tick_id as "tickId",
  ${ms("lag")} as "lag", seq_start as "seqStart", seq_end as "seqEnd"`

/** pgq's `*_seconds` arguments are whole seconds: a delay is rounded up so it is never shorter. */
const wholeSeconds = (operation: string, input: Duration.Input): Effect.Effect<number, InvalidArgument> => {
  const duration = Duration.fromInputUnsafe(input)
  const millis = Duration.toMillis(duration)
  return Number.isFinite(millis) && millis >= 0 && millis <= 2_147_483_647_000
    ? Effect.succeed(Math.ceil(millis / 1000))
    : Effect.fail(new InvalidArgument({ operation, argument: "delay", reason: "must be a finite, non-negative duration" }))
}

const minCountOf = (operation: string, minCount: number | undefined) =>
  minCount === undefined
    ? Effect.succeed(null)
    : Number.isInteger(minCount) && minCount >= 0 && minCount <= 2_147_483_647
    ? Effect.succeed(minCount)
    : Effect.fail(new InvalidArgument({ operation, argument: "minCount", reason: "must be a non-negative int4" }))

const intervalText = (operation: string, argument: string, input: Duration.Input | undefined) => {
  if (input === undefined) return Effect.succeed(null)
  const millis = Duration.toMillis(Duration.fromInputUnsafe(input))
  return Number.isFinite(millis) && millis >= 0
    ? Effect.succeed(`${millis} milliseconds`)
    : Effect.fail(new InvalidArgument({ operation, argument, reason: "must be a finite, non-negative duration" }))
}

/**
 * Builds the service on a `SqlClient`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (sql: SqlClient.SqlClient): Pgq["Service"] => {
  const run = makeSqlRunner(sql)
  // Only after a statement that succeeded: its transaction, if any, is still usable.
  const consumerOrQueue = consumerOrQueueMissing(sql)

  const version = run({ operation: "Pgq.version" }, sql`select pgq.version() as r`).pipe(
    Effect.flatMap(textResult("pgq.version()")),
    Effect.withSpan("Pgq.version")
  )

  const createQueue = Effect.fn("Pgq.createQueue")(function*(queue: string) {
    yield* validateQueue(queue)
    const rows = yield* run({ operation: "Pgq.createQueue", queue }, sql`select pgq.create_queue(${queue}) as r`)
    return (yield* int4Result("pgq.create_queue()")(rows)) === 1
  })

  const dropQueue = Effect.fn("Pgq.dropQueue")(function*(queue: string, options?: { readonly force?: boolean }) {
    yield* validateQueue(queue)
    yield* run(
      { operation: "Pgq.dropQueue", queue },
      sql`select pgq.drop_queue(${queue}, ${options?.force === true})`
    )
  })

  const setQueueConfig = Effect.fn("Pgq.setQueueConfig")(
    function*(queue: string, setting: QueueSetting, value: string) {
      yield* validateQueue(queue)
      const rows = yield* run(
        { operation: "Pgq.setQueueConfig", queue },
        sql`select pgq.set_queue_config(${queue}, ${setting}, ${value}) as r`
      )
      if ((yield* int4Result("pgq.set_queue_config()")(rows)) !== 1) {
        return yield* new QueueNotFound({ operation: "Pgq.setQueueConfig", queue })
      }
    }
  )

  const currentEventTable = Effect.fn("Pgq.currentEventTable")(function*(queue: string) {
    yield* validateQueue(queue)
    const rows = yield* run(
      { operation: "Pgq.currentEventTable", queue },
      sql`select pgq.current_event_table(${queue}) as r`
    )
    return yield* textResult("pgq.current_event_table()")(rows)
  })

  const insertEvent = Effect.fn("Pgq.insertEvent")(function*(queue: string, event: NewEvent) {
    yield* validateQueue(queue)
    const context = { operation: "Pgq.insertEvent", queue }
    const hasExtras = event.extra1 != null || event.extra2 != null || event.extra3 != null || event.extra4 != null
    const rows = yield* run(
      context,
      hasExtras
        ? sql`select pgq.insert_event(${queue}, ${event.type}, ${event.data}, ${event.extra1 ?? null}, ${
          event.extra2 ?? null
        }, ${event.extra3 ?? null}, ${event.extra4 ?? null}) as r`
        : sql`select pgq.insert_event(${queue}, ${event.type}, ${event.data}) as r`
    )
    return yield* eventIdResult("pgq.insert_event()")(rows)
  })

  const registerConsumer = Effect.fn("Pgq.registerConsumer")(function*(queue: string, consumer: string) {
    yield* validateQueueConsumer(queue, consumer)
    const rows = yield* run(
      { operation: "Pgq.registerConsumer", queue, consumer },
      sql`select pgq.register_consumer(${queue}, ${consumer}) as r`
    )
    return (yield* int4Result("pgq.register_consumer()")(rows)) === 1
  })

  const registerConsumerAt = Effect.fn("Pgq.registerConsumerAt")(
    function*(queue: string, consumer: string, tickId: TickId) {
      yield* validateQueueConsumer(queue, consumer)
      const rows = yield* run(
        { operation: "Pgq.registerConsumerAt", queue, consumer },
        sql`select pgq.register_consumer_at(${queue}, ${consumer}, ${tickId}) as r`
      )
      return (yield* int4Result("pgq.register_consumer_at()")(rows)) === 1
    }
  )

  const unregisterConsumer = Effect.fn("Pgq.unregisterConsumer")(function*(queue: string, consumer: string) {
    yield* validateQueueConsumer(queue, consumer)
    const operation = "Pgq.unregisterConsumer"
    const rows = yield* run(
      { operation, queue, consumer },
      sql`select pgq.unregister_consumer(${queue}, ${consumer}) as r`
    )
    // pgq returns 0 for an unknown consumer and for an unknown queue alike.
    if ((yield* int4Result("pgq.unregister_consumer()")(rows)) === 0) {
      return yield* consumerOrQueue(new ConsumerNotRegistered({ operation, queue, consumer }))
    }
  })

  /** pgq's batch functions return one row of nulls when there is no batch: no row for us. */
  const nextBatchRow = Effect.fnUntraced(function*(
    operation: string,
    queue: string,
    consumer: string,
    statement: Effect.Effect<ReadonlyArray<unknown>, SqlError>
  ) {
    yield* validateQueueConsumer(queue, consumer)
    return yield* decodeNextBatch(yield* run({ operation, queue, consumer }, statement))
  })

  const nextBatchInfo = Effect.fn("Pgq.nextBatchInfo")((queue: string, consumer: string) =>
    nextBatchRow(
      "Pgq.nextBatchInfo",
      queue,
      consumer,
      sql.unsafe(
        `select ${NEXT_BATCH_COLUMNS} from pgq.next_batch_info($1, $2) where batch_id is not null`,
        [queue, consumer]
      )
    )
  )

  const nextBatchCustom = Effect.fn("Pgq.nextBatchCustom")(
    function*(queue: string, consumer: string, conditions: BatchConditions) {
      const operation = "Pgq.nextBatchCustom"
      const minLag = yield* intervalText(operation, "minLag", conditions.minLag)
      const minInterval = yield* intervalText(operation, "minInterval", conditions.minInterval)
      const minCount = yield* minCountOf(operation, conditions.minCount)
      return yield* nextBatchRow(
        operation,
        queue,
        consumer,
        sql.unsafe(
          `select ${NEXT_BATCH_COLUMNS} from pgq.next_batch_custom($1, $2, $3::interval, $4::int4, $5::interval)
           where batch_id is not null`,
          [queue, consumer, minLag, minCount, minInterval]
        )
      )
    }
  )

  const nextBatch = Effect.fn("Pgq.nextBatch")(function*(queue: string, consumer: string) {
    yield* validateQueueConsumer(queue, consumer)
    const rows = yield* run(
      { operation: "Pgq.nextBatch", queue, consumer },
      sql`select pgq.next_batch(${queue}, ${consumer}) as r`
    )
    return yield* optionalBatchIdResult("pgq.next_batch()")(rows)
  })

  const getBatchEvents = Effect.fn("Pgq.getBatchEvents")(function*(batchId: BatchId) {
    const rows = yield* run(
      { operation: "Pgq.getBatchEvents", batchId },
      sql`select * from pgq.get_batch_events(${batchId})`.values
    )
    return fromValues(rows)
  })

  let cursorCounter = 0
  /** Cursor names are generated, never taken from input: FETCH cannot bind one. */
  const cursorName = (batchId: BatchId) => `pgq_batch_${batchId}_${++cursorCounter}`

  const validPageSize = (operation: string, argument: string, size: number) =>
    Number.isInteger(size) && size >= 1 && size <= 1_000_000
      ? Effect.void
      : Effect.fail(new InvalidArgument({ operation, argument, reason: "must be an integer from 1 to 1,000,000" }))

  /**
   * Cursors live in a transaction: outside one, the stream holds its own
   * until it ends. That reserved connection is the only one the stream uses:
   * it is never a second connection beside a caller's transaction.
   */
  const inTransaction = <A>(
    context: ErrorContext,
    stream: Effect.Effect<Stream.Stream<A, PgqError>, PgqError, Scope.Scope>
  ): Stream.Stream<A, PgqError> =>
    Stream.unwrap(Effect.gen(function*() {
      if (Option.isSome(yield* Effect.serviceOption(sql.transactionService))) return yield* stream
      const connection = yield* run(
        context,
        Effect.acquireRelease(
          Effect.tap(sql.reserve, (connection) => connection.executeRaw("begin", [])),
          (connection) => Effect.ignore(connection.executeRaw("rollback", []))
        )
      )
      return Stream.provideService(
        yield* Effect.provideService(stream, sql.transactionService, [connection, 1]),
        sql.transactionService,
        [connection, 1]
      )
    }))

  /** Pages of `fetch` from an open cursor, until a short page. */
  const fetchPages = (context: ErrorContext, cursor: string, pageSize: number) =>
    Stream.paginate(undefined, () =>
      Effect.map(
        run(context, sql.unsafe(`fetch ${pageSize} from ${cursor}`).valuesUnprepared),
        (rows) => [fromValues(rows), rows.length < pageSize ? Option.none<undefined>() : Option.some(undefined)] as const
      ))

  const getBatchCursor = (batchId: BatchId, options?: CursorOptions): Stream.Stream<PgqEvent, PgqError> => {
    const operation = "Pgq.getBatchCursor"
    const context = { operation, batchId }
    const fetchSize = options?.fetchSize ?? DEFAULT_FETCH_SIZE
    return inTransaction(
      context,
      Effect.gen(function*() {
        yield* validPageSize(operation, "fetchSize", fetchSize)
        const cursor = cursorName(batchId)
        const first = yield* run(
          context,
          options?.extraWhere === undefined
            ? sql`select * from pgq.get_batch_cursor(${batchId}, ${cursor}, ${fetchSize})`.values
            : sql`select * from pgq.get_batch_cursor(${batchId}, ${cursor}, ${fetchSize}, ${options.extraWhere})`.values
        )
        const head = Stream.fromArray(fromValues(first))
        // The cursor is not closed: the transaction's end closes it, without a round trip.
        return first.length < fetchSize ? head : Stream.concat(head, fetchPages(context, cursor, fetchSize))
      })
    )
  }

  /**
   * Runs pgq's batch query (it ends with "order by 1": ev_id, unique within a
   * batch): one query when the batch fits a page, else the first page and a
   * cursor for the rest. Not prepared: the text changes with every batch.
   */
  const eventsOfQuery = Effect.fnUntraced(
    function*(context: ErrorContext, batchId: BatchId, query: string, pageSize: number) {
      const first = yield* run(context, sql.unsafe(`${query} limit ${pageSize + 1}`).valuesUnprepared)
      if (first.length <= pageSize) return { firstPage: fromValues(first), rest: Stream.empty }
      const head = first.slice(0, pageSize)
      const cursor = cursorName(batchId)
      yield* run(
        context,
        sql.unsafe(
          `declare ${cursor} no scroll cursor for select * from (${query}) e where ev_id > ${
            head[pageSize - 1]![0] as bigint
          }::int8 order by ev_id`
        ).unprepared
      )
      return { firstPage: fromValues(head), rest: fetchPages(context, cursor, pageSize) }
    }
  )

  const streamBatchEvents = (
    batchId: BatchId,
    options?: { readonly pageSize?: number | undefined }
  ): Stream.Stream<PgqEvent, PgqError> => {
    const operation = "Pgq.streamBatchEvents"
    const context = { operation, batchId }
    const pageSize = options?.pageSize ?? DEFAULT_FETCH_SIZE
    return inTransaction(
      context,
      Effect.gen(function*() {
        yield* validPageSize(operation, "pageSize", pageSize)
        const query = yield* run(context, sql`select pgq.batch_event_sql(${batchId}) as r`).pipe(
          Effect.flatMap(textResult("pgq.batch_event_sql()"))
        )
        const { firstPage, rest } = yield* eventsOfQuery(context, batchId, query, pageSize)
        return Stream.concat(Stream.fromArray(firstPage), rest)
      })
    )
  }

  const takeNextBatch = Effect.fn("Pgq.takeNextBatch")(function*(
    queue: string,
    consumer: string,
    options?: { readonly conditions?: BatchConditions | undefined; readonly pageSize?: number | undefined }
  ) {
    const operation = "Pgq.takeNextBatch"
    yield* validateQueueConsumer(queue, consumer)
    const pageSize = options?.pageSize ?? DEFAULT_FETCH_SIZE
    yield* validPageSize(operation, "pageSize", pageSize)
    const conditions = options?.conditions
    const source = conditions === undefined
      ? { text: "pgq.next_batch_info($1, $2)", params: [queue, consumer] }
      : {
        text: "pgq.next_batch_custom($1, $2, $3::interval, $4::int4, $5::interval)",
        params: [
          queue,
          consumer,
          yield* intervalText(operation, "minLag", conditions.minLag),
          yield* minCountOf(operation, conditions.minCount),
          yield* intervalText(operation, "minInterval", conditions.minInterval)
        ]
      }
    const rows = yield* run(
      { operation, queue, consumer },
      sql.unsafe(
        `select ${NEXT_BATCH_COLUMNS}, pgq.batch_event_sql(b.batch_id) as query
         from ${source.text} b where b.batch_id is not null`,
        source.params
      )
    )
    const found = yield* decodeNextBatch(rows)
    if (Option.isNone(found)) return Option.none<OpenBatch>()
    const info = found.value
    const { query } = yield* decodeBatchQuery(rows)
    const context = { operation, batchId: info.batchId }
    const { firstPage, rest } = yield* eventsOfQuery(context, info.batchId, query, pageSize)
    return Option.some<OpenBatch>({ info, firstPage, rest, events: Stream.concat(Stream.fromArray(firstPage), rest) })
  })

  const eventRetry = Effect.fn("Pgq.eventRetry")(
    function*(batchId: BatchId, eventId: EventId, retryAfter: Duration.Input | DateTime.DateTime) {
      const context = { operation: "Pgq.eventRetry", batchId, eventId }
      const rows = yield* (DateTime.isDateTime(retryAfter)
        ? run(
          context,
          sql`select pgq.event_retry(${batchId}, ${eventId}, ${DateTime.toDateUtc(retryAfter)}::timestamptz) as r`
        )
        : Effect.flatMap(
          wholeSeconds(context.operation, retryAfter),
          (seconds) => run(context, sql`select pgq.event_retry(${batchId}, ${eventId}, ${seconds}::int4) as r`)
        ))
      if ((yield* int4Result("pgq.event_retry()")(rows)) !== 1) {
        return yield* new BatchNotFound({ operation: context.operation, batchId })
      }
    }
  )

  const batchRetry = Effect.fn("Pgq.batchRetry")(function*(batchId: BatchId, retryAfter: Duration.Input) {
    const context = { operation: "Pgq.batchRetry", batchId }
    const seconds = yield* wholeSeconds(context.operation, retryAfter)
    const rows = yield* run(context, sql`select pgq.batch_retry(${batchId}, ${seconds}::int4) as r`)
    return yield* int4Result("pgq.batch_retry()")(rows)
  })

  const finishBatch = Effect.fn("Pgq.finishBatch")(function*(batchId: BatchId) {
    const rows = yield* run({ operation: "Pgq.finishBatch", batchId }, sql`select pgq.finish_batch(${batchId}) as r`)
    // pgq only warns about an unknown batch and returns 0.
    if ((yield* int4Result("pgq.finish_batch()")(rows)) !== 1) {
      return yield* new BatchNotFound({ operation: "Pgq.finishBatch", batchId })
    }
  })

  const getQueueInfo = Effect.fn("Pgq.getQueueInfo")(function*(queue: string) {
    yield* validateQueue(queue)
    const operation = "Pgq.getQueueInfo"
    const rows = yield* run(
      { operation, queue },
      sql.unsafe(`select ${QUEUE_INFO_COLUMNS} from pgq.get_queue_info($1)`, [queue])
    )
    return yield* Effect.flatMap(
      decodeQueueInfo(rows),
      Option.match({
        onNone: () => Effect.fail(new QueueNotFound({ operation, queue })),
        onSome: Effect.succeed
      })
    )
  })

  const listQueues = run(
    { operation: "Pgq.listQueues" },
    sql.unsafe(`select ${QUEUE_INFO_COLUMNS} from pgq.get_queue_info() order by queue_name`)
  ).pipe(Effect.flatMap(decodeQueueInfos), Effect.withSpan("Pgq.listQueues"))

  const getConsumerInfo = Effect.fn("Pgq.getConsumerInfo")(function*(queue: string, consumer: string) {
    yield* validateQueueConsumer(queue, consumer)
    const operation = "Pgq.getConsumerInfo"
    const rows = yield* run(
      { operation, queue, consumer },
      sql.unsafe(`select ${CONSUMER_INFO_COLUMNS} from pgq.get_consumer_info($1, $2)`, [queue, consumer])
    )
    return yield* Effect.flatMap(
      decodeConsumerInfo(rows),
      Option.match({
        // pgq lists nothing for an unknown consumer and for an unknown queue alike.
        onNone: () => consumerOrQueue(new ConsumerNotRegistered({ operation, queue, consumer })),
        onSome: Effect.succeed
      })
    )
  })

  const listConsumers = Effect.fn("Pgq.listConsumers")(function*(queue?: string) {
    const operation = "Pgq.listConsumers"
    if (queue === undefined) {
      const rows = yield* run(
        { operation },
        sql.unsafe(`select ${CONSUMER_INFO_COLUMNS} from pgq.get_consumer_info() order by 1, 2`)
      )
      return yield* decodeConsumerInfos(rows)
    }
    yield* validateQueue(queue)
    const rows = yield* run(
      { operation, queue },
      sql.unsafe(`select ${CONSUMER_INFO_COLUMNS} from pgq.get_consumer_info($1) order by 2`, [queue])
    )
    return yield* decodeConsumerInfos(rows)
  })

  const getBatchInfo = Effect.fn("Pgq.getBatchInfo")(function*(batchId: BatchId) {
    const operation = "Pgq.getBatchInfo"
    const rows = yield* run(
      { operation, batchId },
      sql.unsafe(`select ${BATCH_INFO_COLUMNS} from pgq.get_batch_info($1) where queue_name is not null`, [
        batchId
      ])
    )
    return yield* Effect.flatMap(
      decodeBatchInfo(rows),
      Option.match({
        onNone: () => Effect.fail(new BatchNotFound({ operation, batchId })),
        onSome: Effect.succeed
      })
    )
  })

  const ticker = run({ operation: "Pgq.ticker" }, sql`select pgq.ticker() as r`).pipe(
    Effect.flatMap(int8Result("pgq.ticker()")),
    Effect.withSpan("Pgq.ticker")
  )

  const tickQueue = Effect.fn("Pgq.tickQueue")(function*(queue: string) {
    yield* validateQueue(queue)
    const rows = yield* run({ operation: "Pgq.tickQueue", queue }, sql`select pgq.ticker(${queue}) as r`)
    // pgq returns null when the queue needs no tick yet.
    return yield* optionalTickIdResult("pgq.ticker(queue)")(rows)
  })

  const tickExternal = Effect.fn("Pgq.tickExternal")(function*(
    queue: string,
    tick: { readonly tickId: TickId; readonly time: DateTime.DateTime; readonly eventSeq: bigint }
  ) {
    yield* validateQueue(queue)
    const rows = yield* run(
      { operation: "Pgq.tickExternal", queue },
      sql`select pgq.ticker(${queue}, ${tick.tickId}::int8, ${
        DateTime.toDateUtc(tick.time)
      }::timestamptz, ${tick.eventSeq}::int8) as r`
    )
    return yield* tickIdResult("pgq.ticker(queue, tick_id, time, event_seq)")(rows)
  })

  const forceTick = Effect.fn("Pgq.forceTick")(function*(queue: string) {
    yield* validateQueue(queue)
    const rows = yield* run({ operation: "Pgq.forceTick", queue }, sql`select pgq.force_tick(${queue}) as r`)
    // Every queue has a tick from its creation on: no tick means no queue.
    const tick = yield* optionalTickIdResult("pgq.force_tick()")(rows)
    if (Option.isNone(tick)) return yield* new QueueNotFound({ operation: "Pgq.forceTick", queue })
    return tick.value
  })

  const count = (operation: string, call: string) =>
    run({ operation }, sql.unsafe(`select ${call} as r`)).pipe(
      Effect.flatMap(int4Result(call)),
      Effect.withSpan(operation)
    )

  const maintRetryEvents = count("Pgq.maintRetryEvents", "pgq.maint_retry_events()")
  const maintRotateTablesStep2 = count("Pgq.maintRotateTablesStep2", "pgq.maint_rotate_tables_step2()")
  const upgradeSchema = count("Pgq.upgradeSchema", "pgq.upgrade_schema()")

  const maintRotateTablesStep1 = Effect.fn("Pgq.maintRotateTablesStep1")(function*(queue: string) {
    yield* validateQueue(queue)
    const rows = yield* run(
      { operation: "Pgq.maintRotateTablesStep1", queue },
      sql`select pgq.maint_rotate_tables_step1(${queue}) as r`
    )
    return yield* int4Result("pgq.maint_rotate_tables_step1()")(rows)
  })

  const maintTablesToVacuum = run(
    { operation: "Pgq.maintTablesToVacuum" },
    sql`select t from pgq.maint_tables_to_vacuum() t`
  ).pipe(
    Effect.flatMap(decodeTablesToVacuum),
    Effect.map((rows) => rows.map((row) => row.t)),
    Effect.withSpan("Pgq.maintTablesToVacuum")
  )

  const maintOperations = run(
    { operation: "Pgq.maintOperations" },
    sql`select func_name as "funcName", func_arg as "funcArg" from pgq.maint_operations()`
  ).pipe(Effect.flatMap(decodeMaintOperations), Effect.withSpan("Pgq.maintOperations"))

  const grantPerms = Effect.fn("Pgq.grantPerms")(function*(queue: string) {
    yield* validateQueue(queue)
    yield* run({ operation: "Pgq.grantPerms", queue }, sql`select pgq.grant_perms(${queue})`)
  })

  const tuneStorage = Effect.fn("Pgq.tuneStorage")(function*(queue: string) {
    yield* validateQueue(queue)
    yield* run({ operation: "Pgq.tuneStorage", queue }, sql`select pgq.tune_storage(${queue})`)
  })

  const eventRetryRaw = Effect.fn("Pgq.eventRetryRaw")(function*(
    queue: string,
    consumer: string,
    event: RetryRawEvent
  ) {
    yield* validateQueueConsumer(queue, consumer)
    const rows = yield* run(
      { operation: "Pgq.eventRetryRaw", queue, consumer, eventId: event.id },
      sql`select pgq.event_retry_raw(${queue}, ${consumer}, ${
        DateTime.toDateUtc(event.retryAfter)
      }::timestamptz, ${event.id}::int8, ${DateTime.toDateUtc(event.time)}::timestamptz, ${event.retry}::int4, ${
        event.type
      }, ${event.data}, ${event.extra1}, ${event.extra2}, ${event.extra3}, ${event.extra4}) as r`
    )
    return yield* eventIdResult("pgq.event_retry_raw()")(rows)
  })

  return Pgq.of({
    version,
    createQueue,
    dropQueue,
    setQueueConfig,
    currentEventTable,
    insertEvent,
    registerConsumer,
    registerConsumerAt,
    unregisterConsumer,
    nextBatch,
    nextBatchInfo,
    nextBatchCustom,
    getBatchEvents,
    getBatchCursor,
    streamBatchEvents,
    takeNextBatch,
    eventRetry,
    batchRetry,
    finishBatch,
    getQueueInfo,
    listQueues,
    getConsumerInfo,
    listConsumers,
    getBatchInfo,
    ticker,
    tickQueue,
    tickExternal,
    forceTick,
    maintRetryEvents,
    maintRotateTablesStep1,
    maintRotateTablesStep2,
    maintTablesToVacuum,
    maintOperations,
    grantPerms,
    tuneStorage,
    upgradeSchema,
    eventRetryRaw
  })
}
