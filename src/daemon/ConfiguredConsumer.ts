/**
 * The consumer a daemon's definition describes: plain, remote, event-remote
 * or a subconsumer of a cooperative consumer.
 *
 * @since 0.2.0
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted, type Scope } from "effect"
import type { SqlClient } from "effect/sql"
import type { FailedEvents } from "../api/FailedEvents.ts"
import type { Pgq } from "../api/Pgq.ts"
import type { PgqError } from "../api/PgqError.ts"
import * as Consumer from "../consumer/Consumer.ts"
import * as CoopConsumer from "../consumer/CoopConsumer.ts"
import * as EventRemoteConsumer from "../consumer/EventRemoteConsumer.ts"
import * as RemoteConsumer from "../consumer/RemoteConsumer.ts"
import { mapSqlError } from "../internal/mapSqlError.ts"
import type { ConsumerDefinition, DaemonServices } from "./DaemonConfig.ts"

/**
 * Makes the definition's consumer in the scope; a remote one connects to its
 * remote database there (a connection that cannot be made fails like any
 * database error, and the supervisor retries it).
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (
  definition: ConsumerDefinition
): Effect.Effect<Consumer.Consumer<DaemonServices>, PgqError, Scope.Scope | Pgq | FailedEvents | SqlClient.SqlClient> => {
  const { remote, coop } = definition
  if (coop !== undefined) {
    return CoopConsumer.make({
      ...definition,
      subconsumer: coop.subconsumer,
      deadInterval: coop.deadInterval,
      heartbeat: coop.heartbeat
    })
  }
  if (remote === undefined) return Consumer.make(definition)
  const url = typeof remote.url === "string" ? Redacted.make(remote.url) : remote.url
  const options = {
    ...definition,
    remote: PgClient.layer({
      url,
      maxConnections: remote.maxConnections ?? 2,
      applicationName: "effect-pgq daemon (remote)"
    })
  }
  return (remote.perEvent === true ? EventRemoteConsumer.make(options) : RemoteConsumer.make(options)).pipe(
    Effect.catchTag("SqlError", (error) =>
      Effect.fail(mapSqlError(error, { operation: "RemoteConsumer.connect", queue: definition.queue, consumer: definition.consumer })))
  )
}
