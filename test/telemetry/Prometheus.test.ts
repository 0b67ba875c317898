/**
 * otel/README.md's setup, without containers: a daemon configured as the
 * guide says (spans over OTLP, here to an in-process receiver; metrics on
 * `/metrics`) and the real Prometheus server (Debian's `prometheus` package,
 * installed here when missing and running as root) scraping it. Every query
 * of the Grafana dashboards is run through Prometheus' HTTP API: each must be
 * valid PromQL, and each must show the events the daemon's consumer
 * processed (failures, retries and events it produced among them). The lag
 * panel's query rises while the consumer is stopped and ticks go on, and
 * falls once it runs again. A traced producer's event comes out as a
 * `process` span linked to its `send` span. Skipped, saying why, where
 * Prometheus cannot be installed.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Option, Schedule, Schema } from "effect"
import { SqlClient } from "effect/sql"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { Installer } from "../../src/api/Installer.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import { Producer } from "../../src/api/Producer.ts"
import * as OtlpExport from "../../src/telemetry/OtlpExport.ts"
import * as Semconv from "../../src/telemetry/Semconv.ts"
import { makeDir, poll, readFile, startDaemon, tail, type TestDir } from "../daemon/DaemonHarness.ts"
import * as DebianPackage from "../DebianPackage.ts"
import * as TestDb from "../TestDb.ts"
import * as Dashboards from "./GrafanaDashboards.ts"
import * as OtlpReceiver from "./OtlpReceiver.ts"

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

const Sample = Schema.Struct({
  metric: Schema.Record(Schema.String, Schema.String),
  value: Schema.Tuple([Schema.Number, Schema.String])
})
type Sample = typeof Sample.Type

const QueryResponse = Schema.Struct({
  status: Schema.String,
  errorType: Schema.optional(Schema.String),
  error: Schema.optional(Schema.String),
  data: Schema.optional(Schema.Struct({ resultType: Schema.String, result: Schema.Unknown }))
})
const decodeResponse = Schema.decodeUnknownSync(QueryResponse)
const decodeVector = Schema.decodeUnknownSync(Schema.Array(Sample))

/** Prometheus' answer to an instant query: the samples of a vector, or the error it gave. */
type Answer =
  | { readonly _tag: "Vector"; readonly samples: ReadonlyArray<Sample> }
  | { readonly _tag: "Error"; readonly message: string }

const query = (port: number, expr: string): Effect.Effect<Answer> =>
  Effect.tryPromise(() =>
    fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(expr)}`).then((r) => r.json() as Promise<unknown>)
  ).pipe(
    Effect.map((json): Answer => {
      const body = decodeResponse(json)
      if (body.status !== "success") return { _tag: "Error", message: `${body.errorType}: ${body.error}` }
      if (body.data?.resultType !== "vector") return { _tag: "Error", message: `a ${body.data?.resultType}, not a vector` }
      return { _tag: "Vector", samples: decodeVector(body.data.result) }
    }),
    Effect.catch((error) => Effect.succeed<Answer>({ _tag: "Error", message: String(error) }))
  )

const samplesOf = (answer: Answer): ReadonlyArray<Sample> => answer._tag === "Vector" ? answer.samples : []

/** The daemon's config: one consumer (or none, `running: false`) whose answer depends on the event's type. */
const configText = (dir: TestDir, options: {
  readonly queue: string
  readonly consumer: string
  readonly table: string
  readonly running: boolean
  readonly otlp: string
}) => `// Written by test/telemetry/Prometheus.test.ts.
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { DaemonConfig, EventResult, Producer } from ${JSON.stringify(dir.importPath)}

const queue = ${JSON.stringify(options.queue)}

const onEvent = (event) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql\`insert into \${sql(${JSON.stringify(options.table)})} (event_id, data) values (\${event.id}, \${event.type})\`
    switch (event.type) {
      case "fail":
        return EventResult.Failed("told to fail")
      case "retry":
        // Never due during the test: nothing moves it back.
        return EventResult.Retry("1 hour")
      case "forward":
        yield* (yield* Producer).send(queue, { type: "ok", data: "forwarded" })
        return EventResult.Ok
      default:
        return EventResult.Ok
    }
  })

export default DaemonConfig.defineConfig({
  database: { url: ${JSON.stringify(TestDb.url)} },
  consumers: [${options.running ? `{ queue, consumer: ${JSON.stringify(options.consumer)}, onEvent }` : ""}],
  control: { port: 0 },
  // As the guide has it: Prometheus scrapes /metrics, so only spans go over OTLP.
  telemetry: { endpoint: ${JSON.stringify(options.otlp)}, metrics: false, exportInterval: "500 millis" },
  // The test ticks; the built-in ticker would tick the other suites' queues too.
  ticker: false
})
`

