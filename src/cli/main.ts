#!/usr/bin/env node
/**
 * The `effect-pgq` executable.
 *
 * @since 0.1.0
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Console, Effect } from "effect"
import { Command } from "effect/cli"
import { isPgqError } from "../api/PgqError.ts"
import { root } from "./Cli.ts"

root.pipe(
  Command.run({ version: "0.1.0" }),
  // effect-pgq's errors say what went wrong; a stack trace would only bury it.
  Effect.catchIf(
    isPgqError,
    (error) => Effect.andThen(Console.error(`effect-pgq: ${error.message}`), Effect.sync(() => void (process.exitCode = 1)))
  ),
  Effect.provide(NodeServices.layer),
  NodeRuntime.runMain
)
