/**
 * Fan-in under concurrency: many writers append status events to one job at
 * once, without locks; the job's computed status stays consistent while they
 * do, and its follow-up fires exactly once: never twice, and never zero
 * times, even when the transactions finishing the last components commit
 * together and neither sees the other's events.
 */
import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Ref } from "effect"
import { SqlClient } from "effect/sql"
import type { JobState, StatusUpdate } from "../../src/tracker/Job.ts"
import { Tracker } from "../../src/tracker/Tracker.ts"
import * as TestDb from "../TestDb.ts"
import { drain, pgLayer } from "./TrackerHelpers.ts"

const WORKERS = 8
const COMPONENTS = 1_000

/** Consistent: the counts cover every component, and the status follows from them. */
const assertConsistent = (state: JobState) => {
  const { completed, failed, in_progress, pending } = state.counts
  assert.strictEqual(completed + failed + in_progress + pending, COMPONENTS)
  assert.strictEqual(failed, 0)
  assert.strictEqual(state.status === "completed", completed === COMPONENTS)
  if (completed < COMPONENTS) assert.isNull(state.job.finished)
}

layer(pgLayer(WORKERS + 4), { excludeTestServices: true })("Tracker under concurrency", (it) => {
  it.effect(`${WORKERS} workers, ${COMPONENTS} components of one job: consistent status, one follow-up`, () =>
    Effect.gen(function*() {
      const tracker = yield* Tracker
      const sql = yield* SqlClient.SqlClient
      const { queue, consumer } = yield* TestDb.queueWithConsumer("fanin")
      const names = Array.from({ length: COMPONENTS }, (_, i) => `block_${i}`)
      const job = yield* tracker.create({ name: "fan-in", components: names, followUp: { queue, type: "all.done" } })

      // Worker w owns the components i % WORKERS === w: in_progress, then
      // completed, in transactions of 1 to 40 events, so transactions of
      // different workers interleave and commit in every order.
      const worker = (w: number) =>
        Effect.gen(function*() {
          const mine = names.filter((_, i) => i % WORKERS === w)
          const updates: Array<StatusUpdate> = []
          for (const component of mine) updates.push({ jobId: job.id, component, status: "in_progress" })
          for (const component of mine) updates.push({ jobId: job.id, component, status: "completed", message: `by ${w}` })
          let start = 0
          let size = 1 + w
          while (start < updates.length) {
            const chunk = updates.slice(start, start + size)
            // Mixed: one statement per event, or one for the chunk.
            yield* (size % 2 === 0
              ? Effect.forEach(chunk, (u) => tracker.append(u), { discard: true })
              : tracker.appendMany(chunk)).pipe(sql.withTransaction)
            start += size
            size = (size * 7 + w) % 40 + 1
          }
        })

      const writersDone = yield* Deferred.make<void>()
      const observed = yield* Ref.make(0)
      // A reader computes the status over and over while the writers run.
      const reader = Effect.gen(function*() {
        let lastCompleted = 0
        while (!(yield* Deferred.isDone(writersDone))) {
          const state = yield* tracker.calculate(job.id)
          assertConsistent(state)
          // Each read sees every transaction committed before it began: progress never goes back.
          assert.isAtLeast(state.counts.completed, lastCompleted)
          lastCompleted = state.counts.completed
          yield* Ref.update(observed, (n) => n + 1)
        }
      })
      yield* Effect.all([
        Effect.all(Array.from({ length: WORKERS }, (_, w) => worker(w)), { concurrency: "unbounded" }).pipe(
          Effect.ensuring(Deferred.succeed(writersDone, undefined))
        ),
        reader
      ], { concurrency: "unbounded" })

      const state = yield* tracker.calculate(job.id)
      assertConsistent(state)
      assert.strictEqual(state.status, "completed")
      assert.strictEqual(state.job.finished?.status, "completed")
      assert.isAbove(yield* Ref.get(observed), 0)
      const followUps = (yield* drain(queue, consumer)).filter((e) => e.extra1 === String(job.id))
      assert.lengthOf(followUps, 1)
      assert.strictEqual(state.job.finished?.followUpEventId, followUps[0]!.id)
    }), { timeout: 120_000 })

  it.effect("two transactions finishing the last two components, committing together, fire exactly once", () =>
    Effect.gen(function*() {
      const tracker = yield* Tracker
      const sql = yield* SqlClient.SqlClient
      const { queue, consumer } = yield* TestDb.queueWithConsumer("race")
      const rounds = 60
      const jobs = []
      for (let round = 0; round < rounds; round++) {
        const job = yield* tracker.create({ name: "race", components: ["a", "b"], followUp: { queue, type: "race.done" } })
        // Both transactions append before either commits: under READ COMMITTED
        // neither can see the other's event when it checks the job.
        const aIn = yield* Deferred.make<void>()
        const bIn = yield* Deferred.make<void>()
        const finish = (component: string, mine: Deferred.Deferred<void>, theirs: Deferred.Deferred<void>) =>
          Effect.gen(function*() {
            yield* tracker.append({ jobId: job.id, component, status: "completed" })
            yield* Deferred.succeed(mine, undefined)
            yield* Deferred.await(theirs)
          }).pipe(sql.withTransaction)
        yield* Effect.all([finish("a", aIn, bIn), finish("b", bIn, aIn)], { concurrency: 2 })
        jobs.push(job.id)
      }
      const followUps = (yield* drain(queue, consumer)).map((e) => e.extra1)
      for (const id of jobs) {
        assert.strictEqual((yield* tracker.get(id)).finished?.status, "completed", `job ${id}`)
        assert.strictEqual(followUps.filter((x) => x === String(id)).length, 1, `follow-ups of job ${id}`)
      }
      assert.lengthOf(followUps, rounds)
    }))

  it.effect("transactions touching several jobs in opposite orders do not deadlock at commit", () =>
    Effect.gen(function*() {
      const tracker = yield* Tracker
      const sql = yield* SqlClient.SqlClient
      const one = yield* tracker.create({ name: "order", components: ["a", "b"] })
      const two = yield* tracker.create({ name: "order", components: ["a", "b"] })
      const aIn = yield* Deferred.make<void>()
      const bIn = yield* Deferred.make<void>()
      const finish = (first: typeof one, second: typeof one, mine: Deferred.Deferred<void>, theirs: Deferred.Deferred<void>, c: string) =>
        Effect.gen(function*() {
          yield* tracker.append({ jobId: first.id, component: c, status: "completed" })
          yield* tracker.append({ jobId: second.id, component: c, status: "completed" })
          yield* Deferred.succeed(mine, undefined)
          yield* Deferred.await(theirs)
        }).pipe(sql.withTransaction)
      yield* Effect.all([finish(one, two, aIn, bIn, "a"), finish(two, one, bIn, aIn, "b")], { concurrency: 2 })
      assert.strictEqual((yield* tracker.get(one.id)).finished?.status, "completed")
      assert.strictEqual((yield* tracker.get(two.id)).finished?.status, "completed")
    }))
})
