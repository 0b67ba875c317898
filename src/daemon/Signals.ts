/**
 * The daemon's process signals, as a queue of their names while a scope is
 * open. A signal the daemon listens to is "claimed": the command line's main
 * runner then leaves it alone instead of interrupting the program, so SIGTERM
 * can mean "stop gracefully" rather than "interrupt now".
 *
 * @since 0.2.0
 */
import { Effect, Queue, type Scope } from "effect"

/**
 * @since 0.2.0
 * @category models
 */
export type DaemonSignal = "SIGTERM" | "SIGINT" | "SIGHUP" | "SIGUSR1" | "SIGUSR2"

const claims = new Map<string, number>()

/**
 * Whether a daemon in this process handles `signal` itself.
 *
 * @since 0.2.0
 * @category guards
 */
export const isClaimed = (signal: string): boolean => (claims.get(signal) ?? 0) > 0

/**
 * Listens to `signals` until the scope closes; each one received is offered
 * to the returned queue (`into`, when given), in order.
 *
 * @since 0.2.0
 * @category constructors
 */
export const listen = (
  signals: ReadonlyArray<DaemonSignal>,
  into?: Queue.Queue<DaemonSignal>
): Effect.Effect<Queue.Queue<DaemonSignal>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = into ?? (yield* Queue.unbounded<DaemonSignal>())
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        const handlers = signals.map((signal) => {
          const handler = () => void Queue.offerUnsafe(queue, signal)
          claims.set(signal, (claims.get(signal) ?? 0) + 1)
          process.on(signal, handler)
          return [signal, handler] as const
        })
        return handlers
      }),
      (handlers) =>
        Effect.sync(() => {
          for (const [signal, handler] of handlers) {
            process.removeListener(signal, handler)
            claims.set(signal, (claims.get(signal) ?? 1) - 1)
          }
        })
    )
    return queue
  })
