/**
 * The database for demos, benchmarks and tests: `PGQ_DATABASE_URL` when it is
 * set, otherwise a fresh database with pgq in a throwaway cluster that lives
 * as long as the layer.
 *
 * @since 0.1.0
 */
import { NodeServices } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Config, Effect, Layer, Option, Redacted } from "effect"
import type { SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import * as ThrowawayPostgres from "./ThrowawayPostgres.ts"

/**
 * The URL of a database with the pgq extension, and the cluster behind it
 * when it is a throwaway one.
 *
 * @since 0.1.0
 * @category constructors
 */
export const acquireUrl = Effect.gen(function*() {
  const configured = yield* Config.option(Config.Redacted("PGQ_DATABASE_URL")).pipe(
    Effect.orElseSucceed(() => Option.none<Redacted.Redacted>())
  )
  if (Option.isSome(configured)) return configured.value
  const cluster = yield* ThrowawayPostgres.start()
  return Redacted.make(yield* cluster.createDatabase("effect_pgq"))
})

/**
 * `PgClient` and `SqlClient` on that database.
 *
 * ```ts
 * import { NodeRuntime } from "@effect/platform-node"
 * import { Console, Effect, Layer } from "effect"
 * import { Pgq, PgqServices } from "effect-pgq"
 * import { DevDatabase } from "effect-pgq/testing"
 *
 * const program = Effect.gen(function*() {
 *   const pgq = yield* Pgq
 *   yield* Console.log(`pgq ${yield* pgq.version}`)
 * })
 *
 * program.pipe(
 *   Effect.provide(PgqServices.layer.pipe(Layer.provideMerge(DevDatabase.layer({ maxConnections: 4 })))),
 *   NodeRuntime.runMain
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: {
  readonly maxConnections?: number
}): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, SqlError | ThrowawayPostgres.ThrowawayPostgresError> =>
  Layer.unwrap(
    Effect.map(acquireUrl, (url) =>
      PgClient.layer({
        url,
        applicationName: "effect-pgq",
        ...(options?.maxConnections === undefined ? {} : { maxConnections: options.maxConnections })
      }))
  ).pipe(Layer.provide(NodeServices.layer))
