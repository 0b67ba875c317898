/**
 * Delivery latency of a real daemon: from an event's insert committed to its
 * handler starting, with the daemon's built-in ticker (no manual ticks).
 *
 * For each setup, a queue and a config module (in a fresh directory under the
 * git-ignored `.pgq/`, importing `../../src/index.ts`) are made, and
 * `node src/cli/main.ts daemon start --config <file>` runs as a child process.
 * A warm-up event is handled first. Then one producer inserts one event at a
 * time (each insert its own transaction) at a steady `--rate` (default 20/s)
 * for `--latency-seconds` (default 30). The time right after each insert's
 * commit returns is kept by the bench, keyed by the event's id (the payload
 * carries its sequence number and the time just before the insert: a
 * transaction cannot hold its own commit time). The handler records
 * `Date.now()` as it starts, with its batch id and the batch's tick time,
 * into a table that commits with the batch. Both clocks are this machine's.
 *
 * Setups, one row each (`"setup"`):
 *
 *   defaults          the ticker and the queue as they come: event ticks
 *                     every 50 ms, `tickerPeriod` 1 s, pgq's
 *                     `ticker_max_lag` 3 s, `ticker_max_count` 500
 *   thresholds-only   event ticks off (`eventTickPeriod: false`): ticks
 *                     only where pgq's thresholds call for one, as pgqd
 *                     makes them
 *
 * Each row: `count`, `p50Ms`, `p90Ms`, `p99Ms`, `maxMs`, and the two parts of
 * the latency: `tickWait*` (commit to the batch's tick time, which is the
 * ticker transaction's `now()`) and `delivery*` (tick time to the handler's
 * start: the tick's commit, its NOTIFY, the consumer's `next_batch` and
 * events query); `batches`, and the mean and longest interval between the
 * ticks that closed them (`meanTickIntervalMs`, `maxTickIntervalMs`); and
 * `daemonExit`, the daemon's exit code after SIGTERM (0 expected).
 *
 * Everything made is removed at the end, also on failure or interruption:
 * the daemon is stopped (SIGTERM, then SIGKILL after 10 s), the config
 * directory removed, the queue and the table dropped.
 *
 * The helpers for a daemon process (`scratchDir`, `startDaemon`,
 * `waitUntil`) are shared with `idle.ts`.
 */
import { Clock, Console, Duration, Effect } from "effect"
import { SqlClient } from "effect/sql"
import * as Fs from "node:fs"
import { Pgq } from "../src/api/Pgq.ts"
import { Producer } from "../src/api/Producer.ts"
import { BenchError, databaseUrl, scratchDir, startDaemon, tail, waitUntil } from "./daemonProcess.ts"

/** The nearest-rank percentile of sorted values. */
const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!

const round1 = (value: number): number => Math.round(value * 10) / 10

/** `p50Ms`, `p90Ms`, `p99Ms` (and `maxMs`), or with a prefix `tickWaitP50Ms`, … */
const summary = (prefix: string, values: ReadonlyArray<number>, withMax = false) => {
  const sorted = values.toSorted((a, b) => a - b)
  const key = (name: string) => prefix === "" ? `${name}Ms` : `${prefix}${name[0]!.toUpperCase()}${name.slice(1)}Ms`
  return {
    [key("p50")]: round1(percentile(sorted, 50)),
    [key("p90")]: round1(percentile(sorted, 90)),
    [key("p99")]: round1(percentile(sorted, 99)),
    ...(withMax ? { [key("max")]: round1(sorted.at(-1) ?? Number.NaN) } : {})
  }
}

const TABLE = "bench_latency_seen"

/**
 * The config module: one consumer whose handler records its start time, its
 * batch and the batch's tick time.
 */
const configSource = (options: {
  readonly importPath: string
  readonly url: string
  readonly queue: string
  readonly consumer: string
  readonly ticker: string | undefined
}) =>
  `// Written by bench/latency.ts; removed when the bench ends.
import { DateTime, Effect } from "effect"
import { SqlClient } from "effect/sql"
import { DaemonConfig } from ${JSON.stringify(options.importPath)}

export default DaemonConfig.defineConfig({
  database: { url: ${JSON.stringify(options.url)} },
  consumers: [
    {
      queue: ${JSON.stringify(options.queue)},
      consumer: ${JSON.stringify(options.consumer)},
      onEvent: (event, context) =>
        Effect.gen(function*() {
          const startedMs = Date.now()
          const sql = yield* SqlClient.SqlClient
          yield* sql\`insert into ${TABLE} (ev_id, ev_type, started_ms, batch_id, tick_ms)
            values (\${event.id}, \${event.type}, \${startedMs}, \${context.batch.batchId},
              \${DateTime.toEpochMillis(context.batch.curTickTime)})
            on conflict (ev_id) do nothing\`
        })
    }
  ]${options.ticker === undefined ? "" : `,\n  ticker: ${options.ticker}`}
})
`

interface Setup {
  readonly setup: "defaults" | "thresholds-only"
  /** For `pgq.set_queue_config(queue, 'ticker_max_lag', …)`; pgq's default (3 s) when undefined. */
  readonly tickerMaxLag: string | undefined
  /** The config's `ticker` field, as source text; the default ticker when undefined. */
  readonly ticker: string | undefined
  readonly tickerPeriodMs: number
}

interface SeenRow {
  readonly id: string
  readonly startedMs: number
  readonly batchId: string
  readonly tickMs: number
}

