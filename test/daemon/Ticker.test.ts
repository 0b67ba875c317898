/**
 * The built-in ticker against a database of its own: `pgq.ticker()` ticks
 * every queue of a database, and so does pgqd, so this suite keeps both away
 * from the other suites' queues.
 */
import { NodeServices } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { assert, layer } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer, Logger, Option, Queue, Redacted, Schedule, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import { SqlClient } from "effect/sql"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Installer } from "../../src/api/Installer.ts"
import { MaintOperation, Pgq } from "../../src/api/Pgq.ts"
import { Producer } from "../../src/api/Producer.ts"
import * as PgqServices from "../../src/api/Services.ts"
import * as Consumer from "../../src/consumer/Consumer.ts"
import * as InteractiveConsumer from "../../src/consumer/InteractiveConsumer.ts"
import * as Ticker from "../../src/daemon/Ticker.ts"
import * as TestDb from "../TestDb.ts"

/** The URL of another database of the test cluster. */
const urlOf = (database: string) => {
  const url = new URL(TestDb.url)
  url.pathname = `/${database}`
  return url.toString()
}

/** A new database on the test cluster, dropped (with its sessions) when the scope closes. */
const scratchDatabase = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const name = TestDb.unique("ticker_db").toLowerCase()
  yield* Effect.acquireRelease(
    sql`create database ${sql(name)}`,
    () => Effect.orDie(sql`drop database ${sql(name)} with (force)`)
  )
  return { name, url: urlOf(name) }
})

class TickerDb extends Context.Service<TickerDb, { readonly name: string; readonly url: string }>()(
  "test/TickerDb"
) {}

/** Every service on the suite's own database, with pgq and effect-pgq's schema installed. */
const tickerDbLayer = Layer.unwrap(Effect.gen(function*() {
  const db = yield* scratchDatabase
  return Layer.effectDiscard(Effect.gen(function*() {
    yield* (yield* Installer).install
  })).pipe(
    Layer.provideMerge(PgqServices.layer),
    Layer.provideMerge(TestDb.clientLayer(db.url)),
    Layer.merge(Layer.succeed(TickerDb, db))
  )
})).pipe(Layer.provide(TestDb.clientLayer(TestDb.url)))

/** A queue whose every new event calls for a tick (pgq otherwise waits for 500 events or 3 seconds). */
const eagerQueue = (options?: { readonly consumer?: boolean }) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    const queue = TestDb.unique("tq")
    yield* pgq.createQueue(queue)
    yield* pgq.setQueueConfig(queue, "ticker_max_count", "1")
    const consumer = TestDb.unique("c")
    if (options?.consumer !== false) yield* pgq.registerConsumer(queue, consumer)
    return { queue, consumer }
  })

const lastTickOf = (queue: string) =>
  Effect.gen(function*() {
    return (yield* (yield* Pgq).getQueueInfo(queue)).lastTickId
  })

/**
 * A queue past pgq's start-up ticks, with one event: pgq ticks a queue at
 * each round until it has two ticks, and a fresh queue's first event does
 * not move its sequence's value (`pgq.seq_getval` reads 1 before and after),
 * so only later events show as new.
 */
const settledQueue = (queue: string) =>
  Effect.gen(function*() {
    yield* (yield* Producer).send(queue, { type: "t", data: "first" })
    yield* Ticker.once({ eventTickPeriod: false })
    yield* Ticker.once({ eventTickPeriod: false })
  })

/** Where `pgqd` is on PATH, if it is. */
const pgqdBinary = (process.env["PATH"] ?? "").split(Path.delimiter).concat("/usr/sbin", "/usr/bin")
  .map((dir) => Path.join(dir, "pgqd"))
  .find((file) => Fs.existsSync(file))

