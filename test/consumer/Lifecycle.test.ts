/**
 * A running consumer's life: the soft stop (the batch in hand commits), the
 * soft-stop timeout escalating to the hard stop (the batch rolls back),
 * `kill`, the lifecycle events in the order they happen, and the warning
 * about a queue that never ticks.
 */
import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, PubSub } from "effect"
import { SqlClient } from "effect/sql"
import { Installer } from "../../src/api/Installer.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import { Producer } from "../../src/api/Producer.ts"
import * as Consumer from "../../src/consumer/Consumer.ts"
import type { ConsumerEvent } from "../../src/consumer/ConsumerEvent.ts"
import * as EventResult from "../../src/consumer/EventResult.ts"
import * as TestDb from "../TestDb.ts"

const setup = (count: number, options?: { readonly tick?: boolean }) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* (yield* Installer).install
    const { queue, consumer } = yield* TestDb.queueWithConsumer("lq")
    const table = TestDb.unique("written")
    yield* sql`create table ${sql(table)} (n int not null)`
    if (count > 0) {
      yield* (yield* Producer).sendMany(queue, Array.from({ length: count }, (_, i) => ({ type: "t", data: String(i + 1) })))
    }
    if (options?.tick !== false) yield* TestDb.tick(queue)
    const written = sql<{ readonly n: number }>`select n from ${sql(table)} order by n`.pipe(
      Effect.map((rows) => rows.map((row) => row.n))
    )
    const write = (n: number) => Effect.asVoid(sql`insert into ${sql(table)} values (${n})`).pipe(Effect.orDie)
    return { queue, consumer, written, write }
  })

/** Everything published so far, without waiting. */
const drain = (subscription: PubSub.Subscription<ConsumerEvent>) =>
  Effect.map(PubSub.takeUpTo(subscription, 1000), (events) => Array.from(events))

/** Waits until `run` is in the middle of the handler for the event `at`. */
const blockingHandler = (at: number, write: (n: number) => Effect.Effect<void>) =>
  Effect.gen(function*() {
    const inHandler = yield* Deferred.make<void>()
    const release = yield* Deferred.make<void>()
    const onEvent = (event: { readonly data: string | null }) =>
      Effect.gen(function*() {
        yield* write(Number(event.data))
        if (Number(event.data) === at) {
          yield* Deferred.succeed(inHandler, undefined)
          yield* Deferred.await(release)
        }
      })
    return { onEvent, inHandler, release }
  })

