/**
 * Consumer throughput: batches of ~100-byte events with a no-op handler, for
 * effect-pgq's Consumer and, in the same run and in alternation, a raw-SQL
 * loop on @effect/sql-pg (next_batch / get_batch_events / finish_batch, one
 * transaction per batch) as the baseline, and Skytools' Python consumer
 * (pgq.Consumer) where it is installed. Rows carry `"handler": "noop"`.
 *
 * Then the same with a handler that does one INSERT per event into
 * `bench_sink` (through the same SqlClient, so in the batch's transaction; no
 * event fails), `--insert-batches` batches (default 50) of `--batch-size`
 * events: the Consumer with isolation "default" and "savepoint", and the raw
 * loop running the same INSERT for each event inside its transaction as the
 * baseline ("isolation": "none": nothing protected). Rows carry
 * `"handler": "insert"` and `"isolation"`. The sink is truncated before each
 * run, and checked after it to hold exactly one row per event.
 *
 * With `--tracing`, instead: the no-op Consumer with tracing `off`, with
 * `batch` spans only, and with `event` spans (batch and a span per event, all
 * sampled), both exported by `OtlpExport` to a local OTLP receiver; rows carry
 * `"tracing"`. Each exporter is made once, as in a consumer's process, and
 * each run's time includes flushing the spans it made.
 */
import { PgClient } from "@effect/sql-pg"
import { type Context, Console, Effect, Exit, Layer, Redacted, Schema, Scope, Tracer } from "effect"
import { OtlpExporter } from "effect/observability"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import { SqlClient } from "effect/sql"
import { Pgq } from "../src/api/Pgq.ts"
import { Producer } from "../src/api/Producer.ts"
import type { Isolation } from "../src/consumer/BatchProcessor.ts"
import * as Consumer from "../src/consumer/Consumer.ts"
import * as OtlpExport from "../src/telemetry/OtlpExport.ts"
import { measureInterleaved, payload, ratio } from "./measure.ts"
import * as OtlpSink from "./otlpSink.ts"

const SKYTOOLS_PYTHON = "/usr/bin/python3"
const SKYTOOLS_SCRIPT = new URL("./skytools_consumer.py", import.meta.url).pathname
const SkytoolsResult = Schema.Struct({ events: Schema.Number, seconds: Schema.Number })

