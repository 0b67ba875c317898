/**
 * `effect-pgq install`: the pgq extension and effect-pgq's schema, and with
 * `-q`/`-c` a queue and its consumer, in one transaction: all of it or none.
 *
 * @since 0.2.0
 */
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { SqlClient } from "effect/sql"
import { Installer } from "../../api/Installer.ts"
import { Pgq } from "../../api/Pgq.ts"
import { consumer, queue } from "../flags.ts"
import { usage } from "./CliFailure.ts"
import { withDatabase } from "./Connection.ts"
import { quote } from "./Output.ts"

/**
 * @since 0.2.0
 * @category commands
 */
export const install = Command.make(
  "install",
  { queue: Flag.optional(queue), consumer: Flag.optional(consumer) },
  ({ consumer, queue }) =>
    withDatabase(
      Effect.gen(function*() {
        if (Option.isSome(consumer) && Option.isNone(queue)) {
          return yield* usage("install: --consumer needs --queue (the queue to register it on)")
        }
        const sql = yield* SqlClient.SqlClient
        const installer = yield* Installer
        const pgq = yield* Pgq
        const done = yield* Effect.gen(function*() {
          const before = yield* installer.status
          const applied = yield* installer.install
          const after = yield* installer.status
          const version = Option.getOrElse(after.pgqVersion, () => "?")
          const lines = [
            Option.isNone(before.pgqVersion)
              ? `created the pgq extension (${version})`
              : `pgq extension ${version}: already installed`,
            applied.length === 0
              ? `effect-pgq schema v${after.schemaVersion}: up to date`
              : `effect-pgq schema: applied migration${applied.length === 1 ? "" : "s"} ${applied.join(", ")} (now v${after.schemaVersion})`
          ]
          if (Option.isSome(queue)) {
            lines.push(
              (yield* pgq.createQueue(queue.value))
                ? `created queue ${quote(queue.value)}`
                : `queue ${quote(queue.value)}: already exists`
            )
            if (Option.isSome(consumer)) {
              lines.push(
                (yield* pgq.registerConsumer(queue.value, consumer.value))
                  ? `registered consumer ${quote(consumer.value)} on queue ${quote(queue.value)}`
                  : `consumer ${quote(consumer.value)}: already registered on queue ${quote(queue.value)}`
              )
            }
          }
          return lines
        }).pipe(sql.withTransaction)
        yield* Console.log(done.join("\n"))
      })
    )
).pipe(
  Command.withDescription(
    "Create the pgq extension and effect-pgq's schema if missing; with -q/-c also the queue and its consumer (all or nothing)"
  ),
  Command.withExamples([
    { command: "effect-pgq install --db postgres://postgres@localhost/shop", description: "Prepare a database" },
    { command: "effect-pgq install -q orders -c mailer", description: "Also create queue orders and register mailer" }
  ])
)
