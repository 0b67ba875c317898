/**
 * Batch descriptions: the one `next_batch_info` hands out and the one
 * `get_batch_info` reports.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { BatchId, TickId } from "./Ids.ts"

/**
 * A batch handed to a consumer by `next_batch_info` / `next_batch_custom`.
 *
 * @since 0.1.0
 * @category models
 */
export class NextBatch extends Schema.Class<NextBatch>("effect-pgq/NextBatch")({
  batchId: BatchId,
  curTickId: TickId,
  prevTickId: TickId,
  curTickTime: Schema.DateTimeUtcFromDate,
  prevTickTime: Schema.DateTimeUtcFromDate,
  curTickEventSeq: Schema.BigInt,
  prevTickEventSeq: Schema.BigInt
}) {}

/**
 * A batch as reported by `pgq.get_batch_info`.
 *
 * @since 0.1.0
 * @category models
 */
export class BatchInfo extends Schema.Class<BatchInfo>("effect-pgq/BatchInfo")({
  queueName: Schema.String,
  consumerName: Schema.String,
  batchStart: Schema.DateTimeUtcFromDate,
  batchEnd: Schema.DateTimeUtcFromDate,
  prevTickId: TickId,
  tickId: TickId,
  /** Age of the batch's end tick. */
  lag: Schema.DurationFromMillis,
  seqStart: Schema.BigInt,
  seqEnd: Schema.BigInt
}) {}
