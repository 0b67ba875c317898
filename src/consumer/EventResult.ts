/**
 * What a handler says about an event.
 *
 * | result            | plain Consumer                                   |
 * |-------------------|--------------------------------------------------|
 * | `Ok`              | done                                             |
 * | `Failed(reason)`  | stored in the failed-event store, not retried    |
 * | `Retry(delay)`    | re-delivered to this consumer after `delay`      |
 * | `AbortBatch`      | the whole batch rolled back and delivered again  |
 *
 * @since 0.1.0
 */
import { Data, Duration } from "effect"

/**
 * @since 0.1.0
 * @category models
 */
export type EventResult = Data.TaggedEnum<{
  Ok: {}
  Failed: { readonly reason: string }
  Retry: { readonly delay: Duration.Duration }
  AbortBatch: { readonly reason: string }
}>

const constructors = Data.taggedEnum<EventResult>()

/**
 * The event is done.
 *
 * @since 0.1.0
 * @category constructors
 */
export const Ok: EventResult = constructors.Ok()

/**
 * The event cannot be processed: keep it in the failed-event store.
 *
 * @since 0.1.0
 * @category constructors
 */
export const Failed = (reason: string): EventResult => constructors.Failed({ reason })

/**
 * Try the event again after `delay` (whole seconds, rounded up).
 *
 * @since 0.1.0
 * @category constructors
 */
export const Retry = (delay: Duration.Input): EventResult => constructors.Retry({ delay: Duration.fromInputUnsafe(delay) })

/**
 * Roll the whole batch back; it is delivered again later.
 *
 * @since 0.1.0
 * @category constructors
 */
export const AbortBatch = (reason = "aborted by handler"): EventResult => constructors.AbortBatch({ reason })

/**
 * @since 0.1.0
 * @category pattern matching
 */
export const { $is: is, $match: match } = constructors
