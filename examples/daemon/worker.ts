/**
 * The daemon's consumers in a program of your own: the same config module,
 * its consumers supervised by `Supervisor.layer` beside your other services,
 * without the daemon's pidfile, signals or control endpoint. Stopped here
 * after a few seconds; a real program would run until it is interrupted.
 *
 *   PGQ_DATABASE_URL=postgres://… npm exec -- node examples/daemon/worker.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { PgqServices, Supervisor, Ticker } from "../../src/index.ts"
import config from "./effect-pgq.config.ts"

const database = PgClient.layer({
  url: typeof config.database.url === "string" ? Redacted.make(config.database.url) : config.database.url
})

const program = Effect.gen(function*() {
  const supervisor = yield* Supervisor
  // No pgqd here: tick in-process too.
  yield* Effect.forkScoped(Ticker.run())
  yield* Effect.sleep("5 seconds")
  for (const consumer of yield* supervisor.status) {
    yield* Effect.logInfo(`${consumer.queue}/${consumer.consumer}: ${consumer.state}, ${consumer.events} events`)
  }
  yield* supervisor.stop("30 seconds")
})

program.pipe(
  Effect.scoped,
  Effect.provide(Supervisor.layer(config.consumers).pipe(
    Layer.provideMerge(PgqServices.layer),
    Layer.provideMerge(database)
  )),
  NodeRuntime.runMain
)
