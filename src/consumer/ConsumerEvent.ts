/**
 * What a consumer reports about itself while it runs, published on its
 * `events` PubSub (and written to the log) in the order it happens:
 *
 * | event | when |
 * |---|---|
 * | `consumer:started` | `run` begins |
 * | `consumer:batch:received` | a batch is taken; again, under a new batch id, for its replay (`replay: true`) |
 * | `consumer:event:retried` | after commit, per event put back for retry, with the reason when a failure decided it |
 * | `consumer:event:failed` | after commit, per event stored as failed, with the reason |
 * | `consumer:batch:finished` | the batch committed with `finish_batch` |
 * | `consumer:batch:aborted` | a handler returned `AbortBatch`: the batch was rolled back |
 * | `consumer:idle` | no batch was ready (once, until a batch comes) |
 * | `consumer:ticker:stalled` | events wait but no tick has come for `tickerStallAfter`: is a ticker running? |
 * | `consumer:connection:lost` | the database failed in a way worth retrying; `run` backs off |
 * | `consumer:connection:restored` | the first batch round trip after a loss worked |
 * | `consumer:stopping` | a stop was asked: `graceful` (finish the batch in hand) or `forced` (roll it back) |
 * | `consumer:stopped` | `run` returned |
 *
 * A consumer never waits for its observers: a subscriber that falls more
 * than the PubSub's capacity behind loses the oldest events.
 *
 * @since 0.2.0
 */
import { Data, type Duration } from "effect"
import type { BatchId, EventId } from "../api/Ids.ts"
import type { BatchStats } from "./BatchStats.ts"

/**
 * @since 0.2.0
 * @category models
 */
export type ConsumerEvent = Data.TaggedEnum<{
  "consumer:started": { readonly queue: string; readonly consumer: string }
  "consumer:batch:received": {
    readonly batchId: BatchId
    /** Taken again after a handler that ran SQL failed (see `Isolation`). */
    readonly replay: boolean
  }
  "consumer:event:retried": {
    readonly batchId: BatchId
    readonly eventId: EventId
    readonly delay: Duration.Duration
    /** Why, when the failure policy decided it; `undefined` when the handler asked for the retry. */
    readonly reason: string | undefined
  }
  "consumer:event:failed": { readonly batchId: BatchId; readonly eventId: EventId; readonly reason: string }
  "consumer:batch:finished": { readonly stats: BatchStats }
  "consumer:batch:aborted": { readonly batchId: BatchId; readonly reason: string }
  "consumer:idle": {}
  "consumer:ticker:stalled": { readonly pendingEvents: bigint; readonly tickerLag: Duration.Duration }
  "consumer:connection:lost": { readonly reason: string }
  "consumer:connection:restored": {}
  "consumer:stopping": { readonly mode: "graceful" | "forced" }
  "consumer:stopped": {}
}>

/**
 * Constructors and `$is` / `$match` for `ConsumerEvent`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const ConsumerEvent = Data.taggedEnum<ConsumerEvent>()
