/**
 * Typed failures of the job status tracker, for `Effect.catchTag`. Database
 * failures are effect-pgq's usual `PgqError`s (`PgqNotInstalled` when the
 * tracker's tables are missing: run the installer).
 *
 * @since 0.2.0
 */
import { Schema } from "effect"
import type { PgqError } from "../api/PgqError.ts"
import { JobId } from "./Job.ts"

/**
 * @since 0.2.0
 * @category errors
 */
export class JobNotFound extends Schema.TaggedError<JobNotFound>("effect-pgq/JobNotFound")("JobNotFound", {
  operation: Schema.String,
  jobId: JobId
}) {
  override get message(): string {
    return `${this.operation}: job ${this.jobId} does not exist (it may have been cleaned)`
  }
}

/**
 * A status event for a component the job was not created with, or for a
 * job that does not exist.
 *
 * @since 0.2.0
 * @category errors
 */
export class UnknownComponent extends Schema.TaggedError<UnknownComponent>("effect-pgq/UnknownComponent")(
  "UnknownComponent",
  {
    operation: Schema.String,
    jobId: JobId,
    component: Schema.String
  }
) {
  override get message(): string {
    return `${this.operation}: job ${this.jobId} has no component ${
      JSON.stringify(this.component)
    } (or the job does not exist)`
  }
}

/**
 * Every failure of the tracker.
 *
 * @since 0.2.0
 * @category errors
 */
export type TrackerError = JobNotFound | UnknownComponent | PgqError
