/**
 * `effect-pgq console`: the web console on its own, on the CLI's database
 * (`--db`, else `PGQ_DATABASE_URL`, else PG*), in the foreground until
 * SIGINT or SIGTERM. It prints the address to open, with the token that
 * retry and delete need in its fragment; `PGQ_CONSOLE_TOKEN` sets the token
 * instead (an environment variable, so it shows in no process list).
 *
 * @since 0.2.0
 */
import { Config, Console, Effect, Option, Redacted } from "effect"
import { Command, Flag } from "effect/cli"
import * as ConsoleServer from "../console/ConsoleServer.ts"
import { failure } from "./admin/CliFailure.ts"
import { withDatabase } from "./admin/Connection.ts"

const port = Flag.Int("port").pipe(
  Flag.withAlias("p"),
  Flag.withMetavar("n"),
  Flag.withDescription(`Port to listen on (0: any free one; default ${ConsoleServer.DEFAULT_PORT})`),
  Flag.withDefault(ConsoleServer.DEFAULT_PORT)
)

const host = Flag.String("host").pipe(
  Flag.withMetavar("address"),
  Flag.withDescription("Address to listen on; anything but loopback exposes the console (default 127.0.0.1)"),
  Flag.withDefault("127.0.0.1")
)

const readOnly = Flag.Boolean("read-only").pipe(
  Flag.withDescription("Show no retry or delete, and refuse them"),
  Flag.withDefault(false)
)

const configuredToken = Config.option(Config.Redacted("PGQ_CONSOLE_TOKEN")).pipe(
  Config.map((token) => Option.filter(token, (t) => Redacted.value(t) !== ""))
)

/**
 * @since 0.2.0
 * @category commands
 */
export const webConsole = Command.make("console", { port, host, readOnly }, ({ host, port, readOnly }) =>
  withDatabase(
    Effect.gen(function*() {
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        return yield* failure(`--port ${port}: expected a port number from 0 to 65535`)
      }
      const token = yield* Effect.mapError(
        configuredToken,
        (error) => failure(`PGQ_CONSOLE_TOKEN: ${error.message}`)
      )
      const running = yield* ConsoleServer.serve({ host, port, readOnly, token: Option.getOrUndefined(token) }).pipe(
        Effect.mapError((error) =>
          error._tag === "ConsoleTokenError"
            ? failure(`PGQ_CONSOLE_TOKEN: ${error.message}`)
            : failure(`${error.message}; choose another --port`)
        )
      )
      yield* Console.log(`effect-pgq console on ${running.url}`)
      yield* Console.log(
        running.handler.readsNeedToken
          ? `not on loopback: reading${readOnly ? "" : ", retry and delete"} need the token${
            Option.isSome(token) ? " of PGQ_CONSOLE_TOKEN" : " in the address above"
          }`
          : readOnly
          ? "read-only: no retry or delete"
          : Option.isSome(token)
          ? "actions need the token of PGQ_CONSOLE_TOKEN"
          : "open the address above: it carries the token that retry and delete need"
      )
      return yield* Effect.never
    }).pipe(Effect.scoped),
    "effect-pgq console"
  )).pipe(
    Command.withDescription(
      "Serve the web console: queues, consumers and their lag, failed events (retry, delete), event lookup, jobs. " +
        "Retry and delete need a token: $PGQ_CONSOLE_TOKEN, else one made at start and printed in the address"
    ),
    Command.withExamples([
      { command: "effect-pgq console --db postgres://localhost/shop", description: "On http://127.0.0.1:7788/console/" },
      { command: "PGQ_CONSOLE_TOKEN=$(cat token) effect-pgq console -p 9000", description: "With a token of your own" },
      { command: "effect-pgq console --read-only", description: "Look, never touch" }
    ])
  )
