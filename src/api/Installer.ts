/**
 * Installs and removes what effect-pgq needs in a database: the pgq
 * extension and effect-pgq's own schema, brought to the newest migration.
 * Both directions are idempotent and safe to run from several processes at
 * once (an advisory lock serialises them).
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { findOne, findOneOption } from "../internal/rows.ts"
import { makeSqlRunner } from "../internal/sqlRunner.ts"
import { type Migration, migrations } from "./migrations.ts"
import type { PgqError } from "./PgqError.ts"

/**
 * What is installed.
 *
 * @since 0.1.0
 * @category models
 */
export interface InstallStatus {
  /** Version of the pgq extension, if installed. */
  readonly pgqVersion: Option.Option<string>
  /** Newest applied effect-pgq migration (0: none). */
  readonly schemaVersion: number
  /** Newest migration this release knows. */
  readonly latestVersion: number
}

/**
 * @since 0.1.0
 * @category services
 */
export class Installer extends Context.Service<Installer, {
  /** Creates the pgq extension if needed and applies pending migrations; returns the versions applied now. */
  readonly install: Effect.Effect<ReadonlyArray<number>, PgqError>
  /**
   * Drops effect-pgq's schema (failed events included). With `pgq: true`
   * it also drops the pgq extension, and with it every queue and event.
   */
  readonly uninstall: (options?: { readonly pgq?: boolean }) => Effect.Effect<void, PgqError>
  readonly status: Effect.Effect<InstallStatus, PgqError>
}>()("effect-pgq/api/Installer") {
  /**
   * @since 0.1.0
   * @category layers
   */
  static readonly layer: Layer.Layer<Installer, never, SqlClient.SqlClient> = Layer.effect(
    Installer,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return make(sql, migrations)
    })
  )
}

/** Any fixed key: it only has to be the same for every effect-pgq installer. */
const INSTALL_LOCK = 7_277_031_001

const decodeRegclass = findOne(Schema.Struct({ t: Schema.NullOr(Schema.String) }))("to_regclass()")
const decodeMaxVersion = findOne(Schema.Struct({ v: Schema.Number }))("max(effect_pgq.migration.version)")
const decodeExtension = findOneOption(Schema.Struct({ v: Schema.String }))

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = (sql: SqlClient.SqlClient, all: ReadonlyArray<Migration>): Installer["Service"] => {
  const latestVersion = all.reduce((max, m) => Math.max(max, m.version), 0)
  const run = makeSqlRunner(sql)

  // Two statements: a query naming effect_pgq.migration fails to plan while it does not exist.
  const appliedVersion = Effect.gen(function*() {
    const table = yield* Effect.flatMap(sql`select to_regclass('effect_pgq.migration')::text as t`, decodeRegclass)
    if (table.t === null) return 0
    const applied = yield* Effect.flatMap(
      sql`select coalesce(max(version), 0) as v from effect_pgq.migration`,
      decodeMaxVersion
    )
    return applied.v
  })

  const install = run(
    { operation: "Installer.install" },
    Effect.gen(function*() {
      yield* sql`select pg_advisory_xact_lock(${INSTALL_LOCK})`
      yield* sql`create extension if not exists pgq`
      yield* sql`create schema if not exists effect_pgq`
      yield* sql`create table if not exists effect_pgq.migration (
        version integer primary key,
        name text not null,
        applied_at timestamptz not null default now()
      )`
      const current = yield* appliedVersion
      const pending = all.filter((m) => m.version > current).toSorted((a, b) => a.version - b.version)
      for (const migration of pending) {
        for (const statement of migration.statements) yield* sql.unsafe(statement)
        yield* sql`insert into effect_pgq.migration (version, name) values (${migration.version}, ${migration.name})`
      }
      return pending.map((m) => m.version)
    }).pipe(sql.withTransaction)
  ).pipe(Effect.withSpan("Installer.install"))

  const uninstall = Effect.fn("Installer.uninstall")((options?: { readonly pgq?: boolean }) =>
    run(
      { operation: "Installer.uninstall" },
      Effect.gen(function*() {
        yield* sql`select pg_advisory_xact_lock(${INSTALL_LOCK})`
        yield* sql`drop schema if exists effect_pgq cascade`
        if (options?.pgq === true) {
          yield* sql`drop extension if exists pgq cascade`
          // effect-pgq's own pgq_coop (installed where the extension was missing) works on pgq's tables:
          // it goes with them. pgq_ext stays: it records what other queues' batches did to this database.
          yield* sql`drop schema if exists pgq_coop cascade`.pipe(
            Effect.when(Effect.map(
              sql<{ readonly r: boolean }>`select not exists (select 1 from pg_extension where extname = 'pgq_coop') as r`,
              (rows) => rows[0]?.r === true
            ))
          )
        }
      }).pipe(sql.withTransaction)
    )
  )

  const status = run(
    { operation: "Installer.status" },
    Effect.gen(function*() {
      const extension = yield* Effect.flatMap(
        sql`select extversion as v from pg_extension where extname = 'pgq'`,
        decodeExtension
      )
      return {
        pgqVersion: Option.map(extension, (row) => row.v),
        schemaVersion: yield* appliedVersion,
        latestVersion
      }
    })
  ).pipe(Effect.withSpan("Installer.status"))

  return Installer.of({ install, uninstall, status })
}
