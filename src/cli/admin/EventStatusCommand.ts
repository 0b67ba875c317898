/**
 * `effect-pgq event-status`: where one event stands for each consumer of its
 * queue (pending, processing, done, retry, failed).
 *
 * @since 0.2.0
 */
import { Console, Effect } from "effect"
import { Command } from "effect/cli"
import { EventStatus } from "../../api/EventStatus.ts"
import { json, queue } from "../flags.ts"
import { failure } from "./CliFailure.ts"
import { withDatabase } from "./Connection.ts"
import { eventIdArgument, parseEventId } from "./EventIdArgument.ts"
import { printJson, quote, table } from "./Output.ts"

/**
 * @since 0.2.0
 * @category commands
 */
export const eventStatus = Command.make(
  "event-status",
  { queue, eventId: eventIdArgument, json },
  ({ eventId, json, queue }) =>
    withDatabase(
      Effect.gen(function*() {
        const id = yield* parseEventId(eventId)
        const statuses = yield* (yield* EventStatus).forEvent(queue, id)
        if (statuses.length > 0 && statuses.every((s) => s.state === "unknown")) {
          return yield* failure(
            `event ${id} is not in queue ${quote(queue)} (never inserted there, or rotated away after every consumer finished it)`
          )
        }
        if (json) {
          return yield* printJson({
            queue,
            eventId: id,
            consumers: statuses.map((s) => ({ consumer: s.consumer, state: s.state, retry: s.retry }))
          })
        }
        if (statuses.length === 0) return yield* Console.log(`queue ${quote(queue)} has no consumers`)
        yield* Console.log(table(
          ["CONSUMER", "STATE", "RETRY"],
          statuses.map((s) => [s.consumer, s.state, s.retry === null ? "-" : String(s.retry)])
        ))
      })
    )
).pipe(
  Command.withDescription("Show where an event stands for each consumer: pending, processing, done, retry or failed"),
  Command.withExamples([
    { command: "effect-pgq event-status 1234 -q orders", description: "Event 1234 of queue orders" },
    { command: "effect-pgq event-status 1234 -q orders --json", description: "As JSON" }
  ])
)
