/**
 * The failed-event store (dead-letter queue). PgQ 3 has none, so effect-pgq
 * keeps failed events in its own table, `effect_pgq.failed_event`, per queue
 * and consumer, and re-delivers them on request with `pgq.event_retry_raw`:
 * only to the consumer they failed for.
 *
 * Storing runs in the caller's transaction, so a consumer stores a failed
 * event atomically with finishing its batch.
 *
 * @since 0.1.0
 */
import { Context, DateTime, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { findAll, findOne } from "../internal/rows.ts"
import { makeSqlRunner } from "../internal/sqlRunner.ts"
import { validateQueueConsumer } from "../internal/validateName.ts"
import type { EventId } from "./Ids.ts"
import { FailedEventNotFound, InvalidArgument, type PgqError } from "./PgqError.ts"
import { PgqEvent } from "./PgqEvent.ts"

/**
 * A stored failed event.
 *
 * @since 0.1.0
 * @category models
 */
export class FailedEvent extends Schema.Class<FailedEvent>("effect-pgq/FailedEvent")({
  queue: Schema.String,
  consumer: Schema.String,
  event: PgqEvent,
  failedAt: Schema.DateTimeUtcFromDate,
  reason: Schema.String
}) {}

/**
 * One event id, or every failed event of the consumer.
 *
 * @since 0.1.0
 * @category models
 */
export type FailedEventTarget = EventId | "all"

/**
 * @since 0.1.0
 * @category models
 */
export interface ListOptions {
  /** Page size, 1 to 10,000. Default 100. */
  readonly limit?: number | undefined
  /** Return events with a greater id: pass the last id of the previous page. */
  readonly afterId?: EventId | undefined
}

/**
 * @since 0.1.0
 * @category services
 */
export class FailedEvents extends Context.Service<FailedEvents, {
  /** Stores (or replaces) a failed event. */
  readonly store: (queue: string, consumer: string, event: PgqEvent, reason: string) => Effect.Effect<void, PgqError>
  /** A page of failed events, oldest id first. */
  readonly list: (
    queue: string,
    consumer: string,
    options?: ListOptions
  ) => Effect.Effect<ReadonlyArray<FailedEvent>, PgqError>
  readonly count: (queue: string, consumer: string) => Effect.Effect<number, PgqError>
  /** Deletes one failed event (FailedEventNotFound if absent) or all; returns how many. */
  readonly delete: (queue: string, consumer: string, target: FailedEventTarget) => Effect.Effect<number, PgqError>
  /**
   * Re-delivers one failed event (or all) to this consumer only, with a fresh
   * retry count, and removes it from the store; returns how many. The events
   * reach the queue at the next retry maintenance (`pgq.maint_retry_events`).
   * Inside a caller's transaction a queue that is gone may be reported as
   * `ConsumerNotRegistered` (see `Pgq`); outside one, as `QueueNotFound`.
   */
  readonly retry: (queue: string, consumer: string, target: FailedEventTarget) => Effect.Effect<number, PgqError>
}>()("effect-pgq/api/FailedEvents") {
  /**
   * @since 0.1.0
   * @category layers
   */
  static readonly layer: Layer.Layer<FailedEvents, never, SqlClient.SqlClient> = Layer.effect(
    FailedEvents,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return make(sql)
    })
  )
}

const decodeFailedEventList = findAll(FailedEvent)

const decodeFailedEvents = (rows: ReadonlyArray<FailedEventRow>) =>
  decodeFailedEventList(rows.map((row) => ({
    queue: row.queue_name,
    consumer: row.consumer_name,
    failedAt: row.failed_at,
    reason: row.failed_reason,
    event: {
      id: row.ev_id,
      time: row.ev_time,
      txid: row.ev_txid,
      retry: row.ev_retry,
      type: row.ev_type,
      data: row.ev_data,
      extra1: row.ev_extra1,
      extra2: row.ev_extra2,
      extra3: row.ev_extra3,
      extra4: row.ev_extra4
    }
  })))

/** `count(*)`: one row, always. */
const decodeCount = findOne(Schema.Struct({ n: Schema.BigInt }))

