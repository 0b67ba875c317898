/**
 * Turns the database's failures into effect-pgq's typed errors.
 *
 * pgq reports most problems with `RAISE EXCEPTION '<text>'` (SQLSTATE P0001),
 * so the texts below are pgq 3.5's own. A typed error is built only when the
 * operation knows its subject (the queue of `QueueNotFound`, the batch of
 * `BatchNotFound`…); anything else keeps its SQLSTATE and message in a
 * `PgqSqlError`, so no error ever names a queue or batch it made up.
 *
 * @since 0.1.0
 */
import { Predicate } from "effect"
import type { SqlError } from "effect/sql/SqlError"
import {
  BatchNotFound,
  ConsumerNotRegistered,
  EventNotFound,
  InvalidArgument,
  type PgqError,
  PgqNotInstalled,
  PgqSqlError,
  QueueHasConsumers,
  QueueNotFound
} from "../api/PgqError.ts"

/**
 * What the failing operation was about, so the error can say it. Leave out
 * what the operation does not know: the matching typed error is then not
 * built, and the failure stays a `PgqSqlError` with pgq's own message.
 *
 * @since 0.1.0
 * @category models
 */
export interface ErrorContext {
  readonly operation: string
  readonly queue?: string | undefined
  readonly consumer?: string | undefined
  readonly batchId?: bigint | undefined
  readonly eventId?: bigint | undefined
}

/**
 * SQLSTATE and message of the server's error, when the failure came from the server.
 *
 * @since 0.1.0
 * @category utils
 */
export const serverError = (error: SqlError): { readonly code: string | undefined; readonly message: string } => {
  const cause: unknown = error.reason.cause
  // Only PostgreSQL's five-character SQLSTATEs: a socket error's code (ECONNREFUSED) is not one.
  const code = Predicate.hasProperty(cause, "code") && Predicate.isString(cause.code) && SQLSTATE.test(cause.code)
    ? cause.code
    : undefined
  const message = Predicate.hasProperty(cause, "message") && Predicate.isString(cause.message)
    ? cause.message
    : error.reason.message
  return { code, message }
}

const SQLSTATE = /^[0-9A-Z]{5}$/

const RETRYABLE_REASONS = new Set(["ConnectionError", "DeadlockError", "SerializationError", "LockTimeoutError"])

/**
 * Failures that say nothing about the statement: a lost or refused
 * connection (08…), a server shutting down or restarting (57P01–57P03),
 * too many connections (53300), a deadlock or serialization failure.
 */
const isRetryableState = (code: string | undefined): boolean =>
  code !== undefined &&
  (code.startsWith("08") || /^57P0[123]$/.test(code) || code === "53300" || code === "40001" || code === "40P01")

/** What one of pgq's RAISE texts is about. */
type PgqComplaint = "queue" | "consumer" | "batch" | "event" | "queue has consumers" | "setting"

const complaintOf = (message: string): PgqComplaint | undefined => {
  if (
    /^(no such (event )?queue|event queue not found|event queue not created yet|queue not found)$/i.test(message) ||
    message.startsWith("queue not found or ticker disabled")
  ) return "queue"
  if (message.startsWith("Not subscriber to queue") || message === "consumer not registered") return "consumer"
  if (
    message === "batch not found" || message.startsWith("batch_retry: batch") ||
    message.startsWith("Cannot find data for batch")
  ) return "batch"
  if (message === "event not found") return "event"
  if (message === "cannot drop queue, consumers still attached") return "queue has consumers"
  if (message.startsWith("cannot change parameter")) return "setting"
  return undefined
}

/** The typed error for pgq's complaint, when the context knows everything it names. */
const complaintError = (
  complaint: PgqComplaint,
  message: string,
  { batchId, consumer, eventId, operation, queue }: ErrorContext
): PgqError | undefined => {
  switch (complaint) {
    case "queue":
      return queue === undefined ? undefined : new QueueNotFound({ operation, queue })
    case "consumer":
      return queue === undefined || consumer === undefined
        ? undefined
        : new ConsumerNotRegistered({ operation, queue, consumer })
    case "batch":
      return batchId === undefined ? undefined : new BatchNotFound({ operation, batchId })
    case "event":
      return batchId === undefined || eventId === undefined
        ? undefined
        : new EventNotFound({ operation, batchId, eventId })
    case "queue has consumers":
      return queue === undefined ? undefined : new QueueHasConsumers({ operation, queue })
    case "setting":
      return new InvalidArgument({ operation, argument: "queue setting", reason: message })
  }
}

/**
 * @since 0.1.0
 * @category utils
 */
export const mapSqlError = (error: SqlError, context: ErrorContext): PgqError => {
  const { code, message } = serverError(error)
  const { operation } = context

  if (isPgqMissing(code, message)) return new PgqNotInstalled({ operation, detail: message })

  // pgq's C functions (insert_event_raw) raise with XX000, its PL/pgSQL ones with P0001.
  if (code === "P0001" || code === "XX000") {
    const complaint = complaintOf(message)
    const typed = complaint === undefined ? undefined : complaintError(complaint, message, context)
    if (typed !== undefined) return typed
  }
  if (code === "22007" || code === "22008" || code === "22P02" || code === "22023") {
    return new InvalidArgument({ operation, argument: "value", reason: message })
  }
  return new PgqSqlError({
    operation,
    sqlState: code,
    detail: message,
    isRetryable: RETRYABLE_REASONS.has(error.reason._tag) || isRetryableState(code),
    cause: error
  })
}

/**
 * The extension's files are missing on the server, the database has no
 * `pgq` schema, or a `pgq.*` function or table is not there.
 */
const isPgqMissing = (code: string | undefined, message: string): boolean =>
  (code === "58P01" && message.includes("pgq.control")) ||
  (code === "3F000" && /"(pgq|effect_pgq)"/.test(message)) ||
  ((code === "42883" || code === "42P01") && /\b(pgq|effect_pgq)\./.test(message))
