/**
 * A long-running consumer, as in the README: typed dispatch, `run` forever,
 * stopped here once it has mailed three orders. A ticker would cut batches in
 * production; this example ticks by hand and wakes the consumer with NOTIFY.
 * Its queue is the run's own, dropped at the end, so it can share a database.
 *
 *   npm exec -- node examples/mailer.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Console, Deferred, Effect, Fiber, Layer, Ref, Schema } from "effect"
import { Consumer, Dispatch, EventResult, Installer, Pgq, PgqServices, Producer } from "../src/index.ts"
import { DevDatabase } from "../src/testing/index.ts"

const OrderPlaced = Schema.Struct({ orderId: Schema.Int, email: Schema.String })

const sendMail = (email: string) => Console.log(`  mail sent to ${email}`)

const queue = `orders_${process.pid}`

const program = Effect.gen(function*() {
  const pgq = yield* Pgq
  yield* (yield* Installer).install
  yield* Effect.acquireRelease(
    pgq.createQueue(queue),
    () => Effect.ignore(pgq.dropQueue(queue, { force: true }))
  )
  yield* pgq.registerConsumer(queue, "mailer")

  const mailed = yield* Ref.make(0)
  const done = yield* Deferred.make<void>()
  const consumer = yield* Consumer.make({
    queue,
    consumer: "mailer",
    onEvent: Dispatch.make({
      "order.placed": Dispatch.json(OrderPlaced, (order) =>
        sendMail(order.email).pipe(
          Effect.andThen(Ref.updateAndGet(mailed, (n) => n + 1)),
          Effect.tap((n) => n >= 3 ? Deferred.succeed(done, undefined) : Effect.void),
          Effect.as(EventResult.Ok)
        ))
    })
  })
  const running = yield* Effect.forkChild(consumer.run)

  yield* (yield* Producer).sendMany(queue, [1, 2, 3].map((orderId) => ({
    type: "order.placed",
    data: JSON.stringify({ orderId, email: `customer${orderId}@example.com` })
  })))
  yield* pgq.forceTick(queue)
  yield* pgq.tickQueue(queue)
  yield* (yield* PgClient.PgClient).notify(Consumer.DEFAULT_WAKE_CHANNEL, queue)

  yield* Deferred.await(done)
  // Interrupting `run` rolls back a batch in progress; here it is idle.
  yield* Fiber.interrupt(running)
  yield* Console.log(`mailer stopped after ${yield* Ref.get(mailed)} orders`)
})

program.pipe(
  Effect.scoped,
  Effect.provide(PgqServices.layer.pipe(Layer.provideMerge(DevDatabase.layer()))),
  NodeRuntime.runMain
)
