/**
 * pgq says "Not subscriber to queue" (or "consumer not registered") for an
 * unknown queue too. A look at `pgq.queue` tells the two apart, but only on a
 * usable connection, and never on a second one: a caller inside a
 * transaction holds a pooled connection, and with a small pool a second one
 * may never come.
 *
 * @since 0.1.0
 */
import { Effect, Option, Schema } from "effect"
import type { SqlClient } from "effect/sql"
import { type ConsumerNotRegistered, type PgqError, QueueNotFound } from "../api/PgqError.ts"
import { findOne } from "./rows.ts"

const decodeQueueExists = findOne(Schema.Struct({ exists: Schema.Boolean }))("select exists(… pgq.queue …)")

/**
 * `QueueNotFound` when the error's queue does not exist, else the error as
 * it is. Asks on the current connection (the transaction's, if any), so call
 * it only where that connection is usable: after a statement that returned
 * nothing, not after one that failed inside a transaction. If the question
 * itself fails, the error stays as it is.
 *
 * @since 0.1.0
 * @category errors
 */
export const consumerOrQueueMissing = (sql: SqlClient.SqlClient) =>
(error: ConsumerNotRegistered): Effect.Effect<never, PgqError> =>
  sql`select exists(select 1 from pgq.queue where queue_name = ${error.queue}) as "exists"`.pipe(
    Effect.flatMap(decodeQueueExists),
    Effect.matchEffect({
      onFailure: () => Effect.fail(error),
      onSuccess: ({ exists }) =>
        Effect.fail(exists ? error : new QueueNotFound({ operation: error.operation, queue: error.queue }))
    })
  )

/**
 * For a `ConsumerNotRegistered` mapped from a failed statement: outside a
 * transaction, `QueueNotFound` when the queue does not exist (one ordinary
 * pooled query), else the error as it is. Inside a transaction it asks
 * nothing and returns the error unchanged: the failure has aborted the
 * transaction, and asking on another connection could wait forever. Call it
 * again after the transaction has rolled back to get the precise error.
 *
 * @since 0.1.0
 * @category errors
 */
export const refineConsumerNotRegistered = (sql: SqlClient.SqlClient) => {
  const outside = consumerOrQueueMissing(sql)
  return (error: ConsumerNotRegistered): Effect.Effect<never, PgqError> =>
    Effect.flatMap(
      Effect.serviceOption(sql.transactionService),
      (transaction) => Option.isSome(transaction) ? Effect.fail(error) : outside(error)
    )
}
