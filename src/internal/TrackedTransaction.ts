/**
 * A batch's transaction on a connection that is watched: how many statements
 * ran through it, the statement that left the transaction aborted, and a
 * savepoint taken lazily, right before a handler's first statement.
 *
 * This is what lets a consumer run handlers without savepoints yet know,
 * without a round trip, which handlers wrote (only those are ever run again),
 * and tell a handler that swallowed an SQL error (the transaction is aborted:
 * PostgreSQL refuses every later statement with 25P02) from one that worked.
 *
 * @since 0.2.0
 */
import { Effect, Stream } from "effect"
import type { SqlClient } from "effect/sql"
import type { Connection } from "effect/sql/SqlConnection"
import type { SqlError } from "effect/sql/SqlError"

/**
 * @since 0.2.0
 * @category models
 */
export interface TrackedTransaction {
  /** Statements run so far (a lazy savepoint not counted). */
  readonly statements: () => number
  /** The failed statement's error while the transaction is aborted; `undefined` while it is healthy. */
  readonly abortedBy: () => SqlError | undefined
  /** Take a savepoint before the next statement, if one comes. */
  readonly armSavepoint: () => void
  /**
   * Ends what `armSavepoint` began: rolls back to the savepoint (`undo`) or
   * releases it; nothing when no statement ran, so there is nothing to undo.
   */
  readonly closeSavepoint: (undo: boolean) => Effect.Effect<void, SqlError>
}

const SAVEPOINT = "effect_pgq_event"
const ROLLBACK_TO = /^\s*rollback\s+to\s+(savepoint\s+)?/i

/**
 * Runs `use` in a transaction of `sql` on a reserved connection that is
 * tracked. Statements made through `sql` (or any service built on it) inside
 * `use` run on that connection; nested `withTransaction` and `afterCommit`
 * behave as in any transaction of `sql`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const withTrackedTransaction = <A, E, R>(
  sql: SqlClient.SqlClient,
  use: (transaction: TrackedTransaction) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError, R> =>
  Effect.scoped(Effect.flatMap(sql.reserve, (reserved) => {
    const { connection, transaction } = track(reserved)
    // `withTransaction` begins a top-level transaction (BEGIN, afterCommit,
    // COMMIT or ROLLBACK) on a connection already provided one level below
    // the top; the reservation's scope hands the connection back afterwards.
    return sql.withTransaction(use(transaction)).pipe(
      Effect.provideService(sql.transactionService, [connection, -1])
    )
  }))

const track = (inner: Connection): { readonly connection: Connection; readonly transaction: TrackedTransaction } => {
  let statements = 0
  let abortedBy: SqlError | undefined = undefined
  let armed = false
  let taken = false

  const markAborted = (error: SqlError) =>
    Effect.sync(() => {
      if (abortedBy === undefined) abortedBy = error
    })

  /** Counts the statement, takes an armed savepoint first, and watches the outcome. */
  const watch = <A>(sql: string, effect: Effect.Effect<A, SqlError>): Effect.Effect<A, SqlError> =>
    Effect.suspend(() => {
      statements++
      let watched = Effect.tapError(effect, markAborted)
      // A successful rollback to a savepoint taken before the failure heals the transaction.
      if (ROLLBACK_TO.test(sql)) watched = Effect.tap(watched, () => Effect.sync(() => abortedBy = undefined))
      if (!armed) return watched
      armed = false
      taken = true
      return Effect.andThen(inner.execute(`savepoint ${SAVEPOINT}`, [], undefined), watched)
    })

  const connection: Connection = {
    execute: (sql, params, transformRows) => watch(sql, inner.execute(sql, params, transformRows)),
    executeRaw: (sql, params) => watch(sql, inner.executeRaw(sql, params)),
    executeValues: (sql, params) => watch(sql, inner.executeValues(sql, params)),
    executeValuesUnprepared: (sql, params) => watch(sql, inner.executeValuesUnprepared(sql, params)),
    executeUnprepared: (sql, params, transformRows) => watch(sql, inner.executeUnprepared(sql, params, transformRows)),
    executeStream: (sql, params, transformRows) =>
      Stream.unwrap(watch(sql, Effect.succeed(Stream.tapError(inner.executeStream(sql, params, transformRows), markAborted))))
  }

  const closeSavepoint = (undo: boolean): Effect.Effect<void, SqlError> =>
    Effect.suspend(() => {
      armed = false
      if (!taken) return Effect.void
      taken = false
      const release = inner.execute(`release savepoint ${SAVEPOINT}`, [], undefined)
      if (!undo) return Effect.asVoid(release)
      return inner.execute(`rollback to savepoint ${SAVEPOINT}`, [], undefined).pipe(
        Effect.andThen(Effect.sync(() => abortedBy = undefined)),
        Effect.andThen(release),
        Effect.asVoid
      )
    })

  return {
    connection,
    transaction: {
      statements: () => statements,
      abortedBy: () => abortedBy,
      armSavepoint: () => {
        armed = true
      },
      closeSavepoint
    }
  }
}