layer(TestDb.servicesLayer, { excludeTestServices: true })("Consumer lifecycle", (it) => {
  it.effect("stop: the batch in hand commits, run returns, events in order", () =>
    Effect.gen(function*() {
      const { queue, consumer, written, write } = yield* setup(3)
      const { onEvent, inHandler, release } = yield* blockingHandler(2, write)
      yield* Effect.scoped(Effect.gen(function*() {
        const c = yield* Consumer.make({
          queue,
          consumer,
          onEvent: (event) =>
            Effect.as(onEvent(event), Number(event.data) === 3 ? EventResult.Retry("1 hour") : EventResult.Ok),
          wakeChannel: false
        })
        const subscription = yield* c.subscribe
        const running = yield* Effect.forkChild(c.run)
        yield* Deferred.await(inHandler)
        const stopping = yield* Effect.forkChild(c.stop({ timeout: "30 seconds" }))
        // The consumer is asked to stop mid-batch; let the handler finish.
        yield* Effect.sleep("100 millis")
        yield* Deferred.succeed(release, undefined)
        assert.strictEqual(yield* Fiber.join(stopping), "graceful")
        yield* Fiber.join(running)
        const tags = (yield* drain(subscription)).map((event) => event._tag)
        assert.deepStrictEqual(tags, [
          "consumer:started",
          "consumer:batch:received",
          "consumer:stopping",
          "consumer:event:retried",
          "consumer:batch:finished",
          "consumer:stopped"
        ])
      }))
      assert.deepStrictEqual(yield* written, [1, 2, 3])
      const info = yield* (yield* Pgq).getConsumerInfo(queue, consumer)
      assert.strictEqual(info.currentBatch, null)
    }))

  it.effect("stop while idle returns at once; events: started, idle, stopping, stopped", () =>
    Effect.gen(function*() {
      const { queue, consumer } = yield* setup(0)
      yield* Effect.scoped(Effect.gen(function*() {
        const c = yield* Consumer.make({ queue, consumer, idleDelay: "1 hour", onEvent: () => Effect.void })
        const subscription = yield* c.subscribe
        const running = yield* Effect.forkChild(c.run)
        yield* PubSub.take(subscription).pipe(
          Effect.repeat({ until: (event) => event._tag === "consumer:idle" }),
          Effect.timeout("20 seconds")
        )
        assert.strictEqual(yield* c.stop().pipe(Effect.timeout("10 seconds")), "graceful")
        yield* Fiber.join(running)
        assert.deepStrictEqual((yield* drain(subscription)).map((event) => event._tag), [
          "consumer:stopping",
          "consumer:stopped"
        ])
        // A stopped consumer stays stopped.
        yield* c.run.pipe(Effect.timeout("5 seconds"))
      }))
    }))

  it.effect("the soft-stop timeout escalates to the hard stop: the batch in flight rolls back", () =>
    Effect.gen(function*() {
      const { queue, consumer, written, write } = yield* setup(3)
      const { onEvent, inHandler } = yield* blockingHandler(2, write)
      yield* Effect.scoped(Effect.gen(function*() {
        const c = yield* Consumer.make({ queue, consumer, onEvent, wakeChannel: false })
        const subscription = yield* c.subscribe
        const running = yield* Effect.forkChild(c.run)
        yield* Deferred.await(inHandler)
        assert.strictEqual(yield* c.stop({ timeout: "200 millis" }), "forced")
        yield* Fiber.join(running)
        const tags = (yield* drain(subscription)).map((event) => event._tag)
        assert.deepStrictEqual(tags, [
          "consumer:started",
          "consumer:batch:received",
          "consumer:stopping",
          "consumer:stopping",
          "consumer:stopped"
        ])
      }))
      assert.deepStrictEqual(yield* written, [])
      const info = yield* (yield* Pgq).getConsumerInfo(queue, consumer)
      assert.strictEqual(info.currentBatch, null)
      assert.strictEqual(info.pendingEvents !== null && info.pendingEvents > 0n, true)
    }))

  it.effect("kill rolls back the batch in flight; the next run processes every event once", () =>
    Effect.gen(function*() {
      const { queue, consumer, written, write } = yield* setup(3)
      const { onEvent, inHandler } = yield* blockingHandler(3, write)
      yield* Effect.scoped(Effect.gen(function*() {
        const c = yield* Consumer.make({ queue, consumer, onEvent, wakeChannel: false })
        const running = yield* Effect.forkChild(c.run)
        yield* Deferred.await(inHandler)
        yield* c.kill
        yield* Fiber.join(running)
      }))
      assert.deepStrictEqual(yield* written, [])
      yield* Effect.scoped(Effect.gen(function*() {
        const c = yield* Consumer.make({ queue, consumer, onEvent: (event) => write(Number(event.data)) })
        yield* c.processAvailable
      }))
      assert.deepStrictEqual(yield* written, [1, 2, 3])
    }))

  it.effect("run again after an outside interruption: stop waits for the new run's batch", () =>
    Effect.gen(function*() {
      const { queue, consumer, written, write } = yield* setup(2)
      const { onEvent, inHandler, release } = yield* blockingHandler(2, write)
      yield* Effect.scoped(Effect.gen(function*() {
        const c = yield* Consumer.make({ queue, consumer, onEvent, wakeChannel: false })
        yield* Fiber.interrupt(yield* Effect.forkChild(c.run))
        const running = yield* Effect.forkChild(c.run)
        yield* Deferred.await(inHandler)
        const stopping = yield* Effect.forkChild(c.stop({ timeout: "30 seconds" }))
        yield* Effect.sleep("100 millis")
        // stop still waits: the batch in hand is not done.
        assert.isUndefined(stopping.pollUnsafe())
        yield* Deferred.succeed(release, undefined)
        assert.strictEqual(yield* Fiber.join(stopping), "graceful")
        yield* Fiber.join(running)
      }))
      assert.deepStrictEqual(yield* written, [1, 2])
    }))

  it.effect("warns when events wait and the queue does not tick", () =>
    Effect.gen(function*() {
      const { queue, consumer } = yield* setup(5, { tick: false })
      // Let the queue's last tick (at creation) grow older than the threshold.
      yield* Effect.sleep("300 millis")
      yield* Effect.scoped(Effect.gen(function*() {
        const c = yield* Consumer.make({
          queue,
          consumer,
          idleDelay: "50 millis",
          tickerStallAfter: "200 millis",
          wakeChannel: false,
          onEvent: () => Effect.void
        })
        const subscription = yield* c.subscribe
        const running = yield* Effect.forkChild(c.run)
        const stalled = yield* PubSub.take(subscription).pipe(
          Effect.repeat({ until: (event) => event._tag === "consumer:ticker:stalled" }),
          Effect.timeout("20 seconds")
        )
        assert.isTrue(stalled._tag === "consumer:ticker:stalled" && stalled.pendingEvents > 0n)
        // Warned once, not at every check.
        yield* Effect.sleep("600 millis")
        const again = (yield* drain(subscription)).filter((event) => event._tag === "consumer:ticker:stalled")
        assert.strictEqual(again.length, 0)
        yield* c.stop()
        yield* Fiber.join(running)
      }))
    }))

  it.effect("a lost database connection is reported once and restored", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { queue, consumer, write } = yield* setup(1)
      let killed = false
      yield* Effect.scoped(Effect.gen(function*() {
        const c = yield* Consumer.make({
          queue,
          consumer,
          wakeChannel: false,
          idleDelay: "50 millis",
          onEvent: (event) =>
            Effect.gen(function*() {
              yield* write(Number(event.data))
              // Kill our own backend the first time: the batch's connection is lost mid-batch.
              if (!killed) {
                killed = true
                yield* sql`select pg_terminate_backend(pg_backend_pid())`.pipe(Effect.ignore)
              }
            })
        })
        const subscription = yield* c.subscribe
        const running = yield* Effect.forkChild(c.run)
        const seen: Array<string> = []
        yield* PubSub.take(subscription).pipe(
          Effect.tap((event) => Effect.sync(() => seen.push(event._tag))),
          Effect.repeat({ until: (event) => event._tag === "consumer:connection:restored" }),
          Effect.timeout("30 seconds"),
          Effect.ignore
        )
        assert.deepStrictEqual(seen.slice(0, 2), ["consumer:started", "consumer:batch:received"])
        // Restored once the first batch after the loss has gone through.
        assert.deepStrictEqual(seen.filter((tag) => tag.startsWith("consumer:connection")), [
          "consumer:connection:lost",
          "consumer:connection:restored"
        ])
        assert.deepStrictEqual(seen.slice(-2), ["consumer:batch:finished", "consumer:connection:restored"])
        yield* c.stop()
        yield* Fiber.join(running)
      }))
    }))
})
