/**
 * The job status tracker (seed 003, done right): jobs with named components,
 * immutable status events, and a job status computed from the newest event
 * of each component.
 *
 * Workers append without taking locks. A job finishes (`completed` or
 * `failed`) exactly once, detected at commit inside PostgreSQL by the
 * transaction whose events finished it, which also inserts the job's
 * follow-up PgQ event: fan-out and fan-in without a polling job. The
 * reasoning is next to the SQL, in migration 2 (`src/api/migrations.ts`).
 *
 * Appends run in the caller's transaction when there is one, so a consumer's
 * handler records a component's status atomically with finishing its batch
 * (see `Tracked`).
 *
 * Two implementations: `Tracker.layer` on PostgreSQL (effect-pgq's schema,
 * migration 2 of the installer) and `MemoryTracker.layer` for unit tests.
 *
 * @since 0.2.0
 */
import { Context, Duration, Effect, Layer, Predicate, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { isSqlError, type SqlError } from "effect/sql/SqlError"
import { Pgq } from "../api/Pgq.ts"
import { InvalidArgument } from "../api/PgqError.ts"
import { findAll, findOneOption } from "../internal/rows.ts"
import { mapSqlError } from "../internal/mapSqlError.ts"
import { validateQueue } from "../internal/validateName.ts"
import {
  type ComponentState,
  ComponentStatus,
  countStatuses,
  Job,
  type JobId,
  type JobState,
  type NewJob,
  statusOf,
  type StatusUpdate
} from "./Job.ts"
import { JobNotFound, type TrackerError, UnknownComponent } from "./TrackerError.ts"

/**
 * @since 0.2.0
 * @category models
 */
export interface JobListOptions {
  /** Page size, 1 to 10,000. Default 100. */
  readonly limit?: number | undefined
  /** Jobs with a smaller id: pass the last id of the previous page (newest first). */
  readonly afterId?: JobId | undefined
  /** Only finished jobs (`true`) or only unfinished ones (`false`); default all. */
  readonly finished?: boolean | undefined
  /** Only jobs of this name. */
  readonly name?: string | undefined
}

/**
 * @since 0.2.0
 * @category models
 */
export interface CleanOptions {
  /** Jobs finished longer ago than this are deleted, with their events. */
  readonly olderThan: Duration.Input
  /** Also delete unfinished jobs created longer ago than `olderThan` (abandoned work). */
  readonly unfinished?: boolean | undefined
  /** Only jobs of this name (each kind of job can have its own retention). */
  readonly name?: string | undefined
}

/**
 * @since 0.2.0
 * @category services
 */
export class Tracker extends Context.Service<Tracker, {
  /**
   * Creates a job with its components (none started: the job is `pending`).
   * A follow-up's queue must exist.
   */
  readonly create: (job: NewJob) => Effect.Effect<Job, TrackerError>
  /** Appends one status event. `UnknownComponent` if the job has no such component. */
  readonly append: (update: StatusUpdate) => Effect.Effect<void, TrackerError>
  /** Appends many status events in one round trip, in order; returns how many. */
  readonly appendMany: (updates: ReadonlyArray<StatusUpdate>) => Effect.Effect<number, TrackerError>
  /** The job as created, and whether (and how) it finished. */
  readonly get: (jobId: JobId) => Effect.Effect<Job, TrackerError>
  /** The job's status from the newest event of each component. */
  readonly calculate: (jobId: JobId) => Effect.Effect<JobState, TrackerError>
  /** A page of jobs, newest first. */
  readonly list: (options?: JobListOptions) => Effect.Effect<ReadonlyArray<Job>, TrackerError>
  /** Deletes old jobs with their components and events; returns how many jobs. */
  readonly clean: (options: CleanOptions) => Effect.Effect<number, TrackerError>
}>()("effect-pgq/tracker/Tracker") {
  /**
   * The tracker on PostgreSQL, in effect-pgq's schema (run the installer).
   *
   * @since 0.2.0
   * @category layers
   */
  static readonly layer: Layer.Layer<Tracker, never, SqlClient.SqlClient | Pgq> = Layer.effect(
    Tracker,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const pgq = yield* Pgq
      return make(sql, pgq)
    })
  )
}

