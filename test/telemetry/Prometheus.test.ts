/**
 * The real Prometheus server (Debian's `prometheus` package, installed here
 * when missing and running as root) scrapes a running daemon's `/metrics` and
 * answers for the lag series through its HTTP API. Skipped, saying why, where
 * Prometheus cannot be installed.
 */
import { assert, layer } from "@effect/vitest"
import { Duration, Effect, Option } from "effect"
import { SqlClient } from "effect/sql"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { Installer } from "../../src/api/Installer.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import { Producer } from "../../src/api/Producer.ts"
import { configSource, makeDir, poll, readFile, startDaemon, tail } from "../daemon/DaemonHarness.ts"
import * as DebianPackage from "../DebianPackage.ts"
import * as TestDb from "../TestDb.ts"

const PROMETHEUS = "/usr/bin/prometheus"

const skipReason = DebianPackage.ensure("prometheus", () => Fs.existsSync(PROMETHEUS))
if (skipReason !== undefined) console.warn(`skipping the Prometheus test: ${skipReason}`)

const freePort = () =>
  Effect.callback<number>((resume) => {
    const server = Net.createServer()
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resume(Effect.succeed(port)))
    })
  })

interface QueryResponse {
  readonly status: string
  readonly data?: { readonly result: ReadonlyArray<{ readonly value: readonly [number, string] }> }
}

const query = (port: number, expr: string) =>
  Effect.tryPromise(() =>
    fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(expr)}`).then((r) => r.json() as Promise<QueryResponse>)
  ).pipe(
    Effect.map((body) => Option.fromNullishOr(body.data?.result[0]).pipe(Option.map((r) => Number(r.value[1])))),
    Effect.orElseSucceed(() => Option.none<number>())
  )

layer(TestDb.servicesLayer, { excludeTestServices: true })("Prometheus scraping the daemon", (it) => {
  it.effect.skipIf(skipReason !== undefined)("reads a consumer's lag, as pgq reports it, through Prometheus' HTTP API", () =>
    Effect.gen(function*() {
      yield* (yield* Installer).install
      const pgq = yield* Pgq
      const sql = yield* SqlClient.SqlClient
      const { queue, consumer } = yield* TestDb.queueWithConsumer("prq")
      const table = TestDb.unique("prq_sink")
      yield* sql`create table ${sql(table)} (event_id bigint, data text)`
      const dir = yield* makeDir("prom")
      // The test ticks; the built-in ticker would tick the other suites' queues too.
      yield* Effect.sync(() =>
        Fs.writeFileSync(dir.config, configSource(dir, { url: TestDb.url, consumers: [{ queue, consumer, table }], extra: "ticker: false," }))
      )
      const daemon = yield* startDaemon(dir.config)
      const control = yield* poll(
        "the daemon's control endpoint",
        Effect.map(readFile(dir.pidfile), (text) => Option.filter(Option.fromNullishOr(text.split("\n")[1]), (line) => line.length > 0)),
        Option.isSome,
        { context: () => tail(daemon.output()) }
      ).pipe(Effect.map((address) => Option.getOrThrow(address)))

      yield* (yield* Producer).send(queue, { type: "t", data: "1" })
      yield* TestDb.tick(queue)
      yield* poll("the event consumed", sql<{ n: number }>`select count(*)::int as n from ${sql(table)}`, (rows) => rows[0]?.n === 1, {
        context: () => tail(daemon.output())
      })

      const port = yield* freePort()
      const storage = Path.join(dir.dir, "prometheus-data")
      Fs.writeFileSync(
        Path.join(dir.dir, "prometheus.yml"),
        `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: effect-pgq-daemon\n    static_configs:\n      - targets: ["${control}"]\n`
      )
      const prometheus = yield* Effect.acquireRelease(
        Effect.sync(() =>
          ChildProcess.spawn(PROMETHEUS, [
            `--config.file=${Path.join(dir.dir, "prometheus.yml")}`,
            `--storage.tsdb.path=${storage}`,
            `--web.listen-address=127.0.0.1:${port}`
          ], { stdio: ["ignore", "pipe", "pipe"] })
        ),
        (child) => Effect.sync(() => child.kill("SIGKILL"))
      )
      let prometheusOutput = ""
      prometheus.stderr!.setEncoding("utf8").on("data", (chunk: string) => prometheusOutput += chunk)

      const selector = `pgq_consumer_lag_seconds{messaging_destination_name="${queue}",messaging_consumer_group_name="${consumer}"}`
      const first = yield* poll("the lag series in Prometheus", query(port, selector), Option.isSome, {
        timeout: "90 seconds",
        context: () => tail(prometheusOutput)
      }).pipe(Effect.map(Option.getOrThrow))
      const info = yield* pgq.getConsumerInfo(queue, consumer)
      const now = Duration.toMillis(info.lag ?? Duration.zero) / 1000
      // Scraped at most a few seconds ago: between 0 and pgq's figure now.
      assert.isAtLeast(first, 0)
      assert.isAtMost(first, now + 0.5)
      assert.isAtLeast(first, now - 10)

      // No tick comes: the consumer's last finished tick ages, and the series rises with it.
      const risen = yield* poll("the lag to rise", query(port, selector), (v) => Option.isSome(v) && v.value >= first + 2, {
        timeout: "60 seconds",
        context: () => tail(prometheusOutput)
      })
      assert.isTrue(Option.isSome(risen))
      const pending = yield* query(port, `pgq_consumer_pending_events{messaging_destination_name="${queue}"}`)
      assert.deepStrictEqual(pending, Option.some(0))
      yield* daemon.signal("SIGTERM")
      yield* daemon.exit()
    }).pipe(Effect.scoped), { timeout: 240_000 })
})
