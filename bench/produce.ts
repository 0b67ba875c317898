/**
 * Producer throughput: bulk and single inserts of ~100-byte events, against
 * two server-side baselines measured in the same run (a plain INSERT into the
 * current event table, and pgq.insert_event per row, both without a client).
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { Pgq } from "../src/api/Pgq.ts"
import { Producer } from "../src/api/Producer.ts"
import { measure, payload, ratio } from "./measure.ts"

export const produce = (options: {
  readonly events: number
  readonly singleEvents: number
  readonly runs: number
  readonly chunkSize: number
}) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    const producer = yield* Producer
    const sql = yield* SqlClient.SqlClient
    let counter = 0
    /** A fresh queue per run, so every run starts from empty tables. */
    const freshQueue = Effect.gen(function*() {
      const queue = `bench_produce_${process.pid}_${++counter}`
      yield* pgq.createQueue(queue)
      return queue
    })
    const events = Array.from({ length: options.events }, (_, i) => ({ type: "bench", data: payload(i) }))

    const serverInsert = yield* measure({
      name: "baseline: server-side INSERT into current_event_table",
      events: options.events,
      runs: options.runs,
      setup: freshQueue,
      run: (queue) =>
        Effect.gen(function*() {
          const table = yield* pgq.currentEventTable(queue)
          yield* sql.unsafe(
            `insert into ${table} (ev_time, ev_type, ev_data)
             select now(), 'bench', '{"id":' || i || ',"pad":"' || repeat('x', 84) || '"}'
             from generate_series(1, $1::int) i`,
            [options.events]
          )
        }).pipe(sql.withTransaction)
    })

    const serverInsertEvent = yield* measure({
      name: "baseline: server-side pgq.insert_event per row",
      events: options.events,
      runs: options.runs,
      setup: freshQueue,
      run: (queue) =>
        sql`select count(pgq.insert_event(${queue}, 'bench',
          '{"id":' || i || ',"pad":"' || repeat('x', 84) || '"}'))
          from generate_series(1, ${options.events}::int) i`
    })

    const bulk = yield* measure({
      name: "effect-pgq Producer.sendMany",
      events: options.events,
      runs: options.runs,
      setup: freshQueue,
      run: (queue) => producer.sendMany(queue, events, { chunkSize: options.chunkSize }),
      extra: { chunkSize: options.chunkSize }
    })

    const single = yield* measure({
      name: "effect-pgq Producer.send (one transaction per event)",
      events: options.singleEvents,
      runs: options.runs,
      setup: freshQueue,
      run: (queue) =>
        Effect.forEach(events.slice(0, options.singleEvents), (event) => producer.send(queue, event), {
          discard: true
        })
    })

    yield* ratio("sendMany / server-side insert_event", bulk, serverInsertEvent)
    yield* ratio("sendMany / server-side INSERT", bulk, serverInsert)
    yield* ratio("send / sendMany", single, bulk)
  })
