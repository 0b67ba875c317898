/**
 * Runs many consumers, each in a fiber of its own: a consumer whose `run`
 * fails (the database gone for good, its queue dropped) is logged and started
 * again with backoff, without disturbing the others. Each consumer's state
 * and counters come from its lifecycle events. A consumer runs only while
 * this process is its active instance (`Leadership`); otherwise it stands by.
 *
 * `apply` makes the running set match a new list of definitions (a reload):
 * consumers no longer listed stop gracefully, new ones start, and changed ones
 * (other options or another handler) restart, each at its next wait. The
 * others keep running untouched.
 *
 * @since 0.2.0
 */
import { Cause, Clock, Context, Deferred, Duration, Effect, Fiber, Layer, Option, Predicate, PubSub, Scope } from "effect"
import * as Consumer from "../consumer/Consumer.ts"
import type { ConsumerEvent } from "../consumer/ConsumerEvent.ts"
import * as ConfiguredConsumer from "./ConfiguredConsumer.ts"
import { type ConsumerDefinition, type DaemonServices, instanceName, keyOf } from "./DaemonConfig.ts"
import { LeadershipLost, whileLeader } from "./Leadership.ts"

/**
 * @since 0.2.0
 * @category models
 */
export type ConsumerState = "starting" | "standby" | "running" | "idle" | "backoff" | "stopping" | "stopped"

/**
 * @since 0.2.0
 * @category models
 */
export interface ConsumerStatus {
  readonly queue: string
  readonly consumer: string
  readonly state: ConsumerState
  /** The batch in hand, if any. */
  readonly currentBatch: string | null
  readonly batches: number
  readonly events: number
  readonly failed: number
  readonly retried: number
  readonly restarts: number
  readonly lastError: string | null
}

/**
 * How `stop` ended the consumers: `graceful` when every batch in hand
 * committed, `forced` when the timeout killed some.
 *
 * @since 0.2.0
 * @category models
 */
export type StopOutcome = Consumer.StopOutcome

/**
 * @since 0.2.0
 * @category services
 */
export class Supervisor extends Context.Service<Supervisor, {
  readonly status: Effect.Effect<ReadonlyArray<ConsumerStatus>>
  /**
   * Makes the running consumers match `definitions`; consumers removed or
   * changed get `stopTimeout` (default 30 seconds) to finish their batch.
   */
  readonly apply: (
    definitions: ReadonlyArray<ConsumerDefinition>,
    stopTimeout?: Duration.Input | undefined
  ) => Effect.Effect<void>
  /** The soft stop of every consumer, escalating to kill after `timeout`. */
  readonly stop: (timeout: Duration.Input) => Effect.Effect<StopOutcome>
  /** The hard stop of every consumer: batches in flight roll back. */
  readonly kill: Effect.Effect<void>
}>()("effect-pgq/daemon/Supervisor") {
  /**
   * Supervises `definitions` until the layer's scope closes (which kills them).
   *
   * @since 0.2.0
   * @category layers
   */
  static readonly layer = (
    definitions: ReadonlyArray<ConsumerDefinition>
  ): Layer.Layer<Supervisor, never, DaemonServices> =>
    Layer.effect(
      Supervisor,
      Effect.gen(function*() {
        const supervisor = yield* make
        yield* supervisor.apply(definitions)
        yield* Effect.addFinalizer(() => supervisor.kill)
        return supervisor
      })
    )
}

interface Supervised {
  readonly definition: ConsumerDefinition
  readonly fingerprint: string
  readonly status: { -readonly [K in keyof ConsumerStatus]: ConsumerStatus[K] }
  /** Set once this consumer is to stop for good. */
  readonly stopping: Deferred.Deferred<void>
  current: Option.Option<Consumer.Consumer<DaemonServices>>
  fiber: Fiber.Fiber<void> | undefined
}

const RESTART_BASE_MILLIS = 1_000
const RESTART_MAX_MILLIS = 60_000
/** A consumer that ran this long before failing starts again without delay. */
const HEALTHY_MILLIS = 60_000

