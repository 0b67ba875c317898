/**
 * RemoteConsumer and EventRemoteConsumer against a queue database and a
 * remote database of the test cluster: where handlers' work goes, what each
 * result keeps or undoes, and the crash window between the two commits (the
 * queue's COMMIT failing after the remote one), after which the batch is
 * recognised as applied and never applied twice.
 */
import { assert, layer } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Deferred, Effect, Fiber, Layer, Option, Redacted, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { FailedEvents } from "../../src/api/FailedEvents.ts"
import { Installer } from "../../src/api/Installer.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import { Producer } from "../../src/api/Producer.ts"
import * as PgqServices from "../../src/api/Services.ts"
import * as EventRemoteConsumer from "../../src/consumer/EventRemoteConsumer.ts"
import * as EventResult from "../../src/consumer/EventResult.ts"
import * as RemoteConsumer from "../../src/consumer/RemoteConsumer.ts"
import * as TestDb from "../TestDb.ts"

/** A fresh remote database with an `applied` table; dropped when the scope closes. */
const remoteDatabase = Effect.suspend(() => remoteDatabaseNamed(TestDb.unique("remote_app")))

const remoteDatabaseNamed = (applicationName: string) =>
  Effect.gen(function*() {
    const { layer, sql: remote } = yield* TestDb.scratchDatabase("remote", { applicationName })
    yield* remote`create table applied (ev_id bigint not null, data text)`
    const applied = Effect.map(
      remote<{ readonly data: string }>`select data from applied order by ev_id, data`,
      (rows) => rows.map((row) => row.data)
    )
    return { layer, remote, applied }
  })

/** A queue with a consumer and `data` produced and ticked into one batch. */
const queueWith = (...data: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    yield* (yield* Installer).install
    const { queue, consumer } = yield* TestDb.queueWithConsumer("rq")
    yield* (yield* Producer).sendMany(queue, data.map((d) => ({ type: "t", data: d })))
    yield* TestDb.tick(queue)
    return { queue, consumer }
  })

/** The handler's work: the event's data into the remote table. */
const apply = (event: { readonly id: bigint; readonly data: string | null }) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.asVoid(sql`insert into applied (ev_id, data) values (${event.id}, ${event.data})`))

