/**
 * An SQL API that a PostgreSQL extension provides (Skytools' `pgq_ext`,
 * `pgq_coop`), or that effect-pgq installs under the same schema and
 * function names where the extension is missing.
 *
 * @since 0.2.0
 */
import { Effect, Schema } from "effect"
import type { SqlClient } from "effect/sql"
import type { PgqError } from "../api/PgqError.ts"
import { findOne } from "./rows.ts"
import { makeSqlRunner } from "./sqlRunner.ts"

/**
 * Where the API comes from in a database: the extension, effect-pgq's
 * implementation, or nothing.
 *
 * @since 0.2.0
 * @category models
 */
export type Provider<Extension extends string> = Extension | "effect-pgq" | "none"

const decodePresence = findOne(Schema.Struct({ extension: Schema.Boolean, schema: Schema.Boolean }))("extension presence")

/**
 * `provider`, and `install`: in one transaction, under an advisory lock
 * (concurrent installers wait for each other), the statements run where
 * neither the extension nor the schema exists; returns the provider after.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = <Extension extends string>(
  sql: SqlClient.SqlClient,
  api: {
    /** The extension's name, also its schema's. */
    readonly extension: Extension
    readonly lockKey: bigint
    readonly statements: ReadonlyArray<string>
  }
): {
  readonly provider: Effect.Effect<Provider<Extension>, PgqError>
  readonly install: Effect.Effect<Provider<Extension>, PgqError>
} => {
  const run = makeSqlRunner(sql)
  const name = api.extension
  const provider = run(
    { operation: `${name}: provider` },
    sql`select
      exists (select 1 from pg_extension where extname = ${name}) as extension,
      exists (select 1 from pg_namespace where nspname = ${name}) as schema`
  ).pipe(
    Effect.flatMap(decodePresence),
    Effect.map(({ extension, schema }): Provider<Extension> => extension ? name : schema ? "effect-pgq" : "none")
  )
  const install = run(
    { operation: `${name}: install` },
    sql.withTransaction(Effect.gen(function*() {
      yield* sql`select pg_advisory_xact_lock(${api.lockKey})`
      if ((yield* provider) !== "none") return
      for (const statement of api.statements) yield* sql.unsafe(statement)
    }))
  ).pipe(Effect.andThen(provider), Effect.withSpan(`${name}.install`))
  return { provider, install }
}
