/**
 * `effect-pgq failed`: a consumer's failed events, a page at a time
 * (`--limit`, `--after <last id of the previous page>`).
 *
 * @since 0.2.0
 */
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { FailedEvents } from "../../api/FailedEvents.ts"
import { Pgq } from "../../api/Pgq.ts"
import { consumer, json, queue } from "../flags.ts"
import { usage } from "./CliFailure.ts"
import { withDatabase } from "./Connection.ts"
import { parseEventId } from "./EventIdArgument.ts"
import { cell, iso, printJson, quote, table } from "./Output.ts"

/**
 * @since 0.2.0
 * @category commands
 */
export const failed = Command.make(
  "failed",
  {
    queue,
    consumer,
    limit: Flag.Int("limit").pipe(
      Flag.withDescription("Events per page, 1 to 10000"),
      Flag.withDefault(50)
    ),
    after: Flag.String("after").pipe(
      Flag.withMetavar("event-id"),
      Flag.withDescription("Show events with a greater id: the last id of the previous page"),
      Flag.optional
    ),
    json
  },
  ({ after, consumer, json, limit, queue }) =>
    withDatabase(
      Effect.gen(function*() {
        if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
          return yield* usage("failed: --limit must be from 1 to 10000")
        }
        const afterId = Option.isSome(after) ? yield* parseEventId(after.value) : undefined
        const pgq = yield* Pgq
        const store = yield* FailedEvents
        const total = yield* store.count(queue, consumer)
        // An unknown queue or consumer is an error, not an empty list; an
        // unregistered consumer's stored events are still shown.
        if (total === 0) yield* pgq.getConsumerInfo(queue, consumer)
        const events = yield* store.list(queue, consumer, { limit, afterId })
        const last = events.at(-1)
        const next = events.length === limit && last !== undefined ? last.event.id : null
        if (json) {
          return yield* printJson({
            queue,
            consumer,
            total,
            events: events.map(({ event, failedAt, reason }) => ({
              id: event.id,
              time: iso(event.time),
              failedAt: iso(failedAt),
              reason,
              retry: event.retry,
              type: event.type,
              data: event.data,
              extra1: event.extra1,
              extra2: event.extra2,
              extra3: event.extra3,
              extra4: event.extra4
            })),
            nextAfter: next
          })
        }
        if (events.length === 0) {
          return yield* Console.log(
            `no failed events for consumer ${quote(consumer)} on queue ${quote(queue)}` +
              (total > 0 ? ` after id ${afterId} (${total} in all)` : "")
          )
        }
        yield* Console.log(table(
          ["ID", "FAILED AT", "RETRY", "TYPE", "REASON", "DATA"],
          events.map(({ event, failedAt, reason }) => [
            String(event.id),
            iso(failedAt),
            event.retry === null ? "-" : String(event.retry),
            cell(event.type, 24),
            cell(reason, 40),
            cell(event.data, 40)
          ])
        ))
        yield* Console.log(
          `${events.length} of ${total} failed event${total === 1 ? "" : "s"}` +
            (next === null ? "" : `; next page: --after ${next}`)
        )
      })
    )
).pipe(
  Command.withDescription("List a consumer's failed events, oldest id first, a page at a time"),
  Command.withExamples([
    { command: "effect-pgq failed -q orders -c mailer", description: "The first 50" },
    { command: "effect-pgq failed -q orders -c mailer --after 1234 --limit 100", description: "The next page" },
    { command: "effect-pgq failed -q orders -c mailer --json", description: "As JSON (ids as strings)" }
  ])
)