layer(TestDb.servicesLayer, { excludeTestServices: true })("remote consumers", (it) => {
  it.effect("RemoteConsumer: handlers work on the remote database; Failed and Retry keep their work; each batch once", () =>
    Effect.gen(function*() {
      const { layer, applied } = yield* remoteDatabase
      const { queue, consumer } = yield* queueWith("ok", "fails", "retries")
      const stats = yield* Effect.scoped(Effect.flatMap(
        RemoteConsumer.make({
          queue,
          consumer,
          remote: layer,
          onEvent: (event) =>
            Effect.as(
              apply(event),
              event.data === "fails"
                ? EventResult.Failed("bad")
                : event.data === "retries"
                ? EventResult.Retry("0 seconds")
                : EventResult.Ok
            )
        }),
        (c) => c.processAvailable
      ))
      assert.deepStrictEqual({ ok: stats.ok, failed: stats.failed, retried: stats.retried }, { ok: 1, failed: 1, retried: 1 })
      assert.deepStrictEqual(yield* applied, ["ok", "fails", "retries"])
      assert.strictEqual(yield* (yield* FailedEvents).count(queue, consumer), 1)
      // Nothing is delivered twice: the queue side finished the batch.
      assert.strictEqual((yield* (yield* Pgq).getConsumerInfo(queue, consumer)).pendingEvents, 0n)
    }))

  it.effect("EventRemoteConsumer: Failed and Retry undo their event's remote work; AbortBatch undoes both sides", () =>
    Effect.gen(function*() {
      const { layer, applied } = yield* remoteDatabase
      const { queue, consumer } = yield* queueWith("ok", "fails", "retries", "dies")
      const run = (abort: boolean) =>
        Effect.scoped(Effect.flatMap(
          EventRemoteConsumer.make({
            queue,
            consumer,
            remote: layer,
            onEvent: (event) =>
              Effect.andThen(apply(event), () => {
                if (abort) return Effect.succeed(EventResult.AbortBatch("not now"))
                switch (event.data) {
                  case "fails":
                    return Effect.succeed(EventResult.Failed("bad"))
                  case "retries":
                    return Effect.succeed(EventResult.Retry("1 hour"))
                  case "dies":
                    return Effect.die(new Error("boom"))
                  default:
                    return Effect.succeed(EventResult.Ok)
                }
              })
          }),
          (c) => c.processAvailable
        ))
      const aborted = yield* run(true)
      assert.strictEqual(aborted.aborted, 1)
      assert.deepStrictEqual(yield* applied, [])
      const stats = yield* run(false)
      assert.deepStrictEqual({ ok: stats.ok, failed: stats.failed, retried: stats.retried }, { ok: 1, failed: 1, retried: 2 })
      assert.deepStrictEqual(yield* applied, ["ok"])
    }))

  it.effect("a crash between the remote commit and the queue's leaves the batch applied once; delivered again, it is only finished", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { layer, applied } = yield* remoteDatabase
      const { queue, consumer } = yield* queueWith("a", "b", "c")
      // The queue's COMMIT fails while the flag is set: a deferred check on finishing this consumer's batch.
      const flag = TestDb.unique("fail_commit")
      const fn = TestDb.unique("fail_commit_fn")
      const trigger = TestDb.unique("fail_commit_trg")
      yield* sql`create table ${sql(flag)} (on_ boolean not null)`
      yield* sql`insert into ${sql(flag)} values (true)`
      yield* sql.unsafe(`create function public.${fn}() returns trigger language plpgsql as $$
        begin
          if old.sub_batch is not null and new.sub_batch is null
             and exists (select 1 from pgq.consumer where co_id = new.sub_consumer and co_name = '${consumer}')
             and (select on_ from public.${flag}) then
            raise exception 'the queue commit fails';
          end if;
          return null;
        end $$`)
      yield* Effect.acquireRelease(
        sql.unsafe(`create constraint trigger ${trigger} after update on pgq.subscription
          deferrable initially deferred for each row execute function public.${fn}()`),
        () => Effect.orDie(sql.unsafe(`drop trigger ${trigger} on pgq.subscription`))
      )

      const calls: Array<string | null> = []
      const consume = Effect.scoped(Effect.flatMap(
        RemoteConsumer.make({
          queue,
          consumer,
          remote: layer,
          onEvent: (event) => Effect.andThen(Effect.sync(() => calls.push(event.data)), apply(event))
        }),
        (c) => c.processNext
      ))
      const crashed = yield* Effect.flip(consume)
      assert.include(crashed.message, "the queue commit fails")
      assert.deepStrictEqual(yield* applied, ["a", "b", "c"], "the remote side committed")

      yield* sql`update ${sql(flag)} set on_ = false`
      const again = yield* consume
      assert.isTrue(Option.isSome(again))
      assert.deepStrictEqual(calls, ["a", "b", "c"], "handlers did not run again")
      assert.deepStrictEqual(yield* applied, ["a", "b", "c"])
      assert.strictEqual((yield* (yield* Pgq).getConsumerInfo(queue, consumer)).pendingEvents, 0n)
    }))

  const lostMidBatch = (side: "remote" | "queue") =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const remoteName = TestDb.unique("remote_lost")
      const queueName = TestDb.unique("queue_lost")
      const { layer, applied } = yield* remoteDatabaseNamed(remoteName)
      const { queue, consumer } = yield* queueWith("a", "b", "c")
      const reached = yield* Deferred.make<void>()
      const go = yield* Deferred.make<void>()
      let first = true
      // The consumer's queue database on a client of its own, whose sessions can be told apart.
      const queueServices = yield* Layer.build(Layer.fresh(PgqServices.layer).pipe(
        Layer.provideMerge(PgClient.layer({ url: Redacted.make(TestDb.url), applicationName: queueName }))
      ))
      const c = yield* RemoteConsumer.make({
        queue,
        consumer,
        remote: layer,
        idleDelay: "100 millis",
        onEvent: (event) =>
          Effect.gen(function*() {
            if (event.data === "b" && first) {
              first = false
              yield* Deferred.succeed(reached, undefined)
              yield* Deferred.await(go)
            }
            yield* apply(event)
          })
      }).pipe(Effect.provide(queueServices))
      const running = yield* Effect.forkChild(c.run)
      yield* Deferred.await(reached)
      const [killed] = yield* sql<{ readonly n: number }>`
        select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
        where application_name = ${side === "remote" ? remoteName : queueName} and state like 'idle in transaction%'`
      assert.strictEqual(killed!.n, 1, `the batch's ${side} connection, in its transaction, was terminated`)
      yield* Deferred.succeed(go, undefined)
      yield* Effect.flatMap(
        (yield* Pgq).getConsumerInfo(queue, consumer),
        (info) => info.pendingEvents === 0n && info.currentBatch === null ? Effect.void : Effect.fail("not yet")
      ).pipe(Effect.retry({ schedule: Schedule.spaced("200 millis"), times: 150 }))
      assert.deepStrictEqual(yield* applied, ["a", "b", "c"], "each event applied once")
      assert.strictEqual(yield* (yield* FailedEvents).count(queue, consumer), 0)
      yield* c.stop()
      yield* Fiber.join(running)
    })

  it.effect("the remote database's connection lost mid-batch: both sides roll back, the consumer reconnects and applies the batch once", () =>
    lostMidBatch("remote"))

  it.effect("the queue database's connection lost mid-batch: the batch, applied or not, is applied once", () =>
    lostMidBatch("queue"))
})