/**
 * @since 0.2.0
 * @category constructors
 */
export const make: Effect.Effect<Supervisor["Service"], never, Scope.Scope | DaemonServices> = Effect.gen(
  function*() {
    const scope = yield* Effect.scope
    const context = yield* Effect.context<DaemonServices>()
    const supervised = new Map<string, Supervised>()

    const supervise = (entry: Supervised) =>
      Effect.gen(function*() {
        let failures = 0
        while (!(yield* Deferred.isDone(entry.stopping))) {
          entry.status.state = "starting"
          const startedAt = yield* Clock.currentTimeMillis
          const exit = yield* Effect.exit(whileLeader(
            entry.definition.queue,
            instanceName(entry.definition),
            Effect.sync(() => entry.status.state = "standby"),
            runOnce(entry)
          ))
          if (exit._tag === "Success" || (yield* Deferred.isDone(entry.stopping))) break
          const error = exit.cause
          entry.status.lastError = describe(error)
          entry.status.restarts++
          entry.status.state = "backoff"
          // A lost lock connection (the database restarting, say) is no fault of the consumer: back to standby at once.
          if (isLeadershipLost(error)) {
            yield* Effect.logWarning(entry.status.lastError)
            yield* Effect.raceFirst(Effect.sleep(RESTART_BASE_MILLIS), Deferred.await(entry.stopping))
            continue
          }
          failures = (yield* Clock.currentTimeMillis) - startedAt > HEALTHY_MILLIS ? 0 : failures + 1
          const delay = Math.min(RESTART_MAX_MILLIS, RESTART_BASE_MILLIS * 2 ** Math.max(0, failures - 1))
          yield* Effect.logError(`consumer failed, restarting in ${Duration.format(Duration.millis(delay))}: ${entry.status.lastError}`)
          yield* Effect.raceFirst(Effect.sleep(delay), Deferred.await(entry.stopping))
        }
        entry.status.state = "stopped"
        entry.status.currentBatch = null
      }).pipe(Effect.annotateLogs({ queue: entry.definition.queue, consumer: entry.definition.consumer }))

    /** One life of the consumer: made, watched through its events, run until it stops or fails. */
    const runOnce = (entry: Supervised) =>
      Effect.scoped(Effect.gen(function*() {
        const consumer = yield* ConfiguredConsumer.make(entry.definition)
        const events = yield* consumer.subscribe
        yield* Effect.forkScoped(Effect.forever(Effect.flatMap(PubSub.take(events), (event) => track(entry, event))))
        entry.current = Option.some(consumer)
        // A stop asked for while the consumer was being made.
        if (yield* Deferred.isDone(entry.stopping)) return
        entry.status.state = "running"
        yield* consumer.run
      })).pipe(Effect.ensuring(Effect.sync(() => entry.current = Option.none())))

    const start = (definition: ConsumerDefinition) =>
      Effect.gen(function*() {
        const entry: Supervised = {
          definition,
          fingerprint: fingerprintOf(definition),
          status: {
            queue: definition.queue,
            consumer: definition.consumer,
            state: "starting",
            currentBatch: null,
            batches: 0,
            events: 0,
            failed: 0,
            retried: 0,
            restarts: 0,
            lastError: null
          },
          stopping: yield* Deferred.make<void>(),
          current: Option.none(),
          fiber: undefined
        }
        supervised.set(keyOf(definition), entry)
        entry.fiber = yield* supervise(entry).pipe(Effect.provideContext(context), Effect.forkIn(scope))
      })

    /** Soft stop of one consumer; after `timeout` its batch in flight rolls back. */
    const stopOne = (entry: Supervised, timeout: Duration.Input) =>
      Effect.gen(function*() {
        entry.status.state = "stopping"
        yield* Deferred.succeed(entry.stopping, undefined)
        const outcome = Option.isSome(entry.current) ? yield* entry.current.value.stop({ timeout }) : "graceful"
        if (entry.fiber !== undefined) yield* Fiber.interrupt(entry.fiber)
        return outcome
      })

    const killOne = (entry: Supervised) =>
      Effect.gen(function*() {
        entry.status.state = "stopping"
        yield* Deferred.succeed(entry.stopping, undefined)
        if (Option.isSome(entry.current)) yield* entry.current.value.kill
        if (entry.fiber !== undefined) yield* Fiber.interrupt(entry.fiber)
      })

    const apply = (definitions: ReadonlyArray<ConsumerDefinition>, stopTimeout?: Duration.Input | undefined) =>
      Effect.gen(function*() {
        const wanted = new Map(definitions.map((definition) => [keyOf(definition), definition]))
        const changes: Array<Effect.Effect<void>> = []
        for (const [key, entry] of supervised) {
          const next = wanted.get(key)
          if (next !== undefined && fingerprintOf(next) === entry.fingerprint) continue
          changes.push(Effect.gen(function*() {
            yield* stopOne(entry, stopTimeout ?? DEFAULT_STOP_TIMEOUT)
            supervised.delete(key)
            yield* Effect.logInfo(next === undefined ? "consumer removed" : "consumer changed, restarting").pipe(
              Effect.annotateLogs({ queue: entry.definition.queue, consumer: entry.definition.consumer })
            )
            if (next !== undefined) yield* start(next)
          }))
        }
        for (const [key, definition] of wanted) {
          if (!supervised.has(key)) changes.push(start(definition))
        }
        yield* Effect.all(changes, { concurrency: "unbounded", discard: true })
      })

    const status = Effect.sync(() => Array.from(supervised.values(), (entry) => ({ ...entry.status })))

    const stop = (timeout: Duration.Input) =>
      Effect.map(
        Effect.forEach(supervised.values(), (entry) => stopOne(entry, timeout), { concurrency: "unbounded" }),
        (outcomes): StopOutcome => outcomes.every((outcome) => outcome === "graceful") ? "graceful" : "forced"
      )

    const kill = Effect.forEach(supervised.values(), killOne, { concurrency: "unbounded", discard: true })

    return Supervisor.of({ status, apply, stop, kill })
  }
)

