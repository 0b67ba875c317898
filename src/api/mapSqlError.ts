/**
 * Turns the database's failures into PgQ's typed errors.
 *
 * pgq reports most problems with `RAISE EXCEPTION '<text>'` (SQLSTATE P0001),
 * so the texts below are pgq 3.5's own; anything unrecognised keeps its
 * SQLSTATE and message in a `PgqSqlError`.
 *
 * @since 0.1.0
 */
import { Effect, Predicate } from "effect"
import type { SqlClient } from "effect/sql"
import { isSqlError, type SqlError } from "effect/sql/SqlError"
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
} from "./PgqError.ts"

/**
 * What the failing operation was about, so the error can say it.
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

/**
 * @since 0.1.0
 * @category utils
 */
export const mapSqlError = (error: SqlError, context: ErrorContext): PgqError => {
  const { code, message } = serverError(error)
  const { operation } = context
  const queue = context.queue ?? ""
  const batchId = context.batchId ?? -1n

  if (isPgqMissing(code, message)) return new PgqNotInstalled({ operation, detail: message })

  // pgq's C functions (insert_event_raw) raise with XX000, its PL/pgSQL ones with P0001.
  if (code === "P0001" || code === "XX000") {
    if (
      /^(no such (event )?queue|event queue not found|event queue not created yet|queue not found)$/i
        .test(message) || message.startsWith("queue not found or ticker disabled")
    ) {
      return new QueueNotFound({ operation, queue })
    }
    if (message.startsWith("Not subscriber to queue") || message === "consumer not registered") {
      return new ConsumerNotRegistered({ operation, queue, consumer: context.consumer ?? "" })
    }
    if (
      message === "batch not found" || message.startsWith("batch_retry: batch") ||
      message.startsWith("Cannot find data for batch")
    ) {
      return new BatchNotFound({ operation, batchId })
    }
    if (message === "event not found") {
      return new EventNotFound({ operation, batchId, eventId: context.eventId ?? -1n })
    }
    if (message === "cannot drop queue, consumers still attached") {
      return new QueueHasConsumers({ operation, queue })
    }
    if (message.startsWith("cannot change parameter")) {
      return new InvalidArgument({ operation, argument: "queue setting", reason: message })
    }
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

/**
 * Turns an operation's `SqlError` into the matching `PgqError`.
 *
 * @since 0.1.0
 * @category utils
 */
export const withPgqErrors = (context: ErrorContext) =>
<A, E, R>(self: Effect.Effect<A, E | SqlError, R>): Effect.Effect<A, Exclude<E, SqlError> | PgqError, R> =>
  Effect.catchIf(
    self,
    (error): error is SqlError => isSqlError(error),
    (error) => Effect.fail(mapSqlError(error, context))
  ) as Effect.Effect<A, Exclude<E, SqlError> | PgqError, R>

/**
 * pgq says "Not subscriber to queue" (or "consumer not registered") for an
 * unknown queue too. A query on a separate connection tells the two apart:
 * the caller's transaction may be aborted by now.
 *
 * @since 0.1.0
 * @category utils
 */
export const missingQueueRefiner = (sql: SqlClient.SqlClient) =>
(error: ConsumerNotRegistered): Effect.Effect<never, PgqError> =>
  Effect.scoped(
    Effect.flatMap(sql.reserve, (connection) =>
      connection.execute("select 1 from pgq.queue where queue_name = $1", [error.queue], undefined))
  ).pipe(
    Effect.matchEffect({
      onFailure: () => Effect.fail(error),
      onSuccess: (rows) =>
        Effect.fail(rows.length === 0 ? new QueueNotFound({ operation: error.operation, queue: error.queue }) : error)
    })
  )
