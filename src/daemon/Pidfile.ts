/**
 * The daemon's pidfile: one running daemon per config. A pidfile whose
 * process is gone (a crash, a reboot) is stale and taken over; one whose
 * process lives makes a second start refuse.
 *
 * @since 0.2.0
 */
import { Data, Effect, Option, type Scope } from "effect"
import * as Fs from "node:fs"

/**
 * @since 0.2.0
 * @category errors
 */
export class DaemonAlreadyRunning extends Data.TaggedError("DaemonAlreadyRunning")<{
  readonly pidfile: string
  readonly pid: number
}> {
  override get message(): string {
    return `a daemon is already running with this config (pid ${this.pid}, pidfile ${this.pidfile}); ` +
      `stop it first, or use 'effect-pgq daemon restart'`
  }
}

/**
 * @since 0.2.0
 * @category errors
 */
export class PidfileError extends Data.TaggedError("PidfileError")<{
  readonly pidfile: string
  readonly reason: string
}> {
  override get message(): string {
    return `pidfile ${this.pidfile}: ${this.reason}`
  }
}

/**
 * Whether a process with this pid exists (and may be signalled by us).
 *
 * @since 0.2.0
 * @category utils
 */
export const isAlive = (pid: number): boolean => {
  // Signal 0 only checks: ESRCH means no such process, EPERM one that exists under another user.
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * The pid in the pidfile, if there is one with a number in it.
 *
 * @since 0.2.0
 * @category constructors
 */
export const read = (pidfile: string): Effect.Effect<Option.Option<number>> =>
  Effect.try(() => Fs.readFileSync(pidfile, "utf8")).pipe(
    Effect.option,
    Effect.map(Option.flatMap((text) => {
      const pid = Number.parseInt(text.trim(), 10)
      return Number.isInteger(pid) && pid > 0 ? Option.some(pid) : Option.none()
    }))
  )

/**
 * The running daemon's pid: `None` when there is no pidfile or its process is gone.
 *
 * @since 0.2.0
 * @category constructors
 */
export const running = (pidfile: string): Effect.Effect<Option.Option<number>> =>
  Effect.map(read(pidfile), Option.filter(isAlive))

/**
 * Writes this process's pid for the scope's life, refusing while another
 * daemon of the same pidfile lives; removes the file at the end (only if it
 * is still ours).
 *
 * @since 0.2.0
 * @category constructors
 */
export const hold = (pidfile: string): Effect.Effect<void, DaemonAlreadyRunning | PidfileError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const existing = yield* read(pidfile)
      if (Option.isSome(existing) && existing.value !== process.pid) {
        if (isAlive(existing.value)) return yield* new DaemonAlreadyRunning({ pidfile, pid: existing.value })
        yield* Effect.logInfo(`removing stale pidfile ${pidfile} (pid ${existing.value} is gone)`)
        yield* Effect.sync(() => Fs.rmSync(pidfile, { force: true }))
      }
      // `wx`: of two daemons starting at once, one writes it and the other finds it there.
      const written = yield* Effect.result(Effect.try({
        try: () => Fs.writeFileSync(pidfile, `${process.pid}\n`, { flag: "wx", mode: 0o644 }),
        catch: (cause) => cause as NodeJS.ErrnoException
      }))
      if (written._tag === "Failure") {
        const now = yield* read(pidfile)
        if (written.failure.code === "EEXIST" && Option.isSome(now)) {
          return yield* new DaemonAlreadyRunning({ pidfile, pid: now.value })
        }
        return yield* new PidfileError({ pidfile, reason: written.failure.message })
      }
    }),
    () =>
      Effect.gen(function*() {
        const current = yield* read(pidfile)
        if (Option.isSome(current) && current.value === process.pid) Fs.rmSync(pidfile, { force: true })
      })
  )

/**
 * Records where the control endpoint listens, on the pidfile's second line:
 * with port 0 only the daemon knows its port.
 *
 * @since 0.2.0
 * @category constructors
 */
export const recordControl = (pidfile: string, address: string): Effect.Effect<void> =>
  Effect.ignore(Effect.try(() => Fs.writeFileSync(pidfile, `${process.pid}\n${address}\n`, { mode: 0o644 })))

/**
 * The control endpoint's address the daemon recorded, if any.
 *
 * @since 0.2.0
 * @category constructors
 */
export const readControl = (pidfile: string): Effect.Effect<Option.Option<string>> =>
  Effect.try(() => Fs.readFileSync(pidfile, "utf8")).pipe(
    Effect.option,
    Effect.map(Option.flatMap((text) => Option.fromNullishOr(text.split("\n")[1]?.trim() || undefined)))
  )
