/**
 * `effect-pgq drop-queue`: drops a queue with its events; `--force` also
 * when consumers are still registered. Asks first (or needs `--yes`).
 *
 * @since 0.2.0
 */
import { Console, Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { Pgq } from "../../api/Pgq.ts"
import { QueueHasConsumers } from "../../api/PgqError.ts"
import { queue, yes } from "../flags.ts"
import { confirm } from "./Confirm.ts"
import { withDatabase } from "./Connection.ts"
import { quote } from "./Output.ts"

/**
 * @since 0.2.0
 * @category commands
 */
export const dropQueue = Command.make(
  "drop-queue",
  {
    queue,
    force: Flag.Boolean("force").pipe(
      Flag.withDescription("Drop even when consumers are registered (they lose their positions)"),
      Flag.withDefault(false)
    ),
    yes
  },
  ({ force, queue, yes }) =>
    withDatabase(
      Effect.gen(function*() {
        const pgq = yield* Pgq
        const info = yield* pgq.getQueueInfo(queue)
        const consumers = (yield* pgq.listConsumers(queue)).map((c) => c.consumerName)
        // Refused before asking: the question would be moot.
        if (consumers.length > 0 && !force) {
          return yield* new QueueHasConsumers({ operation: "drop-queue", queue })
        }
        yield* confirm(
          `drop queue ${quote(queue)} with its events` +
            (consumers.length === 0 ? "" : ` and unregister ${consumers.map(quote).join(", ")}`),
          yes
        )
        yield* pgq.dropQueue(info.queueName, { force })
        yield* Console.log(
          `dropped queue ${quote(queue)}` +
            (consumers.length === 0 ? "" : `; unregistered ${consumers.map(quote).join(", ")}`)
        )
      })
    )
).pipe(
  Command.withDescription("Drop a queue and its events (--force: even with registered consumers)"),
  Command.withExamples([
    { command: "effect-pgq drop-queue -q orders", description: "Drop queue orders (asks first on a terminal)" },
    { command: "effect-pgq drop-queue -q orders --force --yes", description: "In a script, consumers or not" }
  ])
)
