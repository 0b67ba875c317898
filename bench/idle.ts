/**
 * The cost of an idle daemon: a real `node src/cli/main.ts daemon start
 * --config <file>` process with `--consumers` idle consumers (default 10, one
 * queue each) and the built-in ticker at its defaults.
 *
 * The queues are made and their consumers registered first, with one event
 * each; the daemon is started, and once every consumer has handled its event
 * (so each has run a batch and its handler) it is left alone for
 * `--settle-seconds` (default 5). Then, over `--idle-seconds` (default 30,
 * at least 30 is what the target asks), its CPU is read from
 * `/proc/<pid>/stat` (utime + stime, all threads, in clock ticks of
 * `getconf CLK_TCK`) over wall time, and its RSS from `/proc/<pid>/status`
 * (VmRSS) once a second. The bench sleeps meanwhile.
 *
 * One JSON row: `consumers`, `seconds`, `cpuPercent` (of one core, over the
 * whole window), `cpuPercentWindows` (the same per 10 s), `rssMb` (at the
 * end), `rssMbMax`, `rssMbWindows` (at the end of each 10 s). As side notes,
 * what the daemon asks of the database while idle: `dbBackends` and
 * `dbCpuPercent`, the PostgreSQL backends serving the daemon
 * (application_name `effect-pgq daemon`) over the same window, and
 * `dbCommitsPerSecond` (pg_stat_database's xact_commit). At the end the
 * daemon gets SIGTERM: `daemonExit` (0 expected, else the bench fails) and
 * `daemonStopMs`.
 *
 * Everything made is removed at the end, also on failure or interruption:
 * the daemon is stopped (SIGTERM, then SIGKILL after 10 s), the config
 * directory under `.pgq/` removed, the queues and the table dropped.
 */
import { Clock, Console, Duration, Effect } from "effect"
import { SqlClient } from "effect/sql"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import { Pgq } from "../src/api/Pgq.ts"
import { Producer } from "../src/api/Producer.ts"
import { BenchError, databaseUrl, scratchDir, startDaemon, waitUntil } from "./daemonProcess.ts"

const TABLE = "bench_idle_seen"

/** Clock ticks per second, as `/proc/<pid>/stat` counts them. */
const clockTicks = Effect.try({
  try: () => {
    const ticks = Number.parseInt(ChildProcess.execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim(), 10)
    if (!Number.isInteger(ticks) || ticks <= 0) throw new Error(`getconf CLK_TCK printed ${ticks}`)
    return ticks
  },
  catch: (cause) => new BenchError({ message: `cannot read CLK_TCK: ${String(cause)}` })
})

/** utime + stime of a process (all its threads), in clock ticks; undefined when it is gone. */
const cpuTicks = (pid: number): number | undefined => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    return Number(fields[11]) + Number(fields[12])
  } catch {
    return undefined
  }
}

/** VmRSS in MiB; undefined when the process is gone. */
const rssMb = (pid: number): number | undefined => {
  try {
    const match = Fs.readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+)\s+kB/m)
    return match === null ? undefined : Number(match[1]) / 1024
  } catch {
    return undefined
  }
}

const configSource = (options: {
  readonly importPath: string
  readonly url: string
  readonly queues: ReadonlyArray<string>
  readonly consumer: string
}) =>
  `// Written by bench/idle.ts; removed when the bench ends.
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { DaemonConfig } from ${JSON.stringify(options.importPath)}

const onEvent = (event, context) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql\`insert into ${TABLE} (queue, ev_id) values (\${context.queue}, \${event.id})\`
  })

export default DaemonConfig.defineConfig({
  database: { url: ${JSON.stringify(options.url)} },
  consumers: ${JSON.stringify(options.queues)}.map((queue) => ({ queue, consumer: ${
    JSON.stringify(options.consumer)
  }, onEvent }))
})
`

const round2 = (value: number): number => Math.round(value * 100) / 100

