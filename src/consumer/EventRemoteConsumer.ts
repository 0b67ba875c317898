/**
 * A remote consumer that commits or rolls back each event's remote work on
 * its own: every handler runs behind a savepoint of the remote transaction
 * (taken before its first statement), released on Ok, rolled back on
 * Failed, Retry or a failure of the handler, so only the events that
 * succeeded leave work on the remote database. AbortBatch rolls back both
 * sides. Batches are applied exactly once, as with `RemoteConsumer`.
 *
 * ```ts
 * import { PgClient } from "@effect/sql-pg"
 * import { Effect, Redacted } from "effect"
 * import { SqlClient } from "effect/sql"
 * import { EventRemoteConsumer, EventResult } from "effect-pgq"
 *
 * const program = Effect.gen(function*() {
 *   const consumer = yield* EventRemoteConsumer.make({
 *     queue: "orders",
 *     consumer: "ledger",
 *     remote: PgClient.layer({ url: Redacted.make("postgres://localhost/ledger") }),
 *     onEvent: (event) =>
 *       Effect.gen(function*() {
 *         const sql = yield* SqlClient.SqlClient
 *         yield* sql`insert into entries (order_id) values (${event.data})`
 *         // Undoes this event's insert, keeps the others'.
 *         return event.data === "" ? EventResult.Failed("no order id") : EventResult.Ok
 *       })
 *   })
 *   yield* consumer.run
 * })
 * ```
 *
 * @since 0.2.0
 */
import { Effect } from "effect"
import * as RemoteConsumer from "./RemoteConsumer.ts"

/**
 * An event-remote consumer, checked and ready; its remote database is
 * connected in the scope.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = <E, R, RE>(options: RemoteConsumer.RemoteConsumerOptions<E, R, RE>) =>
  RemoteConsumer.makeWith({ ...options, isolation: "savepoint" }, true).pipe(
    Effect.withSpan("EventRemoteConsumer.make")
  )
