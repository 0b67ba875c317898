/**
 * Helpers for tests that run the daemon as a real process: a config module
 * written into a directory of its own, `effect-pgq daemon …` spawned with the
 * project's Node, and polling with deadlines (the machine may be slow; a fixed
 * sleep is never an assertion).
 *
 * Every process spawned here is killed (SIGKILL) when the test's scope closes
 * if it still runs, and so is any pid a test hands to `reap` (a detached
 * daemon is not our child).
 */
import { Clock, Data, Deferred, Duration, Effect, Option, Scope } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as TestDb from "../TestDb.ts"
import { isAlive } from "../../src/daemon/Pidfile.ts"
import { nodeFlags } from "../../src/daemon/DaemonControl.ts"

/** The repository's root: config modules must live under it so that `import "effect"` resolves. */
export const REPO = Path.resolve(import.meta.dirname, "../..")
const CLI_MAIN = Path.join(REPO, "src", "cli", "main.ts")
/** Git-ignored; config directories are made here and removed after each test. */
const SCRATCH = Path.join(REPO, ".pgq")

export class TimedOut extends Data.TaggedError("TimedOut")<{ readonly message: string }> {}

/** How a process ended: its exit code, or the signal that killed it. */
export interface Ended {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface DaemonProcess {
  readonly pid: number
  /** stdout and stderr so far, interleaved as they came. */
  readonly output: () => string
  /** `None` while it runs. */
  readonly ended: () => Option.Option<Ended>
  /** Waits for the end, at most `timeout`. */
  readonly exit: (timeout?: Duration.Input) => Effect.Effect<Ended, TimedOut>
  readonly signal: (signal: NodeJS.Signals) => Effect.Effect<void>
}

/** The last lines of a text, for failure messages. */
export const tail = (text: string, lines = 30): string => text.trimEnd().split("\n").slice(-lines).join("\n")

/**
 * Evaluates `effect` every 100 ms until `until` holds of its value, at most
 * `timeout`; fails with `what`, the last value and `context()` otherwise.
 */
export const poll = <A, E, R>(
  what: string,
  effect: Effect.Effect<A, E, R>,
  until: (a: A) => boolean,
  options?: { readonly timeout?: Duration.Input | undefined; readonly context?: (() => string) | undefined }
): Effect.Effect<A, E | TimedOut, R> =>
  Effect.gen(function*() {
    const timeout = Duration.toMillis(Duration.fromInputUnsafe(options?.timeout ?? "60 seconds"))
    const deadline = (yield* Clock.currentTimeMillis) + timeout
    while (true) {
      const value = yield* effect
      if (until(value)) return value
      if ((yield* Clock.currentTimeMillis) > deadline) {
        const context = options?.context?.()
        return yield* new TimedOut({
          message: `timed out after ${timeout} ms waiting for ${what}; last value: ${show(value)}` +
            (context === undefined ? "" : `\n--- context ---\n${context}`)
        })
      }
      yield* Effect.sleep("100 millis")
    }
  })

const show = (value: unknown): string => {
  try {
    return JSON.stringify(value, (_k, v: unknown) => typeof v === "bigint" ? v.toString() : v)?.slice(0, 2_000) ?? "undefined"
  } catch {
    return String(value)
  }
}

export { isAlive }

/** SIGKILLs `pid` when the scope closes, if it is still alive then. */
export const reap = (pid: number): Effect.Effect<void, never, Scope.Scope> =>
  Effect.addFinalizer(() =>
    Effect.sync(() => {
      if (isAlive(pid)) process.kill(pid, "SIGKILL")
    })
  )

/**
 * A directory of the test's own under `.pgq/`, removed when the scope closes,
 * with the paths a daemon config in it uses.
 */
export const makeDir = (prefix: string) =>
  Effect.gen(function*() {
    const dir = Path.join(SCRATCH, TestDb.unique(prefix))
    yield* Effect.acquireRelease(
      Effect.sync(() => Fs.mkdirSync(dir, { recursive: true })),
      () => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
    )
    return {
      dir,
      config: Path.join(dir, "effect-pgq.config.ts"),
      /** The default: `effect-pgq.pid` beside the config. */
      pidfile: Path.join(dir, "effect-pgq.pid"),
      log: Path.join(dir, "daemon.log"),
      /** How the config module imports effect-pgq, relative to `dir`. */
      importPath: `${Path.relative(dir, Path.join(REPO, "src", "index.ts")).split(Path.sep).join("/")}`
    }
  })

export type TestDir = Effect.Success<ReturnType<typeof makeDir>>

/** One consumer of a generated config: writes a row per event into `table`, then maybe blocks. */
export interface ConsumerSpec {
  readonly queue: string
  readonly consumer: string
  readonly table: string
  /**
   * After writing its row, the handler takes `pg_advisory_xact_lock_shared(lockKey)`:
   * it waits while the test holds the exclusive lock, and lets go with its transaction.
   */
  readonly lockKey?: number | undefined
}

/**
 * The source of a config module for `dir`: the consumers, the control
 * endpoint on a free port, and `extra` (more top-level fields, as source text).
 */
export const configSource = (dir: TestDir, options: {
  readonly url: string
  readonly consumers: ReadonlyArray<ConsumerSpec>
  readonly extra?: string | undefined
}): string => {
  const consumers = options.consumers.map((c) => `
    {
      queue: ${JSON.stringify(c.queue)},
      consumer: ${JSON.stringify(c.consumer)},
      onEvent: (event) =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* sql\`insert into \${sql(${JSON.stringify(c.table)})} (event_id, data) values (\${event.id}, \${event.data})\`${
    c.lockKey === undefined ? "" : `
          yield* sql\`select pg_advisory_xact_lock_shared(${c.lockKey})\``
  }
        })
    }`).join(",")
  return `// Written by test/daemon/Daemon.test.ts.
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { DaemonConfig } from ${JSON.stringify(dir.importPath)}

