/**
 * The job tracker's jobs for the console's jobs page: the newest 50, with
 * how each finished. An unfinished job shows as `unfinished` rather than
 * its computed status, which would cost a query per job at every refresh.
 * Without the tracker's tables (installer not run), the page shows the
 * tracker's error instead.
 *
 * @since 0.2.0
 */
import { DateTime, Effect } from "effect"
import type { SqlClient } from "effect/sql"
import type { Pgq } from "../api/Pgq.ts"
import type { Job } from "../tracker/Job.ts"
import { Tracker } from "../tracker/Tracker.ts"
import type { TrackerError } from "../tracker/TrackerError.ts"
import type { JobRow } from "./Pages.ts"

const iso = (t: DateTime.DateTime): string => DateTime.formatIso(t).slice(0, 19).replace("T", " ")

const row = (job: Job): JobRow => ({
  id: job.id.toString(),
  name: job.name,
  components: job.componentCount,
  status: job.finished?.status ?? "unfinished",
  createdAt: iso(job.createdAt),
  finishedAt: job.finished === null ? null : iso(job.finished.at)
})

/**
 * The source to give `ConsoleOptions.jobs`, on the database of the
 * surrounding `SqlClient`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const source: Effect.Effect<
  Effect.Effect<ReadonlyArray<JobRow>, TrackerError>,
  never,
  SqlClient.SqlClient | Pgq
> = Effect.gen(function*() {
  const tracker = yield* Tracker
  return tracker.list({ limit: 50 }).pipe(Effect.map((jobs) => jobs.map(row)))
}).pipe(Effect.provide(Tracker.layer))
