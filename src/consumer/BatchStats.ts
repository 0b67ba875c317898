/**
 * What happened to one batch.
 *
 * @since 0.1.0
 */
import { Data, type Option } from "effect"
import type { BatchId } from "../api/Ids.ts"

/**
 * @since 0.1.0
 * @category models
 */
export class BatchStats extends Data.Class<{
  readonly batchId: BatchId
  readonly events: number
  readonly ok: number
  readonly failed: number
  readonly retried: number
  /** Set when a handler returned `AbortBatch`: nothing was committed. */
  readonly aborted: Option.Option<string>
  /**
   * True when a handler that ran SQL failed, so the batch was rolled back and
   * taken again (only handlers that ran SQL were run again).
   */
  readonly replayed: boolean
}> {}
