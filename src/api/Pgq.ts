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
import { BatchInfo, NextBatch } from "./BatchInfo.ts"
import { ConsumerInfo } from "./ConsumerInfo.ts"
import { BatchId, EventId, TickId } from "./Ids.ts"
import { type ErrorContext, missingQueueRefiner, withPgqErrors } from "./mapSqlError.ts"
import { validateName } from "./Names.ts"
import {
  BatchNotFound,
  ConsumerNotRegistered,
  InvalidArgument,
  type InvalidName,
  type PgqError,
  QueueNotFound
} from "./PgqError.ts"
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
  /** Rows fetched per round trip; memory holds at most one such page. Default 1000. */
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
   */
  readonly streamBatchEvents: (
    batchId: BatchId,
    options?: { readonly pageSize?: number | undefined }
  ) => Stream.Stream<PgqEvent, PgqError>

  /**
   * `nextBatchInfo` (or `nextBatchCustom` with conditions) and the batch's
   * events as `streamBatchEvents` gives them: the batch and its query in one
   * round trip, the first page in a second. The consumer's way to take a
   * batch; read `rest` in the same transaction.
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

const decodeOrDie = <S extends Schema.Decoder<unknown>>(schema: S) => {
  const decode = Schema.decodeUnknownEffect(schema)
  return (input: unknown): Effect.Effect<S["Type"], never, S["DecodingServices"]> => Effect.orDie(decode(input))
}

const decodeQueueInfos = decodeOrDie(Schema.Array(QueueInfo))
const decodeConsumerInfos = decodeOrDie(Schema.Array(ConsumerInfo))
const decodeNextBatch = decodeOrDie(NextBatch)
const decodeBatchInfos = decodeOrDie(Schema.Array(BatchInfo))
const decodeMaintOperations = decodeOrDie(Schema.Array(MaintOperation))

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

const DEFAULT_FETCH_SIZE = 1000

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
  const run = <A>(context: ErrorContext, effect: Effect.Effect<A, SqlError>): Effect.Effect<A, PgqError> =>
    effect.pipe(
      withPgqErrors(context),
      Effect.catchTag("ConsumerNotRegistered", (error) => refineMissingQueue(error))
    )

  const refineMissingQueue = missingQueueRefiner(sql)

  const queueName = (queue: string) => validateName("queue", queue)
  const names = (queue: string, consumer: string): Effect.Effect<void, InvalidName> =>
    Effect.andThen(validateName("queue", queue), validateName("consumer", consumer))

  const version = run(
    { operation: "Pgq.version" },
    sql<{ readonly v: string }>`select pgq.version() as v`
  ).pipe(Effect.map((rows) => rows[0]?.v ?? ""), Effect.withSpan("Pgq.version"))

  const createQueue = Effect.fn("Pgq.createQueue")(function*(queue: string) {
    yield* queueName(queue)
    const rows = yield* run(
      { operation: "Pgq.createQueue", queue },
      sql<{ readonly created: number }>`select pgq.create_queue(${queue}) as created`
    )
    return rows[0]?.created === 1
  })

  const dropQueue = Effect.fn("Pgq.dropQueue")(function*(queue: string, options?: { readonly force?: boolean }) {
    yield* queueName(queue)
    yield* run(
      { operation: "Pgq.dropQueue", queue },
      sql`select pgq.drop_queue(${queue}, ${options?.force === true})`
    )
  })

  const setQueueConfig = Effect.fn("Pgq.setQueueConfig")(
    function*(queue: string, setting: QueueSetting, value: string) {
      yield* queueName(queue)
      const rows = yield* run(
        { operation: "Pgq.setQueueConfig", queue },
        sql<{ readonly r: number }>`select pgq.set_queue_config(${queue}, ${setting}, ${value}) as r`
      )
      if (rows[0]?.r !== 1) return yield* new QueueNotFound({ operation: "Pgq.setQueueConfig", queue })
    }
  )

  const currentEventTable = Effect.fn("Pgq.currentEventTable")(function*(queue: string) {
    yield* queueName(queue)
    const rows = yield* run(
      { operation: "Pgq.currentEventTable", queue },
      sql<{ readonly t: string }>`select pgq.current_event_table(${queue}) as t`
    )
    return rows[0]?.t ?? ""
  })

  const insertEvent = Effect.fn("Pgq.insertEvent")(function*(queue: string, event: NewEvent) {
    yield* queueName(queue)
    const context = { operation: "Pgq.insertEvent", queue }
    const hasExtras = event.extra1 != null || event.extra2 != null || event.extra3 != null || event.extra4 != null
    const rows = yield* run(
      context,
      hasExtras
        ? sql<{ readonly id: bigint }>`select pgq.insert_event(${queue}, ${event.type}, ${event.data}, ${
          event.extra1 ?? null
        }, ${event.extra2 ?? null}, ${event.extra3 ?? null}, ${event.extra4 ?? null}) as id`
        : sql<{ readonly id: bigint }>`select pgq.insert_event(${queue}, ${event.type}, ${event.data}) as id`
    )
    return EventId.make(rows[0]?.id ?? -1n)
  })

  const registerConsumer = Effect.fn("Pgq.registerConsumer")(function*(queue: string, consumer: string) {
    yield* names(queue, consumer)
    const rows = yield* run(
      { operation: "Pgq.registerConsumer", queue, consumer },
      sql<{ readonly r: number }>`select pgq.register_consumer(${queue}, ${consumer}) as r`
    )
    return rows[0]?.r === 1
  })

  const registerConsumerAt = Effect.fn("Pgq.registerConsumerAt")(
    function*(queue: string, consumer: string, tickId: TickId) {
      yield* names(queue, consumer)
      const rows = yield* run(
        { operation: "Pgq.registerConsumerAt", queue, consumer },
        sql<{ readonly r: number }>`select pgq.register_consumer_at(${queue}, ${consumer}, ${tickId}) as r`
      )
      return rows[0]?.r === 1
    }
  )

  const unregisterConsumer = Effect.fn("Pgq.unregisterConsumer")(function*(queue: string, consumer: string) {
    yield* names(queue, consumer)
    const rows = yield* run(
      { operation: "Pgq.unregisterConsumer", queue, consumer },
      sql<{ readonly r: number }>`select pgq.unregister_consumer(${queue}, ${consumer}) as r`
    )
    if ((rows[0]?.r ?? 0) === 0) {
      return yield* refineMissingQueue(
        new ConsumerNotRegistered({ operation: "Pgq.unregisterConsumer", queue, consumer })
      )
    }
  })

  const nextBatchRow = (operation: string, queue: string, consumer: string, statement: Effect.Effect<ReadonlyArray<{
    readonly batchId: bigint | null
  }>, SqlError>) =>
    Effect.gen(function*() {
      yield* names(queue, consumer)
      const rows = yield* run({ operation, queue, consumer }, statement)
      const row = rows[0]
      return row === undefined || row.batchId === null ? Option.none() : Option.some(yield* decodeNextBatch(row))
    })

  const nextBatchInfo = Effect.fn("Pgq.nextBatchInfo")((queue: string, consumer: string) =>
    nextBatchRow(
      "Pgq.nextBatchInfo",
      queue,
      consumer,
      sql.unsafe(`select ${NEXT_BATCH_COLUMNS} from pgq.next_batch_info($1, $2)`, [queue, consumer])
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
          `select ${NEXT_BATCH_COLUMNS} from pgq.next_batch_custom($1, $2, $3::interval, $4::int4, $5::interval)`,
          [queue, consumer, minLag, minCount, minInterval]
        )
      )
    }
  )

  const nextBatch = Effect.fn("Pgq.nextBatch")(function*(queue: string, consumer: string) {
    yield* names(queue, consumer)
    const rows = yield* run(
      { operation: "Pgq.nextBatch", queue, consumer },
      sql<{ readonly id: bigint | null }>`select pgq.next_batch(${queue}, ${consumer}) as id`
    )
    const id = rows[0]?.id ?? null
    return id === null ? Option.none<BatchId>() : Option.some(BatchId.make(id))
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

  /** Cursors live in a transaction: outside one, the stream holds its own until it ends. */
  const inTransaction = <A>(
    context: ErrorContext,
    stream: Effect.Effect<Stream.Stream<A, PgqError>, PgqError, Scope.Scope>
  ): Stream.Stream<A, PgqError> =>
    Stream.unwrap(Effect.gen(function*() {
      if (Option.isSome(yield* Effect.serviceOption(sql.transactionService))) return yield* stream
      const connection = yield* Effect.acquireRelease(
        Effect.tap(sql.reserve, (connection) => connection.executeRaw("begin", [])),
        (connection) => Effect.ignore(connection.executeRaw("rollback", []))
      ).pipe(withPgqErrors(context))
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
  const eventsOfQuery = (context: ErrorContext, batchId: BatchId, query: string, pageSize: number) =>
    Effect.gen(function*() {
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
    })

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
        const [found] = yield* run(context, sql<{ readonly q: string }>`select pgq.batch_event_sql(${batchId}) as q`)
        const { firstPage, rest } = yield* eventsOfQuery(context, batchId, found?.q ?? "", pageSize)
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
    yield* names(queue, consumer)
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
    const context = { operation, queue, consumer }
    const rows = yield* run(
      context,
      sql.unsafe<{ readonly batchId: bigint | null; readonly query: string | null }>(
        `select ${NEXT_BATCH_COLUMNS},
          case when b.batch_id is not null then pgq.batch_event_sql(b.batch_id) end as query
         from ${source.text} b`,
        source.params
      )
    )
    const row = rows[0]
    if (row === undefined || row.batchId === null || row.query === null) return Option.none<OpenBatch>()
    const info = yield* decodeNextBatch(row)
    const { firstPage, rest } = yield* eventsOfQuery({ operation, batchId: info.batchId }, info.batchId, row.query, pageSize)
    return Option.some<OpenBatch>({ info, firstPage, rest, events: Stream.concat(Stream.fromArray(firstPage), rest) })
  })

  const eventRetry = Effect.fn("Pgq.eventRetry")(
    function*(batchId: BatchId, eventId: EventId, retryAfter: Duration.Input | DateTime.DateTime) {
      const context = { operation: "Pgq.eventRetry", batchId, eventId }
      const rows = yield* (DateTime.isDateTime(retryAfter)
        ? run(
          context,
          sql<{ readonly r: number }>`select pgq.event_retry(${batchId}, ${eventId}, ${
            DateTime.toDateUtc(retryAfter)
          }::timestamptz) as r`
        )
        : Effect.flatMap(
          wholeSeconds(context.operation, retryAfter),
          (seconds) =>
            run(
              context,
              sql<{ readonly r: number }>`select pgq.event_retry(${batchId}, ${eventId}, ${seconds}::int4) as r`
            )
        ))
      if (rows[0]?.r !== 1) return yield* new BatchNotFound({ operation: context.operation, batchId })
    }
  )

  const batchRetry = Effect.fn("Pgq.batchRetry")(function*(batchId: BatchId, retryAfter: Duration.Input) {
    const context = { operation: "Pgq.batchRetry", batchId }
    const seconds = yield* wholeSeconds(context.operation, retryAfter)
    const rows = yield* run(
      context,
      sql<{ readonly r: number }>`select pgq.batch_retry(${batchId}, ${seconds}::int4) as r`
    )
    return rows[0]?.r ?? 0
  })

  const finishBatch = Effect.fn("Pgq.finishBatch")(function*(batchId: BatchId) {
    const rows = yield* run(
      { operation: "Pgq.finishBatch", batchId },
      sql<{ readonly r: number }>`select pgq.finish_batch(${batchId}) as r`
    )
    // pgq only warns about an unknown batch and returns 0.
    if (rows[0]?.r !== 1) return yield* new BatchNotFound({ operation: "Pgq.finishBatch", batchId })
  })

  const getQueueInfo = Effect.fn("Pgq.getQueueInfo")(function*(queue: string) {
    yield* queueName(queue)
    const rows = yield* run(
      { operation: "Pgq.getQueueInfo", queue },
      sql.unsafe(`select ${QUEUE_INFO_COLUMNS} from pgq.get_queue_info($1)`, [queue])
    )
    const [info] = yield* decodeQueueInfos(rows)
    if (info === undefined) return yield* new QueueNotFound({ operation: "Pgq.getQueueInfo", queue })
    return info
  })

  const listQueues = run(
    { operation: "Pgq.listQueues" },
    sql.unsafe(`select ${QUEUE_INFO_COLUMNS} from pgq.get_queue_info() order by queue_name`)
  ).pipe(Effect.flatMap(decodeQueueInfos), Effect.withSpan("Pgq.listQueues"))

  const getConsumerInfo = Effect.fn("Pgq.getConsumerInfo")(function*(queue: string, consumer: string) {
    yield* names(queue, consumer)
    const operation = "Pgq.getConsumerInfo"
    const rows = yield* run(
      { operation, queue, consumer },
      sql.unsafe(`select ${CONSUMER_INFO_COLUMNS} from pgq.get_consumer_info($1, $2)`, [queue, consumer])
    )
    const [info] = yield* decodeConsumerInfos(rows)
    if (info === undefined) {
      return yield* refineMissingQueue(new ConsumerNotRegistered({ operation, queue, consumer }))
    }
    return info
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
    yield* queueName(queue)
    const rows = yield* run(
      { operation, queue },
      sql.unsafe(`select ${CONSUMER_INFO_COLUMNS} from pgq.get_consumer_info($1) order by 2`, [queue])
    )
    return yield* decodeConsumerInfos(rows)
  })

  const getBatchInfo = Effect.fn("Pgq.getBatchInfo")(function*(batchId: BatchId) {
    const rows = yield* run(
      { operation: "Pgq.getBatchInfo", batchId },
      sql.unsafe(`select ${BATCH_INFO_COLUMNS} from pgq.get_batch_info($1) where queue_name is not null`, [
        batchId
      ])
    )
    const [info] = yield* decodeBatchInfos(rows)
    if (info === undefined) return yield* new BatchNotFound({ operation: "Pgq.getBatchInfo", batchId })
    return info
  })

  const ticker = run(
    { operation: "Pgq.ticker" },
    sql<{ readonly n: bigint | null }>`select pgq.ticker() as n`
  ).pipe(Effect.map((rows) => rows[0]?.n ?? 0n), Effect.withSpan("Pgq.ticker"))

  const tickQueue = Effect.fn("Pgq.tickQueue")(function*(queue: string) {
    yield* queueName(queue)
    const rows = yield* run(
      { operation: "Pgq.tickQueue", queue },
      sql<{ readonly t: bigint | null }>`select pgq.ticker(${queue}) as t`
    )
    const tick = rows[0]?.t ?? null
    return tick === null ? Option.none<TickId>() : Option.some(TickId.make(tick))
  })

  const tickExternal = Effect.fn("Pgq.tickExternal")(function*(
    queue: string,
    tick: { readonly tickId: TickId; readonly time: DateTime.DateTime; readonly eventSeq: bigint }
  ) {
    yield* queueName(queue)
    const rows = yield* run(
      { operation: "Pgq.tickExternal", queue },
      sql<{ readonly t: bigint }>`select pgq.ticker(${queue}, ${tick.tickId}::int8, ${
        DateTime.toDateUtc(tick.time)
      }::timestamptz, ${tick.eventSeq}::int8) as t`
    )
    return TickId.make(rows[0]?.t ?? tick.tickId)
  })

  const forceTick = Effect.fn("Pgq.forceTick")(function*(queue: string) {
    yield* queueName(queue)
    const rows = yield* run(
      { operation: "Pgq.forceTick", queue },
      sql<{ readonly t: bigint | null }>`select pgq.force_tick(${queue}) as t`
    )
    // Every queue has a tick from its creation on: no tick means no queue.
    const tick = rows[0]?.t ?? null
    if (tick === null) return yield* new QueueNotFound({ operation: "Pgq.forceTick", queue })
    return TickId.make(tick)
  })

  const scalarNumber = (operation: string, statement: Effect.Effect<ReadonlyArray<{ readonly n: number | null }>, SqlError>) =>
    run({ operation }, statement).pipe(Effect.map((rows) => rows[0]?.n ?? 0), Effect.withSpan(operation))

  const maintRetryEvents = scalarNumber("Pgq.maintRetryEvents", sql`select pgq.maint_retry_events() as n`)
  const maintRotateTablesStep2 = scalarNumber(
    "Pgq.maintRotateTablesStep2",
    sql`select pgq.maint_rotate_tables_step2() as n`
  )
  const upgradeSchema = scalarNumber("Pgq.upgradeSchema", sql`select pgq.upgrade_schema() as n`)

  const maintRotateTablesStep1 = Effect.fn("Pgq.maintRotateTablesStep1")(function*(queue: string) {
    yield* queueName(queue)
    const rows = yield* run(
      { operation: "Pgq.maintRotateTablesStep1", queue },
      sql<{ readonly n: number }>`select pgq.maint_rotate_tables_step1(${queue}) as n`
    )
    return rows[0]?.n ?? 0
  })

  const maintTablesToVacuum = run(
    { operation: "Pgq.maintTablesToVacuum" },
    sql<{ readonly t: string }>`select t from pgq.maint_tables_to_vacuum() t`
  ).pipe(Effect.map((rows) => rows.map((row) => row.t)), Effect.withSpan("Pgq.maintTablesToVacuum"))

  const maintOperations = run(
    { operation: "Pgq.maintOperations" },
    sql`select func_name as "funcName", func_arg as "funcArg" from pgq.maint_operations()`
  ).pipe(Effect.flatMap(decodeMaintOperations), Effect.withSpan("Pgq.maintOperations"))

  const grantPerms = Effect.fn("Pgq.grantPerms")(function*(queue: string) {
    yield* queueName(queue)
    yield* run({ operation: "Pgq.grantPerms", queue }, sql`select pgq.grant_perms(${queue})`)
  })

  const tuneStorage = Effect.fn("Pgq.tuneStorage")(function*(queue: string) {
    yield* queueName(queue)
    yield* run({ operation: "Pgq.tuneStorage", queue }, sql`select pgq.tune_storage(${queue})`)
  })

  const eventRetryRaw = Effect.fn("Pgq.eventRetryRaw")(function*(
    queue: string,
    consumer: string,
    event: RetryRawEvent
  ) {
    yield* names(queue, consumer)
    const rows = yield* run(
      { operation: "Pgq.eventRetryRaw", queue, consumer, eventId: event.id },
      sql<{ readonly id: bigint }>`select pgq.event_retry_raw(${queue}, ${consumer}, ${
        DateTime.toDateUtc(event.retryAfter)
      }::timestamptz, ${event.id}::int8, ${DateTime.toDateUtc(event.time)}::timestamptz, ${event.retry}::int4, ${
        event.type
      }, ${event.data}, ${event.extra1}, ${event.extra2}, ${event.extra3}, ${event.extra4}) as id`
    )
    return EventId.make(rows[0]?.id ?? event.id)
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
