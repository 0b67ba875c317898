/**
 * One active instance per (queue, consumer), across processes and hosts: a
 * session-level advisory lock held on a connection of its own. A second
 * instance waits as a hot standby, trying the lock every few seconds; when
 * the first dies its session ends, the lock with it, and the standby takes
 * over. An instance whose lock connection is lost stops consuming at once
 * (its batch rolls back): another may hold the lock by now.
 *
 * The lock key is a 64-bit hash of the queue and consumer names
 * (`hashtextextended`), so distinct consumers do not block each other.
 *
 * @since 0.2.0
 */
import { PgClient, PgConnection } from "@effect/sql-pg"
import { Data, Duration, Effect, Exit, Option, Queue, Scope } from "effect"

/**
 * The lock's connection was lost while this instance was the active one.
 *
 * @since 0.2.0
 * @category errors
 */
export class LeadershipLost extends Data.TaggedError("LeadershipLost")<{ readonly reason: string }> {
  override get message(): string {
    return `lost the lock that makes this instance the active one (${this.reason}); standing by again`
  }
}

/** How often a standby tries the lock. */
const CHECK_INTERVAL = Duration.seconds(2)

const TRY_LOCK = "select pg_try_advisory_lock(hashtextextended($1, 0)) as locked"

/**
 * Runs `effect` once this instance holds the lock of `queue`/`consumer`,
 * calling `onStandby` when it has to wait first. Without a `PgClient` (another
 * database client) `effect` runs at once.
 *
 * @since 0.2.0
 * @category combinators
 */
export const whileLeader = <A, E, R>(
  queue: string,
  consumer: string,
  onStandby: Effect.Effect<void>,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | LeadershipLost, R> =>
  Effect.gen(function*() {
    const client = yield* Effect.serviceOption(PgClient.PgClient)
    if (Option.isNone(client)) return yield* effect
    // JSON keeps the pair unambiguous whatever the names hold.
    const key = `effect-pgq ${JSON.stringify([queue, consumer])}`
    let waiting = false
    while (true) {
      const scope = yield* Scope.make()
      const held = yield* PgConnection.make({ ...client.value.config, keepAlive: client.value.config.keepAlive ?? "10 seconds" }).pipe(
        Effect.flatMap((connection) =>
          Effect.map(connection.queryValues(TRY_LOCK, [key]), (rows) => rows[0]?.[0] === true ? Option.some(connection) : Option.none())
        ),
        Scope.provide(scope),
        // The database being away is waiting too, not a failure.
        Effect.catch((error) => Effect.as(Effect.logDebug(`cannot take the lock yet: ${error.message}`), Option.none())),
        Effect.onInterrupt(() => Scope.close(scope, Exit.void))
      )
      if (Option.isSome(held)) {
        if (waiting) yield* Effect.logInfo("took over: this instance is now the active one")
        return yield* Effect.raceFirst(effect, watch(held.value)).pipe(
          Effect.ensuring(Scope.close(scope, Exit.void))
        )
      }
      yield* Scope.close(scope, Exit.void)
      if (!waiting) {
        waiting = true
        yield* Effect.logInfo("another instance is active for this consumer: standing by")
        yield* onStandby
      }
      yield* Effect.sleep(CHECK_INTERVAL)
    }
  })

/**
 * Fails once the lock's connection is gone: a listener's queue fails as soon
 * as its socket closes, and TCP keepalive (see `whileLeader`) closes a socket
 * whose server went silent.
 */
const watch = (connection: PgConnection.PgConnection): Effect.Effect<never, LeadershipLost> =>
  Effect.flatMap(connection.listen("effect_pgq_leadership"), (closed) => Effect.forever(Queue.take(closed))).pipe(
    Effect.scoped,
    Effect.mapError((error) => new LeadershipLost({ reason: error.message }))
  )
