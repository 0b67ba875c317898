/**
 * `effect-pgq status`: what is installed, every queue (ticker lag, event
 * rate) and every consumer (lag, last seen, pending and failed events).
 * `--watch` refreshes until Ctrl-C; `--nagios` prints a monitoring plugin's
 * line and exits with its code. Fails when pgq is not installed.
 *
 * @since 0.2.0
 */
import { Cause, Console, Effect, Option, Queue } from "effect"
import { Command, Flag } from "effect/cli"
import type { ConsumerInfo } from "../../api/ConsumerInfo.ts"
import { FailedEvents } from "../../api/FailedEvents.ts"
import { Installer } from "../../api/Installer.ts"
import { Pgq } from "../../api/Pgq.ts"
import { type PgqError, PgqNotInstalled } from "../../api/PgqError.ts"
import type { QueueInfo } from "../../api/QueueInfo.ts"
import * as Signals from "../../daemon/Signals.ts"
import { json, queue } from "../flags.ts"
import { setExitCode, usage } from "./CliFailure.ts"
import { withDatabase } from "./Connection.ts"
import { explain } from "./explain.ts"
import * as Nagios from "./Nagios.ts"
import { human, printJson, seconds, table } from "./Output.ts"

interface Snapshot {
  readonly pgqVersion: string
  readonly schemaVersion: number
  readonly latestSchemaVersion: number
  readonly queues: ReadonlyArray<QueueInfo>
  readonly consumers: ReadonlyArray<{ readonly info: ConsumerInfo; readonly failed: number | null }>
}

const snapshot = Effect.fnUntraced(function*(only: Option.Option<string>) {
  const installer = yield* Installer
  const pgq = yield* Pgq
  const store = yield* FailedEvents
  const status = yield* installer.status
  if (Option.isNone(status.pgqVersion)) {
    return yield* new PgqNotInstalled({ operation: "status", detail: "no pgq extension in pg_extension" })
  }
  const queues = Option.isSome(only) ? [yield* pgq.getQueueInfo(only.value)] : yield* pgq.listQueues
  const infos = yield* pgq.listConsumers(Option.getOrUndefined(only))
  const consumers = yield* Effect.forEach(
    infos,
    (info): Effect.Effect<Snapshot["consumers"][number], PgqError> =>
      status.schemaVersion === 0
        ? Effect.succeed({ info, failed: null })
        : Effect.map(store.count(info.queueName, info.consumerName), (failed) => ({ info, failed }))
  )
  return {
    pgqVersion: status.pgqVersion.value,
    schemaVersion: status.schemaVersion,
    latestSchemaVersion: status.latestVersion,
    queues,
    consumers
  } satisfies Snapshot
})

const toJson = (s: Snapshot) => ({
  pgqVersion: s.pgqVersion,
  schemaVersion: s.schemaVersion,
  latestSchemaVersion: s.latestSchemaVersion,
  queues: s.queues.map((q) => ({
    queue: q.queueName,
    tickerLagSeconds: seconds(q.tickerLag),
    eventsPerSecond: q.evPerSec,
    newEvents: q.evNew,
    lastTickId: q.lastTickId,
    tickerPaused: q.tickerPaused,
    consumers: s.consumers.filter((c) => c.info.queueName === q.queueName).map(({ failed, info }) => ({
      consumer: info.consumerName,
      lagSeconds: seconds(info.lag),
      lastSeenSeconds: seconds(info.lastSeen),
      pendingEvents: info.pendingEvents,
      currentBatch: info.currentBatch,
      failedEvents: failed
    }))
  }))
})

const render = (s: Snapshot): string => {
  const head = `pgq ${s.pgqVersion}; effect-pgq schema v${s.schemaVersion}` +
    (s.schemaVersion < s.latestSchemaVersion ? ` (v${s.latestSchemaVersion} available: run effect-pgq install)` : "")
  if (s.queues.length === 0) return `${head}\nno queues; effect-pgq create-queue creates one`
  const queues = table(
    ["QUEUE", "TICKER LAG", "EVENTS/S", "NOT TICKED", "PAUSED"],
    s.queues.map((q) => [
      q.queueName,
      human(q.tickerLag),
      q.evPerSec === null ? "-" : q.evPerSec.toFixed(1),
      String(q.evNew),
      q.tickerPaused ? "yes" : "no"
    ])
  )
  const consumers = s.consumers.length === 0 ? "no consumers; effect-pgq register adds one" : table(
    ["QUEUE", "CONSUMER", "LAG", "LAST SEEN", "PENDING", "FAILED", "BATCH"],
    s.consumers.map(({ failed, info }) => [
      info.queueName,
      info.consumerName,
      human(info.lag),
      human(info.lastSeen),
      info.pendingEvents === null ? "-" : String(info.pendingEvents),
      failed === null ? "-" : String(failed),
      info.currentBatch === null ? "-" : String(info.currentBatch)
    ])
  )
  return `${head}\n\n${queues}\n\n${consumers}`
}

