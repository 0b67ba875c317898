/**
 * effect-pgq in one run: a queue on a throwaway PostgreSQL (or the database
 * in PGQ_DATABASE_URL), events produced in bulk, a consumer with typed
 * dispatch settling every kind of result, the failed-event store, and a
 * retry back into the queue. The queue is the run's own and is dropped at
 * the end, so the demo can share a database with other work (the tests run it
 * and check what it prints).
 *
 *   npm run demo
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer, Option, Schema } from "effect"
import {
  Dispatch,
  EventResult,
  EventStatus,
  FailedEvents,
  InteractiveConsumer,
  Installer,
  Pgq,
  PgqServices,
  Producer
} from "../src/index.ts"
import { DevDatabase } from "../src/testing/index.ts"

const OrderPlaced = Schema.Struct({ orderId: Schema.Int, total: Schema.Finite, email: Schema.String })

const queue = `orders_${process.pid}`
const consumer = "mailer"

/**
 * Makes the queue's next batch now, with the retried events that are due (a
 * running ticker or pgqd would do this). pgq moves at most 10 retry events
 * per call, of every queue of the database: call until none is left.
 */
const tick = Effect.gen(function*() {
  const pgq = yield* Pgq
  yield* Effect.repeat(pgq.maintRetryEvents, { until: (moved) => moved === 0 })
  yield* pgq.forceTick(queue)
  yield* pgq.tickQueue(queue)
})

/** Order 7's payment is still pending the first time: try again later. */
const mailer = Dispatch.make({
  "order.placed": Dispatch.json(OrderPlaced, (order, event) =>
    order.orderId === 7 && event.retry === null ? Effect.succeed(EventResult.Retry("0 seconds")) : Effect.void)
})

const drain = (label: string) =>
  Effect.gen(function*() {
    const stats = yield* InteractiveConsumer.processAvailable({ queue, consumer, onEvent: mailer })
    yield* Console.log(
      `${label}: ${stats.batches} batch(es), ${stats.events} events: ${stats.ok} ok, ${stats.retried} retried, ${stats.failed} failed`
    )
  })

const program = Effect.gen(function*() {
  const installer = yield* Installer
  const pgq = yield* Pgq
  const producer = yield* Producer
  const failedEvents = yield* FailedEvents
  const eventStatus = yield* EventStatus

  yield* installer.install
  const installed = yield* installer.status
  yield* Console.log(
    `installed pgq ${Option.getOrElse(installed.pgqVersion, () => "?")} and effect-pgq schema v${installed.schemaVersion}`
  )

  yield* Effect.acquireRelease(
    pgq.createQueue(queue),
    () => Effect.ignore(pgq.dropQueue(queue, { force: true }))
  )
  yield* pgq.registerConsumer(queue, consumer)
  yield* Console.log(`queue "${queue}" with consumer "${consumer}"`)

  const orders = Array.from({ length: 1000 }, (_, i) => ({
    type: "order.placed",
    data: JSON.stringify({ orderId: i + 1, total: 10 + i, email: `customer${i + 1}@example.com` })
  }))
  const sent = yield* producer.sendMany(queue, [
    ...orders,
    { type: "order.placed", data: "{\"orderId\": \"not a number\"}" },
    { type: "order.refunded", data: "{\"orderId\": 3}" }
  ])
  yield* Console.log(`produced ${sent} events in one transaction (one malformed, one of a type nobody handles)`)

  yield* tick
  yield* drain("first pass")

  const failed = yield* failedEvents.list(queue, consumer)
  for (const entry of failed) {
    yield* Console.log(`  failed event ${entry.event.id} (${entry.event.type}): ${entry.reason.split("\n")[0]}`)
  }
  const first = failed[0]
  if (first !== undefined) {
    const statuses = yield* eventStatus.forEvent(queue, first.event.id)
    yield* Console.log(`  status of event ${first.event.id}: ${statuses.map((s) => `${s.consumer}=${s.state}`).join(", ")}`)
  }

  yield* tick
  yield* drain("second pass (order 7 retried)")

  const deleted = yield* failedEvents.delete(queue, consumer, "all")
  yield* Console.log(`deleted ${deleted} failed event(s) from the store`)
  const info = yield* pgq.getConsumerInfo(queue, consumer)
  yield* Console.log(`consumer "${consumer}" is at tick ${info.lastTick}, no batch open: ${info.currentBatch === null}`)
})

program.pipe(
  Effect.scoped,
  Effect.provide(PgqServices.layer.pipe(Layer.provideMerge(DevDatabase.layer()))),
  NodeRuntime.runMain
)