export const consume = (options: {
  readonly batches: number
  readonly batchSize: number
  readonly runs: number
  /** Batches for the insert-per-event contenders (fewer: each event is a round trip). */
  readonly insertBatches: number
  /** Only the tracing rows: off, batch, event. */
  readonly tracing?: boolean | undefined
}) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    const producer = yield* Producer
    const sql = yield* SqlClient.SqlClient
    const events = options.batches * options.batchSize
    let counter = 0

    /** A fresh queue holding `batches` ticked batches of `batchSize` events. */
    const loadQueue = (batches: number) => Effect.gen(function*() {
      const queue = `bench_consume_${process.pid}_${++counter}`
      const consumer = "bench"
      yield* pgq.createQueue(queue)
      yield* pgq.registerConsumer(queue, consumer)
      for (let b = 0; b < batches; b++) {
        yield* producer.sendMany(
          queue,
          Array.from({ length: options.batchSize }, (_, i) => ({ type: "bench", data: payload(b * options.batchSize + i) }))
        )
        yield* pgq.forceTick(queue)
        yield* pgq.tickQueue(queue)
      }
      return { queue, consumer }
    })
    const loadedQueue = loadQueue(options.batches)

    interface RawEvent {
      readonly ev_id: bigint
      readonly ev_data: string | null
    }

    /** The raw loop; `perEvent`, when given, runs for each event inside the batch's transaction. */
    const rawLoop = (
      { queue, consumer }: { queue: string; consumer: string },
      expected = events,
      perEvent?: (event: RawEvent) => Effect.Effect<unknown, unknown>
    ) =>
      Effect.gen(function*() {
        let seen = 0
        while (true) {
          const done = yield* Effect.gen(function*() {
            const [next] = yield* sql<{ readonly id: bigint | null }>`select pgq.next_batch(${queue}, ${consumer}) as id`
            if (next?.id == null) return true
            const rows = yield* sql<RawEvent>`select * from pgq.get_batch_events(${next.id})`
            seen += rows.length
            if (perEvent !== undefined) {
              for (const row of rows) yield* perEvent(row)
            }
            yield* sql`select pgq.finish_batch(${next.id})`
            return false
          }).pipe(sql.withTransaction)
          if (done) break
        }
        if (seen !== expected) return yield* Effect.die(`raw loop saw ${seen} events, expected ${expected}`)
      }).pipe(Effect.orDie)

    /** A tracer that makes real spans and drops them: the per-event span cost, without an exporter's. */
    const tracer = Tracer.make({ span: (spanOptions) => new Tracer.NativeSpan(spanOptions) })

    const consumerRun = ({ queue, consumer }: { queue: string; consumer: string }) =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const c = yield* Consumer.make({ queue, consumer, wakeChannel: false, onEvent: () => Effect.void }).pipe(
          Scope.provide(scope)
        )
        const stats = yield* c.processAvailable
        yield* Scope.close(scope, Exit.void)
        if (stats.ok !== events) return yield* Effect.die(`consumer processed ${stats.ok} events, expected ${events}`)
      })

    // Insert per event.
    const insertEvents = options.insertBatches * options.batchSize
    const insert = (evId: bigint, data: string | null) =>
      sql`insert into bench_sink (ev_id, data) values (${evId}, ${data})`.pipe(Effect.asVoid)

    const insertConsumerRun = (isolation: Isolation) =>
    ({ queue, consumer }: { queue: string; consumer: string }) =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const c = yield* Consumer.make({
          queue,
          consumer,
          wakeChannel: false,
          isolation,
          onEvent: (event) => insert(event.id, event.data)
        }).pipe(Scope.provide(scope))
        const stats = yield* c.processAvailable
        yield* Scope.close(scope, Exit.void)
        if (stats.ok !== insertEvents || stats.failed !== 0 || stats.retried !== 0) {
          return yield* Effect.die(`consumer (isolation ${isolation}) processed ${JSON.stringify(stats)}, expected ${insertEvents} ok`)
        }
      })

    const insertRawLoop = (state: { queue: string; consumer: string }) =>
      rawLoop(state, insertEvents, (row) => insert(row.ev_id, row.ev_data))

    /** Every run starts with an empty sink, and must leave exactly one row per event in it. */
    const insertSetup = Effect.tap(loadQueue(options.insertBatches), () => sql`truncate bench_sink`)
    const insertTeardown = ({ queue }: { queue: string }) =>
      Effect.gen(function*() {
        const [row] = yield* sql<{ readonly n: number }>`select count(*)::int as n from bench_sink`
        if (row?.n !== insertEvents) return yield* Effect.die(`bench_sink holds ${row?.n} rows, expected ${insertEvents}`)
        yield* pgq.dropQueue(queue, { force: true })
      })

    const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
    const url = Redacted.value((yield* PgClient.PgClient).config.url ?? Redacted.make(""))
    const python = (args: ReadonlyArray<string>) =>
      spawner.string(ChildProcess.make(SKYTOOLS_PYTHON, args, { stdin: "ignore" }))
    // Skytools' consumer joins when its Python package is installed (Debian: python3-pgq).
    const hasSkytools = yield* spawner.exitCode(ChildProcess.make(SKYTOOLS_PYTHON, ["-c", "import pgq"], { stdin: "ignore" }))
      .pipe(Effect.map((code) => code === 0), Effect.orElseSucceed(() => false))
    const skytoolsRun = ({ queue, consumer }: { queue: string; consumer: string }) =>
      python([SKYTOOLS_SCRIPT, url, queue, consumer]).pipe(
        Effect.flatMap(Schema.decodeUnknownEffect(Schema.fromJsonString(SkytoolsResult))),
        Effect.flatMap((result) =>
          result.events === events
            ? Effect.succeed({ seconds: result.seconds })
            : Effect.die(`Skytools consumer saw ${result.events} events, expected ${events}`)
        ),
        Effect.orDie
      )

    const noop = { handler: "noop" }

    if (options.tracing === true) {
      return yield* Effect.scoped(Effect.gen(function*() {
      const sink = yield* OtlpSink.make
      // Each exporter is made once, as a consumer's process makes it, and flushed after each run.
      const exported = (eventSpans: boolean) =>
        Layer.build(OtlpExport.layer({ endpoint: sink.url, eventSpans, samplingRatio: 1, metrics: false }))
      const batchSpans = yield* exported(false)
      const eventSpans = yield* exported(true)
      const flushed = <A, E, R>(run: Effect.Effect<A, E, R>, exporter: Context.Context<OtlpExporter.Flusher>) =>
        Effect.provide(
          Effect.tap(run, () => Effect.flatMap(OtlpExporter.Flusher, (flusher) => flusher.flush)),
          exporter
        )
      // This process's CPU time per run as well: on a busy machine it varies far less than the
      // wall time, and it is where tracing costs (the database's share does not change).
      const cpu = { off: new Array<number>(), batch: new Array<number>(), event: new Array<number>() }
      const cpuTimed = <A, E, R>(into: Array<number>, run: Effect.Effect<A, E, R>) =>
        Effect.suspend(() => {
          const before = process.cpuUsage()
          return Effect.tap(run, () =>
            Effect.sync(() => {
              const used = process.cpuUsage(before)
              into.push((used.user + used.system) / 1e6)
            }))
        })
      const [off, batch, event] = yield* measureInterleaved({
        events,
        runs: options.runs,
        setup: loadedQueue,
        teardown: ({ queue }) => pgq.dropQueue(queue, { force: true }),
        contenders: [
          {
            name: "effect-pgq Consumer, tracing off",
            run: (state) => cpuTimed(cpu.off, consumerRun(state)),
            extra: { ...noop, tracing: "off" }
          },
          {
            name: "effect-pgq Consumer, batch spans exported over OTLP",
            run: (state) => cpuTimed(cpu.batch, flushed(consumerRun(state), batchSpans)),
            extra: { ...noop, tracing: "batch" }
          },
          {
            name: "effect-pgq Consumer, batch and event spans exported over OTLP",
            run: (state) => cpuTimed(cpu.event, flushed(consumerRun(state), eventSpans)),
            extra: { ...noop, tracing: "event" }
          }
        ]
      })
      yield* ratio("tracing batch / off", batch!, off!)
      yield* ratio("tracing event / off", event!, off!)
      const cpuMedian = (values: ReadonlyArray<number>) => values.toSorted((a, b) => a - b)[Math.floor(values.length / 2)]!
      yield* Console.log(JSON.stringify({
        name: "tracing: this process's CPU seconds per run (median), and off / traced",
        off: Number(cpuMedian(cpu.off).toFixed(4)),
        batch: Number(cpuMedian(cpu.batch).toFixed(4)),
        event: Number(cpuMedian(cpu.event).toFixed(4)),
        batchRatio: Number((cpuMedian(cpu.off) / cpuMedian(cpu.batch)).toFixed(3)),
        eventRatio: Number((cpuMedian(cpu.off) / cpuMedian(cpu.event)).toFixed(3))
      }))
      // Each exported event span is several hundred bytes of JSON: far less means spans were lost.
      if (sink.traceBytes() < events * options.runs * 200) {
        return yield* Effect.die(`the OTLP receiver got ${sink.traceBytes()} bytes of spans for ${events * options.runs} event spans`)
      }
      }))
    }

    const [raw, effectPgq, traced, skytools] = yield* measureInterleaved({
      events,
      runs: options.runs,
      setup: loadedQueue,
      teardown: ({ queue }) => pgq.dropQueue(queue, { force: true }),
      contenders: [
        { name: "baseline: raw SQL loop (@effect/sql-pg)", run: (state) => rawLoop(state), extra: noop },
        { name: "effect-pgq Consumer.processAvailable", run: consumerRun, extra: noop },
        {
          name: "effect-pgq Consumer.processAvailable, traced (a span per event)",
          run: (state) => Effect.provideService(consumerRun(state), Tracer.Tracer, tracer),
          extra: noop
        },
        ...(hasSkytools ? [{ name: "Skytools pgq.Consumer (Python)", run: skytoolsRun, extra: noop }] : [])
      ]
    })
    yield* ratio("Consumer / raw SQL loop", effectPgq!, raw!)
    yield* ratio("traced Consumer / raw SQL loop", traced!, raw!)
    if (skytools !== undefined) yield* ratio("Consumer / Skytools pgq.Consumer", effectPgq!, skytools)

    yield* sql`drop table if exists bench_sink`
    yield* sql`create table bench_sink (ev_id bigint not null, data text)`
    const [insertNone, insertDefault, insertSavepoint] = yield* measureInterleaved({
      events: insertEvents,
      runs: options.runs,
      setup: insertSetup,
      teardown: insertTeardown,
      contenders: [
        {
          name: "baseline: raw SQL loop, insert per event (@effect/sql-pg)",
          run: insertRawLoop,
          extra: { handler: "insert", isolation: "none" }
        },
        {
          name: "effect-pgq Consumer.processAvailable, insert per event",
          run: insertConsumerRun("default"),
          extra: { handler: "insert", isolation: "default" }
        },
        {
          name: "effect-pgq Consumer.processAvailable, insert per event, savepoints",
          run: insertConsumerRun("savepoint"),
          extra: { handler: "insert", isolation: "savepoint" }
        }
      ]
    })
    yield* sql`drop table bench_sink`
    yield* ratio("insert: Consumer (isolation default) / raw SQL loop", insertDefault!, insertNone!)
    yield* ratio("insert: Consumer (isolation savepoint) / raw SQL loop", insertSavepoint!, insertNone!)
  })
