/**
 * The one way effect-pgq's services run a statement: the driver's `SqlError`
 * becomes a typed `PgqError` that names the operation and its subject, and a
 * `ConsumerNotRegistered` is told apart from an unknown queue where that is
 * safe (see `refineConsumerNotRegistered`).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { SqlClient } from "effect/sql"
import { isSqlError, type SqlError } from "effect/sql/SqlError"
import type { PgqError } from "../api/PgqError.ts"
import { type ErrorContext, mapSqlError } from "./mapSqlError.ts"
import { refineConsumerNotRegistered } from "./refineConsumerNotRegistered.ts"

/**
 * Runs `effect`, turning its `SqlError`s into `PgqError`s; its other
 * failures pass through unchanged.
 *
 * @since 0.1.0
 * @category models
 */
export interface SqlRunner {
  <A, E, R>(
    context: ErrorContext,
    effect: Effect.Effect<A, E | SqlError, R>
  ): Effect.Effect<A, Exclude<E, SqlError> | PgqError, R>
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const makeSqlRunner = (sql: SqlClient.SqlClient): SqlRunner => {
  const refine = refineConsumerNotRegistered(sql)
  return <A, E, R>(
    context: ErrorContext,
    effect: Effect.Effect<A, E | SqlError, R>
  ): Effect.Effect<A, Exclude<E, SqlError> | PgqError, R> =>
    // catchIf's overloads cannot narrow a generic `E | SqlError`: the result type is stated here.
    Effect.catchIf(effect, isSqlError, (error): Effect.Effect<never, PgqError> => {
      const mapped = mapSqlError(error, context)
      return mapped._tag === "ConsumerNotRegistered" ? refine(mapped) : Effect.fail(mapped)
    }) as Effect.Effect<A, Exclude<E, SqlError> | PgqError, R>
}
