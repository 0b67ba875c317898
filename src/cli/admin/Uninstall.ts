/**
 * `effect-pgq uninstall`: with `-q Q -c C`, unregisters C and drops Q once no
 * other consumer uses it (libphp-pgq's uninstall); alone, drops effect-pgq's
 * schema; with `--pgq`, the pgq extension and every queue too. It says what
 * it will drop, asks (or needs `--yes`), and then says what it dropped.
 *
 * @since 0.2.0
 */
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { SqlClient } from "effect/sql"
import { Installer } from "../../api/Installer.ts"
import { Pgq } from "../../api/Pgq.ts"
import { consumer, queue, yes } from "../flags.ts"
import { usage } from "./CliFailure.ts"
import { confirm } from "./Confirm.ts"
import { withDatabase } from "./Connection.ts"
import { quote } from "./Output.ts"

const uninstallConsumer = Effect.fnUntraced(function*(queue: string, consumer: string, yes: boolean) {
  const sql = yield* SqlClient.SqlClient
  const pgq = yield* Pgq
  const exists = yield* pgq.getQueueInfo(queue).pipe(
    Effect.as(true),
    Effect.catchTag("QueueNotFound", () => Effect.succeed(false))
  )
  if (!exists) return yield* Console.log(`nothing to drop: queue ${quote(queue)} does not exist`)
  const names = (yield* pgq.listConsumers(queue)).map((c) => c.consumerName)
  const registered = names.includes(consumer)
  const others = names.filter((name) => name !== consumer)
  const dropQueue = others.length === 0
  if (!registered && !dropQueue) {
    return yield* Console.log(
      `nothing to drop: consumer ${quote(consumer)} is not registered on queue ${quote(queue)}, ` +
        `and ${others.map(quote).join(", ")} still use the queue`
    )
  }
  const plan = [
    ...(registered ? [`unregister consumer ${quote(consumer)} from queue ${quote(queue)}`] : []),
    ...(dropQueue ? [`drop queue ${quote(queue)} with its events`] : [])
  ]
  yield* confirm(plan.join(" and "), yes)
  yield* Effect.gen(function*() {
    if (registered) yield* pgq.unregisterConsumer(queue, consumer)
    // Without force: a consumer registered meanwhile makes it fail and roll back.
    if (dropQueue) yield* pgq.dropQueue(queue)
  }).pipe(sql.withTransaction)
  yield* Console.log(
    [
      registered
        ? `unregistered consumer ${quote(consumer)} from queue ${quote(queue)}`
        : `consumer ${quote(consumer)} was not registered on queue ${quote(queue)}`,
      dropQueue
        ? `dropped queue ${quote(queue)}`
        : `kept queue ${quote(queue)}: ${others.map(quote).join(", ")} still use it`
    ].join("\n")
  )
})

const uninstallAll = Effect.fnUntraced(function*(withPgq: boolean, yes: boolean) {
  const installer = yield* Installer
  const pgq = yield* Pgq
  const status = yield* installer.status
  const dropSchema = status.schemaVersion > 0
  const dropPgq = withPgq && Option.isSome(status.pgqVersion)
  const queues = dropPgq ? (yield* pgq.listQueues).map((q) => q.queueName) : []
  if (!dropSchema && !dropPgq) {
    return yield* Console.log(
      withPgq
        ? "nothing to drop: neither effect-pgq's schema nor the pgq extension is installed"
        : "nothing to drop: effect-pgq's schema is not installed"
    )
  }
  const queueList = queues.length === 0 ? "no queue" : `${queues.length} queue${queues.length === 1 ? "" : "s"}`
  yield* confirm(
    [
      ...(dropSchema ? ["drop effect-pgq's schema with its stored failed events and tracked jobs"] : []),
      ...(dropPgq ? [`drop the pgq extension with ${queueList} and all their events`] : [])
    ].join(" and "),
    yes
  )
  yield* installer.uninstall({ pgq: dropPgq })
  yield* Console.log(
    [
      dropSchema ? `dropped effect-pgq's schema (v${status.schemaVersion})` : "effect-pgq's schema: not installed",
      ...(!withPgq ? [] : dropPgq
        ? [`dropped the pgq extension and ${queueList}${queues.length === 0 ? "" : `: ${queues.map(quote).join(", ")}`}`]
        : ["pgq extension: not installed"])
    ].join("\n")
  )
})

/**
 * @since 0.2.0
 * @category commands
 */
export const uninstall = Command.make(
  "uninstall",
  {
    queue: Flag.optional(queue),
    consumer: Flag.optional(consumer),
    pgq: Flag.Boolean("pgq").pipe(
      Flag.withDescription("Also drop the pgq extension, with every queue and event in it"),
      Flag.withDefault(false)
    ),
    yes
  },
  ({ consumer, pgq, queue, yes }) =>
    withDatabase(
      Effect.gen(function*() {
        if (Option.isSome(queue)) {
          if (pgq) return yield* usage("uninstall: --pgq drops every queue; it cannot be combined with --queue")
          if (Option.isNone(consumer)) {
            return yield* usage("uninstall: --queue needs --consumer (the consumer to unregister)")
          }
          return yield* uninstallConsumer(queue.value, consumer.value, yes)
        }
        if (Option.isSome(consumer)) return yield* usage("uninstall: --consumer needs --queue")
        yield* uninstallAll(pgq, yes)
      })
    )
).pipe(
  Command.withDescription(
    "Unregister a consumer and drop its queue when no other consumer uses it (-q/-c), or drop effect-pgq's schema (--pgq: and the pgq extension with every queue)"
  ),
  Command.withExamples([
    { command: "effect-pgq uninstall -q orders -c mailer", description: "Unregister mailer; drop orders if it was the last consumer" },
    { command: "effect-pgq uninstall --yes", description: "Drop effect-pgq's schema (stored failed events and jobs included)" },
    { command: "effect-pgq uninstall --pgq --yes", description: "Drop everything: effect-pgq's schema, pgq, every queue" }
  ])
)
