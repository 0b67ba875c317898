/**
 * The pgq_ext API on a remote database: effect-pgq's implementation,
 * installed where the real extension is missing, its semantics, its
 * behaviour under concurrent recorders, and Skytools' Python
 * RemoteConsumer running against it unchanged.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import { BatchId, EventId, TickId } from "../../src/api/Ids.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import * as PgqExt from "../../src/api/PgqExt.ts"
import { Producer } from "../../src/api/Producer.ts"
import * as DebianPackage from "../DebianPackage.ts"
import * as TestDb from "../TestDb.ts"

const batch = (n: number) => BatchId.make(BigInt(n))
const event = (n: number) => EventId.make(BigInt(n))

const remoteDatabase = TestDb.scratchDatabase("remote")

const skytoolsSkip = DebianPackage.ensureSkytools()
if (skytoolsSkip !== undefined) console.warn(`skipping the Skytools RemoteConsumer test: ${skytoolsSkip}`)

layer(TestDb.servicesLayer, { excludeTestServices: true })("PgqExt", (it) => {
  it.effect("installs where pgq_ext is missing, once, and then tracks batches, events and ticks", () =>
    Effect.gen(function*() {
      const remote = yield* remoteDatabase
      const ext = PgqExt.make(remote.sql)
      assert.strictEqual(yield* ext.provider, "none")
      assert.strictEqual(yield* ext.install, "effect-pgq")
      assert.strictEqual(yield* ext.install, "effect-pgq")

      // Batches: only the last one recorded counts.
      assert.isFalse(yield* ext.isBatchDone("c", batch(1)))
      assert.isTrue(yield* ext.setBatchDone("c", batch(1)))
      assert.isFalse(yield* ext.setBatchDone("c", batch(1)))
      assert.isTrue(yield* ext.isBatchDone("c", batch(1)))
      assert.isFalse(yield* ext.isBatchDone("c", batch(1), "sub"), "subconsumers are tracked apart")
      assert.isTrue(yield* ext.setBatchDone("c", batch(2)))
      assert.isFalse(yield* ext.isBatchDone("c", batch(1)))

      // Events: per batch; a new batch forgets the previous batch's events.
      assert.isTrue(yield* ext.setEventDone("c", batch(5), event(10)))
      assert.isFalse(yield* ext.setEventDone("c", batch(5), event(10)))
      assert.isTrue(yield* ext.isEventDone("c", batch(5), event(10)))
      assert.isFalse(yield* ext.isEventDone("c", batch(5), event(11)))
      assert.isTrue(yield* ext.setEventDone("c", batch(6), event(12)))
      assert.isFalse(yield* ext.isEventDone("c", batch(5), event(10)))

      // Ticks: the last one, or none.
      assert.isNull(yield* ext.getLastTick("c"))
      yield* ext.setLastTick("c", TickId.make(7n))
      assert.strictEqual(yield* ext.getLastTick("c"), 7n)
      yield* ext.setLastTick("c", null)
      assert.isNull(yield* ext.getLastTick("c"))

      // The two-argument forms Skytools calls are the same records.
      const [row] = yield* remote.sql<{ readonly r: boolean }>`select pgq_ext.is_batch_done('c', 2) as r`
      assert.isTrue(row!.r)
    }))

  it.effect("of two transactions recording the same batch, exactly one is told it recorded it", () =>
    Effect.gen(function*() {
      const remote = yield* remoteDatabase
      const ext = PgqExt.make(remote.sql)
      yield* ext.install
      // Both record inside open transactions; the second waits for the first to commit.
      const results = yield* Effect.all(
        [1, 2].map(() =>
          remote.sql.withTransaction(Effect.andThen(ext.setBatchDone("race", batch(42)), (r) =>
            Effect.as(Effect.sleep("200 millis"), r)))
        ),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual([...results].sort(), [false, true])
    }))

  it.effect.skipIf(skytoolsSkip !== undefined)(
    "Skytools' Python RemoteConsumer applies every batch once against effect-pgq's pgq_ext",
    () =>
      Effect.gen(function*() {
        const remote = yield* remoteDatabase
        const ext = PgqExt.make(remote.sql)
        yield* ext.install
        const table = TestDb.unique("applied")
        yield* remote.sql`create table ${remote.sql(table)} (ev_id bigint not null, data text)`
        const { queue, consumer } = yield* TestDb.queueWithConsumer("rq")
        yield* (yield* Producer).sendMany(queue, Array.from({ length: 50 }, (_, i) => ({ type: "t", data: `e${i}` })))
        yield* TestDb.tick(queue)

        const script = Path.join(import.meta.dirname, "skytools_remote_consumer.py")
        const run = () =>
          ChildProcess.execFileSync(DebianPackage.DEBIAN_PYTHON, [script, TestDb.url, remote.url, queue, consumer, table], {
            encoding: "utf8"
          })
        const first = Schema.decodeUnknownSync(Schema.fromJsonString(Schema.Struct({ events: Schema.Number })))(run())
        assert.strictEqual(first.events, 50)
        const [count] = yield* remote.sql<{ readonly n: number }>`select count(distinct ev_id)::int as n from ${
          remote.sql(table)
        }`
        assert.strictEqual(count!.n, 50)
        // Its batch is recorded where effect-pgq looks for it.
        const info = yield* (yield* Pgq).getConsumerInfo(queue, consumer)
        assert.strictEqual(info.pendingEvents, 0n)
        const [last] = yield* remote.sql<{ readonly id: string }>`
          select last_batch_id::text as id from pgq_ext.completed_batch where consumer_id = ${consumer}`
        assert.isTrue(yield* ext.isBatchDone(consumer, BatchId.make(BigInt(last!.id))))
      })
  )
})
