/**
 * Benchmarks: `npm run bench -- <name> [--events N] [--runs N]`.
 * Each prints one JSON object per measurement on stdout.
 *
 *   produce   bulk and single inserts against server-side baselines
 *   consume   Consumer throughput against a raw-SQL loop, with a no-op handler
 *             (--batches, --batch-size) and with one INSERT per event
 *             (--insert-batches, default 50); with --tracing, tracing off,
 *             batch spans and event spans exported over OTLP instead
 *   latency   a real daemon with its built-in ticker: insert committed to handler
 *             start, p50/p99, at the defaults and with event ticks off, as
 *             pgqd ticks (--rate events/s, default 20; --latency-seconds,
 *             default 30)
 *   tracker   job status tracker: status events appended per second by
 *             concurrent writers into one job (--writers, default 8;
 *             --components, default 10000; --chunk events per transaction,
 *             default 250), and calculateMs, the status of a job of that many
 *             components
 *   idle      a real daemon with idle consumers: its CPU and RSS
 *             (--consumers, default 10; --idle-seconds sampled, default 30;
 *             --settle-seconds before sampling, default 5)
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Console, Effect, Layer } from "effect"
import type { SqlClient } from "effect/sql"
import type { PgClient } from "@effect/sql-pg"
import { Pgq } from "../src/api/Pgq.ts"
import { Producer } from "../src/api/Producer.ts"
import { FailedEvents } from "../src/api/FailedEvents.ts"
import * as DevDatabase from "../src/testing/DevDatabase.ts"
import { consume } from "./consume.ts"
import { idle } from "./idle.ts"
import { latency } from "./latency.ts"
import { produce } from "./produce.ts"
import { tracker } from "./tracker.ts"

const args = process.argv.slice(2)
const flag = (name: string, fallback: number): number => {
  const index = args.indexOf(`--${name}`)
  const value = index >= 0 ? Number(args[index + 1]) : fallback
  return Number.isFinite(value) && value > 0 ? value : fallback
}

const runs = flag("runs", 3)
const events = flag("events", 200_000)

type BenchServices = Pgq | Producer | FailedEvents | SqlClient.SqlClient | PgClient.PgClient | NodeServices.NodeServices

const benches: Record<string, Effect.Effect<void, unknown, BenchServices>> = {
  produce: produce({ events, singleEvents: flag("single-events", 20_000), runs, chunkSize: flag("chunk-size", 5_000) }),
  consume: consume({
    batches: flag("batches", 200),
    batchSize: flag("batch-size", 1000),
    runs,
    insertBatches: flag("insert-batches", 50),
    tracing: args.includes("--tracing")
  }),
  latency: latency({
    rate: flag("rate", 20),
    seconds: flag("latency-seconds", 30)
  }),
  tracker: tracker({
    components: flag("components", 10_000),
    writers: flag("writers", 8),
    chunk: flag("chunk", 250),
    runs
  }),
  idle: idle({
    consumers: flag("consumers", 10),
    seconds: flag("idle-seconds", 30),
    settleSeconds: flag("settle-seconds", 5)
  })
}

const selected = args.filter((a, i) => !a.startsWith("--") && !(args[i - 1] ?? "").startsWith("--"))
const names = selected.length > 0 ? selected : Object.keys(benches)

const ServicesLayer = Layer.mergeAll(Pgq.layer, Producer.layer, FailedEvents.layer).pipe(
  Layer.provideMerge(Pgq.layer),
  Layer.provideMerge(DevDatabase.layer({ maxConnections: 4 })),
  Layer.provideMerge(NodeServices.layer)
)

Effect.gen(function*() {
  for (const name of names) {
    const bench = benches[name]
    if (bench === undefined) {
      return yield* Effect.fail(`unknown benchmark ${name}; known: ${Object.keys(benches).join(", ")}`)
    }
    yield* bench
  }
}).pipe(
  Effect.provide(ServicesLayer),
  Effect.tapError((error) => Console.error(String(error))),
  NodeRuntime.runMain
)
