#!/usr/bin/env node
/**
 * The `effect-pgq` executable.
 *
 * @since 0.1.0
 */
import { NodeServices } from "@effect/platform-node"
import { Console, Effect, Predicate } from "effect"
import { Command } from "effect/cli"
import { isPgqError } from "../api/PgqError.ts"
import { root } from "./Cli.ts"
import { runMain } from "./runMain.ts"

/** The daemon's failures a user fixes by reading them: a bad config, a daemon already (or not) running. */
const DAEMON_ERRORS: ReadonlySet<unknown> = new Set([
  "DaemonConfigError",
  "DaemonAlreadyRunning",
  "DaemonNotRunning",
  "DaemonControlError",
  "PidfileError",
  "ControlEndpointError",
  "LogFileError"
])

const isExplained = (error: unknown): error is { readonly message: string } =>
  isPgqError(error) || (Predicate.hasProperty(error, "_tag") && DAEMON_ERRORS.has(error._tag) &&
    Predicate.hasProperty(error, "message"))

root.pipe(
  Command.run({ version: "0.1.0" }),
  // These errors say what went wrong; a stack trace would only bury it.
  Effect.catchIf(
    isExplained,
    (error) => Effect.andThen(Console.error(`effect-pgq: ${error.message}`), Effect.sync(() => void (process.exitCode = 1)))
  ),
  Effect.provide(NodeServices.layer),
  runMain
)
