/**
 * `effect-pgq job create|status|list|clean`: the job status tracker from a
 * terminal. Status events come from workers (`Tracker.append`, `Tracked`);
 * these commands create jobs, show where they stand, and remove old ones.
 *
 * @since 0.2.0
 */
import { Console, Duration, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { INT8_MAX, parseInt8Id } from "../internal/int8Id.ts"
import { JobId, type Job } from "../tracker/Job.ts"
import { Tracker } from "../tracker/Tracker.ts"
import { failure, usage } from "./admin/CliFailure.ts"
import { withDatabase } from "./admin/Connection.ts"
import { cell, iso, printJson, quote, table } from "./admin/Output.ts"
import { json } from "./flags.ts"

const parseJobId = (text: string) =>
  Option.match(parseInt8Id(text), {
    onSome: (id) => Effect.succeed(JobId.make(id)),
    onNone: () => Effect.fail(usage(`job id must be a positive integer up to ${INT8_MAX}, got ${quote(text)}`))
  })

const UNITS: Record<string, Duration.Unit> = {
  s: "seconds",
  m: "minutes",
  h: "hours",
  d: "days",
  w: "weeks"
}

/** `30s`, `15m`, `12h`, `7d`, `2w` (or `7 days`). */
const parseAge = (text: string) => {
  const match = /^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)[a-z]*$/i.exec(text.trim())
  const unit = match === null ? undefined : UNITS[match[2]!.toLowerCase()]
  return match === null || unit === undefined
    ? Effect.fail(usage(`--older-than must be like 30s, 15m, 12h, 7d or 2w, got ${quote(text)}`))
    : Effect.succeed(Duration.fromInputUnsafe(`${Number(match[1])} ${unit}`))
}

/** A job for JSON: ids as strings, times as ISO text. */
const jobJson = (job: Job) => ({
  id: job.id,
  name: job.name,
  components: job.componentCount,
  createdAt: iso(job.createdAt),
  followUp: job.followUp,
  finished: job.finished === null ? null : {
    status: job.finished.status,
    at: iso(job.finished.at),
    followUpEventId: job.finished.followUpEventId,
    followUpError: job.finished.followUpError
  }
})

const jobIdArgument = Argument.String("job-id").pipe(Argument.withDescription("The job's id (as job create and job list show it)"))

const create = Command.make(
  "create",
  {
    name: Argument.String("name").pipe(Argument.withDescription("What kind of job (not unique)")),
    components: Argument.String("component").pipe(
      Argument.withDescription("The components' names, unique within the job"),
      Argument.variadic({ min: 1 })
    ),
    followUpQueue: Flag.String("follow-up-queue").pipe(
      Flag.withMetavar("queue"),
      Flag.withDescription("Insert an event into this queue when the job completes or fails"),
      Flag.optional
    ),
    followUpType: Flag.String("follow-up-type").pipe(
      Flag.withDescription("The follow-up event's type"),
      Flag.withDefault("job.finished")
    ),
    followUpData: Flag.String("follow-up-data").pipe(
      Flag.withDescription("The follow-up event's data"),
      Flag.optional
    ),
    json
  },
  ({ components, followUpData, followUpQueue, followUpType, json, name }) =>
    withDatabase(
      Effect.gen(function*() {
        const tracker = yield* Tracker
        const job = yield* tracker.create({
          name,
          components,
          followUp: Option.isSome(followUpQueue)
            ? { queue: followUpQueue.value, type: followUpType, data: Option.getOrNull(followUpData) }
            : undefined
        })
        if (json) return yield* printJson(jobJson(job))
        yield* Console.log(`created job ${job.id} (${quote(job.name)}) with ${job.componentCount} components`)
      }).pipe(Effect.provide(Tracker.layer))
    )
).pipe(
  Command.withDescription("Create a job with its components"),
  Command.withExamples([
    { command: "effect-pgq job create images download_0 download_1 resize_0 resize_1", description: "Four components" },
    {
      command: "effect-pgq job create images a b --follow-up-queue notify --follow-up-data '{\"user\":7}'",
      description: "With an event into queue notify when it finishes"
    }
  ])
)