/** One round's events: two Ok, a Failed, a Retry, and one that makes the handler produce an event (Ok). */
const ROUND = ["ok", "ok", "fail", "retry", "forward"] as const
const ROWS_PER_ROUND = ROUND.length + 1

const DaemonStatus = Schema.Struct({
  consumers: Schema.Array(Schema.Struct({ queue: Schema.String, consumer: Schema.String, state: Schema.String }))
})
const decodeStatus = Schema.decodeUnknownSync(DaemonStatus)

layer(TestDb.servicesLayer, { excludeTestServices: true })("Prometheus scraping the daemon", (it) => {
  it.effect.skipIf(skipReason !== undefined)(
    "runs every dashboard query; the lag panel rises while the consumer is stopped and falls when it resumes",
    () =>
      Effect.gen(function*() {
        yield* (yield* Installer).install
        const pgq = yield* Pgq
        const producer = yield* Producer
        const sql = yield* SqlClient.SqlClient
        const { queue, consumer } = yield* TestDb.queueWithConsumer("prq")
        const table = TestDb.unique("prq_sink")
        yield* sql`create table ${sql(table)} (event_id bigint, data text)`
        const dir = yield* makeDir("prom")
        const receiver = yield* OtlpReceiver.make
        const writeConfig = (running: boolean) =>
          Effect.sync(() => Fs.writeFileSync(dir.config, configText(dir, { queue, consumer, table, running, otlp: receiver.url })))
        yield* writeConfig(true)
        const daemon = yield* startDaemon(dir.config)
        const control = yield* poll(
          "the daemon's control endpoint",
          Effect.map(readFile(dir.pidfile), (text) => Option.filter(Option.fromNullishOr(text.split("\n")[1]), (line) => line.length > 0)),
          Option.isSome,
          { context: () => tail(daemon.output()) }
        ).pipe(Effect.map((address) => Option.getOrThrow(address)))
        // Ticks go on all along, as pgq's ticker makes them: an idle queue every second, events soon.
        yield* pgq.setQueueConfig(queue, "ticker_idle_period", "1 second")
        yield* pgq.setQueueConfig(queue, "ticker_max_lag", "100 milliseconds")
        yield* Effect.forkScoped(Effect.repeat(Effect.ignore(pgq.tickQueue(queue)), Schedule.spaced("250 millis")))

        const port = yield* freePort()
        Fs.writeFileSync(
          Path.join(dir.dir, "prometheus.yml"),
          `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: effect-pgq-daemon\n    static_configs:\n      - targets: ["${control}"]\n`
        )
        const prometheus = yield* Effect.acquireRelease(
          Effect.sync(() =>
            ChildProcess.spawn(PROMETHEUS, [
              `--config.file=${Path.join(dir.dir, "prometheus.yml")}`,
              `--storage.tsdb.path=${Path.join(dir.dir, "prometheus-data")}`,
              `--web.listen-address=127.0.0.1:${port}`
            ], { stdio: ["ignore", "pipe", "pipe"] })
          ),
          (child) => Effect.sync(() => child.kill("SIGKILL"))
        )
        let prometheusOutput = ""
        prometheus.stderr!.setEncoding("utf8").on("data", (chunk: string) => prometheusOutput += chunk)
        const context = () => `${tail(daemon.output(), 15)}\n--- prometheus ---\n${tail(prometheusOutput, 15)}`
        const selector = `{messaging_destination_name="${queue}",messaging_consumer_group_name="${consumer}"}`
        const counterIn = (name: string, value: number) =>
          poll(
            `${name} = ${value} in Prometheus`,
            query(port, `${name}${selector}`),
            (answer) => samplesOf(answer).some((s) => Number(s.value[1]) === value),
            { timeout: "30 seconds", context }
          )

        // Two rounds, each seen by a scrape: a counter's rate needs an increase between two samples.
        for (const round of [1, 2]) {
          for (const type of ROUND) yield* producer.send(queue, { type, data: String(round) })
          yield* poll(
            `round ${round} consumed`,
            sql<{ n: number }>`select count(*)::int as n from ${sql(table)}`,
            (rows) => rows[0]?.n === round * ROWS_PER_ROUND,
            { timeout: "30 seconds", context }
          )
          yield* counterIn("pgq_consumer_failed_events_total", round)
          yield* counterIn("pgq_consumer_retried_events_total", round)
          yield* counterIn("messaging_client_consumed_messages_total", round * ROWS_PER_ROUND)
        }

        // A traced producer's event: the daemon's process span links to its send span.
        yield* producer.send(queue, { type: "ok", data: "traced" }).pipe(
          Effect.provide(OtlpExport.layer({ endpoint: receiver.url, serviceName: "shop", metrics: false }))
        )
        // The only root send span: the handler's own sends are children of its process spans.
        const send = receiver.spans().find((span) => span.name === Semconv.sendSpanName(queue) && !span.parentSpanId)
        assert.isDefined(send)
        const linked = yield* poll(
          "the process span linked to the send span",
          Effect.sync(() =>
            receiver.spans().find((span) =>
              span.name === Semconv.processSpanName(queue) &&
              span.links.some((link) => link.traceId === send!.traceId && link.spanId === send!.spanId)
            )
          ),
          (span) => span !== undefined,
          { timeout: "30 seconds", context }
        )
        const receive = receiver.spans().find((span) => span.spanId === linked!.parentSpanId)
        assert.strictEqual(receive?.name, Semconv.receiveSpanName(queue))

        for (const file of Dashboards.files()) {
          const dashboard = Dashboards.load(file)
          // The queue variable's own query, `label_values(metric, label)`, offers this queue.
          for (const variable of dashboard.templating?.list ?? []) {
            const definition = typeof variable.query === "string" ? variable.query : variable.query?.query ?? ""
            const labelValues = /^label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*(\w+)\s*\)$/.exec(definition)
            if (variable.type !== "query" || labelValues === null) continue
            const offered = yield* query(port, `group by (${labelValues[2]}) (${labelValues[1]})`)
            assert.include(samplesOf(offered).map((s) => s.metric[labelValues[2]!]), queue, `${file}: variable ${variable.name}`)
          }
          const queries = Dashboards.queries(dashboard)
          assert.isAbove(queries.length, 0, `${file} has queries`)
          for (const { panel, target, expr } of queries) {
            const where = `${file}: panel "${panel.title}", query ${target.refId}`
            // "All" (the dashboard's allValue), as it opens.
            const all = yield* query(port, Dashboards.interpolate(dashboard, expr))
            assert.strictEqual(all._tag, "Vector", `${where}: ${all._tag === "Error" ? all.message : ""}\n${expr}`)
            // This queue alone: every panel shows what the daemon did with its events.
            const mine = yield* query(port, Dashboards.interpolate(dashboard, expr, { queue }))
            const samples = samplesOf(mine)
            assert.isAbove(samples.length, 0, `${where} shows no data for queue ${queue}\n${expr}`)
            for (const sample of samples) {
              assert.strictEqual(sample.metric["messaging_destination_name"], queue, where)
              assert.isTrue(Number.isFinite(Number(sample.value[1])), `${where}: ${sample.value[1]}`)
            }
          }
        }

        // The lag panel's own query, for this queue.
        const lagPanel = Dashboards.files().flatMap((file) => {
          const dashboard = Dashboards.load(file)
          return Dashboards.queries(dashboard)
            .filter(({ expr }) => expr.includes("pgq_consumer_lag_seconds"))
            .map(({ expr }) => Dashboards.interpolate(dashboard, expr, { queue }))
        })[0]
        assert.isDefined(lagPanel, "a panel plots pgq_consumer_lag_seconds")
        const lag = Effect.map(
          query(port, lagPanel!),
          (answer) =>
            Option.map(
              Option.fromNullishOr(samplesOf(answer).find((s) => s.metric["messaging_consumer_group_name"] === consumer)),
              (s) => Number(s.value[1])
            )
        )
        // A running consumer, ticks coming every second: pgq's lag stays within a few seconds.
        const running = yield* lag.pipe(Effect.map(Option.getOrThrow))
        assert.isAtLeast(running, 0)
        assert.isAtMost(running, 5)

        const consumers = Effect.tryPromise(() => fetch(`http://${control}/status`).then((r) => r.json() as Promise<unknown>)).pipe(
          Effect.map((json) => decodeStatus(json).consumers.filter((c) => c.queue === queue)),
          Effect.orElseSucceed(() => [])
        )
        // Stop the consumer (a reload without it); the daemon goes on reporting pgq's lag.
        yield* writeConfig(false)
        yield* daemon.signal("SIGHUP")
        yield* poll("the consumer stopped", consumers, (cs) => cs.length === 0, { context })
        const stopped = yield* lag.pipe(Effect.map(Option.getOrThrow))
        const risen = yield* poll("the lag panel to rise", lag, (v) => Option.isSome(v) && v.value >= stopped + 5, {
          timeout: "30 seconds",
          context
        }).pipe(Effect.map(Option.getOrThrow))

        // Start it again: it takes the batches of the ticks it missed, and the lag falls back.
        yield* writeConfig(true)
        yield* daemon.signal("SIGHUP")
        yield* poll("the lag panel to fall", lag, (v) => Option.isSome(v) && v.value <= risen - 3, {
          timeout: "30 seconds",
          context
        })
        const pending = yield* query(port, `pgq_consumer_pending_events${selector}`)
        assert.deepStrictEqual(samplesOf(pending).map((s) => s.value[1]), ["0"])
        yield* daemon.signal("SIGTERM")
        yield* daemon.exit()
      }).pipe(Effect.scoped),
    { timeout: 120_000 }
  )
})
