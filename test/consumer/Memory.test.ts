/**
 * One batch of a million events goes through the consumer in bounded memory:
 * the events are read a page at a time, never held all at once. The test
 * workers run with a heap cap, as a deployed consumer would (vitest.config.ts):
 * without one, V8 on a large machine lets garbage pile up before collecting.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Fiber, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { Installer } from "../../src/api/Installer.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import * as InteractiveConsumer from "../../src/consumer/InteractiveConsumer.ts"
import * as TestDb from "../TestDb.ts"

const EVENTS = 1_000_000
const MAX_RSS = 300 * 1024 * 1024

layer(TestDb.servicesLayer, { excludeTestServices: true })("Consumer memory", (it) => {
  it.effect("processes a single batch of 1,000,000 events with peak RSS under 300 MB", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const pgq = yield* Pgq
      yield* (yield* Installer).install
      const { queue, consumer } = yield* TestDb.queueWithConsumer("mq")
      // Produced on the server, so the test process never holds the events itself.
      yield* Effect.gen(function*() {
        const table = yield* pgq.currentEventTable(queue)
        yield* sql.unsafe(
          `insert into ${table} (ev_time, ev_type, ev_data)
           select now(), 'order', '{"id":' || i || ',"pad":"' || repeat('x', 80) || '"}'
           from generate_series(1, ${EVENTS}) i`
        )
      }).pipe(sql.withTransaction)
      yield* TestDb.tick(queue)

      let peak = process.memoryUsage().rss
      const sampler = yield* Effect.forkChild(
        Effect.sync(() => {
          peak = Math.max(peak, process.memoryUsage().rss)
        }).pipe(Effect.repeat(Schedule.spaced("10 millis")))
      )
      let checksum = 0
      const stats = yield* InteractiveConsumer.processAvailable({
        queue,
        consumer,
        onEvent: (event) => Effect.sync(() => void (checksum += event.data!.length))
      })
      yield* Fiber.interrupt(sampler)
      peak = Math.max(peak, process.memoryUsage().rss)

      assert.deepStrictEqual([stats.batches, stats.ok], [1, EVENTS])
      assert.isAbove(checksum, EVENTS * 90)
      assert.isBelow(peak, MAX_RSS, `peak RSS ${Math.round(peak / 1024 / 1024)} MB`)
      yield* pgq.dropQueue(queue, { force: true })
    }), { timeout: 300_000 })
})