const status = Command.make(
  "status",
  {
    jobId: jobIdArgument,
    all: Flag.Boolean("all").pipe(
      Flag.withDescription("List every component, not only those not completed"),
      Flag.withDefault(false)
    ),
    json
  },
  ({ all, jobId, json }) =>
    withDatabase(
      Effect.gen(function*() {
        const id = yield* parseJobId(jobId)
        const state = yield* (yield* Tracker).calculate(id).pipe(
          Effect.catchTag("JobNotFound", () => Effect.fail(failure(`job ${id} does not exist (or was cleaned); effect-pgq job list shows the jobs`)))
        )
        if (json) {
          return yield* printJson({
            job: jobJson(state.job),
            status: state.status,
            counts: state.counts,
            components: state.components.map(({ component, newest }) => ({
              component,
              status: newest?.status ?? "pending",
              message: newest?.message ?? null,
              seq: newest?.seq ?? null,
              at: newest === null ? null : iso(newest.createdAt)
            }))
          })
        }
        const { completed, failed, in_progress, pending } = state.counts
        const finished = state.job.finished
        yield* Console.log(
          `job ${state.job.id} (${quote(state.job.name)}): ${state.status}; ` +
            `${completed} completed, ${in_progress} in progress, ${pending} pending, ${failed} failed` +
            (finished === null ? "" : `; finished ${finished.status} at ${iso(finished.at)}`) +
            (finished?.followUpEventId != null ? `, follow-up event ${finished.followUpEventId}` : "") +
            (finished?.followUpError != null ? `, follow-up not inserted: ${finished.followUpError}` : "")
        )
        const shown = all ? state.components : state.components.filter((c) => c.newest?.status !== "completed")
        if (shown.length === 0) return
        yield* Console.log(table(
          ["COMPONENT", "STATUS", "SEQ", "AT", "MESSAGE"],
          shown.map(({ component, newest }) => [
            cell(component, 40),
            newest?.status ?? "pending",
            newest === null ? "-" : String(newest.seq),
            newest === null ? "-" : iso(newest.createdAt),
            cell(newest?.message ?? null, 60)
          ])
        ))
      }).pipe(Effect.provide(Tracker.layer))
    )
).pipe(
  Command.withDescription("A job's status, from the newest status event of each component"),
  Command.withExamples([
    { command: "effect-pgq job status 42", description: "Counts, and the components not completed" },
    { command: "effect-pgq job status 42 --json", description: "Every component's newest event, as JSON" }
  ])
)

const list = Command.make(
  "list",
  {
    limit: Flag.Int("limit").pipe(Flag.withDescription("Jobs per page, 1 to 10000"), Flag.withDefault(50)),
    after: Flag.String("after").pipe(
      Flag.withMetavar("job-id"),
      Flag.withDescription("Show older jobs: the last id of the previous page"),
      Flag.optional
    ),
    finished: Flag.Literals("finished", ["yes", "no"]).pipe(
      Flag.withDescription("Only finished jobs (yes) or only unfinished ones (no)"),
      Flag.optional
    ),
    name: Flag.String("name").pipe(Flag.withDescription("Only jobs of this name"), Flag.optional),
    json
  },
  ({ after, finished, json, limit, name }) =>
    withDatabase(
      Effect.gen(function*() {
        const afterId = Option.isSome(after) ? yield* parseJobId(after.value) : undefined
        const jobs = yield* (yield* Tracker).list({
          limit,
          afterId,
          finished: Option.isSome(finished) ? finished.value === "yes" : undefined,
          name: Option.getOrUndefined(name)
        })
        const last = jobs.at(-1)
        const next = jobs.length === limit && last !== undefined ? last.id : null
        if (json) return yield* printJson({ jobs: jobs.map(jobJson), nextAfter: next })
        if (jobs.length === 0) return yield* Console.log("no jobs")
        yield* Console.log(table(
          ["ID", "NAME", "COMPONENTS", "CREATED", "FINISHED"],
          jobs.map((job) => [
            String(job.id),
            cell(job.name, 32),
            String(job.componentCount),
            iso(job.createdAt),
            job.finished === null ? "-" : `${job.finished.status} ${iso(job.finished.at)}`
          ])
        ))
        if (next !== null) yield* Console.log(`next page: --after ${next}`)
      }).pipe(Effect.provide(Tracker.layer))
    )
).pipe(
  Command.withDescription("List jobs, newest first, a page at a time"),
  Command.withExamples([
    { command: "effect-pgq job list", description: "The newest 50" },
    { command: "effect-pgq job list --finished no --name images --json", description: "Unfinished image jobs, as JSON" }
  ])
)

const clean = Command.make(
  "clean",
  {
    olderThan: Flag.String("older-than").pipe(
      Flag.withMetavar("age"),
      Flag.withDescription("Delete jobs finished longer ago than this: 30s, 15m, 12h, 7d, 2w")
    ),
    unfinished: Flag.Boolean("unfinished").pipe(
      Flag.withDescription("Also delete unfinished jobs created longer ago than that (abandoned work)"),
      Flag.withDefault(false)
    ),
    name: Flag.String("name").pipe(Flag.withDescription("Only jobs of this name"), Flag.optional),
    json
  },
  ({ json, name, olderThan, unfinished }) =>
    withDatabase(
      Effect.gen(function*() {
        const age = yield* parseAge(olderThan)
        const deleted = yield* (yield* Tracker).clean({ olderThan: age, unfinished, name: Option.getOrUndefined(name) })
        if (json) return yield* printJson({ deleted })
        yield* Console.log(`deleted ${deleted} job${deleted === 1 ? "" : "s"} with their status events`)
      }).pipe(Effect.provide(Tracker.layer))
    )
).pipe(
  Command.withDescription("Delete old finished jobs with their components and status events"),
  Command.withExamples([
    { command: "effect-pgq job clean --older-than 7d", description: "Jobs finished over a week ago" },
    { command: "effect-pgq job clean --older-than 30d --unfinished", description: "And abandoned ones" }
  ])
)

/**
 * @since 0.2.0
 * @category commands
 */
export const job = Command.make("job").pipe(
  Command.withDescription("Job status tracker: create jobs, show their status, list and clean them"),
  Command.withSubcommands([create, status, list, clean])
)
