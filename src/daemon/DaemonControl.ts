/**
 * Driving a daemon from outside: the pidfile says which process, signals say
 * what to do, the control endpoint says how it is.
 *
 * @since 0.2.0
 */
import { Clock, Data, Duration, Effect, Option, Schedule } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Os from "node:os"
import * as Path from "node:path"
import type { DaemonStatus } from "./ControlServer.ts"
import * as DaemonConfig from "./DaemonConfig.ts"
import * as Pidfile from "./Pidfile.ts"
import type { DaemonSignal } from "./Signals.ts"

/**
 * @since 0.2.0
 * @category errors
 */
export class DaemonNotRunning extends Data.TaggedError("DaemonNotRunning")<{ readonly pidfile: string }> {
  override get message(): string {
    return `no daemon is running with this config (no live process in ${this.pidfile})`
  }
}

/**
 * @since 0.2.0
 * @category errors
 */
export class DaemonControlError extends Data.TaggedError("DaemonControlError")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

/**
 * Sends `signal` to the daemon of `configFile`; returns its pid.
 *
 * @since 0.2.0
 * @category commands
 */
export const signal = (configFile: string, signal: DaemonSignal) =>
  Effect.flatMap(locate(configFile), ({ pidfile }) => signalDaemon(pidfile, signal))

const signalDaemon = (pidfile: string, signal: DaemonSignal) =>
  Effect.gen(function*() {
    const pid = yield* Pidfile.running(pidfile)
    if (Option.isNone(pid)) return yield* new DaemonNotRunning({ pidfile })
    yield* Effect.sync(() => process.kill(pid.value, signal))
    return pid.value
  })

/**
 * Sends `signal` (SIGTERM or SIGINT) and waits until the process is gone, at
 * most `stopTimeout` plus a margin.
 *
 * @since 0.2.0
 * @category commands
 */
export const stop = (configFile: string, how: "SIGTERM" | "SIGINT") =>
  Effect.gen(function*() {
    const { pidfile, stopTimeout } = yield* locate(configFile)
    const pid = yield* signalDaemon(pidfile, how)
    const patience = Duration.sum(Duration.fromInputUnsafe(stopTimeout ?? "30 seconds"), Duration.seconds(10))
    yield* Effect.sync(() => Pidfile.isAlive(pid)).pipe(
      Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (alive) => !alive }),
      Effect.timeoutOrElse({
        duration: patience,
        orElse: () =>
          Effect.fail(new DaemonControlError({ reason: `pid ${pid} still runs after ${Duration.format(patience)}` }))
      })
    )
    return pid
  })

/**
 * The Node.js flags a daemon runs with: the config's heap cap and young
 * generation. `--detach` passes them; a foreground daemon gets them from
 * its command line (see examples/daemon/effect-pgq.service).
 *
 * @since 0.2.0
 * @category commands
 */
export const nodeFlags = (config: Pick<DaemonConfig.DaemonConfig, "maxHeapMb" | "semiSpaceMb">): ReadonlyArray<string> => [
  `--max-old-space-size=${config.maxHeapMb ?? 512}`,
  `--max-semi-space-size=${config.semiSpaceMb ?? 1}`
]

/**
 * Starts the daemon in the background: a detached process with the Node.js
 * flags of the config (`nodeFlags`), whose stdout and stderr go to `<pidfile>.out` (its log
 * lines to the config's log file, when it has one). Returns once its pidfile names a live process, or fails
 * with what the process printed when it ended instead.
 *
 * @since 0.2.0
 * @category commands
 */
