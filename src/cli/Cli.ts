/**
 * The `effect-pgq` commands. Today: installing and removing what effect-pgq
 * needs in a database. Every command takes `--db <url>`, falling back to
 * `PGQ_DATABASE_URL`.
 *
 * @since 0.1.0
 */
import { PgClient } from "@effect/sql-pg"
import { Console, Effect, Layer, Option, type Redacted } from "effect"
import { Command, Flag } from "effect/cli"
import { Installer } from "../api/Installer.ts"
import { daemon } from "./DaemonCommand.ts"
import { ticker } from "./TickerCommand.ts"
import { db } from "./flags.ts"


/** Runs `effect` with an Installer on the database of `--db`. */
const withInstaller = <A, E>(url: Redacted.Redacted, effect: Effect.Effect<A, E, Installer>) =>
  Effect.provide(
    effect,
    Installer.layer.pipe(Layer.provide(PgClient.layer({ url, applicationName: "effect-pgq cli" })))
  )

const install = Command.make("install", { db }, ({ db }) =>
  withInstaller(
    db,
    Effect.gen(function*() {
      const installer = yield* Installer
      const applied = yield* installer.install
      const status = yield* installer.status
      yield* Console.log(
        `pgq ${Option.getOrElse(status.pgqVersion, () => "?")} installed; effect-pgq schema at v${status.schemaVersion}` +
          (applied.length === 0 ? " (already up to date)" : ` (applied ${applied.join(", ")})`)
      )
    })
  )).pipe(Command.withDescription("Create the pgq extension if needed and apply effect-pgq's migrations"))

const uninstall = Command.make(
  "uninstall",
  {
    db,
    pgq: Flag.Boolean("pgq").pipe(
      Flag.withDescription("Also drop the pgq extension, with every queue and event in it"),
      Flag.withDefault(false)
    )
  },
  ({ db, pgq }) =>
    withInstaller(
      db,
      Effect.gen(function*() {
        yield* (yield* Installer).uninstall({ pgq })
        yield* Console.log(pgq ? "dropped effect-pgq's schema and the pgq extension" : "dropped effect-pgq's schema")
      })
    )
).pipe(Command.withDescription("Drop effect-pgq's schema (failed events included)"))

const status = Command.make("status", { db }, ({ db }) =>
  withInstaller(
    db,
    Effect.gen(function*() {
      const status = yield* (yield* Installer).status
      yield* Console.log(
        `pgq: ${Option.getOrElse(status.pgqVersion, () => "not installed")}; ` +
          `effect-pgq schema: v${status.schemaVersion} of v${status.latestVersion}`
      )
    })
  )).pipe(Command.withDescription("Show what is installed"))

/**
 * @since 0.1.0
 * @category commands
 */
export const root = Command.make("effect-pgq").pipe(
  Command.withDescription("PgQ queues and consumers as Effect programs"),
  Command.withSubcommands([install, uninstall, status, ticker, daemon])
)