layer(tickerDbLayer, { excludeTestServices: true })("Ticker", (it) => {
  it.effect("once ticks a queue with events, and its consumer then gets the batch", () =>
    Effect.gen(function*() {
      const { queue, consumer } = yield* eagerQueue()
      yield* (yield* Producer).sendMany(queue, [{ type: "t", data: "1" }, { type: "t", data: "2" }])
      const report = yield* Ticker.once()
      assert.isFalse(report.pgqdRunning)
      assert.isFalse(report.tickerBusy)
      assert.include(report.queuesTicked, queue)
      const seen: Array<string | null> = []
      const stats = yield* InteractiveConsumer.processAvailable({
        queue,
        consumer,
        onEvent: (event) => Effect.sync(() => void seen.push(event.data))
      })
      assert.strictEqual(stats.batches, 1)
      assert.deepStrictEqual(seen, ["1", "2"])
      // Nothing new: no tick for this queue.
      assert.notInclude((yield* Ticker.once()).queuesTicked, queue)
    }))

  it.effect("notifies the wake channel with the name of each queue it ticked, at commit", () =>
    Effect.gen(function*() {
      const pg = yield* PgClient.PgClient
      const channel = TestDb.unique("wake")
      const notifications = yield* pg.listen(channel)
      const { queue } = yield* eagerQueue()
      yield* (yield* Producer).send(queue, { type: "t", data: "x" })
      const report = yield* Ticker.once({ wakeChannel: channel })
      assert.include(report.queuesTicked, queue)
      const payloads: Array<string> = []
      while (!payloads.includes(queue)) {
        payloads.push((yield* Queue.take(notifications).pipe(Effect.timeout("5 seconds"))).payload)
      }
      for (const payload of payloads) assert.include(report.queuesTicked, payload)

      // wakeChannel: false ticks without a word.
      yield* (yield* Producer).send(queue, { type: "t", data: "y" })
      assert.include((yield* Ticker.once({ wakeChannel: false })).queuesTicked, queue)
      yield* Effect.sleep("300 millis")
      assert.strictEqual(Option.isNone(yield* Queue.poll(notifications)), true)
    }))

  it.effect("run wakes a consumer idling for a minute through the wake channel", () =>
    Effect.gen(function*() {
      const { queue, consumer } = yield* eagerQueue()
      const processed = yield* Deferred.make<string>()
      const consumerFiber = yield* Effect.forkChild(Effect.scoped(Effect.flatMap(
        Consumer.make({
          queue,
          consumer,
          idleDelay: "60 seconds",
          tickerStallAfter: false,
          onEvent: (event) => Effect.asVoid(Deferred.succeed(processed, event.data ?? ""))
        }),
        (c) => c.run
      )))
      const ticker = yield* Ticker.start({ tickerPeriod: "100 millis", whenPgqdRuns: "run" })
      // Let the consumer find nothing and start its 60-second wait.
      yield* Effect.sleep("500 millis")
      yield* (yield* Producer).send(queue, { type: "t", data: "woken" })
      assert.strictEqual(yield* Deferred.await(processed).pipe(Effect.timeout("10 seconds")), "woken")
      const status = yield* ticker.status
      assert.strictEqual(status.state, "ticking")
      assert.isTrue(Option.isSome(status.lastTickAt))
      assert.isAtLeast(status.queuesTicked, 1)
      yield* ticker.stop
      assert.strictEqual((yield* ticker.status).state, "stopped")
      yield* Fiber.interrupt(consumerFiber)
    }))

  it.effect("event ticks: a queue at pgq's default thresholds is ticked as soon as it has events, and only then", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const queue = TestDb.unique("tq")
      yield* pgq.createQueue(queue)
      const consumer = TestDb.unique("c")
      yield* pgq.registerConsumer(queue, consumer)
      yield* settledQueue(queue)
      yield* (yield* Producer).send(queue, { type: "t", data: "prompt" })

      // pgq's own thresholds (3 seconds, 500 events) call for no tick yet.
      const thresholdsOnly = yield* Ticker.once({ eventTickPeriod: false })
      assert.notInclude(thresholdsOnly.queuesTicked, queue)
      const report = yield* Ticker.once()
      assert.include(report.queuesTicked, queue)
      assert.notInclude((yield* Ticker.once()).queuesTicked, queue)

      const seen: Array<string | null> = []
      yield* InteractiveConsumer.processAvailable({ queue, consumer, onEvent: (e) => Effect.sync(() => void seen.push(e.data)) })
      assert.deepStrictEqual(seen, ["first", "prompt"])

      // A paused queue is left alone, as pgq.ticker() leaves it.
      yield* pgq.setQueueConfig(queue, "ticker_paused", "true")
      yield* (yield* Producer).send(queue, { type: "t", data: "paused" })
      assert.notInclude((yield* Ticker.once()).queuesTicked, queue)
    }))

  it.effect("run: event ticks from the loop inside PostgreSQL, heartbeats, and no session left after stop", () =>
    Effect.gen(function*() {
      const pg = yield* PgClient.PgClient
      const sql = yield* SqlClient.SqlClient
      const pgq = yield* Pgq
      const channel = TestDb.unique("wake")
      const notifications = yield* pg.listen(channel)
      const queue = TestDb.unique("tq")
      yield* pgq.createQueue(queue)
      yield* pgq.registerConsumer(queue, TestDb.unique("c"))
      yield* settledQueue(queue)
      // A long tick period: only an event tick can tick the queue within the test.
      const ticker = yield* Ticker.start({ tickerPeriod: "1 hour", whenPgqdRuns: "run", wakeChannel: channel })
      const heard = (payload: string) =>
        Queue.take(notifications).pipe(
          Effect.repeat({ until: (n) => n.payload === payload }),
          Effect.timeout("5 seconds")
        )
      // The first round sends the heartbeat.
      yield* heard("")
      const before = yield* lastTickOf(queue)
      yield* (yield* Producer).send(queue, { type: "t", data: "x" })
      yield* heard(queue)
      assert.isTrue(((yield* lastTickOf(queue)) ?? 0n) > (before ?? 0n))

      const loops = sql<{ readonly n: number }>`
        select count(*)::int as n from pg_stat_activity where query like '%effect_pgq_event_ticks%' and pid <> pg_backend_pid()`
      assert.strictEqual((yield* loops)[0]!.n, 1)
      yield* ticker.stop
      yield* Effect.flatMap(loops, (rows) => rows[0]!.n === 0 ? Effect.void : Effect.fail("still running")).pipe(
        Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 50 })
      )
    }))

  it.effect("event ticks need INSERT on pgq.tick: a role without it is told so, and pgq's thresholds still tick", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { url } = yield* TickerDb
      const pgq = yield* Pgq
      const role = TestDb.unique("ticker_role").toLowerCase()
      yield* Effect.acquireRelease(
        sql.unsafe(`create role ${role} login password 'ticker-pw' in role pgq_admin`),
        () => Effect.orDie(Effect.andThen(sql.unsafe(`drop owned by ${role}`), sql.unsafe(`drop role ${role}`)))
      )
      const queue = TestDb.unique("tq")
      yield* pgq.createQueue(queue)
      yield* pgq.registerConsumer(queue, TestDb.unique("c"))
      yield* settledQueue(queue)
      yield* (yield* Producer).send(queue, { type: "t", data: "x" })

      const asRole = new URL(url)
      asRole.username = role
      asRole.password = "ticker-pw"
      const logged: Array<string> = []
      const report = yield* Ticker.once().pipe(
        Effect.provide(Layer.fresh(Pgq.layer).pipe(Layer.provideMerge(
          PgClient.layer({ url: Redacted.make(asRole.toString()), applicationName: role })
        ))),
        Effect.provide(Logger.layer([Logger.make((options) => void logged.push(String(options.message)))]))
      )
      assert.notInclude(report.queuesTicked, queue)
      assert.isTrue(logged.some((line) => line.includes("event ticks are off") && line.includes("pgq.tick")))
    }))

  it.effect("once moves due retry events back, and the consumer sees them again", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const { queue, consumer } = yield* eagerQueue()
      yield* (yield* Producer).send(queue, { type: "t", data: "again" })
      yield* TestDb.tick(queue)
      const batch = Option.getOrThrow(yield* pgq.nextBatch(queue, consumer))
      const [event] = yield* pgq.getBatchEvents(batch)
      yield* pgq.eventRetry(batch, event!.id, "0 seconds")
      yield* pgq.finishBatch(batch)

      const report = yield* Ticker.once()
      assert.strictEqual(report.retriesMoved, 1)
      assert.include(report.queuesTicked, queue)
      const seen: Array<string> = []
      yield* InteractiveConsumer.processAvailable({
        queue,
        consumer,
        onEvent: (e) => Effect.sync(() => void seen.push(`${e.data}:${e.retry}`))
      })
      assert.deepStrictEqual(seen, ["again:1"])
    }))

  it.effect("takes turns with other effect-pgq tickers: no tick while one holds the turn", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { queue } = yield* eagerQueue()
      yield* (yield* Producer).send(queue, { type: "t", data: "x" })
      const busy = yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`select pg_advisory_xact_lock(${Ticker.TICK_LOCK_KEY})`
        return yield* Ticker.once()
      }))
      assert.isTrue(busy.tickerBusy)
      assert.deepStrictEqual(busy.queuesTicked, [])
      const free = yield* Ticker.once()
      assert.isFalse(free.tickerBusy)
      assert.include(free.queuesTicked, queue)
    }))

  it.effect("maintenance rotates a queue's event tables once its rotation period has passed", () =>
    Effect.gen(function*() {
      const pgq = yield* Pgq
      const { queue } = yield* eagerQueue({ consumer: false })
      yield* pgq.setQueueConfig(queue, "rotation_period", "1 second")
      const before = yield* pgq.getQueueInfo(queue)
      yield* Effect.sleep("1100 millis")
      const report = yield* Ticker.once()
      const steps = report.maintenanceSteps.map((op) => `${op.funcName}(${op.funcArg ?? ""})`)
      assert.include(steps, `pgq.maint_rotate_tables_step1(${queue})`)
      assert.include(steps, "pgq.maint_rotate_tables_step2()")
      const after = yield* pgq.getQueueInfo(queue)
      assert.strictEqual(after.curTable, (before.curTable + 1) % before.ntables)
      assert.isTrue(after.switchTime.epochMilliseconds > before.switchTime.epochMilliseconds)
      // Step 2 ran in a later transaction: the queue is ready to rotate again when due.
      const sql = yield* SqlClient.SqlClient
      const [row] = yield* sql<{ readonly ready: boolean }>`
        select queue_switch_step2 is not null and queue_switch_step2 > queue_switch_step1 as ready
        from pgq.queue where queue_name = ${queue}`
      assert.isTrue(row!.ready)
    }))

  it.effect("a maintenance step runs as pgqd runs it: VACUUM outside any transaction, functions until they return 0", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // Even inside a caller's transaction, VACUUM gets a connection of its own.
      yield* sql.withTransaction(Ticker.maintenanceStep(new MaintOperation({ funcName: "vacuum", funcArg: "pgq.tick" })))
      yield* Ticker.maintenanceStep(new MaintOperation({ funcName: "vacuum analyze", funcArg: "pgq.queue" }))

      const table = TestDb.unique("maint_calls")
      const fn = TestDb.unique("maint_fn")
      yield* sql`create table ${sql(table)} (arg text not null)`
      // Asks to be called again (returns 1) until its third call.
      yield* sql.unsafe(
        `create function public.${fn}(arg text) returns int4 language sql as $$
           insert into public.${table} values (arg);
           select (count(*) < 3)::int4 from public.${table}
         $$`
      )
      yield* Ticker.maintenanceStep(new MaintOperation({ funcName: `public.${fn}`, funcArg: "it's; a queue" }))
      const rows = yield* sql<{ readonly arg: string }>`select arg from ${sql(table)}`
      assert.deepStrictEqual(rows.map((r) => r.arg), ["it's; a queue", "it's; a queue", "it's; a queue"])
    }))

  it.effect("run fails with PgqNotInstalled on a database without pgq", () =>
    Effect.gen(function*() {
      const db = yield* scratchDatabase
      // Layer.fresh: the suite's Pgq, memoised on its own database, must not be reused.
      const error = yield* Effect.flip(Ticker.run()).pipe(
        Effect.provide(Layer.fresh(Pgq.layer).pipe(Layer.provideMerge(TestDb.clientLayer(db.url)))),
        Effect.timeout("20 seconds")
      )
      assert.strictEqual(error._tag, "PgqNotInstalled")
    }))

  it.effect("a lost connection is retried with backoff, and the ticker goes on", () =>
    Effect.gen(function*() {
      const { url } = yield* TickerDb
      const sql = yield* SqlClient.SqlClient
      const { queue } = yield* eagerQueue()
      yield* (yield* Producer).send(queue, { type: "t", data: "needs a tick" })
      const before = yield* lastTickOf(queue)
      // The ticker on a client of its own, whose sessions can be told apart and killed.
      const applicationName = TestDb.unique("ticker_under_test")
      const services = yield* Layer.build(
        Layer.fresh(Pgq.layer).pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(url), applicationName })))
      )
      // Inserting a tick waits for this lock: the ticker is caught inside pgq.ticker(), and killed there.
      yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`lock table pgq.tick in exclusive mode`
        const ticker = yield* Ticker.start({ tickerPeriod: "100 millis", whenPgqdRuns: "run" }).pipe(
          Effect.provideContext(services)
        )
        // pg_stat_activity is read once per transaction unless its snapshot is cleared.
        const waiting = Effect.andThen(
          sql`select pg_stat_clear_snapshot()`,
          sql<{ readonly pid: number }>`
            select pid from pg_stat_activity where application_name = ${applicationName} and wait_event_type = 'Lock'`
        )
        const [blocked] = yield* waiting.pipe(
          Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (rows) => rows.length > 0 }),
          Effect.timeout("10 seconds")
        )
        yield* sql`select pg_terminate_backend(${blocked!.pid})`
        yield* ticker.status.pipe(
          Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (status) => status.state === "unavailable" }),
          Effect.timeout("10 seconds")
        )
        assert.deepStrictEqual(yield* lastTickOf(queue), before)
        return ticker
      })).pipe(Effect.flatMap((ticker) =>
        Effect.gen(function*() {
          // The lock is gone: the ticker reconnects and ticks.
          yield* lastTickOf(queue).pipe(
            Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (tick) => tick !== before }),
            Effect.timeout("20 seconds")
          )
          yield* ticker.status.pipe(
            Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (status) => status.state === "ticking" }),
            Effect.timeout("10 seconds")
          )
          yield* ticker.stop
        })
      ))
    }))

  it.effect.skipIf(pgqdBinary === undefined)(
    pgqdBinary === undefined
      ? "stays off while a real pgqd ticks the database (skipped: no pgqd binary; Debian: apt-get install pgqd)"
      : "stays off while a real pgqd ticks the database, and takes over when it stops",
    () =>
      Effect.gen(function*() {
        const db = yield* TickerDb
        const { queue } = yield* eagerQueue()
        const url = new URL(db.url)
        const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "pgqd-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
        const connstr = [
          `host=${url.hostname}`,
          `port=${url.port === "" ? "5432" : url.port}`,
          `user=${decodeURIComponent(url.username)}`,
          ...(url.password === "" ? [] : [`password=${decodeURIComponent(url.password)}`])
        ].join(" ")
        const config = Path.join(dir, "pgqd.ini")
        // ticker_period of an hour: pgqd ticks once at start and then idles, its session still open.
        Fs.writeFileSync(
          config,
          `[pgqd]\nbase_connstr = ${connstr}\ndatabase_list = ${db.name}\nlogfile = ${
            Path.join(dir, "pgqd.log")
          }\nsyslog = 0\nticker_period = 3600\n`
        )
        const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
        const pgqd = yield* spawner.spawn(ChildProcess.make(pgqdBinary!, ["-q", config], { stdin: "ignore" }))

        const presence = yield* Ticker.detectPgqd.pipe(
          Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (p) => p.running }),
          Effect.timeout("15 seconds")
        )
        assert.isAbove(presence.pids.length, 0)

        const ticker = yield* Ticker.start({ tickerPeriod: "100 millis", pgqdCheckPeriod: "200 millis" })
        const before = yield* lastTickOf(queue)
        yield* (yield* Producer).send(queue, { type: "t", data: "waits for a tick" })
        yield* Effect.sleep("1500 millis")
        assert.strictEqual((yield* ticker.status).state, "standing-by")
        assert.deepStrictEqual(yield* lastTickOf(queue), before)
        assert.isTrue(Option.isNone((yield* ticker.status).lastTickAt))
        assert.isTrue((yield* Ticker.once()).pgqdRunning)

        // SIGINT: pgqd closes its connections and exits.
        yield* pgqd.kill({ killSignal: "SIGINT" })
        yield* pgqd.exitCode.pipe(Effect.timeout("10 seconds"))
        yield* lastTickOf(queue).pipe(
          Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (tick) => tick !== before }),
          Effect.timeout("10 seconds")
        )
        assert.strictEqual((yield* ticker.status).state, "ticking")
        assert.isFalse((yield* Ticker.detectPgqd).running)
        yield* ticker.stop
      }).pipe(Effect.provide(NodeServices.layer))
  )

  it.effect("effect-pgq ticker --once prints its report and exits 0", () =>
    Effect.gen(function*() {
      const db = yield* TickerDb
      const { queue } = yield* eagerQueue()
      yield* (yield* Producer).send(queue, { type: "t", data: "cli" })
      const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
      const child = yield* spawner.spawn(
        ChildProcess.make(process.execPath, ["src/cli/main.ts", "ticker", "--once", "--db", db.url], {
          cwd: Path.resolve(import.meta.dirname, "../.."),
          stdin: "ignore"
        })
      )
      const [stdout, exitCode] = yield* Effect.all([
        child.stdout.pipe(Stream.decodeText(), Stream.mkString),
        child.exitCode
      ], { concurrency: 2 })
      assert.strictEqual(exitCode, 0)
      assert.include(stdout, "retry events moved back: 0")
      assert.match(stdout, new RegExp(`ticked: .*${queue}`))
      assert.include(stdout, "maintenance: ")
    }).pipe(Effect.provide(NodeServices.layer)))
})
