/**
 * Consumer state as reported by `pgq.get_consumer_info`.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { BatchId, TickId } from "./Ids.ts"

/**
 * @since 0.1.0
 * @category models
 */
export class ConsumerInfo extends Schema.Class<ConsumerInfo>("effect-pgq/ConsumerInfo")({
  queueName: Schema.String,
  consumerName: Schema.String,
  /** Age of the newest event the consumer has finished: how far behind it is. */
  lag: Schema.NullOr(Schema.DurationFromMillis),
  /** Time since the consumer last asked for a batch. */
  lastSeen: Schema.NullOr(Schema.DurationFromMillis),
  /** The tick the consumer has finished up to; null for a cooperative subconsumer between batches. */
  lastTick: Schema.NullOr(TickId),
  /** The batch being processed, if any. */
  currentBatch: Schema.NullOr(BatchId),
  nextTick: Schema.NullOr(TickId),
  /** Events not yet seen by this consumer (an estimate, from tick sequences). */
  pendingEvents: Schema.NullOr(Schema.BigInt)
}) {}
