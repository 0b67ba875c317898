/**
 * The daemon runs every kind of consumer from its definitions: a remote one
 * applying events to another database, and two subconsumers of one
 * cooperative consumer sharing its batches, each its own instance.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { Installer } from "../../src/api/Installer.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import * as PgqCoop from "../../src/api/PgqCoop.ts"
import { Producer } from "../../src/api/Producer.ts"
import type { ConsumerDefinition } from "../../src/daemon/DaemonConfig.ts"
import { Supervisor } from "../../src/daemon/Supervisor.ts"
import * as TestDb from "../TestDb.ts"

/** Polls `check` until it holds (20 s at most). */
const eventually = <E, R>(what: string, check: Effect.Effect<boolean, E, R>) =>
  Effect.flatMap(check, (ok) => ok ? Effect.void : Effect.fail(what)).pipe(
    Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 200 })
  )

layer(TestDb.servicesLayer, { excludeTestServices: true })("the daemon's consumer kinds", (it) => {
  it.effect("a remote definition and two subconsumers of one cooperative consumer run under the supervisor", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const pgq = yield* Pgq
      const coop = PgqCoop.make(sql)
      yield* (yield* Installer).install
      yield* coop.install

      const { url: remoteUrl, sql: remote } = yield* TestDb.scratchDatabase("daemon_remote")
      yield* remote`create table applied (data text)`
      const table = TestDb.unique("kinds_seen")
      yield* sql`create table ${sql(table)} (data text not null, worker text not null)`

      const remoteQueue = TestDb.unique("kq")
      const coopQueue = TestDb.unique("kq")
      yield* pgq.createQueue(remoteQueue)
      yield* pgq.createQueue(coopQueue)
      yield* pgq.registerConsumer(remoteQueue, "applier")
      for (const name of ["a", "b"]) yield* coop.registerSubconsumer(coopQueue, "workers", name)

      const definitions: ReadonlyArray<ConsumerDefinition> = [
        {
          queue: remoteQueue,
          consumer: "applier",
          remote: { url: remoteUrl },
          idleDelay: "100 millis",
          // Its SqlClient is the remote database's.
          onEvent: (event) =>
            Effect.flatMap(SqlClient.SqlClient, (db) => Effect.asVoid(db`insert into applied values (${event.data})`))
        },
        ...["a", "b"].map((name): ConsumerDefinition => ({
          queue: coopQueue,
          consumer: "workers",
          coop: { subconsumer: name },
          idleDelay: "100 millis",
          onEvent: (event) =>
            Effect.flatMap(SqlClient.SqlClient, (db) =>
              Effect.asVoid(db`insert into ${db(table)} values (${event.data ?? ""}, ${name})`))
        }))
      ]
      yield* Layer.build(Supervisor.layer(definitions))
      const producer = yield* Producer
      yield* producer.send(remoteQueue, { type: "t", data: "remote" })
      yield* TestDb.tick(remoteQueue)
      for (let i = 0; i < 6; i++) {
        yield* producer.send(coopQueue, { type: "t", data: `c${i}` })
        yield* TestDb.tick(coopQueue)
      }

      yield* eventually(
        "every event of the cooperative queue",
        Effect.map(sql<{ readonly n: number }>`select count(distinct data)::int as n from ${sql(table)}`, (r) => r[0]!.n === 6)
      )
      const [all] = yield* sql<{ readonly n: number }>`select count(*)::int as n from ${sql(table)}`
      assert.strictEqual(all!.n, 6, "each once")
      yield* eventually(
        "the remote queue's event applied to the remote database",
        Effect.map(remote<{ readonly data: string }>`select data from applied`, (r) => r.length === 1 && r[0]!.data === "remote")
      )
    }))
})
