/**
 * Queue state as reported by `pgq.get_queue_info`.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { TickId } from "./Ids.ts"

/**
 * @since 0.1.0
 * @category models
 */
export class QueueInfo extends Schema.Class<QueueInfo>("effect-pgq/QueueInfo")({
  queueName: Schema.String,
  /** Number of event tables the queue rotates through. */
  ntables: Schema.Number,
  curTable: Schema.Number,
  rotationPeriod: Schema.DurationFromMillis,
  switchTime: Schema.DateTimeUtcFromDate,
  externalTicker: Schema.Boolean,
  tickerPaused: Schema.Boolean,
  tickerMaxCount: Schema.Number,
  tickerMaxLag: Schema.DurationFromMillis,
  tickerIdlePeriod: Schema.DurationFromMillis,
  /** Time since the last tick. */
  tickerLag: Schema.NullOr(Schema.DurationFromMillis),
  /** Event rate between the last two ticks, when known. */
  evPerSec: Schema.NullOr(Schema.Number),
  /** Events inserted since the last tick. */
  evNew: Schema.BigInt,
  lastTickId: Schema.NullOr(TickId)
}) {}
