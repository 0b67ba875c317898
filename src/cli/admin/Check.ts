/**
 * `effect-pgq check`: exit 0 only when the queue exists and the consumer is
 * registered on it, otherwise exit 1 and say what is missing. For
 * deployment scripts and health checks.
 *
 * @since 0.2.0
 */
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { Pgq } from "../../api/Pgq.ts"
import { consumer, json, queue } from "../flags.ts"
import { failure } from "./CliFailure.ts"
import { withDatabase } from "./Connection.ts"
import { printJson, quote } from "./Output.ts"

/**
 * @since 0.2.0
 * @category commands
 */
export const check = Command.make(
  "check",
  { queue, consumer: Flag.optional(consumer), json },
  ({ consumer, json, queue }) =>
    withDatabase(
      Effect.gen(function*() {
        const pgq = yield* Pgq
        const queueExists = yield* pgq.getQueueInfo(queue).pipe(
          Effect.as(true),
          Effect.catchTag("QueueNotFound", () => Effect.succeed(false))
        )
        const consumerRegistered = Option.isNone(consumer) || !queueExists
          ? null
          : (yield* pgq.listConsumers(queue)).some((c) => c.consumerName === consumer.value)
        const missing = !queueExists
          ? `queue ${quote(queue)} does not exist`
          : consumerRegistered === false && Option.isSome(consumer)
          ? `consumer ${quote(consumer.value)} is not registered on queue ${quote(queue)}`
          : undefined
        if (json) {
          yield* printJson({
            ok: missing === undefined,
            queue,
            queueExists,
            consumer: Option.getOrNull(consumer),
            consumerRegistered: Option.isNone(consumer) ? null : consumerRegistered === true
          })
        } else if (missing === undefined) {
          yield* Console.log(
            Option.isSome(consumer)
              ? `ok: queue ${quote(queue)} exists and consumer ${quote(consumer.value)} is registered on it`
              : `ok: queue ${quote(queue)} exists`
          )
        }
        if (missing !== undefined) return yield* failure(`check failed: ${missing}`)
      })
    )
).pipe(
  Command.withDescription("Exit 0 if the queue exists and the consumer is registered on it; otherwise say what is missing and exit 1"),
  Command.withExamples([
    { command: "effect-pgq check -q orders -c mailer", description: "Is mailer registered on orders?" },
    { command: "effect-pgq check -q orders --json", description: "Does queue orders exist? As JSON" }
  ])
)
