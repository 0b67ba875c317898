/**
 * A daemon config: the orders queue's mailer, a quick built-in ticker, a
 * control endpoint on loopback.
 *
 *   PGQ_DATABASE_URL=postgres://… npx effect-pgq daemon start --config examples/daemon/effect-pgq.config.ts
 *
 * In an application, import from "effect-pgq" instead of the sources.
 */
import { Effect, Redacted, Schema } from "effect"
import { DaemonConfig, Dispatch, EventResult } from "../../src/index.ts"

const OrderPlaced = Schema.Struct({ orderId: Schema.Int, email: Schema.String })

const sendMail = Effect.fn("sendMail")(function*(to: string) {
  yield* Effect.logInfo(`order mail to ${to}`)
})

export default DaemonConfig.defineConfig({
  // From the environment, so the file holds no password.
  database: { url: Redacted.make(process.env.PGQ_DATABASE_URL ?? "postgres://localhost/postgres") },
  consumers: [
    {
      queue: "orders",
      consumer: "mailer",
      register: true,
      onEvent: Dispatch.make({
        "order.placed": Dispatch.json(OrderPlaced, (order) => sendMail(order.email).pipe(Effect.as(EventResult.Ok)))
      })
    }
  ],
  // pgq's settings for the queue: with this many events waiting, a tick comes at once.
  queues: { orders: { tickerMaxCount: 1000 } },
  // The built-in ticker at its defaults: events reach the mailer within about 50 ms (its event
  // ticks need a superuser or pgq's owner; another role ticks at pgq's ticker_max_lag, 3 s).
  ticker: true,
  control: { port: 7787 },
  logging: { level: "NOTICE" },
  stopTimeout: "30 seconds"
})
