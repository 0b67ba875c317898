#!/usr/bin/env node
/**
 * The `effect-pgq` executable. Every failure ends as one line on stderr
 * (`effect-pgq: <what failed>; <what to do>`) and a non-zero exit code: 1 for
 * a failure, 2 for a command line that does not parse. `--debug` adds the
 * full cause with its stack traces.
 *
 * @since 0.1.0
 */
import { NodeServices } from "@effect/platform-node"
import { Cause, Console, Effect, Schema } from "effect"
import { CliError, CliOutput, Command } from "effect/cli"
import { createRequire } from "node:module"
import { setExitCode } from "./admin/CliFailure.ts"
import { explain } from "./admin/explain.ts"
import { root } from "./Cli.ts"
import { runMain } from "./runMain.ts"

// The same relative path from src/cli and dist/cli.
const { version } = Schema.decodeUnknownSync(Schema.Struct({ version: Schema.String }))(
  createRequire(import.meta.url)("../../package.json")
)

/** `--debug` before a `--` (after it, it would be an operand). */
const args = process.argv.slice(2)
const debug = (args.includes("--") ? args.slice(0, args.indexOf("--")) : args).includes("--debug")

/**
 * Parse errors as one line pointing at the command's help, instead of the
 * whole help followed by the error.
 */
const presenter: CliOutput.Presenter = {
  present: (event) =>
    event._tag === "InvalidInvocation"
      ? Console.error(
        `${event.commandPath.join(" ")}: ${event.errors.map((error) => error.message).join("; ")} ` +
          `(see: ${event.commandPath.join(" ")} --help)`
      )
      : CliOutput.defaultPresenter.present(event)
}

const report = (cause: Cause.Cause<unknown>) => {
  const error = Cause.squash(cause)
  // The presenter has said what was wrong with the command line.
  if (CliError.isCliError(error)) return setExitCode(2)
  const explained = explain(error)
  const line = explained === undefined
    ? `effect-pgq: unexpected failure: ${error instanceof Error ? error.message : String(error)}` +
      (debug ? "" : " (run again with --debug for the full trace)")
    : `effect-pgq: ${explained.message}`
  return Effect.andThen(
    Console.error(debug ? `${line}\n${Cause.pretty(cause)}` : line),
    setExitCode(explained?.exitCode ?? 1)
  )
}

root.pipe(
  Command.run({ version }),
  Effect.catchCause((cause) => (Cause.hasInterruptsOnly(cause) ? Effect.failCause(cause) : report(cause))),
  Effect.provide(CliOutput.layerPresenter(presenter)),
  Effect.provide(NodeServices.layer),
  runMain
)
