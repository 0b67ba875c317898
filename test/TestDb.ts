/**
 * Layers and helpers shared by the suites: a client on the test database with
 * pgq, the effect-pgq services on it, and unique names so tests never share
 * a queue.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { inject } from "vitest"
import { Installer } from "../src/api/Installer.ts"
import { Pgq } from "../src/api/Pgq.ts"
import { Producer } from "../src/api/Producer.ts"
import * as PgqServices from "../src/api/Services.ts"

export const clientLayer = (url: string) => PgClient.layer({ url: Redacted.make(url), maxConnections: 8 })

/** The test database, with the pgq extension. */
export const url = inject("pgqDatabaseUrl")

export const layer = Layer.mergeAll(Pgq.layer, Producer.layer, Installer.layer).pipe(
  Layer.provideMerge(Pgq.layer),
  Layer.provideMerge(clientLayer(url))
)

/** Every effect-pgq service, with the client, on the test database. */
export const servicesLayer = PgqServices.layer.pipe(Layer.provideMerge(clientLayer(url)))

let counter = 0
/** A name no other test uses: `<prefix>_<pid>_<n>`. */
export const unique = (prefix: string) => `${prefix}_${process.pid}_${++counter}_${Math.random().toString(36).slice(2, 6)}`

/** Makes the ticker cut a batch now, whatever the queue's thresholds. */
export const tick = (queue: string) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    yield* pgq.forceTick(queue)
    return yield* pgq.tickQueue(queue)
  })

/** A queue with one registered consumer. */
export const queueWithConsumer = (prefix: string) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    const queue = unique(prefix)
    const consumer = unique("c")
    yield* pgq.createQueue(queue)
    yield* pgq.registerConsumer(queue, consumer)
    return { queue, consumer }
  })

/**
 * Moves every due retry event back into its queue. pgq moves at most 10 per
 * call, from every queue, and the suites share the database: call until fewer.
 */
export const maintAllRetries = Effect.gen(function*() {
  const pgq = yield* Pgq
  while ((yield* pgq.maintRetryEvents) >= 10) {
    // more may be due
  }
})

/**
 * Runs `use` on a new database of the test cluster that has pgq but not
 * effect-pgq's schema, with `services` built afresh on it (the suites' own
 * are memoised on the main database); drops the database after.
 */
export const onDatabaseWithoutSchema = <ROut, A, E>(
  services: Layer.Layer<ROut, never, SqlClient.SqlClient>,
  use: Effect.Effect<A, E, ROut | SqlClient.SqlClient>
) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const name = unique("plain_db").toLowerCase()
    const dbUrl = new URL(url)
    dbUrl.pathname = `/${name}`
    return yield* Effect.acquireUseRelease(
      sql`create database ${sql(name)}`,
      () =>
        Effect.andThen(
          Effect.flatMap(SqlClient.SqlClient, (fresh) => fresh`create extension pgq`),
          use
        ).pipe(Effect.provide(Layer.fresh(services).pipe(Layer.provideMerge(clientLayer(dbUrl.toString()))))),
      () => Effect.orDie(sql`drop database ${sql(name)} with (force)`)
    )
  })

/**
 * A new, empty database of the test cluster (no pgq), dropped with its
 * sessions when the scope closes: a remote database, or one a suite keeps to
 * itself. Its URL, and a client on it (`applicationName` tells its sessions
 * apart).
 */
export const scratchDatabase = (prefix: string, options?: { readonly applicationName?: string }) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const name = unique(prefix).toLowerCase()
    yield* Effect.acquireRelease(
      sql`create database ${sql(name)}`,
      () => Effect.orDie(sql`drop database ${sql(name)} with (force)`)
    )
    const dbUrl = new URL(url)
    dbUrl.pathname = `/${name}`
    const client = PgClient.layer({
      url: Redacted.make(dbUrl.toString()),
      maxConnections: 4,
      applicationName: options?.applicationName ?? name
    })
    const scratch = yield* Effect.provide(SqlClient.SqlClient, yield* Layer.build(client))
    return { name, url: dbUrl.toString(), layer: client, sql: scratch }
  })
