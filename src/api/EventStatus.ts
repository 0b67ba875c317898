/**
 * Where one event stands for each consumer of its queue: the per-handler
 * view a home-made job table gives (pending, in progress, needs retry, done,
 * error), computed from pgq's own bookkeeping instead of a status column.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { findAll, findOneOption } from "../internal/rows.ts"
import { makeSqlRunner } from "../internal/sqlRunner.ts"
import { validateQueue } from "../internal/validateName.ts"
import type { EventId } from "./Ids.ts"
import { type PgqError, QueueNotFound } from "./PgqError.ts"

/**
 * - `pending`: not yet in a batch this consumer has taken;
 * - `processing`: in the consumer's open batch;
 * - `done`: in a batch the consumer finished, or produced before the
 *   consumer was registered (it will never see it);
 * - `retry`: waiting in pgq's retry queue for this consumer;
 * - `failed`: in the failed-event store for this consumer;
 * - `unknown`: not in the queue's tables (never produced, or rotated away
 *   after every consumer finished it).
 *
 * @since 0.1.0
 * @category models
 */
export const EventState = Schema.Literals(["pending", "processing", "done", "retry", "failed", "unknown"])
/**
 * @since 0.1.0
 * @category models
 */
export type EventState = typeof EventState.Type

/**
 * @since 0.1.0
 * @category models
 */
export class ConsumerEventStatus extends Schema.Class<ConsumerEventStatus>("effect-pgq/ConsumerEventStatus")({
  consumer: Schema.String,
  state: EventState,
  /** pgq's retry count for this consumer's copy of the event, if it was retried. */
  retry: Schema.NullOr(Schema.Number)
}) {}

/**
 * @since 0.1.0
 * @category services
 */
export class EventStatus extends Context.Service<EventStatus, {
  /** The event's state for every consumer of the queue. Scans the queue's event tables for the id. */
  readonly forEvent: (queue: string, eventId: EventId) => Effect.Effect<ReadonlyArray<ConsumerEventStatus>, PgqError>
}>()("effect-pgq/api/EventStatus") {
  /**
   * @since 0.1.0
   * @category layers
   */
  static readonly layer: Layer.Layer<EventStatus, never, SqlClient.SqlClient> = Layer.effect(
    EventStatus,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return make(sql)
    })
  )
}

const decodeStatuses = findAll(ConsumerEventStatus)
const decodeEventTable = findOneOption(Schema.Struct({ table: Schema.String }))

/** pgq names a queue's parent event table `pgq.event_<queue id>`. */
const EVENT_TABLE = /^pgq\.event_\d+$/

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = (sql: SqlClient.SqlClient): EventStatus["Service"] => {
  const run = makeSqlRunner(sql)

  const forEvent = Effect.fn("EventStatus.forEvent")(function*(queue: string, eventId: EventId) {
    yield* validateQueue(queue)
    const context = { operation: "EventStatus.forEvent", queue, eventId }
    return yield* run(context, Effect.gen(function*() {
      const found = yield* Effect.flatMap(
        sql`select queue_data_pfx as "table" from pgq.queue where queue_name = ${queue}`,
        decodeEventTable
      )
      if (Option.isNone(found) || !EVENT_TABLE.test(found.value.table)) {
        return yield* new QueueNotFound({ operation: context.operation, queue })
      }
      // The parent table covers every rotation of the queue. A consumer's own
      // retry copy (ev_owner = its subscription) wins over the original.
      const rows = yield* sql`
        select c.co_name as consumer,
          case
            when exists (select 1 from effect_pgq.failed_event f
                         where f.queue_name = q.queue_name and f.consumer_name = c.co_name and f.ev_id = ${eventId})
              then 'failed'
            when exists (select 1 from pgq.retry_queue r
                         where r.ev_queue = q.queue_id and r.ev_owner = s.sub_id and r.ev_id = ${eventId})
              then 'retry'
            when e.ev_txid is null then 'unknown'
            when txid_visible_in_snapshot(e.ev_txid, last_tick.tick_snapshot) then 'done'
            when s.sub_batch is not null and txid_visible_in_snapshot(e.ev_txid, next_tick.tick_snapshot)
              then 'processing'
            else 'pending'
          end as state,
          coalesce((select r.ev_retry from pgq.retry_queue r
                    where r.ev_queue = q.queue_id and r.ev_owner = s.sub_id and r.ev_id = ${eventId}), e.ev_retry)
            as retry
        from pgq.queue q
          join pgq.subscription s on s.sub_queue = q.queue_id
          join pgq.consumer c on c.co_id = s.sub_consumer
          left join pgq.tick last_tick on last_tick.tick_queue = q.queue_id and last_tick.tick_id = s.sub_last_tick
          left join pgq.tick next_tick on next_tick.tick_queue = q.queue_id and next_tick.tick_id = s.sub_next_tick
          left join lateral (
            select ev.ev_txid, ev.ev_retry from ${sql.literal(found.value.table)} ev
            where ev.ev_id = ${eventId} and (ev.ev_owner is null or ev.ev_owner = s.sub_id)
            order by ev.ev_owner nulls last, ev.ev_txid desc limit 1
          ) e on true
        where q.queue_name = ${queue}
        order by c.co_name`
      return yield* decodeStatuses(rows)
    }))
  })

  return EventStatus.of({ forEvent })
}
