import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { inject } from "vitest"
import { Installer } from "../../src/api/Installer.ts"
import * as PgqCoop from "../../src/api/PgqCoop.ts"
import * as PgqExt from "../../src/api/PgqExt.ts"
import { migrations } from "../../src/api/migrations.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import type { PgqError } from "../../src/api/PgqError.ts"
import { Producer } from "../../src/api/Producer.ts"
import * as TestDb from "../TestDb.ts"

const plainUrl = inject("plainDatabaseUrl")
const latest = migrations.at(-1)!.version

/** The services on the database that starts without the pgq extension. */
const plainLayer = Layer.mergeAll(Pgq.layer, Producer.layer, Installer.layer).pipe(
  Layer.provideMerge(Pgq.layer),
  Layer.provideMerge(TestDb.clientLayer(plainUrl))
)

// One sequence: these tests install into and remove from the same database.
describe.skipIf(plainUrl === "")("a database without the pgq extension", () => {
  it.effect("fails every call with PgqNotInstalled, then installs, re-installs and uninstalls", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const producer = yield* Producer
      const installer = yield* Installer
      const sql = yield* SqlClient.SqlClient

      const calls: ReadonlyArray<Effect.Effect<unknown, PgqError>> = [
        pgq.version,
        pgq.createQueue("q"),
        pgq.nextBatch("q", "c"),
        pgq.listQueues,
        producer.sendMany("q", [{ type: "t", data: "d" }])
      ]
      for (const effect of calls) {
        const error = yield* Effect.flip(effect)
        assert.strictEqual(error._tag, "PgqNotInstalled")
        assert.include(error.message, "CREATE EXTENSION pgq")
      }
      const before = yield* installer.status
      assert.deepStrictEqual([before.pgqVersion, before.schemaVersion], [Option.none(), 0])

      assert.deepStrictEqual(yield* installer.install, migrations.map((m) => m.version))
      assert.deepStrictEqual(yield* installer.install, [])
      const after = yield* installer.status
      assert.deepStrictEqual([after.pgqVersion, after.schemaVersion, after.latestVersion], [
        Option.some("3.5"),
        latest,
        latest
      ])
      yield* sql`select count(*) from effect_pgq.failed_event`
      assert.isTrue(yield* pgq.createQueue("q"))

      // Concurrent installers wait for each other instead of failing.
      yield* installer.uninstall()
      const concurrent = yield* Effect.all([installer.install, installer.install, installer.install], {
        concurrency: 3
      })
      assert.deepStrictEqual(concurrent.flat(), migrations.map((m) => m.version))

      // Uninstalling the schema keeps queues; uninstalling pgq removes them.
      yield* installer.uninstall()
      assert.strictEqual((yield* installer.status).schemaVersion, 0)
      assert.isTrue((yield* pgq.listQueues).some((q) => q.queueName === "q"))
      // effect-pgq's pgq_coop works on pgq's tables and goes with them; pgq_ext does not depend on pgq and stays.
      assert.strictEqual(yield* PgqCoop.make(sql).install, "effect-pgq")
      assert.strictEqual(yield* PgqExt.make(sql).install, "effect-pgq")
      yield* installer.uninstall({ pgq: true })
      yield* installer.uninstall({ pgq: true })
      assert.strictEqual((yield* Effect.flip(pgq.listQueues))._tag, "PgqNotInstalled")
      assert.strictEqual(yield* PgqCoop.make(sql).provider, "none")
      assert.strictEqual(yield* PgqExt.make(sql).provider, "effect-pgq")
      yield* sql`drop schema pgq_ext cascade`
    }).pipe(Effect.provide(plainLayer)))
})
