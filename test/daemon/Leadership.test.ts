/**
 * One active instance per (queue, consumer): a second supervisor of the same
 * consumer stands by, and takes over once the first is gone.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { Installer } from "../../src/api/Installer.ts"
import { Producer } from "../../src/api/Producer.ts"
import type { ConsumerDefinition } from "../../src/daemon/DaemonConfig.ts"
import { make as makeSupervisor, type Supervisor } from "../../src/daemon/Supervisor.ts"
import * as TestDb from "../TestDb.ts"

const stateOf = (supervisor: Supervisor["Service"]) => Effect.map(supervisor.status, (all) => all[0]?.state)

const until = <A>(effect: Effect.Effect<A>, done: (a: A) => boolean) =>
  effect.pipe(Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: done }), Effect.timeout("30 seconds"))

layer(TestDb.servicesLayer, { excludeTestServices: true })("Leadership", (it) => {
  it.effect("a second instance stands by, and takes over when the first stops", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* (yield* Installer).install
      const { queue, consumer } = yield* TestDb.queueWithConsumer("lead")
      const table = TestDb.unique("handled_by")
      yield* sql`create table ${sql(table)} (instance text, data text)`
      const definition = (instance: string): ConsumerDefinition => ({
        queue,
        consumer,
        wakeChannel: false,
        idleDelay: "100 millis",
        onEvent: (event) =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            yield* sql`insert into ${sql(table)} values (${instance}, ${event.data})`
          })
      })
      const handled = sql<{ readonly instance: string; readonly data: string }>`
        select instance, data from ${sql(table)} order by data`.pipe(Effect.orDie)

      const first = yield* makeSupervisor
      yield* first.apply([definition("first")])
      yield* until(stateOf(first), (state) => state === "idle" || state === "running")
      const second = yield* makeSupervisor
      yield* second.apply([definition("second")])
      yield* until(stateOf(second), (state) => state === "standby")

      yield* (yield* Producer).send(queue, { type: "t", data: "1" })
      yield* TestDb.tick(queue)
      yield* until(handled, (rows) => rows.length === 1)
      assert.strictEqual(yield* stateOf(second), "standby")

      yield* first.stop("10 seconds")
      yield* until(stateOf(second), (state) => state === "idle" || state === "running")
      yield* (yield* Producer).send(queue, { type: "t", data: "2" })
      yield* TestDb.tick(queue)
      const rows = yield* until(handled, (rows) => rows.length === 2)
      assert.deepStrictEqual(rows.map((row) => [row.instance, row.data]), [["first", "1"], ["second", "2"]])
      yield* second.stop("10 seconds")
    }).pipe(Effect.scoped))
})
