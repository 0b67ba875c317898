/**
 * An event as a consumer sees it in a batch.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
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
export class PgqEvent extends Schema.Class<PgqEvent>("effect-pgq/PgqEvent")({
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
}) {}
