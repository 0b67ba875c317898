/**
 * `effect-pgq create-queue`.
 *
 * @since 0.2.0
 */
import { Console, Effect } from "effect"
import { Command } from "effect/cli"
import { Pgq } from "../../api/Pgq.ts"
import { queue } from "../flags.ts"
import { withDatabase } from "./Connection.ts"
import { quote } from "./Output.ts"

/**
 * @since 0.2.0
 * @category commands
 */
export const createQueue = Command.make("create-queue", { queue }, ({ queue }) =>
  withDatabase(
    Effect.gen(function*() {
      const created = yield* (yield* Pgq).createQueue(queue)
      yield* Console.log(created ? `created queue ${quote(queue)}` : `queue ${quote(queue)}: already exists`)
    })
  )).pipe(
    Command.withDescription("Create a queue (nothing happens if it exists)"),
    Command.withExamples([{ command: "effect-pgq create-queue -q orders", description: "Create queue orders" }])
  )
