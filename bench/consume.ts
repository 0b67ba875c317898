/**
 * Consumer throughput: batches of ~100-byte events with a no-op handler, for
 * effect-pgq's Consumer and, in the same run and in alternation, a raw-SQL
 * loop on @effect/sql-pg (next_batch / get_batch_events / finish_batch, one
 * transaction per batch) as the baseline, and Skytools' Python consumer
 * (pgq.Consumer) where it is installed.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Exit, Redacted, Schema, Scope, Tracer } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import { SqlClient } from "effect/sql"
import { Pgq } from "../src/api/Pgq.ts"
import { Producer } from "../src/api/Producer.ts"
import * as Consumer from "../src/consumer/Consumer.ts"
import { measureInterleaved, payload, ratio } from "./measure.ts"

const SKYTOOLS_PYTHON = "/usr/bin/python3"
const SKYTOOLS_SCRIPT = new URL("./skytools_consumer.py", import.meta.url).pathname
const SkytoolsResult = Schema.Struct({ events: Schema.Number, seconds: Schema.Number })

export const consume = (options: { readonly batches: number; readonly batchSize: number; readonly runs: number }) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    const producer = yield* Producer
    const sql = yield* SqlClient.SqlClient
    const events = options.batches * options.batchSize
    let counter = 0

    /** A fresh queue holding `batches` ticked batches of `batchSize` events. */
    const loadedQueue = Effect.gen(function*() {
      const queue = `bench_consume_${process.pid}_${++counter}`
      const consumer = "bench"
      yield* pgq.createQueue(queue)
      yield* pgq.registerConsumer(queue, consumer)
      for (let b = 0; b < options.batches; b++) {
        yield* producer.sendMany(
          queue,
          Array.from({ length: options.batchSize }, (_, i) => ({ type: "bench", data: payload(b * options.batchSize + i) }))
        )
        yield* pgq.forceTick(queue)
        yield* pgq.tickQueue(queue)
      }
      return { queue, consumer }
    })

    const rawLoop = ({ queue, consumer }: { queue: string; consumer: string }) =>
      Effect.gen(function*() {
        let seen = 0
        while (true) {
          const done = yield* Effect.gen(function*() {
            const [next] = yield* sql<{ readonly id: bigint | null }>`select pgq.next_batch(${queue}, ${consumer}) as id`
            if (next?.id == null) return true
            const rows = yield* sql`select * from pgq.get_batch_events(${next.id})`
            seen += rows.length
            yield* sql`select pgq.finish_batch(${next.id})`
            return false
          }).pipe(sql.withTransaction)
          if (done) break
        }
        if (seen !== events) return yield* Effect.die(`raw loop saw ${seen} events, expected ${events}`)
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

    const [raw, effectPgq, traced, skytools] = yield* measureInterleaved({
      events,
      runs: options.runs,
      setup: loadedQueue,
      teardown: ({ queue }) => pgq.dropQueue(queue, { force: true }),
      contenders: [
        { name: "baseline: raw SQL loop (@effect/sql-pg)", run: rawLoop },
        { name: "effect-pgq Consumer.processAvailable", run: consumerRun },
        {
          name: "effect-pgq Consumer.processAvailable, traced (a span per event)",
          run: (state) => Effect.provideService(consumerRun(state), Tracer.Tracer, tracer)
        },
        ...(hasSkytools ? [{ name: "Skytools pgq.Consumer (Python)", run: skytoolsRun }] : [])
      ]
    })
    yield* ratio("Consumer / raw SQL loop", effectPgq!, raw!)
    yield* ratio("traced Consumer / raw SQL loop", traced!, raw!)
    if (skytools !== undefined) yield* ratio("Consumer / Skytools pgq.Consumer", effectPgq!, skytools)
  })
