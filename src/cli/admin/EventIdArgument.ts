/**
 * The `<event-id>` and `<event-id|all>` operands.
 *
 * @since 0.2.0
 */
import { Effect } from "effect"
import { Argument } from "effect/cli"
import type { FailedEventTarget } from "../../api/FailedEvents.ts"
import { EventId } from "../../api/Ids.ts"
import { type CliFailure, usage } from "./CliFailure.ts"

/** pgq's ids are int8. */
const INT8_MAX = 9_223_372_036_854_775_807n

/**
 * @since 0.2.0
 * @category arguments
 */
export const eventIdArgument = Argument.String("event-id").pipe(
  Argument.withDescription("The event's id (as failed and event-status show it)")
)

/**
 * @since 0.2.0
 * @category arguments
 */
export const targetArgument = Argument.String("event-id|all").pipe(
  Argument.withDescription("A failed event's id, or all for every failed event of the consumer")
)

/**
 * @since 0.2.0
 * @category parsing
 */
export const parseEventId = (text: string): Effect.Effect<EventId, CliFailure> => {
  if (/^\d{1,19}$/.test(text) && BigInt(text) <= INT8_MAX) return Effect.succeed(EventId.make(BigInt(text)))
  return Effect.fail(usage(`invalid event id ${JSON.stringify(text)}: expected a whole number such as 1234`))
}

/**
 * @since 0.2.0
 * @category parsing
 */
export const parseTarget = (text: string): Effect.Effect<FailedEventTarget, CliFailure> =>
  text === "all" ? Effect.succeed("all") : parseEventId(text)