const CLEAR_SCREEN = "\u001b[H\u001b[2J"

/** Refreshes until SIGINT or SIGTERM, which end it normally (exit 0). */
const watch = Effect.fnUntraced(function*<R>(
  read: Effect.Effect<Snapshot, unknown, R>,
  everySeconds: number
) {
  const signals = yield* Signals.listen(["SIGINT", "SIGTERM"])
  const refresh = read.pipe(
    Effect.map(render),
    // A failure is shown in place and the next refresh tries again.
    Effect.catchCause((cause) =>
      Effect.succeed(`effect-pgq: ${explain(Cause.squash(cause))?.message ?? "could not read the status"}`)
    ),
    Effect.flatMap((text) =>
      Console.log(`${CLEAR_SCREEN}every ${everySeconds} s, Ctrl-C to stop\n\n${text}`)
    )
  )
  yield* Effect.raceFirst(
    Effect.forever(Effect.andThen(refresh, Effect.sleep(`${everySeconds} seconds`))),
    Queue.take(signals)
  )
}, Effect.scoped)

/**
 * @since 0.2.0
 * @category commands
 */
export const status = Command.make(
  "status",
  {
    queue: Flag.optional(queue),
    json,
    watch: Flag.Int("watch").pipe(
      Flag.withOptionalValue("2"),
      Flag.withMetavar("seconds"),
      Flag.withDescription("Refresh every few seconds (--watch=5; default 2) until Ctrl-C"),
      Flag.optional
    ),
    nagios: Flag.Boolean("nagios").pipe(
      Flag.withDescription(
        "Monitoring plugin mode: one line with perfdata; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN by consumer lag"
      ),
      Flag.withDefault(false)
    ),
    warning: Flag.Int("warning").pipe(
      Flag.withMetavar("seconds"),
      Flag.withDescription("--nagios: consumer lag from which the check warns"),
      Flag.withDefault(60)
    ),
    critical: Flag.Int("critical").pipe(
      Flag.withMetavar("seconds"),
      Flag.withDescription("--nagios: consumer lag from which the check is critical"),
      Flag.withDefault(300)
    )
  },
  (input) =>
    Effect.gen(function*() {
      if (Option.isSome(input.watch) && (input.json || input.nagios)) {
        return yield* usage("status: --watch cannot be combined with --json or --nagios")
      }
      if (input.nagios && input.json) return yield* usage("status: --nagios and --json cannot be combined")
      if (input.warning < 0 || input.critical < input.warning) {
        return yield* usage("status: need 0 <= --warning <= --critical (seconds)")
      }
      if (Option.isSome(input.watch) && input.watch.value < 1) {
        return yield* usage("status: --watch takes a whole number of seconds, at least 1")
      }
      const read = withDatabase(snapshot(input.queue))
      if (input.nagios) {
        const verdict = yield* read.pipe(
          Effect.map((s) =>
            Nagios.evaluate(
              s.queues.map((q) => ({ queue: q.queueName, tickerLagSeconds: seconds(q.tickerLag) })),
              s.consumers.map(({ info }) => ({
                queue: info.queueName,
                consumer: info.consumerName,
                lagSeconds: seconds(info.lag),
                pendingEvents: info.pendingEvents
              })),
              input
            )
          ),
          Effect.catchCause((cause) => Effect.succeed(Nagios.unknown(explain(Cause.squash(cause))?.message ?? "status failed")))
        )
        yield* Console.log(verdict.line)
        return yield* setExitCode(verdict.exitCode)
      }
      if (Option.isSome(input.watch)) return yield* watch(read, input.watch.value)
      const s = yield* read
      yield* input.json ? printJson(toJson(s)) : Console.log(render(s))
    })
).pipe(
  Command.withDescription("Show queues and consumers with their lag, pending and failed events; --watch, --nagios"),
  Command.withExamples([
    { command: "effect-pgq status", description: "Every queue and consumer" },
    { command: "effect-pgq status -q orders --json", description: "One queue, as JSON" },
    { command: "effect-pgq status --watch=5", description: "Refresh every 5 seconds until Ctrl-C" },
    { command: "effect-pgq status --nagios --warning 60 --critical 300", description: "For Nagios or Icinga" }
  ])
)
