/**
 * A real daemon for the benchmarks: scratch config directories inside the
 * repository (so config modules resolve their imports), `effect-pgq daemon
 * start` as a child process with its output kept for failure messages, and a
 * polling wait with a deadline.
 */
import { PgClient } from "@effect/sql-pg"
import { Clock, Data, Deferred, Duration, Effect, Option, Redacted } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { nodeFlags } from "../src/daemon/DaemonControl.ts"

/** A benchmark that cannot go on, with what it saw. */
export class BenchError extends Data.TaggedError("BenchError")<{ readonly message: string }> {}

/** The repository's root: config modules live under it, so that their imports resolve. */
const REPO = Path.resolve(import.meta.dirname, "..")
const CLI_MAIN = Path.join(REPO, "src", "cli", "main.ts")
/** Git-ignored. */
const SCRATCH = Path.join(REPO, ".pgq")
/** Kept of a daemon's output, for failure messages. */
const OUTPUT_LIMIT = 64 * 1024

/** The database URL the bench's own pool uses: the daemon connects to the same database. */
export const databaseUrl = Effect.map(PgClient.PgClient, (client) => Redacted.value(client.config.url ?? Redacted.make("")))

/**
 * A fresh directory under `.pgq/`, removed when the scope closes, with the
 * path of its config module and how that module imports effect-pgq.
 */
export const scratchDir = (name: string) =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => {
        Fs.mkdirSync(SCRATCH, { recursive: true })
        return Fs.mkdtempSync(Path.join(SCRATCH, `bench-${name}-${process.pid}-`))
      }),
      (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
    ),
    (dir) => ({
      dir,
      config: Path.join(dir, "effect-pgq.config.ts"),
      /** `../../src/index.ts` */
      importPath: Path.relative(dir, Path.join(REPO, "src", "index.ts")).split(Path.sep).join("/")
    })
  )

/** How a process ended: its exit code, or the signal that ended it. */
export interface Ended {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface DaemonProcess {
  readonly pid: number
  /** What it printed so far (the last 64 KiB), stdout and stderr as they came. */
  readonly output: () => string
  readonly ended: () => Option.Option<Ended>
  /** SIGTERM, then waits at most `timeout` for the exit; how it ended and how long that took. */
  readonly stop: (timeout: Duration.Input) => Effect.Effect<{ readonly ended: Ended; readonly millis: number }, BenchError>
}

export const tail = (text: string, lines = 20): string => text.trimEnd().split("\n").slice(-lines).join("\n")

/**
 * `node <flags> src/cli/main.ts daemon start --config <file>` in the
 * foreground, as a child process, with the Node.js flags `--detach` gives a
 * daemon at the config's defaults (the benches' configs set none). When the
 * scope closes while it still runs, it gets SIGTERM, and SIGKILL 10 s later.
 */
export const startDaemon = (configFile: string) =>
  Effect.gen(function*() {
    const ended = yield* Deferred.make<Ended>()
    let output = ""
    let result: Ended | undefined
    const keep = (chunk: string) => {
      output += chunk
      if (output.length > OUTPUT_LIMIT) output = output.slice(-OUTPUT_LIMIT)
    }
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const args = [...nodeFlags({}), CLI_MAIN, "daemon", "start", "--config", configFile]
        const child = ChildProcess.spawn(process.execPath, args, {
          cwd: REPO,
          env: process.env,
          stdio: ["ignore", "pipe", "pipe"]
        })
        child.stdout.setEncoding("utf8").on("data", keep)
        child.stderr.setEncoding("utf8").on("data", keep)
        child.on("exit", (code, signal) => {
          result = { code, signal }
          Deferred.doneUnsafe(ended, Effect.succeed(result))
        })
        return child
      }),
      (child) =>
        Effect.gen(function*() {
          if (result !== undefined) return
          child.kill("SIGTERM")
          yield* Effect.ignore(Effect.timeout(Deferred.await(ended), "10 seconds"))
          if (result !== undefined) return
          child.kill("SIGKILL")
          yield* Effect.ignore(Effect.timeout(Deferred.await(ended), "5 seconds"))
        })
    )
    if (child.pid === undefined) {
      return yield* new BenchError({ message: `the daemon did not start: ${tail(output)}` })
    }
    const daemon: DaemonProcess = {
      pid: child.pid,
      output: () => output,
      ended: () => Option.fromNullishOr(result),
      stop: (timeout) =>
        Effect.gen(function*() {
          const start = yield* Clock.currentTimeMillis
          if (result === undefined) child.kill("SIGTERM")
          const end = yield* Deferred.await(ended).pipe(
            Effect.timeoutOrElse({
              duration: timeout,
              orElse: () =>
                Effect.fail(
                  new BenchError({
                    message: `daemon pid ${child.pid} still runs ${Duration.format(Duration.fromInputUnsafe(timeout))} ` +
                      `after SIGTERM:\n${tail(output)}`
                  })
                )
            })
          )
          return { ended: end, millis: (yield* Clock.currentTimeMillis) - start }
        })
    }
    return daemon
  })

/**
 * Evaluates `check` every 100 ms until it holds, at most `timeout`; fails
 * with the daemon's last output when the time is up or the daemon has ended.
 */
export const waitUntil = <E, R>(
  what: string,
  daemon: DaemonProcess,
  check: Effect.Effect<boolean, E, R>,
  timeout: Duration.Input = "60 seconds"
): Effect.Effect<void, E | BenchError, R> =>
  Effect.gen(function*() {
    const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(Duration.fromInputUnsafe(timeout))
    while (!(yield* check)) {
      const ended = daemon.ended()
      if (Option.isSome(ended)) {
        return yield* new BenchError({
          message: `the daemon ended (${JSON.stringify(ended.value)}) while waiting for ${what}:\n${tail(daemon.output())}`
        })
      }
      if ((yield* Clock.currentTimeMillis) > deadline) {
        return yield* new BenchError({ message: `timed out waiting for ${what}:\n${tail(daemon.output())}` })
      }
      yield* Effect.sleep("100 millis")
    }
  })

