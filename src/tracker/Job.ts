/**
 * The job status tracker's model: a job is created with a fixed set of named
 * components; workers append immutable status events to its components; the
 * job's status is computed from the newest event of each component.
 *
 * "Newest" is by the event's sequence number, taken from a database sequence
 * when the event is appended, never by its timestamp: two events of one
 * component written within the same second (or microsecond, or by hosts
 * whose clocks disagree) are still in order.
 *
 * @since 0.2.0
 */
import { Schema } from "effect"
import { EventId } from "../api/Ids.ts"

/**
 * A job's id (PostgreSQL int8, as `bigint`).
 *
 * @since 0.2.0
 * @category ids
 */
export const JobId = Schema.BigInt.pipe(Schema.brand("effect-pgq/JobId"))
/**
 * @since 0.2.0
 * @category ids
 */
export type JobId = typeof JobId.Type

/**
 * What a status event says about one component.
 *
 * @since 0.2.0
 * @category models
 */
export const ComponentStatus = Schema.Literals(["pending", "in_progress", "completed", "failed"])
/**
 * @since 0.2.0
 * @category models
 */
export type ComponentStatus = typeof ComponentStatus.Type

/**
 * A job's computed status:
 *
 * - `failed` when any component's newest event is `failed`;
 * - `completed` when every component's newest event is `completed`;
 * - `pending` when no component has started: each has no event yet, or its
 *   newest is `pending`;
 * - `in_progress` otherwise.
 *
 * @since 0.2.0
 * @category models
 */
export const JobStatus = ComponentStatus
/**
 * @since 0.2.0
 * @category models
 */
export type JobStatus = ComponentStatus

/**
 * The two statuses a job finishes with; its follow-up fires at the first.
 *
 * @since 0.2.0
 * @category models
 */
export const FinishedStatus = Schema.Literals(["completed", "failed"])
/**
 * @since 0.2.0
 * @category models
 */
export type FinishedStatus = typeof FinishedStatus.Type

/**
 * The PgQ event inserted when the job finishes, in the same transaction as
 * the status event that finished it. It carries `data` as given, and in its
 * extra fields the job id (`extra1`), the finished status (`extra2`) and the
 * job's name (`extra3`).
 *
 * @since 0.2.0
 * @category models
 */
export const FollowUp = Schema.Struct({
  queue: Schema.String,
  type: Schema.String,
  data: Schema.NullOr(Schema.String)
})
/**
 * @since 0.2.0
 * @category models
 */
export type FollowUp = typeof FollowUp.Type

/**
 * The one time a job reached `completed` or `failed`. A job finishes once:
 * events appended afterwards are kept and change its computed status, but
 * never fire the follow-up again.
 *
 * @since 0.2.0
 * @category models
 */
export const Finished = Schema.Struct({
  status: FinishedStatus,
  at: Schema.DateTimeUtcFromDate,
  /** The follow-up event's id, when one was asked for and inserted. */
  followUpEventId: Schema.NullOr(EventId),
  /** Why the follow-up could not be inserted (its queue was dropped, say). */
  followUpError: Schema.NullOr(Schema.String)
})
/**
 * @since 0.2.0
 * @category models
 */
export type Finished = typeof Finished.Type

/**
 * @since 0.2.0
 * @category models
 */
export class Job extends Schema.Class<Job>("effect-pgq/Job")({
  id: JobId,
  name: Schema.String,
  componentCount: Schema.Number,
  createdAt: Schema.DateTimeUtcFromDate,
  followUp: Schema.NullOr(FollowUp),
  finished: Schema.NullOr(Finished)
}) {}

/**
 * An appended status event.
 *
 * @since 0.2.0
 * @category models
 */
export const StatusEvent = Schema.Struct({
  /** Order among all status events; the greatest of a component is its newest. */
  seq: Schema.BigInt,
  status: ComponentStatus,
  message: Schema.String,
  createdAt: Schema.DateTimeUtcFromDate
})
/**
 * @since 0.2.0
 * @category models
 */
export type StatusEvent = typeof StatusEvent.Type

/**
 * A component and its newest event (`null`: nothing appended yet, which
 * counts as `pending`).
 *
 * @since 0.2.0
 * @category models
 */
export interface ComponentState {
  readonly component: string
  readonly newest: StatusEvent | null
}

/**
 * How many components are in each status, by their newest event.
 *
 * @since 0.2.0
 * @category models
 */
export interface StatusCounts {
  readonly pending: number
  readonly in_progress: number
  readonly completed: number
  readonly failed: number
}

/**
 * A job's status computed from its events.
 *
 * @since 0.2.0
 * @category models
 */
export interface JobState {
  readonly job: Job
  readonly status: JobStatus
  readonly counts: StatusCounts
  /** Every component, in the order the job was created with. */
  readonly components: ReadonlyArray<ComponentState>
}

/**
 * A job to create.
 *
 * @since 0.2.0
 * @category models
 */
export interface NewJob {
  /** What kind of job this is (`process-image-collection`); not unique. */
  readonly name: string
  /** The components' names, unique within the job; at least one. */
  readonly components: ReadonlyArray<string>
  readonly followUp?: {
    readonly queue: string
    readonly type: string
    readonly data?: string | null | undefined
  } | undefined
}

/**
 * A status event to append.
 *
 * @since 0.2.0
 * @category models
 */
export interface StatusUpdate {
  readonly jobId: JobId
  readonly component: string
  readonly status: ComponentStatus
  readonly message?: string | undefined
}

/**
 * The job's status from its counts (see `JobStatus`).
 *
 * @since 0.2.0
 * @category status
 */
export const statusOf = (counts: StatusCounts): JobStatus => {
  if (counts.failed > 0) return "failed"
  const total = counts.pending + counts.in_progress + counts.completed
  if (counts.completed === total) return "completed"
  if (counts.pending === total) return "pending"
  return "in_progress"
}

/**
 * Counts the components' newest statuses.
 *
 * @since 0.2.0
 * @category status
 */
export const countStatuses = (components: ReadonlyArray<ComponentState>): StatusCounts => {
  const counts = { pending: 0, in_progress: 0, completed: 0, failed: 0 }
  for (const { newest } of components) counts[newest === null ? "pending" : newest.status]++
  return counts
}