interface FailedEventRow {
  readonly queue_name: string
  readonly consumer_name: string
  readonly failed_at: unknown
  readonly failed_reason: string
  readonly ev_id: unknown
  readonly ev_time: unknown
  readonly ev_txid: unknown
  readonly ev_retry: unknown
  readonly ev_type: unknown
  readonly ev_data: unknown
  readonly ev_extra1: unknown
  readonly ev_extra2: unknown
  readonly ev_extra3: unknown
  readonly ev_extra4: unknown
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = (sql: SqlClient.SqlClient): FailedEvents["Service"] => {
  const run = makeSqlRunner(sql)
  const byTarget = (target: FailedEventTarget) => target === "all" ? sql`` : sql`and ev_id = ${target}`
  const after = (afterId: EventId | undefined) => afterId === undefined ? sql`` : sql`and ev_id > ${afterId}::int8`

  const store = Effect.fn("FailedEvents.store")(
    function*(queue: string, consumer: string, event: PgqEvent, reason: string) {
      yield* validateQueueConsumer(queue, consumer)
      yield* run(
        { operation: "FailedEvents.store", queue, consumer, eventId: event.id },
        sql`insert into effect_pgq.failed_event (queue_name, consumer_name, ev_id, ev_time, ev_txid, ev_retry,
            ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4, failed_reason)
          values (${queue}, ${consumer}, ${event.id}, ${DateTime.toDateUtc(event.time)}::timestamptz,
            ${event.txid}::int8, ${event.retry}::int4, ${event.type}, ${event.data}, ${event.extra1}, ${event.extra2},
            ${event.extra3}, ${event.extra4}, ${reason})
          on conflict (queue_name, consumer_name, ev_id) do update
            set ev_retry = excluded.ev_retry, failed_at = now(), failed_reason = excluded.failed_reason`
      )
    }
  )

  const list = Effect.fn("FailedEvents.list")(function*(queue: string, consumer: string, options?: ListOptions) {
    yield* validateQueueConsumer(queue, consumer)
    const limit = options?.limit ?? 100
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
      return yield* new InvalidArgument({
        operation: "FailedEvents.list",
        argument: "limit",
        reason: "must be an integer from 1 to 10,000"
      })
    }
    const rows = yield* run(
      { operation: "FailedEvents.list", queue, consumer },
      sql<FailedEventRow>`select * from effect_pgq.failed_event
        where queue_name = ${queue} and consumer_name = ${consumer} ${after(options?.afterId)}
        order by ev_id limit ${limit}`
    )
    return yield* decodeFailedEvents(rows)
  })

  const count = Effect.fn("FailedEvents.count")(function*(queue: string, consumer: string) {
    yield* validateQueueConsumer(queue, consumer)
    const rows = yield* run(
      { operation: "FailedEvents.count", queue, consumer },
      sql`select count(*) as n from effect_pgq.failed_event
        where queue_name = ${queue} and consumer_name = ${consumer}`
    )
    return Number((yield* decodeCount("count(effect_pgq.failed_event)")(rows)).n)
  })

  /** A single id that matched nothing is an error; "all" matching nothing is zero. */
  const expectFound = (operation: string, queue: string, consumer: string, target: FailedEventTarget, n: number) =>
    n === 0 && target !== "all"
      ? Effect.fail(new FailedEventNotFound({ operation, queue, consumer, eventId: target }))
      : Effect.succeed(n)

  const delete_ = Effect.fn("FailedEvents.delete")(
    function*(queue: string, consumer: string, target: FailedEventTarget) {
      yield* validateQueueConsumer(queue, consumer)
      const operation = "FailedEvents.delete"
      const rows = yield* run(
        { operation, queue, consumer },
        sql`with gone as (
            delete from effect_pgq.failed_event
            where queue_name = ${queue} and consumer_name = ${consumer} ${byTarget(target)}
            returning 1)
          select count(*) as n from gone`
      )
      const { n } = yield* decodeCount("count(deleted failed events)")(rows)
      return yield* expectFound(operation, queue, consumer, target, Number(n))
    }
  )

  const retry = Effect.fn("FailedEvents.retry")(
    function*(queue: string, consumer: string, target: FailedEventTarget) {
      yield* validateQueueConsumer(queue, consumer)
      const operation = "FailedEvents.retry"
      // One statement: the rows leave the store only if every re-insert succeeds.
      const rows = yield* run(
        { operation, queue, consumer },
        sql`with moved as (
            delete from effect_pgq.failed_event
            where queue_name = ${queue} and consumer_name = ${consumer} ${byTarget(target)}
            returning *)
          select count(pgq.event_retry_raw(queue_name, consumer_name, now(), ev_id, ev_time, 0,
            ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4)) as n
          from moved`
      )
      const { n } = yield* decodeCount("count(pgq.event_retry_raw())")(rows)
      return yield* expectFound(operation, queue, consumer, target, Number(n))
    }
  )

  return FailedEvents.of({ store, list, count, delete: delete_, retry })
}

