/**
 * How the batch processor gets a batch, finishes it, and where handlers do
 * their work: the parts in which the plain, remote, event-remote and
 * cooperative consumers differ. Everything else (results, isolation,
 * failure policies, spans, metrics, lifecycle events) they share.
 *
 * @since 0.2.0
 */
import { Data, type Effect, type Option } from "effect"
import type { SqlClient } from "effect/sql"
import type { NextBatch } from "../api/BatchInfo.ts"
import type { OpenBatch } from "../api/Pgq.ts"
import type { PgqError } from "../api/PgqError.ts"
import type { PgqExt } from "../api/PgqExt.ts"

/**
 * The delivery cannot go on, and is rolled back, as for AbortBatch: a
 * cooperative consumer's batch was taken over by another subconsumer.
 *
 * @since 0.2.0
 * @category errors
 */
export class DeliveryAborted extends Data.TaggedError("DeliveryAborted")<{ readonly reason: string }> {}

/**
 * The remote database of a remote consumer: handlers work in its
 * transaction, which records the batch as done and commits before the
 * queue's.
 *
 * @since 0.2.0
 * @category models
 */
export interface RemoteTarget {
  readonly sql: SqlClient.SqlClient
  readonly ext: PgqExt
  /** Under which name batches are recorded (pgq_ext's consumer id). */
  readonly consumer: string
  /** Roll back an event's remote work when its result is Failed or Retry (the event-remote consumer). */
  readonly undoFailedResults: boolean
}

/**
 * @since 0.2.0
 * @category models
 */
export interface DeliveryPlan {
  /**
   * Before each delivery, outside its transaction: makes the next batch the
   * consumer's and commits that, so the batch keeps its id if the delivery
   * is rolled back (the remote and cooperative consumers). False when no
   * batch is ready.
   */
  readonly assign?: Effect.Effect<boolean, PgqError> | undefined
  /** In the delivery's transaction: the batch and its events; none when there is no batch. */
  readonly take: Effect.Effect<Option.Option<OpenBatch>, PgqError>
  /** In the delivery's transaction, after the events: closes the batch. */
  readonly finish: (batch: NextBatch) => Effect.Effect<void, PgqError | DeliveryAborted>
  /** Runs beside the batch's events and ends the delivery (rolled back) if it fails: a heartbeat. */
  readonly watch?: ((batch: NextBatch) => Effect.Effect<never, PgqError | DeliveryAborted>) | undefined
  readonly remote?: RemoteTarget | undefined
}
