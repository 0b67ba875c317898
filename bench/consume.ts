/**
 * Consumer throughput: batches of ~100-byte events with a no-op handler, for
 * effect-pgq's Consumer and, in the same run and in alternation, a raw-SQL
 * loop on @effect/sql-pg (next_batch / get_batch_events / finish_batch, one
 * transaction per batch) as the baseline.
 */
import { Effect, Exit, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { Pgq } from "../src/api/Pgq.ts"
import { Producer } from "../src/api/Producer.ts"
import * as Consumer from "../src/consumer/Consumer.ts"
import { measureInterleaved, payload, ratio } from "./measure.ts"

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

    const [raw, effectPgq] = yield* measureInterleaved({
      events,
      runs: options.runs,
      setup: loadedQueue,
      teardown: ({ queue }) => pgq.dropQueue(queue, { force: true }),
      contenders: [
        { name: "baseline: raw SQL loop (@effect/sql-pg)", run: rawLoop },
        { name: "effect-pgq Consumer.processAvailable", run: consumerRun }
      ]
    })
    yield* ratio("Consumer / raw SQL loop", effectPgq!, raw!)
  })
