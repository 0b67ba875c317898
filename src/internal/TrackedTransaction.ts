/**
 * A batch's transaction on a connection that is watched: how many statements
 * ran through it, and what left the transaction aborted. Savepoints of nested
 * transactions are lazy: `SAVEPOINT` is sent right before the first statement
 * inside it, and a level that ran no statement ends without a round trip.
 *
 * This is what lets a consumer run handlers without savepoints yet know,
 * without a round trip, which handlers wrote (only those are ever run again);
 * give each handler a savepoint of its own (a nested `withTransaction`, so
 * its `afterCommit` callbacks are discarded with it) that costs nothing when
 * the handler runs no SQL; and tell a handler that swallowed an SQL error
 * (PostgreSQL then refuses every later statement with 25P02) from one that
 * worked.
 *
 * @since 0.2.0
 */
import { Effect, Stream } from "effect"
import type { SqlClient } from "effect/sql"
import type { Connection } from "effect/sql/SqlConnection"
import { isSqlError, type SqlError } from "effect/sql/SqlError"
import { serverError } from "./mapSqlError.ts"

/**
 * What aborted the transaction.
 *
 * @since 0.2.0
 * @category models
 */
export interface Abort {
  readonly sqlState: string | undefined
  readonly detail: string
}

/**
 * @since 0.2.0
 * @category models
 */
export interface TrackedTransaction {
  /** Statements run so far (lazy savepoints not counted). */
  readonly statements: () => number
  /** What aborted the transaction while it is aborted; `undefined` while it is healthy. */
  readonly abortedBy: () => Abort | undefined
}

const SAVEPOINT = /^\s*savepoint\s+(\S+)\s*$/i
const RELEASE = /^\s*release\s+(savepoint\s+)?(\S+)\s*$/i
const ROLLBACK_TO = /^\s*rollback(\s+work|\s+transaction)?\s+to\s+(savepoint\s+)?(\S+)\s*$/i

/** A statement interrupted while the server ran it is cancelled, which aborts the transaction. */
const INTERRUPTED: Abort = { sqlState: "57014", detail: "a statement was interrupted while it ran (the server cancels it)" }

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
  let abortedBy: Abort | undefined = undefined
  /** Savepoints asked for and not yet sent, oldest first. */
  const pending: Array<string> = []

  const abort = (why: Abort) =>
    Effect.sync(() => {
      if (abortedBy === undefined) abortedBy = why
    })
  const markFailed = (error: SqlError) => {
    const { code, message } = serverError(error)
    return abort({ sqlState: code, detail: message })
  }

  const send = (sql: string) => inner.execute(sql, [], undefined)

  /** Sends the savepoints a statement needs first; each counts as taken only once the server has it. */
  const flush: Effect.Effect<void, SqlError> = Effect.suspend(() => {
    const name = pending[0]
    if (name === undefined) return Effect.void
    return Effect.andThen(send(`savepoint ${name}`), Effect.suspend(() => {
      pending.shift()
      return flush
    }))
  })

  /** Counts the statement, sends pending savepoints first, and watches the outcome. */
  const watch = <A>(sql: string, effect: Effect.Effect<A, SqlError>, none: A): Effect.Effect<A, SqlError> =>
    Effect.suspend(() => {
      const savepoint = SAVEPOINT.exec(sql)
      if (savepoint !== null) {
        pending.push(savepoint[1]!)
        return Effect.succeed(none)
      }
      const release = RELEASE.exec(sql)
      const rollback = release === null ? ROLLBACK_TO.exec(sql) : null
      const name = release?.[2] ?? rollback?.[3]
      const index = name === undefined ? -1 : pending.lastIndexOf(name)
      if (index >= 0) {
        // A level that ran no statement: nothing to release or undo on the server. As on the
        // server, a rollback to a savepoint keeps it (a release follows); a release ends it.
        pending.splice(release === null ? index + 1 : index)
        return Effect.succeed(none)
      }
      statements++
      let watched = effect.pipe(
        Effect.tapError(markFailed),
        Effect.onInterrupt(() => abort(INTERRUPTED))
      )
      // A rollback to a savepoint taken before the failure heals the transaction.
      if (ROLLBACK_TO.test(sql)) watched = Effect.tap(watched, () => Effect.sync(() => abortedBy = undefined))
      return pending.length === 0 ? watched : Effect.andThen(Effect.tapError(flush, markFailed), watched)
    })

  const connection: Connection = {
    execute: (sql, params, transformRows) => watch(sql, inner.execute(sql, params, transformRows), []),
    executeRaw: (sql, params) => watch(sql, inner.executeRaw(sql, params), undefined),
    executeValues: (sql, params) => watch(sql, inner.executeValues(sql, params), []),
    executeValuesUnprepared: (sql, params) => watch(sql, inner.executeValuesUnprepared(sql, params), []),
    executeUnprepared: (sql, params, transformRows) => watch(sql, inner.executeUnprepared(sql, params, transformRows), []),
    executeStream: (sql, params, transformRows) =>
      Stream.unwrap(
        watch(
          sql,
          Effect.succeed(Stream.tapError(inner.executeStream(sql, params, transformRows), (error) =>
            isSqlError(error) ? markFailed(error) : Effect.void)),
          Stream.empty
        )
      )
  }

  return {
    connection,
    transaction: {
      statements: () => statements,
      abortedBy: () => abortedBy
    }
  }
}
