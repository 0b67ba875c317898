/**
 * What only the PostgreSQL tracker does: the follow-up PgQ event, inserted
 * by the transaction that finishes the job, and nothing at all when that
 * transaction rolls back; and `Tracked` handlers inside a real consumer.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { Pgq } from "../../src/api/Pgq.ts"
import { Producer } from "../../src/api/Producer.ts"
import * as EventResult from "../../src/consumer/EventResult.ts"
import * as InteractiveConsumer from "../../src/consumer/InteractiveConsumer.ts"
import { JobId } from "../../src/tracker/Job.ts"
import * as Tracked from "../../src/tracker/Tracked.ts"
import { Tracker } from "../../src/tracker/Tracker.ts"
import * as TestDb from "../TestDb.ts"
import { drain, pgLayer } from "./TrackerHelpers.ts"

layer(pgLayer(), { excludeTestServices: true })("Tracker (PostgreSQL only)", (it) => {
  it.effect("a finished job inserts one follow-up event, with the job id and status in its extras", () =>
    Effect.gen(function*() {
      const tracker = yield* Tracker
      const { queue, consumer } = yield* TestDb.queueWithConsumer("followup")
      const name = TestDb.unique("notify")
      const job = yield* tracker.create({
        name,
        components: ["a", "b"],
        followUp: { queue, type: "images.done", data: "{\"user\":7}" }
      })
      assert.deepStrictEqual(job.followUp, { queue, type: "images.done", data: "{\"user\":7}" })
      yield* tracker.append({ jobId: job.id, component: "a", status: "completed" })
      assert.lengthOf(yield* drain(queue, consumer), 0)
      yield* tracker.append({ jobId: job.id, component: "b", status: "completed" })
      // More events after the finish fire nothing.
      yield* tracker.append({ jobId: job.id, component: "b", status: "failed" })
      const events = yield* drain(queue, consumer)
      assert.lengthOf(events, 1)
      const [event] = events
      assert.deepStrictEqual(
        [event!.type, event!.data, event!.extra1, event!.extra2, event!.extra3],
        ["images.done", "{\"user\":7}", String(job.id), "completed", name]
      )
      const finished = (yield* tracker.get(job.id)).finished
      assert.strictEqual(finished?.followUpEventId, event!.id)
      assert.isNull(finished?.followUpError)
    }))

  it.effect("a failed job's follow-up says failed", () =>
    Effect.gen(function*() {
      const tracker = yield* Tracker
      const { queue, consumer } = yield* TestDb.queueWithConsumer("followup")
      const job = yield* tracker.create({ name: "f", components: ["a", "b"], followUp: { queue, type: "t" } })
      yield* tracker.append({ jobId: job.id, component: "b", status: "failed", message: "404" })
      const events = yield* drain(queue, consumer)
      assert.deepStrictEqual(events.map((e) => [e.extra1, e.extra2, e.data]), [[String(job.id), "failed", null]])
    }))

  it.effect("events of a rolled-back transaction leave no trace and fire nothing", () =>
    Effect.gen(function*() {
      const tracker = yield* Tracker
      const sql = yield* SqlClient.SqlClient
      const { queue, consumer } = yield* TestDb.queueWithConsumer("followup")
      const job = yield* tracker.create({ name: "rb", components: ["a"], followUp: { queue, type: "t" } })
      yield* tracker.append({ jobId: job.id, component: "a", status: "completed" }).pipe(
        Effect.andThen(Effect.fail("rolled back" as const)),
        sql.withTransaction,
        Effect.flip
      )
      const state = yield* tracker.calculate(job.id)
      assert.strictEqual(state.status, "pending")
      assert.isNull(state.job.finished)
      assert.lengthOf(yield* drain(queue, consumer), 0)
      // A savepoint rolled back inside a committed transaction: only its events go.
      yield* Effect.gen(function*() {
        yield* tracker.append({ jobId: job.id, component: "a", status: "in_progress", message: "kept" })
        yield* tracker.append({ jobId: job.id, component: "a", status: "completed" }).pipe(
          Effect.andThen(Effect.fail("undone" as const)),
          sql.withTransaction,
          Effect.ignore
        )
      }).pipe(sql.withTransaction)
      const kept = yield* tracker.calculate(job.id)
      assert.strictEqual(kept.status, "in_progress")
      assert.strictEqual(kept.components[0]!.newest!.message, "kept")
      assert.lengthOf(yield* drain(queue, consumer), 0)
    }))

  it.effect("status events need read committed transactions: one appended under repeatable read is refused", () =>
    Effect.gen(function*() {
      const tracker = yield* Tracker
      const sql = yield* SqlClient.SqlClient
      const job = yield* tracker.create({ name: "iso", components: ["a"] })
      const refused = yield* Effect.gen(function*() {
        yield* sql`set transaction isolation level repeatable read`
        yield* tracker.append({ jobId: job.id, component: "a", status: "completed" })
      }).pipe(sql.withTransaction, Effect.flip)
      assert.include(refused.message, "read committed")
      assert.strictEqual((yield* tracker.calculate(job.id)).status, "pending")
    }))

  it.effect("a follow-up queue must exist at creation; one dropped since is recorded, not fatal", () =>
    Effect.gen(function*() {
      const tracker = yield* Tracker
      const pgq = yield* Pgq
      const missing = yield* Effect.flip(
        tracker.create({ name: "x", components: ["a"], followUp: { queue: TestDb.unique("nope"), type: "t" } })
      )
      assert.strictEqual(missing._tag, "QueueNotFound")
      const queue = TestDb.unique("dropped")
      yield* pgq.createQueue(queue)
      const job = yield* tracker.create({ name: "x", components: ["a"], followUp: { queue, type: "t" } })
      yield* pgq.dropQueue(queue, { force: true })
      // The worker's commit must not fail because of the follow-up.
      yield* tracker.append({ jobId: job.id, component: "a", status: "completed" })
      const finished = (yield* tracker.get(job.id)).finished
      assert.strictEqual(finished?.status, "completed")
      assert.isNull(finished?.followUpEventId)
      assert.match(finished?.followUpError ?? "", /queue/i)
    }))

  it.effect("Tracked records each event's result as its component's status, in the batch's transaction", () =>
    Effect.gen(function*() {
      const tracker = yield* Tracker
      const producer = yield* Producer
      const work = yield* TestDb.queueWithConsumer("work")
      const done = yield* TestDb.queueWithConsumer("done")
      const job = yield* tracker.create({
        name: "tracked",
        components: ["ok", "bad", "later", "abort"],
        followUp: { queue: done.queue, type: "job.done" }
      })
      yield* producer.sendMany(work.queue, ["ok", "bad", "later", "untracked"].map((component) => ({
        type: "step",
        data: component,
        extra1: component === "untracked" ? null : String(job.id)
      })))
      yield* TestDb.tick(work.queue)
      const handler = Tracked.make(
        (event) =>
          Effect.succeed(
            event.data === "bad"
              ? EventResult.Failed("cannot resize")
              : event.data === "later"
              ? EventResult.Retry("30 seconds")
              : EventResult.Ok
          ),
        {
          target: (event) =>
            event.extra1 === null || event.data === null
              ? undefined
              : { jobId: JobId.make(BigInt(event.extra1)), component: event.data }
        }
      )
      const stats = yield* InteractiveConsumer.processAvailable({ ...work, onEvent: handler })
      assert.strictEqual(stats.events, 4)
      const state = yield* tracker.calculate(job.id)
      assert.deepStrictEqual(
        state.components.map((c) => [c.component, c.newest?.status ?? null, c.newest?.message ?? null]),
        [["ok", "completed", ""], ["bad", "failed", "cannot resize"], ["later", "in_progress", "retry in 30 s"], [
          "abort",
          null,
          null
        ]]
      )
      assert.strictEqual(state.status, "failed")
      const followUps = yield* drain(done.queue, done.consumer)
      assert.deepStrictEqual(followUps.map((e) => [e.type, e.extra1, e.extra2]), [["job.done", String(job.id), "failed"]])

      // AbortBatch rolls the whole batch back, its status events with it.
      yield* producer.sendMany(work.queue, [{ type: "step", data: "abort", extra1: String(job.id) }])
      yield* TestDb.tick(work.queue)
      const aborting = Tracked.make(() => Effect.succeed(EventResult.AbortBatch("not now")), {
        target: (event) => ({ jobId: job.id, component: event.data ?? "" })
      })
      const aborted = yield* InteractiveConsumer.processAvailable({ ...work, onEvent: aborting })
      assert.strictEqual(aborted.aborted, 1)
      assert.isNull((yield* tracker.calculate(job.id)).components[3]!.newest)
    }))
})
