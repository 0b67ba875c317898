/**
 * An event as a consumer sees it in a batch.
 *
 * @since 0.1.0
 */
import { DateTime, Schema } from "effect"
import { EventId } from "./Ids.ts"

/**
 * One row of `pgq.get_batch_events` / `pgq.get_batch_cursor`.
 *
 * `retry` is how many times the event was retried (null on first delivery);
 * `type`, `data` and the four `extra` fields are what the producer wrote.
 *
 * @since 0.1.0
 * @category models
 */
export const PgqEvent = Schema.Struct({
  id: EventId,
  time: Schema.DateTimeUtcFromDate,
  txid: Schema.NullOr(Schema.BigInt),
  retry: Schema.NullOr(Schema.Number),
  type: Schema.NullOr(Schema.String),
  data: Schema.NullOr(Schema.String),
  extra1: Schema.NullOr(Schema.String),
  extra2: Schema.NullOr(Schema.String),
  extra3: Schema.NullOr(Schema.String),
  extra4: Schema.NullOr(Schema.String)
}).annotate({ identifier: "PgqEvent" })

/**
 * @since 0.1.0
 * @category models
 */
export interface PgqEvent extends Schema.Schema.Type<typeof PgqEvent> {}

/**
 * pgq's event columns as the driver delivers them positionally, in pgq's
 * order: `ev_id` (bigint), `ev_time` (Date), `ev_txid` (bigint), `ev_retry`
 * (number), `ev_type`, `ev_data`, `ev_extra1` … `ev_extra4` (string). Far
 * cheaper for the driver to build than named rows, which matters per event.
 *
 * @since 0.1.0
 * @category models
 */
export type EventValues = ReadonlyArray<unknown>

/**
 * An event straight from a driver row. Events are the consumer's hot path:
 * the row's types are already those of `PgqEvent` (the tests check every
 * such event against the schema), so no per-field validation runs. Every
 * field is an own property, so a spread copy (`{ ...event, data }`) is a
 * whole event too.
 */
class RowEvent implements PgqEvent {
  readonly id: EventId
  readonly time: DateTime.Utc
  readonly txid: bigint | null
  readonly retry: number | null
  readonly type: string | null
  readonly data: string | null
  readonly extra1: string | null
  readonly extra2: string | null
  readonly extra3: string | null
  readonly extra4: string | null

  constructor(v: EventValues) {
    this.id = v[0] as EventId
    this.time = DateTime.fromDateUnsafe(v[1] as Date)
    this.txid = v[2] as bigint | null
    this.retry = v[3] as number | null
    this.type = v[4] as string | null
    this.data = v[5] as string | null
    this.extra1 = v[6] as string | null
    this.extra2 = v[7] as string | null
    this.extra3 = v[8] as string | null
    this.extra4 = v[9] as string | null
  }
}

/**
 * Builds events from positional rows (see `EventValues`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromValues = (rows: ReadonlyArray<EventValues>): Array<PgqEvent> => {
  const events = new Array<PgqEvent>(rows.length)
  for (let i = 0; i < rows.length; i++) events[i] = new RowEvent(rows[i]!)
  return events
}
