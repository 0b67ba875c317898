/**
 * What happens to an event whose handler fails (a typed error or a defect):
 * retried with a growing delay, then stored as failed once pgq's retry count
 * for it reaches `maxRetries`.
 *
 * @since 0.1.0
 */
import { Cause, Duration } from "effect"
import type { PgqEvent } from "../api/PgqEvent.ts"
import * as EventResult from "./EventResult.ts"

/**
 * @since 0.1.0
 * @category models
 */
export interface FailurePolicy {
  /** Retries before the event is stored as failed. 0: fail at once. */
  readonly maxRetries: number
  /** Delay before retry number `retry` (0 for the first retry). */
  readonly backoff: (retry: number) => Duration.Duration
}

/**
 * `base * factor^retry`, at most `max`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const exponential = (options: {
  readonly base: Duration.Input
  readonly factor?: number
  readonly max: Duration.Input
}): ((retry: number) => Duration.Duration) => {
  const base = Duration.toMillis(Duration.fromInputUnsafe(options.base))
  const max = Duration.toMillis(Duration.fromInputUnsafe(options.max))
  const factor = options.factor ?? 2
  return (retry) => Duration.millis(Math.min(max, base * Math.pow(factor, retry)))
}

/**
 * Five retries, 10 s apart at first and doubling, at most 10 minutes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultPolicy: FailurePolicy = {
  maxRetries: 5,
  backoff: exponential({ base: "10 seconds", max: "10 minutes" })
}

const MAX_REASON_LENGTH = 4000

/**
 * A readable reason for a handler's failure: the error's message, or the
 * pretty-printed cause for a defect.
 *
 * @since 0.1.0
 * @category utils
 */
export const reasonOf = (cause: Cause.Cause<unknown>): string => storableReason(Cause.pretty(cause))

/**
 * A reason as the failed-event store can keep it: at most 4000 characters,
 * and no NUL (PostgreSQL's text cannot hold one).
 *
 * @since 0.2.0
 * @category utils
 */
export const storableReason = (text: string): string => {
  const clean = text.replace(/\u0000/g, "\uFFFD")
  return clean.length > MAX_REASON_LENGTH ? `${clean.slice(0, MAX_REASON_LENGTH)}…` : clean
}

/**
 * The result for an event whose handler failed with `cause`.
 *
 * @since 0.1.0
 * @category utils
 */
export const decide = (policy: FailurePolicy, event: PgqEvent, cause: Cause.Cause<unknown>): EventResult.EventResult => {
  const retries = event.retry ?? 0
  return retries >= policy.maxRetries
    ? EventResult.Failed(`failed after ${retries} retries: ${reasonOf(cause)}`)
    : EventResult.Retry(policy.backoff(retries))
}