export default DaemonConfig.defineConfig({
  database: { url: ${JSON.stringify(options.url)} },
  consumers: [${consumers}
  ],
  control: { port: 0 },
  ${options.extra ?? ""}
})
`
}

export const writeFile = (file: string, text: string) => Effect.sync(() => Fs.writeFileSync(file, text))

export const readFile = (file: string) =>
  Effect.sync(() => {
    try {
      return Fs.readFileSync(file, "utf8")
    } catch {
      return ""
    }
  })

/** The pid on the pidfile's first line, if there is a pidfile. */
export const pidOf = (pidfile: string) =>
  Effect.map(readFile(pidfile), (text) => {
    const pid = Number.parseInt(text.split("\n")[0] ?? "", 10)
    return Number.isInteger(pid) && pid > 0 ? Option.some(pid) : Option.none<number>()
  })

/** With the Node.js flags a deployed daemon runs with (`DaemonControl.nodeFlags`). */
const spawnCli = (args: ReadonlyArray<string>) =>
  ChildProcess.spawn(process.execPath, [...nodeFlags({}), CLI_MAIN, ...args], {
    cwd: REPO,
    env: process.env,
    stdio: ["ignore", "pipe", "pipe"]
  })

/**
 * `effect-pgq daemon start --config FILE` in the foreground, as a child
 * process; SIGKILLed when the scope closes if it still runs.
 */
export const startDaemon = (config: string) =>
  Effect.gen(function*() {
    const ended = yield* Deferred.make<Ended>()
    let output = ""
    let result: Ended | undefined
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const child = spawnCli(["daemon", "start", "--config", config])
        child.stdout!.setEncoding("utf8").on("data", (chunk: string) => output += chunk)
        child.stderr!.setEncoding("utf8").on("data", (chunk: string) => output += chunk)
        child.on("exit", (code, signal) => {
          result = { code, signal }
          Deferred.doneUnsafe(ended, Effect.succeed(result))
        })
        return child
      }),
      (child) =>
        Effect.gen(function*() {
          if (result === undefined) {
            child.kill("SIGKILL")
            yield* Effect.ignore(Effect.timeout(Deferred.await(ended), "10 seconds"))
          }
          // DAEMON_TEST_OUTPUT=1 shows what each daemon printed, to see what a test saw.
          if (process.env["DAEMON_TEST_OUTPUT"] === "1") {
            console.log(`--- daemon pid ${child.pid} (${JSON.stringify(result)}) ---\n${output}`)
          }
        })
    )
    const daemon: DaemonProcess = {
      pid: child.pid!,
      output: () => output,
      ended: () => Option.fromNullishOr(result),
      exit: (timeout = "90 seconds") =>
        Deferred.await(ended).pipe(
          Effect.timeoutOrElse({
            duration: timeout,
            orElse: () =>
              Effect.fail(
                new TimedOut({
                  message: `daemon pid ${child.pid} still runs after ${Duration.format(Duration.fromInputUnsafe(timeout))}\n` +
                    tail(output)
                })
              )
          })
        ),
      signal: (signal) => Effect.sync(() => void child.kill(signal))
    }
    return daemon
  })

export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `effect-pgq …args` to its end (at most `timeout`, then SIGKILL and a failure). */
export const cli = (args: ReadonlyArray<string>, timeout: Duration.Input = "90 seconds") =>
  Effect.callback<CliResult, TimedOut>((resume) => {
    const child = spawnCli(args)
    let stdout = ""
    let stderr = ""
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => stdout += chunk)
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => stderr += chunk)
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      resume(Effect.fail(new TimedOut({ message: `effect-pgq ${args.join(" ")} did not end in time\n${stdout}${stderr}` })))
    }, Duration.toMillis(Duration.fromInputUnsafe(timeout)))
    // "close", not "exit": all the output has been read by then.
    child.on("close", (code) => {
      clearTimeout(timer)
      resume(Effect.succeed({ code, stdout, stderr }))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      child.kill("SIGKILL")
    })
  })

/** `effect-pgq daemon <command> --config FILE …more`. */
export const daemonCommand = (command: string, config: string, ...more: Array<string>) =>
  cli(["daemon", command, "--config", config, ...more])