export const startDetached = (configFile: string, cliMain: string) =>
  Effect.gen(function*() {
    const config = yield* DaemonConfig.load(configFile)
    const pidfile = DaemonConfig.pidfileOf(configFile, config)
    const running = yield* Pidfile.running(pidfile)
    if (Option.isSome(running)) {
      return yield* new Pidfile.DaemonAlreadyRunning({ pidfile, pid: running.value })
    }
    const output = `${pidfile}.out`
    const child = yield* Effect.sync(() => {
      const out = Fs.openSync(output, "a", 0o640)
      const spawned = ChildProcess.spawn(
        process.execPath,
        [
          ...nodeFlags(config),
          cliMain,
          "daemon",
          "start",
          "--config",
          Path.resolve(configFile)
        ],
        { detached: true, stdio: ["ignore", out, out], cwd: process.cwd(), env: process.env }
      )
      Fs.closeSync(out)
      spawned.unref()
      return spawned
    })
    const started = yield* Clock.currentTimeMillis
    while (true) {
      const pid = yield* Pidfile.running(pidfile)
      if (Option.isSome(pid) && pid.value === child.pid) return pid.value
      if (child.exitCode !== null || child.signalCode !== null) {
        const printed = yield* Effect.sync(() => Fs.existsSync(output) ? Fs.readFileSync(output, "utf8") : "")
        return yield* new DaemonControlError({
          reason: `the daemon exited at start (code ${child.exitCode ?? child.signalCode}): ${lastLines(printed)}`
        })
      }
      if ((yield* Clock.currentTimeMillis) - started > 30_000) {
        return yield* new DaemonControlError({ reason: `the daemon did not write ${pidfile} within 30 seconds` })
      }
      yield* Effect.sleep("50 millis")
    }
  })

/**
 * The running daemon's `/status`, or just its pid when it has no control endpoint.
 *
 * @since 0.2.0
 * @category commands
 */
export const status = (configFile: string) =>
  Effect.gen(function*() {
    const { pidfile } = yield* locate(configFile)
    const pid = yield* Pidfile.running(pidfile)
    if (Option.isNone(pid)) return yield* new DaemonNotRunning({ pidfile })
    // The address the daemon recorded: with port 0 only it knows the port.
    const recorded = yield* Pidfile.readControl(pidfile)
    if (Option.isNone(recorded)) return { pid: pid.value, status: Option.none<DaemonStatus>() }
    const match = /^(.*):(\d+)$/.exec(recorded.value)
    const address: DaemonConfig.ControlAddress = match === null
      ? { socket: recorded.value }
      : { host: match[1]!, port: Number(match[2]) }
    const body = yield* get(address, "/status")
    return { pid: pid.value, status: Option.some(JSON.parse(body) as DaemonStatus) }
  })

const get = (address: DaemonConfig.ControlAddress, path: string) =>
  Effect.callback<string, DaemonControlError>((resume) => {
    const target = "socket" in address
      ? { socketPath: address.socket, path }
      : { host: address.host ?? "127.0.0.1", port: address.port, path }
    const request = Http.get({ ...target, timeout: 5_000 }, (response) => {
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => body += chunk)
      response.on("end", () =>
        resume(
          response.statusCode === 200
            ? Effect.succeed(body)
            : Effect.fail(new DaemonControlError({ reason: `control endpoint answered ${response.statusCode}` }))
        ))
    })
    request.on("timeout", () => request.destroy(new Error("timed out")))
    request.on("error", (error) =>
      resume(Effect.fail(new DaemonControlError({ reason: `control endpoint unreachable: ${error.message}` }))))
  })

/**
 * The pidfile and stop timeout of a config, from one load of it. A config
 * that no longer loads (a typo saved while the daemon runs) must not keep
 * `stop` from stopping it: then the default pidfile beside it is used.
 */
const locate = (
  configFile: string
): Effect.Effect<{ readonly pidfile: string; readonly stopTimeout: Duration.Input | undefined }> =>
  DaemonConfig.load(configFile).pipe(
    Effect.timeoutOption("10 seconds"),
    Effect.orElseSucceed(() => Option.none<DaemonConfig.DaemonConfig>()),
    Effect.map(Option.match({
      onNone: () => ({
        pidfile: Path.resolve(Path.dirname(Path.resolve(configFile)), "effect-pgq.pid"),
        stopTimeout: undefined
      }),
      onSome: (config) => ({ pidfile: DaemonConfig.pidfileOf(configFile, config), stopTimeout: config.stopTimeout })
    }))
  )

const lastLines = (text: string): string => text.trim().split(Os.EOL).slice(-5).join(" | ")
