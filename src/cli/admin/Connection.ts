/**
 * Where the admin commands connect: `--db URL`, else `PGQ_DATABASE_URL`,
 * else the PG* variables psql reads (PGHOST, PGPORT, PGUSER, PGPASSWORD,
 * PGDATABASE). The driver does not read PG* itself, so they are read here.
 *
 * @since 0.2.0
 */
import { PgClient } from "@effect/sql-pg"
import { Config, Effect, Layer, Option, Redacted } from "effect"
import type { SqlClient } from "effect/sql"
import { isSqlError } from "effect/sql/SqlError"
import type { PgqError } from "../../api/PgqError.ts"
import * as PgqServices from "../../api/Services.ts"
import { mapSqlError } from "../../internal/mapSqlError.ts"
import { GlobalFlag } from "effect/cli"
import { db } from "../flags.ts"
import { failure } from "./CliFailure.ts"
import type { CliFailure } from "./CliFailure.ts"

const nonEmpty = (value: Option.Option<string>) => Option.filter(value, (s) => s !== "")

/** libpq's variables, each optional; an empty one counts as unset, as in libpq. */
const PgEnvironment = Config.all({
  url: Config.option(Config.String("PGQ_DATABASE_URL")),
  host: Config.option(Config.String("PGHOST")),
  port: Config.option(Config.Port("PGPORT")),
  username: Config.option(Config.String("PGUSER")),
  password: Config.option(Config.String("PGPASSWORD")),
  database: Config.option(Config.String("PGDATABASE"))
})

/**
 * The client settings for `--db` (when given) or the environment.
 *
 * @since 0.2.0
 * @category constructors
 */
export const clientConfig = (db: Option.Option<Redacted.Redacted>): Effect.Effect<PgClient.PgClientConfig, CliFailure> =>
  Effect.gen(function*() {
    if (Option.isSome(db)) return { url: db.value }
    const env = yield* Effect.mapError(
      PgEnvironment,
      (error) => failure(`invalid connection setting in the environment: ${error.message}`)
    )
    const url = nonEmpty(env.url)
    if (Option.isSome(url)) return { url: Redacted.make(url.value) }
    const password = nonEmpty(env.password)
    return {
      host: Option.getOrUndefined(nonEmpty(env.host)),
      port: Option.getOrUndefined(env.port),
      username: Option.getOrUndefined(nonEmpty(env.username)),
      password: Option.isSome(password) ? Redacted.make(password.value) : undefined,
      database: Option.getOrUndefined(nonEmpty(env.database))
    }
  })

/**
 * Runs `effect` with every effect-pgq service on the database of `--db` (or
 * the environment). A connection that cannot be opened is a `PgqSqlError`
 * like any other, so it is explained the same way.
 *
 * @since 0.2.0
 * @category running
 */
export const withDatabase = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  applicationName = "effect-pgq cli"
): Effect.Effect<
  A,
  E | PgqError | CliFailure,
  Exclude<R, PgqServices.Services | PgClient.PgClient | SqlClient.SqlClient> | GlobalFlag.Setting.Identifier<"db">
> =>
  Effect.flatMap(Effect.flatMap(db, clientConfig), (config) =>
    Effect.provide(
      effect,
      PgqServices.layer.pipe(
        Layer.provideMerge(PgClient.layer({ ...config, applicationName, maxConnections: 4 }))
      )
    ).pipe(
      // The layer's own failures (a URL it cannot parse) arrive as raw SqlErrors.
      Effect.catchIf(isSqlError, (error) => Effect.fail(mapSqlError(error, { operation: "connect" })))
    )) as Effect.Effect<
      A,
      E | PgqError | CliFailure,
      Exclude<R, PgqServices.Services | PgClient.PgClient | SqlClient.SqlClient> | GlobalFlag.Setting.Identifier<"db">
    >