export const idle = (options: {
  readonly consumers: number
  readonly seconds: number
  readonly settleSeconds: number
}) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    const producer = yield* Producer
    const sql = yield* SqlClient.SqlClient
    const url = yield* databaseUrl
    const ticksPerSecond = yield* clockTicks
    const consumer = "bench"
    const queues = Array.from({ length: options.consumers }, (_, i) => `bench_idle_${process.pid}_${i}`)

    yield* Effect.acquireRelease(
      Effect.andThen(
        sql`drop table if exists ${sql(TABLE)}`,
        sql`create table ${sql(TABLE)} (queue text not null, ev_id bigint not null)`
      ),
      () => Effect.ignore(sql`drop table if exists ${sql(TABLE)}`)
    )
    for (const queue of queues) {
      yield* Effect.acquireRelease(
        Effect.gen(function*() {
          yield* pgq.createQueue(queue)
          yield* pgq.registerConsumer(queue, consumer)
          yield* producer.send(queue, { type: "warmup", data: null })
        }),
        () => Effect.ignore(pgq.dropQueue(queue, { force: true }))
      )
    }

    const dir = yield* scratchDir("idle")
    yield* Effect.sync(() =>
      Fs.writeFileSync(dir.config, configSource({ importPath: dir.importPath, url, queues, consumer }))
    )
    const daemon = yield* startDaemon(dir.config)
    yield* waitUntil(
      `each of the ${options.consumers} consumers to handle its event`,
      daemon,
      Effect.map(
        sql<{ readonly n: number }>`select count(distinct queue)::int as n from ${sql(TABLE)}`,
        (rows) => rows[0]?.n === options.consumers
      )
    )
    yield* Effect.sleep(Duration.seconds(options.settleSeconds))

    const backends = (yield* sql<{ readonly pid: number }>`
      select pid from pg_stat_activity where application_name = 'effect-pgq daemon'`).map((row) => row.pid)

    const gone = (what: string) =>
      new BenchError({ message: `the daemon (pid ${daemon.pid}) ended while ${what}:\n${daemon.output()}` })
    const sample = Effect.gen(function*() {
      const ticks = cpuTicks(daemon.pid)
      const rss = rssMb(daemon.pid)
      if (ticks === undefined || rss === undefined) return yield* gone("being sampled")
      return { atMs: performance.now(), ticks, rss }
    })
    const dbTicks = () => backends.map(cpuTicks)

    /** Transactions committed in this database so far (the daemon's, and the bench's few). */
    const commits = Effect.map(
      sql<{ readonly n: number }>`select xact_commit::float8 as n from pg_stat_database where datname = current_database()`,
      (rows) => rows[0]?.n ?? 0
    )

    const commitsFirst = yield* commits
    const first = yield* sample
    const dbFirst = dbTicks()
    const samples = [first]
    const windowTicks: Array<number> = []
    const windowRss: Array<number> = []
    let windowStart = first
    const t0 = yield* Clock.currentTimeMillis
    for (let s = 1; s <= Math.ceil(options.seconds); s++) {
      // Sleep to the next whole second since t0, so that samples do not drift.
      yield* Effect.sleep(Duration.millis(Math.max(0, t0 + s * 1000 - (yield* Clock.currentTimeMillis))))
      const next = yield* sample
      samples.push(next)
      if (s % 10 === 0 || s === Math.ceil(options.seconds)) {
        windowTicks.push(
          ((next.ticks - windowStart.ticks) / ticksPerSecond) / ((next.atMs - windowStart.atMs) / 1000) * 100
        )
        windowRss.push(next.rss)
        windowStart = next
      }
    }
    const last = samples.at(-1)!
    const dbLast = dbTicks()
    const commitsLast = yield* commits
    const wallSeconds = (last.atMs - first.atMs) / 1000
    const cpuPercent = ((last.ticks - first.ticks) / ticksPerSecond) / wallSeconds * 100
    let dbTicksUsed = 0
    for (const [i, before] of dbFirst.entries()) {
      const after = dbLast[i]
      if (before !== undefined && after !== undefined) dbTicksUsed += after - before
    }

    const stopped = yield* daemon.stop("30 seconds")
    yield* Console.log(JSON.stringify({
      name: "idle: daemon with idle consumers and the built-in ticker",
      consumers: options.consumers,
      seconds: Number(wallSeconds.toFixed(1)),
      cpuPercent: round2(cpuPercent),
      cpuPercentWindows: windowTicks.map(round2),
      rssMb: Number(last.rss.toFixed(1)),
      rssMbMax: Number(Math.max(...samples.map((s) => s.rss)).toFixed(1)),
      rssMbWindows: windowRss.map((rss) => Number(rss.toFixed(1))),
      dbBackends: backends.length,
      dbCpuPercent: round2((dbTicksUsed / ticksPerSecond) / wallSeconds * 100),
      dbCommitsPerSecond: Number(((commitsLast - commitsFirst) / wallSeconds).toFixed(1)),
      clockTicksPerSecond: ticksPerSecond,
      daemonExit: stopped.ended.code,
      daemonStopMs: stopped.millis
    }))
    if (stopped.ended.code !== 0) {
      return yield* new BenchError({
        message: `the daemon exited with ${JSON.stringify(stopped.ended)} after SIGTERM, not 0:\n${daemon.output()}`
      })
    }
  }).pipe(Effect.scoped)
