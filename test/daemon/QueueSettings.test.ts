/**
 * Queue settings declared in a daemon config reach pgq.
 */
import { assert, layer } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { Pgq } from "../../src/api/Pgq.ts"
import * as QueueSettings from "../../src/daemon/QueueSettings.ts"
import * as TestDb from "../TestDb.ts"

layer(TestDb.servicesLayer, { excludeTestServices: true })("QueueSettings", (it) => {
  it.effect("applies the declared settings with pgq.set_queue_config, and only those", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const { queue } = yield* TestDb.queueWithConsumer("qs")
      const before = yield* pgq.getQueueInfo(queue)
      const applied = yield* QueueSettings.apply({ [queue]: { tickerMaxLag: "50 millis", tickerMaxCount: 20 } })
      assert.strictEqual(applied, 2)
      const after = yield* pgq.getQueueInfo(queue)
      assert.strictEqual(Duration.toMillis(after.tickerMaxLag), 50)
      assert.strictEqual(after.tickerMaxCount, 20)
      assert.strictEqual(Duration.toMillis(after.tickerIdlePeriod), Duration.toMillis(before.tickerIdlePeriod))
    }))

  it.effect("a missing queue is a typed error", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(QueueSettings.apply({ [TestDb.unique("none")]: { tickerMaxLag: "1 second" } }))
      assert.strictEqual(error._tag, "QueueNotFound")
    }))
})
