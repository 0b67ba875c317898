/**
 * The job status tracker in memory, for unit tests of code that uses
 * `Tracker`: the same semantics as the PostgreSQL one (sequence order,
 * finishing once), without a database. Each call is one "transaction". There
 * are no PgQ queues here: a follow-up is recorded, and listed by
 * `followUps`, instead of being inserted.
 *
 * @since 0.2.0
 */
import { Clock, DateTime, Effect, Layer, Schema } from "effect"
import { EventId } from "../api/Ids.ts"
import { InvalidArgument } from "../api/PgqError.ts"
import { validateQueue } from "../internal/validateName.ts"
import {
  type ComponentState,
  ComponentStatus,
  countStatuses,
  type FinishedStatus,
  type FollowUp,
  Job,
  JobId,
  type JobState,
  type NewJob,
  statusOf,
  type StatusEvent,
  type StatusUpdate
} from "./Job.ts"
import { type CleanOptions, type JobListOptions, Tracker, validateAge, validateJob, validateLimit } from "./Tracker.ts"
import { JobNotFound, UnknownComponent } from "./TrackerError.ts"

/**
 * A follow-up the in-memory tracker would have inserted.
 *
 * @since 0.2.0
 * @category models
 */
export interface FiredFollowUp {
  readonly jobId: JobId
  readonly status: FinishedStatus
  readonly followUp: FollowUp
}

/**
 * @since 0.2.0
 * @category models
 */
export interface MemoryTracker {
  readonly tracker: Tracker["Service"]
  /** Every follow-up fired so far, in order. */
  readonly followUps: Effect.Effect<ReadonlyArray<FiredFollowUp>>
}

interface Entry {
  job: Job
  readonly components: ReadonlyArray<string>
  readonly newest: Map<string, StatusEvent>
}

/**
 * @since 0.2.0
 * @category constructors
 */
export const make: Effect.Effect<MemoryTracker> = Effect.sync(() => {
  const jobs = new Map<JobId, Entry>()
  const fired: Array<FiredFollowUp> = []
  let nextJobId = 0n
  let nextSeq = 0n
  let nextEventId = 0n

  const now = Effect.map(Clock.currentTimeMillis, (millis) => DateTime.makeUnsafe(millis))

  const create = Effect.fn("MemoryTracker.create")(function*(input: NewJob) {
    yield* validateJob("Tracker.create", input)
    if (input.followUp !== undefined) yield* validateQueue(input.followUp.queue)
    const createdAt = yield* now
    const id = JobId.make(++nextJobId)
    const job = new Job({
      id,
      name: input.name,
      componentCount: input.components.length,
      createdAt,
      followUp: input.followUp === undefined
        ? null
        : { queue: input.followUp.queue, type: input.followUp.type, data: input.followUp.data ?? null },
      finished: null
    })
    jobs.set(id, { job, components: [...input.components], newest: new Map() })
    return job
  })

  const componentsOf = (entry: Entry): ReadonlyArray<ComponentState> =>
    entry.components.map((component) => ({ component, newest: entry.newest.get(component) ?? null }))

  /** As the PostgreSQL trigger does at commit: finish once, at the first completed or failed status. */
  const settle = (entry: Entry, at: DateTime.Utc) => {
    if (entry.job.finished !== null) return
    const status = statusOf(countStatuses(componentsOf(entry)))
    if (status !== "completed" && status !== "failed") return
    const followUp = entry.job.followUp
    if (followUp !== null) fired.push({ jobId: entry.job.id, status, followUp })
    entry.job = new Job({
      ...entry.job,
      finished: {
        status,
        at,
        followUpEventId: followUp === null ? null : EventId.make(++nextEventId),
        followUpError: null
      }
    })
  }

  const appendAll = (operation: string, updates: ReadonlyArray<StatusUpdate>) =>
    Effect.gen(function*() {
      // Checked first, so a bad update leaves nothing appended, as a failed INSERT would.
      for (const update of updates) {
        if (!Schema.is(ComponentStatus)(update.status)) {
          return yield* new InvalidArgument({ operation, argument: "status", reason: `unknown status ${String(update.status)}` })
        }
        const entry = jobs.get(update.jobId)
        if (entry === undefined || !entry.components.includes(update.component)) {
          return yield* new UnknownComponent({ operation, jobId: update.jobId, component: update.component })
        }
      }
      const at = yield* now
      const touched = new Set<Entry>()
      for (const update of updates) {
        const entry = jobs.get(update.jobId)!
        entry.newest.set(update.component, {
          seq: ++nextSeq,
          status: update.status,
          message: update.message ?? "",
          createdAt: at
        })
        touched.add(entry)
      }
      for (const entry of touched) settle(entry, at)
      return updates.length
    })

  const append = Effect.fn("MemoryTracker.append")(function*(update: StatusUpdate) {
    yield* appendAll("Tracker.append", [update])
  })

  const appendMany = Effect.fn("MemoryTracker.appendMany")((updates: ReadonlyArray<StatusUpdate>) =>
    appendAll("Tracker.appendMany", updates)
  )

  const find = (operation: string, jobId: JobId) => {
    const entry = jobs.get(jobId)
    return entry === undefined ? Effect.fail(new JobNotFound({ operation, jobId })) : Effect.succeed(entry)
  }

  const get = Effect.fn("MemoryTracker.get")(function*(jobId: JobId) {
    return (yield* find("Tracker.get", jobId)).job
  })

  const calculate = Effect.fn("MemoryTracker.calculate")(function*(jobId: JobId) {
    const entry = yield* find("Tracker.calculate", jobId)
    const components = componentsOf(entry)
    const counts = countStatuses(components)
    const state: JobState = { job: entry.job, status: statusOf(counts), counts, components }
    return state
  })

  const list = Effect.fn("MemoryTracker.list")(function*(options?: JobListOptions) {
    const limit = yield* validateLimit("Tracker.list", options?.limit ?? 100)
    const afterId = options?.afterId
    return [...jobs.values()]
      .map((entry) => entry.job)
      .filter((job) =>
        (afterId === undefined || job.id < afterId) &&
        (options?.finished === undefined || options.finished === (job.finished !== null)) &&
        (options?.name === undefined || options.name === job.name)
      )
      .sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
      .slice(0, limit)
  })

  const clean = Effect.fn("MemoryTracker.clean")(function*(options: CleanOptions) {
    const age = yield* validateAge("Tracker.clean", options.olderThan)
    const cutoff = DateTime.subtractDuration(yield* now, age)
    let deleted = 0
    for (const [id, { job }] of jobs) {
      if (options.name !== undefined && options.name !== job.name) continue
      const old = job.finished === null
        ? options.unfinished === true && DateTime.isLessThan(job.createdAt, cutoff)
        : DateTime.isLessThan(job.finished.at, cutoff)
      if (old) {
        jobs.delete(id)
        deleted++
      }
    }
    return deleted
  })

  return {
    tracker: Tracker.of({ create, append, appendMany, get, calculate, list, clean }),
    followUps: Effect.sync(() => [...fired])
  }
})

/**
 * A fresh in-memory `Tracker` per use of the layer.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer: Layer.Layer<Tracker> = Layer.effect(Tracker, Effect.map(make, (memory) => memory.tracker))
