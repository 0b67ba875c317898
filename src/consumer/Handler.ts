/**
 * What a consumer runs for its events, and the contract it keeps with them.
 *
 * @since 0.1.0
 */
import { Cause, Duration, Effect } from "effect"
import type { NextBatch } from "../api/BatchInfo.ts"
import type { PgqEvent } from "../api/PgqEvent.ts"
import type { EventResult } from "./EventResult.ts"

/**
 * What a handler knows about the batch it is in.
 *
 * @since 0.1.0
 * @category models
 */
export interface BatchContext {
  readonly queue: string
  readonly consumer: string
  readonly batch: NextBatch
}

/**
 * A handler for one event: says what became of it with an `EventResult`
 * (returning nothing means `Ok`).
 *
 * **The contract**
 *
 * - *Where it runs.* Inside the batch's transaction. Writes made through the
 *   consumer's `SqlClient` (or any service on it) commit together with
 *   `finish_batch`, or not at all.
 * - *`sql.afterCommit`.* Callbacks run once the batch commits. With
 *   `isolation: "savepoint"` each handler runs in a nested transaction of its
 *   own, so a failing handler's callbacks are discarded with its writes. With
 *   the default isolation callbacks belong to the batch: a failing handler's
 *   still run, and a replay drops those of handlers that ran no SQL (they are
 *   not called again). Handlers that rely on `afterCommit` should use
 *   `isolation: "savepoint"`.
 * - *How often, within one delivery of a batch.* With the default isolation a
 *   handler that ran no SQL runs once, and a handler that fails is never run
 *   again in that delivery. When a handler that ran SQL fails, its writes
 *   cannot be told apart from the others': the transaction is rolled back and
 *   the batch taken again; handlers that ran no SQL are not run again (their
 *   results are remembered), the failing one is not run again (its failure
 *   policy decides), and only handlers that ran SQL run again, to redo their
 *   undone writes. With `isolation: "savepoint"` every handler runs exactly
 *   once per delivery, its SQL inside a savepoint of its own.
 * - *Failure.* A typed failure, a defect, a synchronous throw, a return value
 *   that is not an Effect, or a result that is not an `EventResult`: the
 *   handler's writes are undone and the consumer's `FailurePolicy` decides
 *   (retry with backoff, then stored as failed). None of them stops the
 *   consumer.
 * - *Swallowed SQL errors.* A statement that fails aborts the transaction,
 *   even if the handler catches the error. Such a handler is treated as
 *   failed, with a reason naming the SQLSTATE. To survive an expected error
 *   (a duplicate key), run the statement in its own `sql.withTransaction`,
 *   whose savepoint rolls back only that statement.
 * - *Interruption.* The handler must let itself be interrupted (a stopping
 *   consumer interrupts it on a hard stop); the whole batch is then rolled
 *   back and delivered again. A handler that interrupts itself has failed.
 *   A statement it interrupts (a timeout around a query) is cancelled by the
 *   server, which aborts the transaction: that is a swallowed SQL error
 *   (SQLSTATE 57014).
 * - *Across crashes.* Delivery is at least once: a batch in flight when the
 *   process dies is delivered again. Handlers with effects outside the
 *   database (mail, HTTP) should be idempotent.
 *
 * @since 0.1.0
 * @category models
 */
export type EventHandler<E, R> = (event: PgqEvent, context: BatchContext) => Effect.Effect<EventResult | void, E, R>

/**
 * A handler for a whole batch: one result per event, in order, or nothing for
 * all `Ok`. The batch's events are held in memory.
 *
 * It runs once per delivery, in a nested transaction of the batch's (a
 * savepoint, taken before its first statement). When it fails (as for `EventHandler`, swallowed SQL errors
 * included) its writes are undone and the failure policy decides for every
 * event of the batch; it is not run again in that delivery. Interruption and
 * crashes are as for `EventHandler`.
 *
 * @since 0.1.0
 * @category models
 */
export type BatchHandler<E, R> = (
  events: ReadonlyArray<PgqEvent>,
  context: BatchContext
) => Effect.Effect<ReadonlyArray<EventResult> | void, E, R>

/**
 * @since 0.1.0
 * @category models
 */
export type Handler<E, R> =
  | { readonly onEvent: EventHandler<E, R> }
  | { readonly onBatch: BatchHandler<E, R> }

/**
 * A handler that broke the contract: threw, or returned what is not an Effect
 * or not an `EventResult`. It goes to the failure policy like any defect.
 *
 * @since 0.2.0
 * @category errors
 */
export class HandlerContractViolation extends Error {
  override readonly name = "HandlerContractViolation"
}

/**
 * Calls a handler so that whatever it does, throwing included, is an Effect.
 *
 * @since 0.2.0
 * @category utils
 */
export const call = <A, E, R>(f: () => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  // `suspend` turns a throw into a defect.
  Effect.suspend(() => {
    const returned: unknown = f()
    return Effect.isEffect(returned) ? returned as Effect.Effect<A, E, R> : Effect.die(notAnEffect(returned))
  })

/**
 * The defect for a handler that returned something other than an Effect.
 *
 * @since 0.2.0
 * @category utils
 */
export const notAnEffect = (returned: unknown): HandlerContractViolation =>
  new HandlerContractViolation(`the handler returned ${describe(returned)}, not an Effect`)

/**
 * Whether a handler's result is an `EventResult` (or nothing, meaning `Ok`).
 *
 * @since 0.2.0
 * @category utils
 */
export const isResult = (u: unknown): u is EventResult | undefined => {
  if (u === undefined) return true
  if (typeof u !== "object" || u === null || !("_tag" in u)) return false
  switch (u._tag) {
    case "Ok":
      return true
    case "Failed":
    case "AbortBatch":
      return "reason" in u && typeof u.reason === "string"
    case "Retry":
      // pgq takes whole seconds in an int4: anything else would fail the batch, not the event.
      return "delay" in u && Duration.isDuration(u.delay) && Duration.isFinite(u.delay) &&
        Duration.toMillis(u.delay) >= 0 && Duration.toSeconds(u.delay) <= 2_147_483_647
    default:
      return false
  }
}

/**
 * A defect for a handler result that is not an `EventResult`.
 *
 * @since 0.2.0
 * @category utils
 */
export const notAResult = (returned: unknown): Cause.Cause<never> =>
  Cause.die(new HandlerContractViolation(`the handler's Effect succeeded with ${describe(returned)}, not an EventResult`))

const describe = (u: unknown): string => {
  if (u === null || u === undefined) return String(u)
  if (typeof u === "object") return `an object (${Object.prototype.toString.call(u)})`
  return `${typeof u} ${String(u).slice(0, 40)}`
}