/**
 * Checks a new job before it reaches the database.
 *
 * @since 0.2.0
 * @category validation
 */
export const validateJob = (operation: string, job: NewJob): Effect.Effect<void, InvalidArgument> => {
  const invalid = (argument: string, reason: string) => Effect.fail(new InvalidArgument({ operation, argument, reason }))
  if (job.components.length === 0) return invalid("components", "a job needs at least one component")
  if (job.components.length > 1_000_000) return invalid("components", "at most 1,000,000 components")
  const seen = new Set<string>()
  for (const component of job.components) {
    if (component === "") return invalid("components", "a component name cannot be empty")
    if (seen.has(component)) return invalid("components", `component ${JSON.stringify(component)} is listed twice`)
    seen.add(component)
  }
  if (job.followUp !== undefined && job.followUp.type === "") {
    return invalid("followUp.type", "the follow-up event needs a type")
  }
  return Effect.void
}

/**
 * Checks a page size.
 *
 * @since 0.2.0
 * @category validation
 */
export const validateLimit = (operation: string, limit: number): Effect.Effect<number, InvalidArgument> =>
  Number.isInteger(limit) && limit >= 1 && limit <= 10_000
    ? Effect.succeed(limit)
    : Effect.fail(new InvalidArgument({ operation, argument: "limit", reason: "must be an integer from 1 to 10,000" }))

/**
 * Checks a clean-up age.
 *
 * @since 0.2.0
 * @category validation
 */
export const validateAge = (operation: string, olderThan: Duration.Input): Effect.Effect<Duration.Duration, InvalidArgument> => {
  const age = Duration.fromInput(olderThan)
  return age._tag === "Some" && Duration.isFinite(age.value) && Duration.toMillis(age.value) >= 0
    ? Effect.succeed(age.value)
    : Effect.fail(new InvalidArgument({ operation, argument: "olderThan", reason: "must be a finite duration of 0 or more" }))
}

interface JobRow {
  readonly job_id: unknown
  readonly job_name: unknown
  readonly component_count: unknown
  readonly created_at: unknown
  readonly follow_up_queue: string | null
  readonly follow_up_type: unknown
  readonly follow_up_data: unknown
  readonly finished_status: string | null
  readonly finished_at: unknown
  readonly follow_up_event_id: unknown
  readonly follow_up_error: unknown
}

const decodeJobs = findAll(Job)
const decodeJobOption = findOneOption(Job)

const jobFields = (row: JobRow) => ({
  id: row.job_id,
  name: row.job_name,
  componentCount: row.component_count,
  createdAt: row.created_at,
  followUp: row.follow_up_queue === null
    ? null
    : { queue: row.follow_up_queue, type: row.follow_up_type, data: row.follow_up_data },
  finished: row.finished_status === null ? null : {
    status: row.finished_status,
    at: row.finished_at,
    followUpEventId: row.follow_up_event_id,
    followUpError: row.follow_up_error
  }
})

/** One row per component, in creation order, with its newest event's columns (all null: none yet). */
const decodeComponents = findAll(Schema.Struct({
  component: Schema.String,
  seq: Schema.NullOr(Schema.BigInt),
  status: Schema.NullOr(ComponentStatus),
  message: Schema.NullOr(Schema.String),
  created_at: Schema.NullOr(Schema.DateTimeUtcFromDate)
}))

const jobColumns = `job_id, job_name, component_count, created_at, follow_up_queue, follow_up_type, follow_up_data,
  finished_status, finished_at, follow_up_event_id, follow_up_error`

/** `Key (job_id, component)=(…) is not present…`: the detail of a status event for an unknown component. */
const foreignKeyDetail = (error: SqlError): string | undefined => {
  const cause: unknown = error.reason.cause
  return Predicate.hasProperty(cause, "code") && cause.code === "23503" && Predicate.hasProperty(cause, "detail") &&
      Predicate.isString(cause.detail)
    ? cause.detail
    : undefined
}

