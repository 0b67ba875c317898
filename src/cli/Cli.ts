/**
 * The `effect-pgq` commands: installing, queues, consumers, failed events,
 * producing, status and monitoring, the ticker and the daemon. The global
 * `--db <url>` says where, falling back to `PGQ_DATABASE_URL` and then to the
 * PG* variables.
 *
 * @since 0.1.0
 */
import { Command } from "effect/cli"
import { check } from "./admin/Check.ts"
import { createQueue } from "./admin/CreateQueue.ts"
import { dropQueue } from "./admin/DropQueue.ts"
import { eventStatus } from "./admin/EventStatusCommand.ts"
import { failed } from "./admin/Failed.ts"
import { deleteFailed, retryFailed } from "./admin/FailedActions.ts"
import { insert } from "./admin/Insert.ts"
import { install } from "./admin/Install.ts"
import { queueConfig } from "./admin/QueueConfig.ts"
import { register, unregister } from "./admin/Register.ts"
import { status } from "./admin/Status.ts"
import { uninstall } from "./admin/Uninstall.ts"
import { webConsole } from "./ConsoleCommand.ts"
import { daemon } from "./DaemonCommand.ts"
import { db, debug } from "./flags.ts"
import { job } from "./JobCommand.ts"
import { ticker } from "./TickerCommand.ts"

/**
 * @since 0.1.0
 * @category commands
 */
export const root = Command.make("effect-pgq").pipe(
  Command.withDescription("PgQ queues and consumers as Effect programs"),
  Command.withSubcommands([
    { group: "Setup", commands: [install, uninstall, check] },
    { group: "Queues and consumers", commands: [createQueue, dropQueue, queueConfig, register, unregister] },
    { group: "Events", commands: [insert, failed, deleteFailed, retryFailed, eventStatus] },
    { group: "Monitoring", commands: [status, webConsole] },
    { group: "Running", commands: [ticker, daemon] },
    { group: "Jobs", commands: [job] }
  ]),
  // After the subcommands, whose handlers read them.
  Command.withGlobalFlags([db, debug]),
  Command.withExamples([
    { command: "effect-pgq install -q orders -c mailer --db postgres://postgres@localhost/shop", description: "Get started" },
    { command: "PGQ_DATABASE_URL=postgres://localhost/shop effect-pgq status", description: "Queues, consumers, lag" },
    { command: "effect-pgq --completions bash > /etc/bash_completion.d/effect-pgq", description: "Shell completions" }
  ])
)
