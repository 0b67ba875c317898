/**
 * Seed 003's example, on a real database: download a collection of images
 * in blocks, resize each block once it is downloaded, and notify the user
 * only after every block is done.
 *
 * One job has a component per download block and per resize block. Workers
 * report each block's status from their handler's result (`Tracked`), in the
 * batch's transaction. The transaction that completes the last component
 * also inserts the job's follow-up event into the notify queue, where the
 * notifier picks it up: no job that re-queues itself to poll the others, no
 * `sleep(2)` so that a "completed" is not lost to a same-second
 * "in_progress".
 *
 * The queues are the run's own, dropped at the end, so it can share a
 * database. A ticker would cut batches in production; this example ticks by
 * hand.
 *
 *   npm exec -- node examples/tracker/images.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer, Ref, Schema } from "effect"
import {
  Dispatch,
  Installer,
  InteractiveConsumer,
  JobId,
  type JobState,
  Pgq,
  type PgqEvent,
  PgqServices,
  Producer,
  Tracked,
  Tracker
} from "../../src/index.ts"
import { DevDatabase } from "../../src/testing/index.ts"

const BLOCKS = 10
const work = `images_${process.pid}`
const notify = `notify_${process.pid}`

const Block = Schema.Struct({ block: Schema.Int, pointer: Schema.String })

/** Which job and component a work event reports on: its extra1 and extra2. */
const target = (event: PgqEvent) =>
  event.extra1 === null || event.extra2 === null
    ? undefined
    : { jobId: JobId.make(BigInt(event.extra1)), component: event.extra2 }

const line = (label: string, state: JobState) =>
  Console.log(
    `${label}: ${state.status} (completed ${state.counts.completed}, in_progress ${state.counts.in_progress}, ` +
      `pending ${state.counts.pending}, failed ${state.counts.failed})`
  )

const program = Effect.gen(function*() {
  const pgq = yield* Pgq
  const producer = yield* Producer
  const tracker = yield* Tracker
  yield* (yield* Installer).install
  for (const queue of [work, notify]) {
    yield* Effect.acquireRelease(pgq.createQueue(queue), () => Effect.ignore(pgq.dropQueue(queue, { force: true })))
  }
  yield* pgq.registerConsumer(work, "worker")
  yield* pgq.registerConsumer(notify, "notifier")
  const tick = (queue: string) => Effect.andThen(pgq.forceTick(queue), pgq.tickQueue(queue))

  // 1. The job, with every component named up front, and what to do when it is done.
  const blocks = Array.from({ length: BLOCKS }, (_, i) => i)
  const job = yield* tracker.create({
    name: `process-image-collection-${process.pid}`,
    components: [...blocks.map((i) => `download_${i}`), ...blocks.map((i) => `resize_${i}`)],
    followUp: { queue: notify, type: "collection.ready", data: JSON.stringify({ email: "user@example.com" }) }
  })
  yield* Console.log(`job ${job.id} created with ${job.componentCount} components, follow-up to ${notify}`)

  // 2. Fan out: one download event per block.
  yield* producer.sendMany(work, blocks.map((block) => ({
    type: "download",
    data: JSON.stringify({ block, pointer: `collection/blocks/${block}` }),
    extra1: String(job.id),
    extra2: `download_${block}`
  })))

  // 3. The worker. A download queues its block's resize in the same
  //    transaction; each result becomes the block's status.
  const worker = Tracked.make(
    Dispatch.make({
      download: Dispatch.json(Block, ({ block, pointer }) =>
        Effect.gen(function*() {
          // Reported and completed in one transaction, in the same instant:
          // the sequence, not the clock, says which is newest.
          yield* tracker.append({ jobId: job.id, component: `download_${block}`, status: "in_progress", message: pointer })
          yield* pgq.insertEvent(work, {
            type: "resize",
            data: JSON.stringify({ block, pointer }),
            extra1: String(job.id),
            extra2: `resize_${block}`
          })
        })),
      resize: Dispatch.json(Block, () => Effect.void)
    }),
    { target }
  )

  // 4. The notifier reads the follow-up: it runs once, when the job finished.
  const notified = yield* Ref.make<ReadonlyArray<string>>([])
  const notifier = Dispatch.make({
    "collection.ready": Dispatch.json(Schema.Struct({ email: Schema.String }), ({ email }, event) =>
      Effect.andThen(
        Console.log(`notify ${email}: job ${event.extra1} ${event.extra2}`),
        Ref.update(notified, (all) => [...all, `${event.extra1}`])
      ))
  })

  yield* tick(work)
  yield* InteractiveConsumer.processAvailable({ queue: work, consumer: "worker", onEvent: worker })
  yield* line("after downloading", yield* tracker.calculate(job.id))

  yield* tick(notify)
  yield* InteractiveConsumer.processAvailable({ queue: notify, consumer: "notifier", onEvent: notifier })
  yield* Console.log(`notifications so far: ${(yield* Ref.get(notified)).length}`)

  yield* tick(work)
  yield* InteractiveConsumer.processAvailable({ queue: work, consumer: "worker", onEvent: worker })
  const done = yield* tracker.calculate(job.id)
  yield* line("after resizing", done)
  const last = done.components.find((c) => c.component === "download_0")?.newest
  yield* Console.log(`download_0 newest: ${last?.status} (seq ${last?.seq})`)

  yield* tick(notify)
  yield* InteractiveConsumer.processAvailable({ queue: notify, consumer: "notifier", onEvent: notifier })
  yield* Console.log(`notifications: ${(yield* Ref.get(notified)).length}`)

  // 5. Finished jobs are cleaned after a while (here: jobs of this run only, at once).
  yield* Console.log(`cleaned ${yield* tracker.clean({ olderThan: 0, name: job.name })} finished job(s)`)
})

program.pipe(
  Effect.scoped,
  Effect.provide(
    Tracker.layer.pipe(Layer.provideMerge(PgqServices.layer), Layer.provideMerge(DevDatabase.layer()))
  ),
  NodeRuntime.runMain
)
