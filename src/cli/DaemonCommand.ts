/**
 * `effect-pgq daemon <start|stop|kill|reload|restart|status|logmore|logless>`:
 * run the consumers of a config as a daemon, and drive it.
 *
 * @since 0.2.0
 */
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { fileURLToPath } from "node:url"
import type { DaemonStatus } from "../daemon/ControlServer.ts"
import * as Daemon from "../daemon/Daemon.ts"
import * as DaemonConfig from "../daemon/DaemonConfig.ts"
import * as DaemonControl from "../daemon/DaemonControl.ts"

const config = Flag.String("config").pipe(
  Flag.withAlias("c"),
  Flag.withDescription("The daemon's config module (default: effect-pgq.config.ts in the current directory)"),
  Flag.withDefault("effect-pgq.config.ts")
)

/** The command line's entry module, which a detached daemon is started with. */
const CLI_MAIN = fileURLToPath(new URL(`./main.${import.meta.url.endsWith(".ts") ? "ts" : "js"}`, import.meta.url))

const start = Command.make(
  "start",
  {
    config,
    detach: Flag.Boolean("detach").pipe(
      Flag.withAlias("d"),
      Flag.withDescription("Run in the background; return once the daemon has written its pidfile"),
      Flag.withDefault(false)
    )
  },
  ({ config, detach }) =>
    Effect.gen(function*() {
      if (detach) {
        const pid = yield* DaemonControl.startDetached(config, CLI_MAIN)
        return yield* Console.log(`daemon started in the background (pid ${pid})`)
      }
      const code = yield* Daemon.run(config)
      // Everything is closed by now; exit with the daemon's code even if a stray timer lingers.
      yield* Effect.sync(() => process.exit(code))
    })
).pipe(
  Command.withDescription("Run the config's consumers, ticker and control endpoint (foreground unless --detach)"),
  Command.withExamples([
    { command: "effect-pgq daemon start --config effect-pgq.config.ts", description: "Run in the foreground" },
    { command: "effect-pgq daemon start -c /etc/effect-pgq/orders.config.ts --detach", description: "Run in the background" }
  ])
)

const stop = Command.make("stop", { config }, ({ config }) =>
  Effect.flatMap(
    DaemonControl.stop(config, "SIGTERM"),
    (pid) => Console.log(`daemon stopped (pid ${pid})`)
  )).pipe(
    Command.withDescription("Stop gracefully (SIGTERM): batches in hand commit; waits until the daemon has exited")
  )

const kill = Command.make("kill", { config }, ({ config }) =>
  Effect.flatMap(
    DaemonControl.stop(config, "SIGINT"),
    (pid) => Console.log(`daemon killed (pid ${pid}); batches in flight rolled back`)
  )).pipe(Command.withDescription("Stop now (SIGINT): batches in flight roll back and are delivered again later"))

const reload = Command.make("reload", { config }, ({ config }) =>
  // A config that does not load is said here; the daemon would only log it and keep its own.
  Effect.andThen(
    DaemonConfig.load(config),
    Effect.flatMap(
      DaemonControl.signal(config, "SIGHUP"),
      (pid) => Console.log(`asked pid ${pid} to reload its config and reopen its log file`)
    )
  )).pipe(Command.withDescription("Re-read the config and apply what changed; reopen the log file (SIGHUP)"))

const restart = Command.make("restart", { config }, ({ config }) =>
  Effect.gen(function*() {
    const stopped = yield* DaemonControl.stop(config, "SIGTERM").pipe(
      Effect.map(Option.some),
      Effect.catchTag("DaemonNotRunning", () => Effect.succeedNone)
    )
    if (Option.isSome(stopped)) yield* Console.log(`daemon stopped (pid ${stopped.value})`)
    const pid = yield* DaemonControl.startDetached(config, CLI_MAIN)
    yield* Console.log(`daemon started in the background (pid ${pid})`)
  })).pipe(Command.withDescription("Stop gracefully if running, then start in the background"))

const logmore = Command.make("logmore", { config }, ({ config }) =>
  Effect.flatMap(DaemonControl.signal(config, "SIGUSR1"), (pid) => Console.log(`pid ${pid}: log level one step up`)))
  .pipe(Command.withDescription("Log one level more verbosely, at once (SIGUSR1)"))

const logless = Command.make("logless", { config }, ({ config }) =>
  Effect.flatMap(DaemonControl.signal(config, "SIGUSR2"), (pid) => Console.log(`pid ${pid}: log level one step down`)))
  .pipe(Command.withDescription("Log one level less verbosely, at once (SIGUSR2)"))

const status = Command.make(
  "status",
  {
    config,
    json: Flag.Boolean("json").pipe(Flag.withDescription("Print the status as JSON"), Flag.withDefault(false))
  },
  ({ config, json }) =>
    Effect.gen(function*() {
      const { pid, status } = yield* DaemonControl.status(config)
      if (json) return yield* Console.log(JSON.stringify(Option.getOrElse(status, () => ({ pid })), null, 2))
      yield* Console.log(
        Option.match(status, {
          onNone: () => `running (pid ${pid}); no control endpoint configured for details`,
          onSome: (s) => describe(s)
        })
      )
    })
).pipe(Command.withDescription("Is the daemon running? Its pid, uptime, and each consumer's state and lag"))

const describe = (status: DaemonStatus): string =>
  [
    `running (pid ${status.pid}, up ${status.uptimeSeconds} s)`,
    ...status.consumers.map((c) =>
      `  ${c.queue}/${c.consumer}: ${c.state}` +
      (c.currentBatch === null ? "" : `, batch ${c.currentBatch}`) +
      `, ${c.events} events (${c.failed} failed, ${c.retried} retried)` +
      (c.lagSeconds === null ? "" : `, lag ${c.lagSeconds.toFixed(1)} s`) +
      (c.pendingEvents === null ? "" : `, ${c.pendingEvents} pending`) +
      (c.lastError === null ? "" : `; last error: ${c.lastError}`)
    )
  ].join("\n")

/**
 * @since 0.2.0
 * @category commands
 */
export const daemon = Command.make("daemon").pipe(
  Command.withDescription("Run consumers as a daemon and control it"),
  Command.withSubcommands([start, stop, kill, reload, restart, status, logmore, logless])
)
