/**
 * Job status tracker: status events appended per second by concurrent
 * writers into one job (each transaction also runs the job's completion
 * check at commit), and the time to compute the status of a job of many
 * components, newest event of each included.
 */
import { PgClient } from "@effect/sql-pg"
import { Clock, Console, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { Installer } from "../src/api/Installer.ts"
import * as PgqServices from "../src/api/Services.ts"
import type { JobId, StatusUpdate } from "../src/tracker/Job.ts"
import { Tracker } from "../src/tracker/Tracker.ts"
import { measure } from "./measure.ts"

const median = (values: ReadonlyArray<number>): number => {
  const sorted = values.toSorted((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

export const tracker = (options: {
  readonly components: number
  readonly writers: number
  readonly chunk: number
  readonly runs: number
}) =>
  Effect.gen(function*() {
    // A pool of its own, one connection per writer and one to spare.
    const { config } = yield* PgClient.PgClient
    yield* Effect.gen(function*() {
      yield* (yield* Installer).install
      const tracker = yield* Tracker
      const sql = yield* SqlClient.SqlClient
      const names = Array.from({ length: options.components }, (_, i) => `block_${i}`)
      let last: JobId | undefined

      /** Every writer: in_progress then completed for each of its components, `chunk` events per transaction. */
      const writeAll = (jobId: JobId, chunk: number) =>
        Effect.forEach(Array.from({ length: options.writers }, (_, w) => w), (w) => {
          const mine = names.filter((_, i) => i % options.writers === w)
          const updates: Array<StatusUpdate> = [
            ...mine.map((component) => ({ jobId, component, status: "in_progress" as const })),
            ...mine.map((component) => ({ jobId, component, status: "completed" as const, message: "ok" }))
          ]
          const chunks = Array.from({ length: Math.ceil(updates.length / chunk) }, (_, i) => updates.slice(i * chunk, (i + 1) * chunk))
          return Effect.forEach(chunks, (c) => sql.withTransaction(tracker.appendMany(c)), { discard: true })
        }, { concurrency: "unbounded", discard: true })

      const newJob = Effect.map(
        tracker.create({ name: "bench-tracker", components: names }),
        (job) => (last = job.id)
      )

      yield* measure({
        name: `tracker: status events appended by ${options.writers} writers into one job of ${options.components} components`,
        events: options.components * 2,
        runs: options.runs,
        setup: newJob,
        run: (jobId) => writeAll(jobId, options.chunk),
        extra: { writers: options.writers, eventsPerTransaction: options.chunk }
      })
      yield* measure({
        name: `tracker: one status event per transaction, ${options.writers} writers`,
        events: options.components * 2,
        runs: 1,
        setup: newJob,
        run: (jobId) => writeAll(jobId, 1),
        extra: { writers: options.writers, eventsPerTransaction: 1 }
      })

      // The last job: every component has two events and the job is completed.
      const jobId = last!
      const check = yield* tracker.calculate(jobId)
      if (check.status !== "completed" || check.job.finished?.status !== "completed") {
        return yield* Effect.fail(`bench job ${jobId} is ${check.status}, not completed`)
      }
      // Warm-up: the first calls pay for JIT compilation and the server's cold pages.
      for (let i = 0; i < 3; i++) yield* tracker.calculate(jobId)
      const durations: Array<number> = []
      for (let i = 0; i < Math.max(20, options.runs); i++) {
        const start = yield* Clock.currentTimeNanos
        yield* tracker.calculate(jobId)
        durations.push(Number((yield* Clock.currentTimeNanos) - start) / 1e6)
      }
      yield* Console.log(JSON.stringify({
        name: `tracker: status of a job of ${options.components} components (2 events each)`,
        components: options.components,
        calculateMs: Number(median(durations).toFixed(2)),
        minMs: Number(Math.min(...durations).toFixed(2)),
        runs: durations.length
      }))
    }).pipe(
      Effect.provide(
        Layer.mergeAll(Tracker.layer, Installer.layer).pipe(
          Layer.provideMerge(PgqServices.layer),
          Layer.provideMerge(Layer.fresh(PgClient.layer({ ...config, maxConnections: options.writers + 2 })))
        )
      )
    )
  })