/**
 * @since 0.2.0
 * @category constructors
 */
export const make = (sql: SqlClient.SqlClient, pgq: Pgq["Service"]): Tracker["Service"] => {
  const run = <A>(operation: string, effect: Effect.Effect<A, SqlError>): Effect.Effect<A, TrackerError> =>
    Effect.catchIf(effect, isSqlError, (error) => Effect.fail(mapSqlError(error, { operation })))

  /** Like `run`, but a status event for a component the job lacks is an `UnknownComponent`. */
  const runAppend = <A>(
    operation: string,
    updates: ReadonlyArray<StatusUpdate>,
    effect: Effect.Effect<A, SqlError>
  ): Effect.Effect<A, TrackerError> =>
    Effect.catchIf(effect, isSqlError, (error): Effect.Effect<never, TrackerError> => {
      const detail = foreignKeyDetail(error)
      if (detail === undefined) return Effect.fail(mapSqlError(error, { operation }))
      const bad = updates.find((u) => detail.includes(`=(${u.jobId}, ${u.component})`)) ?? updates[0]!
      return Effect.fail(new UnknownComponent({ operation, jobId: bad.jobId, component: bad.component }))
    })

  const create = Effect.fn("Tracker.create")(function*(job: NewJob) {
    const operation = "Tracker.create"
    yield* validateJob(operation, job)
    const followUp = job.followUp
    if (followUp !== undefined) {
      yield* validateQueue(followUp.queue)
      // Now rather than when the job finishes, where it could only be recorded.
      yield* pgq.getQueueInfo(followUp.queue)
    }
    // One statement: the job and its components appear together or not at all.
    const rows = yield* run(
      operation,
      sql<JobRow>`with j as (
          insert into effect_pgq.job (job_name, component_count, follow_up_queue, follow_up_type, follow_up_data)
          values (${job.name}, ${job.components.length}, ${followUp?.queue ?? null}, ${followUp?.type ?? null},
            ${followUp?.data ?? null})
          returning *),
        c as (
          insert into effect_pgq.job_component (job_id, component, ordinal)
          select j.job_id, x.component, x.ordinal
          from j, json_array_elements_text(${JSON.stringify(job.components)}::json) with ordinality as x(component, ordinal))
        select ${sql.literal(jobColumns)} from j`
    )
    return (yield* decodeJobs(rows.map(jobFields)))[0]!
  })

  const insertEvents = (updates: ReadonlyArray<StatusUpdate>) => {
    const column = (pick: (u: StatusUpdate) => string) => JSON.stringify(updates.map(pick))
    // Each column as one JSON array; ROWS FROM zips them back into rows, in order.
    return sql`insert into effect_pgq.job_event (job_id, component, status, message)
      select e.j::bigint, e.c, e.s, e.m
      from rows from (
        json_array_elements_text(${column((u) => String(u.jobId))}::json),
        json_array_elements_text(${column((u) => u.component)}::json),
        json_array_elements_text(${column((u) => u.status)}::json),
        json_array_elements_text(${column((u) => u.message ?? "")}::json)) as e(j, c, s, m)`
  }

  const validateUpdates = (operation: string, updates: ReadonlyArray<StatusUpdate>) => {
    for (const update of updates) {
      if (!Schema.is(ComponentStatus)(update.status)) {
        return Effect.fail(
          new InvalidArgument({ operation, argument: "status", reason: `unknown status ${String(update.status)}` })
        )
      }
    }
    return Effect.void
  }

  const append = Effect.fn("Tracker.append")(function*(update: StatusUpdate) {
    const operation = "Tracker.append"
    yield* validateUpdates(operation, [update])
    yield* runAppend(
      operation,
      [update],
      sql`insert into effect_pgq.job_event (job_id, component, status, message)
        values (${update.jobId}, ${update.component}, ${update.status}, ${update.message ?? ""})`
    )
  })

  const appendMany = Effect.fn("Tracker.appendMany")(function*(updates: ReadonlyArray<StatusUpdate>) {
    const operation = "Tracker.appendMany"
    if (updates.length === 0) return 0
    yield* validateUpdates(operation, updates)
    yield* runAppend(operation, updates, insertEvents(updates))
    return updates.length
  })

  const getJob = (operation: string, jobId: JobId) =>
    Effect.gen(function*() {
      const rows = yield* run(
        operation,
        sql<JobRow>`select ${sql.literal(jobColumns)} from effect_pgq.job where job_id = ${jobId}`
      )
      const job = yield* decodeJobOption(rows.map(jobFields))
      if (job._tag === "None") return yield* new JobNotFound({ operation, jobId })
      return job.value
    })

  const get = Effect.fn("Tracker.get")((jobId: JobId) => getJob("Tracker.get", jobId))

  const calculate = Effect.fn("Tracker.calculate")(function*(jobId: JobId) {
    const operation = "Tracker.calculate"
    const job = yield* getJob(operation, jobId)
    // The first entry of each component's range of the (job_id, component, seq desc) index.
    const rows = yield* run(
      operation,
      sql`select c.component, e.seq, e.status, e.message, e.created_at
        from effect_pgq.job_component c
        left join (
          select distinct on (component) component, seq, status, message, created_at
          from effect_pgq.job_event where job_id = ${jobId}
          order by component, seq desc) e using (component)
        where c.job_id = ${jobId}
        order by c.ordinal`
    )
    const decoded = yield* decodeComponents(rows)
    const components: Array<ComponentState> = decoded.map((row) => ({
      component: row.component,
      newest: row.seq === null || row.status === null || row.created_at === null
        ? null
        : { seq: row.seq, status: row.status, message: row.message ?? "", createdAt: row.created_at }
    }))
    const counts = countStatuses(components)
    const state: JobState = { job, status: statusOf(counts), counts, components }
    return state
  })

  const list = Effect.fn("Tracker.list")(function*(options?: JobListOptions) {
    const operation = "Tracker.list"
    const limit = yield* validateLimit(operation, options?.limit ?? 100)
    const after = options?.afterId === undefined ? sql`` : sql`and job_id < ${options.afterId}`
    const finished = options?.finished === undefined
      ? sql``
      : options.finished
      ? sql`and finished_status is not null`
      : sql`and finished_status is null`
    const name = options?.name === undefined ? sql`` : sql`and job_name = ${options.name}`
    const rows = yield* run(
      operation,
      sql<JobRow>`select ${sql.literal(jobColumns)} from effect_pgq.job
        where true ${after} ${finished} ${name}
        order by job_id desc limit ${limit}`
    )
    return yield* decodeJobs(rows.map(jobFields))
  })

  const clean = Effect.fn("Tracker.clean")(function*(options: CleanOptions) {
    const operation = "Tracker.clean"
    const age = yield* validateAge(operation, options.olderThan)
    const seconds = Duration.toMillis(age) / 1000
    const unfinished = options.unfinished === true
      ? sql`or (finished_at is null and created_at < now() - make_interval(secs => ${seconds}))`
      : sql``
    const name = options.name === undefined ? sql`` : sql`and job_name = ${options.name}`
    // Events and components go first, by job id (one index range each),
    // rather than through the cascades' row-by-row deletes.
    const rows = yield* run(
      operation,
      sql<{ readonly n: bigint }>`with old as (
          select job_id from effect_pgq.job
          where (finished_at < now() - make_interval(secs => ${seconds}) ${unfinished}) ${name}),
        e as (delete from effect_pgq.job_event where job_id in (select job_id from old)),
        c as (delete from effect_pgq.job_component where job_id in (select job_id from old)),
        j as (delete from effect_pgq.job where job_id in (select job_id from old) returning 1)
        select count(*) as n from j`
    )
    return Number(rows[0]?.n ?? 0)
  })

  return Tracker.of({ create, append, appendMany, get, calculate, list, clean })
}
