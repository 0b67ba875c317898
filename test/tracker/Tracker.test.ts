/**
 * The tracker's semantics, run against both implementations: PostgreSQL and
 * in memory. What only PostgreSQL does (the follow-up PgQ event, transaction
 * rollback) is in TrackerPg.test.ts.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { type JobId, JobId as JobIdSchema, type StatusUpdate } from "../../src/tracker/Job.ts"
import * as MemoryTracker from "../../src/tracker/MemoryTracker.ts"
import { Tracker } from "../../src/tracker/Tracker.ts"
import * as TestDb from "../TestDb.ts"
import { pgLayer } from "./TrackerHelpers.ts"

const PgLayer = pgLayer()

const suite = (name: string, trackerLayer: Layer.Layer<Tracker>) =>
  layer(trackerLayer, { excludeTestServices: true })(name, (it) => {
    const components = (n: number) => Array.from({ length: n }, (_, i) => `c${i}`)

    it.effect("a new job is pending, with its components in order and no events", () =>
      Effect.gen(function*() {
        const tracker = yield* Tracker
        const names = ["download_0", "download_1", "resize_0", "notify"]
        const job = yield* tracker.create({ name: TestDb.unique("images"), components: names })
        assert.strictEqual(job.componentCount, 4)
        assert.isNull(job.finished)
        assert.isNull(job.followUp)
        const state = yield* tracker.calculate(job.id)
        assert.strictEqual(state.status, "pending")
        assert.deepStrictEqual(state.components.map((c) => c.component), names)
        assert.isTrue(state.components.every((c) => c.newest === null))
        assert.deepStrictEqual(state.counts, { pending: 4, in_progress: 0, completed: 0, failed: 0 })
      }))

    it.effect("the newest event is the last appended, even within the same clock tick", () =>
      Effect.gen(function*() {
        const tracker = yield* Tracker
        const job = yield* tracker.create({ name: "same-tick", components: ["a", "b"] })
        // Seed 003's FAQ: "completed" lost to an "in_progress" of the same second. Here
        // one statement writes them all, with one timestamp for the lot in memory.
        const updates: Array<StatusUpdate> = []
        for (let i = 0; i < 50; i++) {
          updates.push({ jobId: job.id, component: "a", status: i % 2 === 0 ? "completed" : "in_progress", message: `#${i}` })
        }
        updates.push({ jobId: job.id, component: "a", status: "completed", message: "last" })
        assert.strictEqual(yield* tracker.appendMany(updates), 51)
        yield* tracker.append({ jobId: job.id, component: "b", status: "in_progress" })
        const state = yield* tracker.calculate(job.id)
        const [a, b] = state.components
        assert.strictEqual(a!.newest!.status, "completed")
        assert.strictEqual(a!.newest!.message, "last")
        assert.strictEqual(b!.newest!.status, "in_progress")
        assert.strictEqual(b!.newest!.message, "")
        assert.isTrue(b!.newest!.seq > a!.newest!.seq)
        assert.strictEqual(state.status, "in_progress")
        assert.deepStrictEqual(state.counts, { pending: 0, in_progress: 1, completed: 1, failed: 0 })
      }))

    it.effect("in progress as soon as one component started; completed when all are; finished once", () =>
      Effect.gen(function*() {
        const tracker = yield* Tracker
        const job = yield* tracker.create({ name: "all", components: components(3) })
        yield* tracker.append({ jobId: job.id, component: "c0", status: "pending" })
        assert.strictEqual((yield* tracker.calculate(job.id)).status, "pending")
        yield* tracker.append({ jobId: job.id, component: "c1", status: "in_progress" })
        assert.strictEqual((yield* tracker.calculate(job.id)).status, "in_progress")
        yield* tracker.appendMany(components(2).map((component) => ({ jobId: job.id, component, status: "completed" })))
        assert.strictEqual((yield* tracker.calculate(job.id)).status, "in_progress")
        assert.isNull((yield* tracker.get(job.id)).finished)
        yield* tracker.append({ jobId: job.id, component: "c2", status: "completed", message: "done" })
        const state = yield* tracker.calculate(job.id)
        assert.strictEqual(state.status, "completed")
        assert.strictEqual(state.job.finished?.status, "completed")
        assert.isNull(state.job.finished?.followUpEventId)
        const finishedAt = state.job.finished!.at
        // Later events are kept and change the computed status, but the job finished once.
        yield* tracker.append({ jobId: job.id, component: "c2", status: "in_progress" })
        const after = yield* tracker.calculate(job.id)
        assert.strictEqual(after.status, "in_progress")
        assert.deepStrictEqual(after.job.finished?.at, finishedAt)
      }))

    it.effect("failed as soon as any component's newest event is failed", () =>
      Effect.gen(function*() {
        const tracker = yield* Tracker
        const job = yield* tracker.create({ name: "fails", components: components(3) })
        yield* tracker.append({ jobId: job.id, component: "c0", status: "completed" })
        yield* tracker.append({ jobId: job.id, component: "c1", status: "failed", message: "disk full" })
        const state = yield* tracker.calculate(job.id)
        assert.strictEqual(state.status, "failed")
        assert.strictEqual(state.components[1]!.newest!.message, "disk full")
        assert.strictEqual(state.job.finished?.status, "failed")
        // A retried component that completes no longer counts as failed.
        yield* tracker.append({ jobId: job.id, component: "c1", status: "completed" })
        const retried = yield* tracker.calculate(job.id)
        assert.strictEqual(retried.status, "in_progress")
        assert.strictEqual(retried.job.finished?.status, "failed")
      }))

    it.effect("refuses unknown components and jobs, empty and duplicate components", () =>
      Effect.gen(function*() {
        const tracker = yield* Tracker
        const job = yield* tracker.create({ name: "strict", components: ["a"] })
        const unknown = yield* Effect.flip(tracker.append({ jobId: job.id, component: "zzz", status: "completed" }))
        assert.strictEqual(unknown._tag, "UnknownComponent")
        if (unknown._tag === "UnknownComponent") assert.strictEqual(unknown.component, "zzz")
        const many = yield* Effect.flip(tracker.appendMany([
          { jobId: job.id, component: "a", status: "completed" },
          { jobId: job.id, component: "b, c)", status: "completed" }
        ]))
        assert.strictEqual(many._tag, "UnknownComponent")
        if (many._tag === "UnknownComponent") assert.strictEqual(many.component, "b, c)")
        // Nothing of the refused batch was kept.
        assert.strictEqual((yield* tracker.calculate(job.id)).status, "pending")
        const missing = JobIdSchema.make(job.id + 1_000_000n)
        assert.strictEqual((yield* Effect.flip(tracker.calculate(missing)))._tag, "JobNotFound")
        assert.strictEqual((yield* Effect.flip(tracker.get(missing)))._tag, "JobNotFound")
        assert.strictEqual(
          (yield* Effect.flip(tracker.append({ jobId: missing, component: "a", status: "completed" })))._tag,
          "UnknownComponent"
        )
        const empty = yield* Effect.flip(tracker.create({ name: "none", components: [] }))
        assert.strictEqual(empty._tag, "InvalidArgument")
        const twice = yield* Effect.flip(tracker.create({ name: "twice", components: ["x", "y", "x"] }))
        assert.strictEqual(twice._tag, "InvalidArgument")
        assert.include(twice.message, "\"x\" is listed twice")
      }))

    it.effect("lists jobs newest first, a page at a time, finished or not", () =>
      Effect.gen(function*() {
        const tracker = yield* Tracker
        const created: Array<JobId> = []
        for (let i = 0; i < 5; i++) {
          const job = yield* tracker.create({ name: `page-${i}`, components: ["only"] })
          created.push(job.id)
        }
        yield* tracker.append({ jobId: created[1]!, component: "only", status: "completed" })
        const first = yield* tracker.list({ limit: 2 })
        assert.deepStrictEqual(first.map((j) => j.id), [created[4], created[3]])
        const second = yield* tracker.list({ limit: 2, afterId: first[1]!.id })
        assert.deepStrictEqual(second.map((j) => j.id), [created[2], created[1]])
        const finished = yield* tracker.list({ finished: true, afterId: JobIdSchema.make(created[4]! + 1n), limit: 5 })
        assert.strictEqual(finished[0]!.id, created[1])
        const unfinished = yield* tracker.list({ finished: false, limit: 3 })
        assert.isTrue(unfinished.every((j) => j.finished === null))
        assert.strictEqual((yield* Effect.flip(tracker.list({ limit: 0 })))._tag, "InvalidArgument")
      }))

    it.effect("cleans finished jobs older than an age, unfinished ones only when asked", () =>
      Effect.gen(function*() {
        const tracker = yield* Tracker
        // Other suites share the database: only this test's kind of job is cleaned.
        const name = TestDb.unique("old")
        const done = yield* tracker.create({ name, components: ["a"] })
        const open = yield* tracker.create({ name, components: ["a"] })
        yield* tracker.append({ jobId: done.id, component: "a", status: "completed" })
        yield* tracker.append({ jobId: open.id, component: "a", status: "in_progress" })
        yield* tracker.clean({ olderThan: "1 hour", name })
        assert.strictEqual((yield* tracker.get(done.id)).id, done.id)
        yield* Effect.sleep("20 millis")
        assert.strictEqual(yield* tracker.clean({ olderThan: "10 millis", name }), 1)
        assert.strictEqual((yield* Effect.flip(tracker.calculate(done.id)))._tag, "JobNotFound")
        assert.strictEqual((yield* tracker.calculate(open.id)).status, "in_progress")
        assert.strictEqual(yield* tracker.clean({ olderThan: "10 millis", unfinished: true, name }), 1)
        assert.strictEqual((yield* Effect.flip(tracker.get(open.id)))._tag, "JobNotFound")
        assert.strictEqual((yield* Effect.flip(tracker.clean({ olderThan: -1 })))._tag, "InvalidArgument")
      }))
  })

describe("Tracker", () => {
  suite("Tracker (PostgreSQL)", PgLayer)
  suite("Tracker (in memory)", MemoryTracker.layer)
})