const runSetup = (setup: Setup, options: { readonly rate: number; readonly seconds: number }, index: number) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    const producer = yield* Producer
    const sql = yield* SqlClient.SqlClient
    const url = yield* databaseUrl
    const queue = `bench_latency_${process.pid}_${index}`
    const consumer = "bench"

    yield* Effect.acquireRelease(
      Effect.gen(function*() {
        yield* pgq.createQueue(queue)
        yield* pgq.registerConsumer(queue, consumer)
        if (setup.tickerMaxLag !== undefined) yield* pgq.setQueueConfig(queue, "ticker_max_lag", setup.tickerMaxLag)
      }),
      () => Effect.ignore(pgq.dropQueue(queue, { force: true }))
    )
    yield* Effect.acquireRelease(
      Effect.andThen(
        sql`drop table if exists ${sql(TABLE)}`,
        sql`create table ${sql(TABLE)} (
          ev_id bigint primary key, ev_type text not null, started_ms double precision not null,
          batch_id bigint not null, tick_ms double precision not null)`
      ),
      () => Effect.ignore(sql`drop table if exists ${sql(TABLE)}`)
    )
    const [settings] = yield* sql<{ readonly maxLagMs: number; readonly maxCount: number }>`
      select (extract(epoch from queue_ticker_max_lag) * 1000)::float8 as "maxLagMs",
        queue_ticker_max_count as "maxCount"
      from pgq.queue where queue_name = ${queue}`

    const dir = yield* scratchDir("latency")
    yield* Effect.sync(() =>
      Fs.writeFileSync(dir.config, configSource({ importPath: dir.importPath, url, queue, consumer, ticker: setup.ticker }))
    )
    const daemon = yield* startDaemon(dir.config)

    const countOf = (type: string) =>
      Effect.map(
        sql<{ readonly n: number }>`select count(*)::int as n from ${sql(TABLE)} where ev_type = ${type}`,
        (rows) => rows[0]?.n ?? 0
      )

    // Warm-up: the daemon has started, its consumer and its ticker work.
    yield* producer.send(queue, { type: "warmup", data: null })
    yield* waitUntil("the warm-up event to be handled", daemon, Effect.map(countOf("warmup"), (n) => n === 1))

    const events = Math.max(1, Math.round(options.rate * options.seconds))
    const intervalMs = 1000 / options.rate
    const committedAt = new Map<string, number>()
    const t0 = yield* Clock.currentTimeMillis
    for (let i = 0; i < events; i++) {
      const wait = t0 + i * intervalMs - (yield* Clock.currentTimeMillis)
      if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
      const id = yield* producer.send(queue, { type: "bench", data: JSON.stringify({ i, sentAtMs: Date.now() }) })
      committedAt.set(String(id), Date.now())
    }
    const producedSeconds = ((yield* Clock.currentTimeMillis) - t0) / 1000

    yield* waitUntil(
      `all ${events} events to be handled`,
      daemon,
      Effect.map(countOf("bench"), (n) => n >= events),
      Duration.sum(Duration.millis(settings?.maxLagMs ?? 3_000), Duration.seconds(60))
    )
    const stopped = yield* daemon.stop("30 seconds")

    const rows = yield* sql<SeenRow>`
      select ev_id::text as id, started_ms as "startedMs", batch_id::text as "batchId", tick_ms as "tickMs"
      from ${sql(TABLE)} where ev_type = 'bench'`
    const latencies: Array<number> = []
    const tickWaits: Array<number> = []
    const deliveries: Array<number> = []
    for (const row of rows) {
      const committed = committedAt.get(row.id)
      if (committed === undefined) return yield* new BenchError({ message: `handled event ${row.id} was never sent` })
      latencies.push(row.startedMs - committed)
      tickWaits.push(row.tickMs - committed)
      deliveries.push(row.startedMs - row.tickMs)
    }
    const batches = new Set(rows.map((row) => row.batchId)).size
    // The ticks that closed a batch with events: how far apart they came.
    const ticks = Array.from(new Set(rows.map((row) => row.tickMs))).toSorted((a, b) => a - b)
    const tickIntervals = ticks.slice(1).map((tick, i) => tick - ticks[i]!)

    yield* Console.log(JSON.stringify({
      name: "latency: insert committed -> handler start (real daemon, built-in ticker)",
      setup: setup.setup,
      rate: options.rate,
      seconds: Number(producedSeconds.toFixed(1)),
      count: latencies.length,
      ...summary("", latencies, true),
      ...summary("tickWait", tickWaits),
      ...summary("delivery", deliveries),
      batches,
      meanTickIntervalMs: tickIntervals.length === 0
        ? null
        : Math.round(tickIntervals.reduce((a, b) => a + b, 0) / tickIntervals.length),
      maxTickIntervalMs: tickIntervals.length === 0 ? null : Math.round(Math.max(...tickIntervals)),
      tickerPeriodMs: setup.tickerPeriodMs,
      tickerMaxLagMs: settings?.maxLagMs,
      tickerMaxCount: settings?.maxCount,
      daemonExit: stopped.ended.code,
      daemonStopMs: stopped.millis
    }))
    if (stopped.ended.code !== 0) {
      return yield* new BenchError({
        message: `the daemon exited with ${JSON.stringify(stopped.ended)} after SIGTERM, not 0:\n${tail(daemon.output())}`
      })
    }
  }).pipe(Effect.scoped)

/**
 * The latency bench: a row for pgq's and the ticker's defaults, then one
 * with event ticks off, as pgqd ticks.
 */
export const latency = (options: {
  readonly rate: number
  readonly seconds: number
}) =>
  Effect.gen(function*() {
    const setups: ReadonlyArray<Setup> = [
      { setup: "defaults", tickerMaxLag: undefined, ticker: undefined, tickerPeriodMs: 1_000 },
      {
        setup: "thresholds-only",
        tickerMaxLag: undefined,
        ticker: "{ eventTickPeriod: false }",
        tickerPeriodMs: 1_000
      }
    ]
    for (const [index, setup] of setups.entries()) yield* runSetup(setup, options, index)
  })
