/**
 * `effect-pgq delete` and `effect-pgq retry`: one failed event by id, or all
 * of a consumer's. Deleting loses the events, so it asks first (or needs
 * `--yes`); retrying puts them back in the queue for that consumer only.
 *
 * @since 0.2.0
 */
import { Console, Effect } from "effect"
import { Command } from "effect/cli"
import { FailedEvents, type FailedEventTarget } from "../../api/FailedEvents.ts"
import { EventId } from "../../api/Ids.ts"
import { Pgq } from "../../api/Pgq.ts"
import { FailedEventNotFound } from "../../api/PgqError.ts"
import { consumer, queue, yes } from "../flags.ts"
import { confirm } from "./Confirm.ts"
import { withDatabase } from "./Connection.ts"
import { parseTarget, targetArgument } from "./EventIdArgument.ts"
import { quote } from "./Output.ts"

const events = (n: number) => `${n} failed event${n === 1 ? "" : "s"}`

/**
 * How many failed events `target` names; for "all" with none stored, the
 * queue and consumer must at least exist, so a typo is not "0 deleted".
 */
const countTargets = Effect.fnUntraced(function*(queue: string, consumer: string, target: FailedEventTarget) {
  const store = yield* FailedEvents
  const pgq = yield* Pgq
  if (target !== "all") {
    // Asking to delete an event that is not there would be a question for nothing.
    const [found] = yield* store.list(queue, consumer, { afterId: EventId.make(target - 1n), limit: 1 })
    if (found?.event.id !== target) {
      return yield* new FailedEventNotFound({ operation: "FailedEvents.find", queue, consumer, eventId: target })
    }
    return 1
  }
  const n = yield* store.count(queue, consumer)
  if (n === 0) yield* pgq.getConsumerInfo(queue, consumer)
  return n
})

/**
 * @since 0.2.0
 * @category commands
 */
export const deleteFailed = Command.make(
  "delete",
  { queue, consumer, target: targetArgument, yes },
  ({ consumer, queue, target, yes }) =>
    withDatabase(
      Effect.gen(function*() {
        const parsed = yield* parseTarget(target)
        const store = yield* FailedEvents
        const n = yield* countTargets(queue, consumer, parsed)
        const whose = `of consumer ${quote(consumer)} on queue ${quote(queue)}`
        if (n === 0) return yield* Console.log(`nothing to delete: no failed events ${whose}`)
        yield* confirm(
          parsed === "all" ? `delete ${events(n)} ${whose} for good` : `delete failed event ${parsed} ${whose} for good`,
          yes
        )
        const deleted = yield* store.delete(queue, consumer, parsed)
        yield* Console.log(`deleted ${events(deleted)} ${whose}`)
      })
    )
).pipe(
  Command.withDescription("Delete a failed event, or all of a consumer's, for good"),
  Command.withExamples([
    { command: "effect-pgq delete 1234 -q orders -c mailer", description: "Delete failed event 1234" },
    { command: "effect-pgq delete all -q orders -c mailer --yes", description: "Delete them all, no question asked" }
  ])
)

/**
 * @since 0.2.0
 * @category commands
 */
export const retryFailed = Command.make(
  "retry",
  { queue, consumer, target: targetArgument },
  ({ consumer, queue, target }) =>
    withDatabase(
      Effect.gen(function*() {
        const parsed = yield* parseTarget(target)
        const store = yield* FailedEvents
        const whose = `of consumer ${quote(consumer)} on queue ${quote(queue)}`
        if ((yield* countTargets(queue, consumer, parsed)) === 0) {
          return yield* Console.log(`nothing to retry: no failed events ${whose}`)
        }
        const retried = yield* store.retry(queue, consumer, parsed)
        yield* Console.log(
          `re-queued ${events(retried)} ${whose}; ${quote(consumer)} gets ${
            retried === 1 ? "it" : "them"
          } after the next retry maintenance (ticker or pgqd)`
        )
      })
    )
).pipe(
  Command.withDescription("Deliver a failed event (or all of a consumer's) again, to that consumer only"),
  Command.withExamples([
    { command: "effect-pgq retry 1234 -q orders -c mailer", description: "Retry failed event 1234" },
    { command: "effect-pgq retry all -q orders -c mailer", description: "Retry them all" }
  ])
)
