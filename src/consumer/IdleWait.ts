/**
 * A consumer's wait when no batch is ready: a sleep, ended early by a
 * notification on the wake channel (payload: the queue's name, or empty).
 *
 * The sleep is `delay` (the consumer's `idleDelay`) while no ticker is
 * heard. An effect-pgq ticker notifies every tick and sends an empty
 * notification every 10 seconds (`Ticker.HEARTBEAT`); while one has been
 * heard within `HEARD_FOR`, nothing is missed by sleeping longer, so the
 * sleep is `HEARD_FOR` and the consumer wakes only for ticks and
 * heartbeats. A ticker that goes quiet (pgqd, which notifies nothing, took
 * over) is noticed within `HEARD_FOR`, and polling resumes.
 *
 * The listener has a connection of its own, outside the client's pool, so a
 * consumer on a one-connection pool still has that connection for its
 * batches. A listener that fails is dropped with its connection (its own
 * scope, so retries do not pile up finalizers) and tried again after a
 * backoff with jitter; meanwhile the wait is a plain sleep.
 *
 * @since 0.2.0
 */
import { PgClient, PgConnection } from "@effect/sql-pg"
import { Clock, Duration, Effect, Exit, Option, Queue, Random, Scope } from "effect"

interface Listening {
  readonly notifications: Queue.Dequeue<PgConnection.Notification, unknown>
  readonly scope: Scope.Closeable
}

const RETRY_BASE_MILLIS = 1_000
const RETRY_MAX_MILLIS = 60_000

/** Three heartbeats: how long a ticker heard counts as alive. */
const HEARD_FOR = Duration.seconds(30)

/**
 * Makes the wait. Listening starts at the first wait, not before: a consumer
 * that always has batches never opens the connection.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(queue: string, delay: Duration.Duration, channel: string | false) {
  const client = yield* Effect.serviceOption(PgClient.PgClient)
  if (channel === false || Option.isNone(client)) return Effect.sleep(delay)
  const config = client.value.config
  const parent = yield* Effect.scope
  let listening: Option.Option<Listening> = Option.none()
  let failures = 0
  let nextAttemptAt = 0
  /** When a notification for this queue (or all queues) last came; 0: never. */
  let heardAt = 0

  /** Closes a failed listener's connection and sets when to try again. */
  const drop = (scope: Scope.Closeable) =>
    Effect.gen(function*() {
      listening = Option.none()
      yield* Scope.close(scope, Exit.void)
      const jitter = 0.5 + (yield* Random.next)
      const backoff = Math.min(RETRY_MAX_MILLIS, RETRY_BASE_MILLIS * 2 ** failures++) * jitter
      nextAttemptAt = (yield* Clock.currentTimeMillis) + backoff
    })

  const listen = Effect.gen(function*() {
    if ((yield* Clock.currentTimeMillis) < nextAttemptAt) return
    const scope = yield* Scope.fork(parent)
    const attempt = yield* PgConnection.make(config).pipe(
      Effect.flatMap((connection) => connection.listen(channel)),
      Scope.provide(scope),
      // A stop during the attempt must not leave its connection open.
      Effect.onInterrupt(() => Scope.close(scope, Exit.void)),
      Effect.result
    )
    if (attempt._tag === "Success") {
      failures = 0
      listening = Option.some({ notifications: attempt.success, scope })
      return
    }
    yield* Effect.logDebug(`LISTEN ${channel} failed, polling instead: ${attempt.failure.message}`)
    yield* drop(scope)
  })

  const untilWoken = (notifications: Queue.Dequeue<PgConnection.Notification, unknown>) =>
    Queue.take(notifications).pipe(Effect.repeat({ until: (n) => n.payload === queue || n.payload === "" }))

  return Effect.gen(function*() {
    if (Option.isNone(listening)) yield* listen
    if (Option.isNone(listening)) return yield* Effect.sleep(delay)
    const current = listening.value
    const start = yield* Clock.currentTimeMillis
    const wait = start - heardAt < Duration.toMillis(HEARD_FOR) ? Duration.max(delay, HEARD_FOR) : delay
    const woken = yield* Effect.result(Effect.andThen(
      // Notifications that came while the consumer was busy are about batches it has taken since.
      Queue.clear(current.notifications),
      Effect.timeoutOption(untilWoken(current.notifications), wait)
    ))
    if (woken._tag === "Success" && Option.isSome(woken.success)) heardAt = yield* Clock.currentTimeMillis
    if (woken._tag === "Failure") {
      // The listening connection is gone: sleep out the rest, listen again after a backoff.
      yield* Effect.logDebug(`LISTEN ${channel} lost, polling until it is back`)
      yield* drop(current.scope)
      const elapsed = (yield* Clock.currentTimeMillis) - start
      yield* Effect.sleep(Duration.millis(Math.max(0, Duration.toMillis(delay) - elapsed)))
    }
  })
})
