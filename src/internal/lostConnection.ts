/**
 * When the connection is lost mid-transaction, the statement fails, then the
 * ROLLBACK fails too and the transaction reports that as a defect. The server
 * has rolled back already: what the caller needs is the database error
 * (retryable), not a defect.
 *
 * @since 0.2.0
 */
import { Cause, Effect } from "effect"
import { isSqlError, type SqlError } from "effect/sql/SqlError"

/**
 * For `Effect.catchCause` around a transaction: a failed ROLLBACK's `SqlError`
 * becomes the failure; any other cause passes through unchanged.
 *
 * @since 0.2.0
 * @category utils
 */
export const lostConnectionFirst = <E>(cause: Cause.Cause<E>): Effect.Effect<never, E | SqlError> => {
  if (Cause.hasInterrupts(cause)) return Effect.failCause(cause)
  for (const reason of cause.reasons) {
    if (Cause.isDieReason(reason) && isSqlError(reason.defect)) return Effect.fail(reason.defect)
  }
  return Effect.failCause(cause)
}