const DEFAULT_STOP_TIMEOUT = "30 seconds"

/** Keeps the status in step with the consumer's lifecycle events. */
const track = (entry: Supervised, event: ConsumerEvent) =>
  Effect.sync(() => {
    const status = entry.status
    switch (event._tag) {
      case "consumer:batch:received":
        status.state = "running"
        status.currentBatch = String(event.batchId)
        break
      case "consumer:batch:finished":
        status.currentBatch = null
        status.batches++
        status.events += event.stats.events
        status.failed += event.stats.failed
        status.retried += event.stats.retried
        break
      case "consumer:batch:aborted":
        status.currentBatch = null
        break
      case "consumer:idle":
        if (status.state === "running") status.state = "idle"
        break
      case "consumer:connection:lost":
        status.lastError = event.reason
        status.currentBatch = null
        break
      case "consumer:stopping":
        status.state = "stopping"
        break
      default:
        break
    }
  })

/**
 * What makes two definitions of the same consumer the same: their options
 * and the source of their handler (a reloaded module makes new functions).
 */
const fingerprintOf = (definition: ConsumerDefinition): string =>
  JSON.stringify(
    definition,
    (_key, value: unknown) => typeof value === "function" || typeof value === "bigint" ? String(value) : value
  )

const isLeadershipLost = (cause: Cause.Cause<unknown>): boolean =>
  cause.reasons.some((reason) => Cause.isFailReason(reason) && reason.error instanceof LeadershipLost)

/** `Tag: message` for a tagged error, else the first line of the cause. */
const describe = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  if (Predicate.hasProperty(error, "_tag") && Predicate.hasProperty(error, "message")) {
    return `${String(error._tag)}: ${String(error.message)}`
  }
  return Cause.pretty(cause).split("\n")[0] ?? "failed"
}
