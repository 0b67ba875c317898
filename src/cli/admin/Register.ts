/**
 * `effect-pgq register` and `effect-pgq unregister`. Unregistering drops
 * the consumer's position and the events it has not yet processed, so when
 * there are any it asks first (or needs `--yes`).
 *
 * @since 0.2.0
 */
import { Console, Effect } from "effect"
import { Command } from "effect/cli"
import { Pgq } from "../../api/Pgq.ts"
import { consumer, queue, yes } from "../flags.ts"
import { confirm } from "./Confirm.ts"
import { withDatabase } from "./Connection.ts"
import { quote } from "./Output.ts"

/**
 * @since 0.2.0
 * @category commands
 */
export const register = Command.make("register", { queue, consumer }, ({ consumer, queue }) =>
  withDatabase(
    Effect.gen(function*() {
      const pgq = yield* Pgq
      // pgq would create nothing for an unknown queue, but say so less clearly.
      yield* pgq.getQueueInfo(queue)
      const registered = yield* pgq.registerConsumer(queue, consumer)
      yield* Console.log(
        registered
          ? `registered consumer ${quote(consumer)} on queue ${quote(queue)}`
          : `consumer ${quote(consumer)}: already registered on queue ${quote(queue)}`
      )
    })
  )).pipe(
    Command.withDescription("Register a consumer on a queue: it receives the events inserted from now on"),
    Command.withExamples([{ command: "effect-pgq register -q orders -c mailer", description: "Register mailer on orders" }])
  )

/**
 * @since 0.2.0
 * @category commands
 */
export const unregister = Command.make(
  "unregister",
  { queue, consumer, yes },
  ({ consumer, queue, yes }) =>
    withDatabase(
      Effect.gen(function*() {
        const pgq = yield* Pgq
        const info = yield* pgq.getConsumerInfo(queue, consumer)
        const pending = info.pendingEvents ?? 0n
        if (pending > 0n || info.currentBatch !== null) {
          yield* confirm(
            `unregister consumer ${quote(consumer)} from queue ${quote(queue)} and drop its ${pending} pending event${
              pending === 1n ? "" : "s"
            }${info.currentBatch === null ? "" : " and its open batch"}`,
            yes
          )
        }
        yield* pgq.unregisterConsumer(queue, consumer)
        yield* Console.log(`unregistered consumer ${quote(consumer)} from queue ${quote(queue)}`)
      })
    )
).pipe(
  Command.withDescription("Unregister a consumer: its position and unprocessed events are dropped (asks first when there are any)"),
  Command.withExamples([{ command: "effect-pgq unregister -q orders -c mailer --yes", description: "Unregister mailer from orders" }])
)
