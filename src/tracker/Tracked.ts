/**
 * A consumer handler that reports its component's status: wrap any
 * `EventHandler` and each event's result becomes a status event of the
 * component the event works on, appended in the batch's transaction. The
 * status and `finish_batch` commit together, so a crash can never record a
 * component as done whose event is delivered again, nor the reverse; and the
 * transaction that finishes a job also inserts its follow-up event.
 *
 * | handler result    | status event appended                  |
 * |-------------------|----------------------------------------|
 * | `Ok` (or nothing) | `completed`                            |
 * | `Failed(reason)`  | `failed`, with the reason              |
 * | `Retry(delay)`    | `in_progress`, "retry in N s"          |
 * | `AbortBatch`      | none: the whole batch is rolled back   |
 *
 * A handler that fails (a typed failure or a defect) reports nothing: its
 * writes are undone and the consumer's failure policy decides, as for any
 * handler. To mark the component failed, return `EventResult.Failed`
 * (`Tracked.make` with `failOn` turns chosen failures into it). An event
 * for a component its job lacks fails with `UnknownComponent`, which goes to
 * the failure policy too.
 *
 * @since 0.2.0
 */
import { Cause, Duration, Effect, Option } from "effect"
import type { PgqEvent } from "../api/PgqEvent.ts"
import * as EventResult from "../consumer/EventResult.ts"
import type { BatchContext, EventHandler } from "../consumer/Handler.ts"
import type { JobId } from "./Job.ts"
import { Tracker } from "./Tracker.ts"
import type { TrackerError } from "./TrackerError.ts"

/**
 * Which job and component an event works on.
 *
 * @since 0.2.0
 * @category models
 */
export interface Target {
  readonly jobId: JobId
  readonly component: string
}

/**
 * @since 0.2.0
 * @category models
 */
export interface TrackedOptions<E> {
  /** The event's job and component; `undefined` for an event that is not part of a job (nothing is appended). */
  readonly target: (event: PgqEvent) => Target | undefined
  /**
   * Typed failures of the handler that mean "this component failed" (a
   * payload that does not decode): return a reason, and the event is stored
   * as failed and the component's `failed` status recorded with it. The
   * event then counts as handled, so writes the handler made before it
   * failed are kept: name failures raised before any write. Other failures
   * go to the failure policy. Default: none.
   */
  readonly failOn?: ((error: E) => string | undefined) | undefined
}

/**
 * Wraps `handler` so that each result is recorded as its component's status.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = <E, R>(
  handler: EventHandler<E, R>,
  options: TrackedOptions<E>
): EventHandler<E | TrackerError, R | Tracker> =>
(event: PgqEvent, context: BatchContext) =>
  Effect.gen(function*() {
    const target = options.target(event)
    const failOn = options.failOn
    const ran = Effect.suspend(() => handler(event, context))
    if (target === undefined) return yield* ran
    const result = yield* (failOn === undefined ? ran : Effect.catchCause(ran, (cause) => {
      // Only a typed failure the caller named becomes a result; defects and interruptions stay what they are.
      const error = Cause.findErrorOption(cause)
      const reason = Option.isSome(error) ? failOn(error.value) : undefined
      return reason === undefined ? Effect.failCause(cause) : Effect.succeed(EventResult.Failed(reason))
    }))
    const tracker = yield* Tracker
    const update = statusFor(result ?? EventResult.Ok)
    if (update !== undefined) yield* tracker.append({ ...target, ...update })
    return result
  })

const statusFor = (result: EventResult.EventResult) =>
  EventResult.match(result, {
    Ok: () => ({ status: "completed" as const, message: "" }),
    Failed: ({ reason }) => ({ status: "failed" as const, message: reason }),
    Retry: ({ delay }) => ({ status: "in_progress" as const, message: `retry in ${Math.ceil(Duration.toSeconds(delay))} s` }),
    AbortBatch: () => undefined
  })
