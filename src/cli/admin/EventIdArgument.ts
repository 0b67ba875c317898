/**
 * The `<event-id>` and `<event-id|all>` operands.
 *
 * @since 0.2.0
 */
import { Effect, Option } from "effect"
import { Argument } from "effect/cli"
import type { FailedEventTarget } from "../../api/FailedEvents.ts"
import { EventId } from "../../api/Ids.ts"
import { INT8_MAX, parseInt8Id } from "../../internal/int8Id.ts"
import { type CliFailure, usage } from "./CliFailure.ts"

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
export const parseEventId = (text: string): Effect.Effect<EventId, CliFailure> =>
  Option.match(parseInt8Id(text), {
    onSome: (id) => Effect.succeed(EventId.make(id)),
    onNone: () =>
      Effect.fail(usage(`invalid event id ${JSON.stringify(text)}: expected a whole number from 0 to ${INT8_MAX}`))
  })

/**
 * @since 0.2.0
 * @category parsing
 */
export const parseTarget = (text: string): Effect.Effect<FailedEventTarget, CliFailure> =>
  text === "all" ? Effect.succeed("all") : parseEventId(text)
