/**
 * The daemon as a user runs it: real `effect-pgq daemon …` processes, driven
 * by the CLI's commands and by signals, checked through the database, the
 * pidfile, the log and the exit codes.
 *
 * - The daemons tick with the built-in ticker, which ticks every queue of a
 *   database, so they run against a database of this suite's own (the other
 *   suites count their ticks).
 * - Each test has its own queues, table, config directory (under `.pgq/`, so
 *   the config's `import "effect"` resolves) and lock key; every process it
 *   started is killed when it ends, whatever happened.
 * - A handler "in flight" is one blocked on `pg_advisory_xact_lock_shared(K)`
 *   while the test holds `pg_advisory_lock(K)`: the test sees it wait in
 *   `pg_stat_activity` and decides when it goes on.
 * - Nothing waits a fixed time and then asserts: every wait polls with a
 *   deadline, long enough for a slow machine running other suites.
 */
import { NodeServices } from "@effect/platform-node"
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Path from "node:path"
import { Installer } from "../../src/api/Installer.ts"
import * as PgqServices from "../../src/api/Services.ts"
import * as ThrowawayPostgres from "../../src/testing/ThrowawayPostgres.ts"
import * as TestDb from "../TestDb.ts"
import {
  configSource,
  type ConsumerSpec,
  daemonCommand,
  type DaemonProcess,
  isAlive,
  makeDir,
  pidOf,
  poll,
  readFile,
  reap,
  startDaemon,
  tail,
  type TestDir,
  writeFile
} from "./DaemonHarness.ts"

/** The suite's own database (see the top comment). */
class DaemonDb extends Context.Service<DaemonDb, { readonly name: string; readonly url: string }>()(
  "test/DaemonDb"
) {}

const urlOf = (database: string) => {
  const url = new URL(TestDb.url)
  url.pathname = `/${database}`
  return url.toString()
}

/** A fresh database with pgq and effect-pgq's schema; dropped, with whatever sessions are left, at the end. */
const daemonDbLayer = Layer.unwrap(Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const name = TestDb.unique("daemon_db").toLowerCase()
  yield* Effect.acquireRelease(
    sql`create database ${sql(name)}`,
    () => Effect.orDie(sql`drop database ${sql(name)} with (force)`)
  )
  const url = urlOf(name)
  return Layer.effectDiscard(Effect.gen(function*() {
    yield* (yield* Installer).install
  })).pipe(
    Layer.provideMerge(PgqServices.layer),
    Layer.provideMerge(TestDb.clientLayer(url)),
    Layer.merge(Layer.succeed(DaemonDb, { name, url }))
  )
})).pipe(Layer.provide(TestDb.clientLayer(TestDb.url)))

const APP = "effect-pgq daemon"
/** Per test: a daemon start costs seconds of CPU on a slow machine, and a test starts several. */
const TIMEOUT = 300_000
let lockKeys = 7_700_000

/** A queue, its registered consumer and the table its handler writes to. */
const newConsumer = (prefix: string, options?: { readonly blocking?: boolean }) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const spec: ConsumerSpec = {
      queue: TestDb.unique(prefix).toLowerCase(),
      consumer: TestDb.unique("c").toLowerCase(),
      table: TestDb.unique(`${prefix}_seen`).toLowerCase(),
      lockKey: options?.blocking === true ? ++lockKeys : undefined
    }
    yield* sql`select pgq.create_queue(${spec.queue})`
    yield* sql`select pgq.register_consumer(${spec.queue}, ${spec.consumer})`
    // No primary key: a duplicate delivery must show up as a duplicate row.
    yield* sql`create table ${sql(spec.table)} (event_id bigint not null, data text)`
    return spec
  })

/** `n` events in one transaction, so one tick holds them all: they make one batch. */
const insertEvents = (spec: ConsumerSpec, n: number, tag: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`select pgq.insert_event(${spec.queue}, 'test', ${tag} || '-' || i) from generate_series(1, ${n}) as i`
  })

/** The handler's rows: how many, and how many distinct events. */
const rowsOf = (spec: ConsumerSpec) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly n: number; readonly distinct: number }>`
      select count(*)::int as n, count(distinct event_id)::int as distinct from ${sql(spec.table)}`
    return { n: row!.n, distinct: row!.distinct }
  })

const waitForRows = (spec: ConsumerSpec, n: number, daemon?: DaemonProcess) =>
  poll(`${n} rows in ${spec.table}`, rowsOf(spec), (rows) => rows.n >= n, {
    context: daemon === undefined ? undefined : () => tail(daemon.output())
  })

/** pgq's view of the consumer: the batch it holds, if any. */
const currentBatch = (spec: ConsumerSpec) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly current_batch: unknown }>`
      select current_batch from pgq.get_consumer_info(${spec.queue}, ${spec.consumer})`
    return row!.current_batch
  })

/**
 * Takes `pg_advisory_lock(key)` on a connection of the test's own: the
 * consumer's handler then waits in `pg_advisory_xact_lock_shared(key)`.
 * Released when the scope closes, if not before.
 */
const holdLock = (key: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const holder = yield* sql.reserve
    yield* holder.executeRaw(`select pg_advisory_lock(${key})`, [])
    let held = true
    const release = Effect.suspend(() => {
      if (!held) return Effect.void
      held = false
      return Effect.ignore(holder.executeRaw(`select pg_advisory_unlock(${key})`, []))
    })
    yield* Effect.addFinalizer(() => release)
    return { release }
  })

/** Until a backend of the daemon waits for the handler's lock. */
const waitUntilBlocked = (key: number, daemon: DaemonProcess) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* poll(
      "the daemon's handler to wait on the advisory lock",
      sql<{ readonly n: number }>`
        select count(*)::int as n from pg_stat_activity
        where datname = current_database() and application_name = ${APP} and wait_event_type = 'Lock'
          and query like ${`%pg_advisory_xact_lock_shared(${key})%`}`.pipe(Effect.map(([row]) => row!.n)),
      (n) => n > 0,
      { context: () => tail(daemon.output()) }
    )
  })

/** GET on the control endpoint the daemon recorded on its pidfile's second line. */
const controlGet = (pidfile: string, path: string) =>
  Effect.flatMap(readFile(pidfile), (text) => {
    const match = /^(.*):(\d+)$/.exec(text.split("\n")[1]?.trim() ?? "")
    if (match === null) return Effect.succeed(Option.none<string>())
    return Effect.callback<Option.Option<string>>((resume) => {
      const request = Http.get({ host: match[1], port: Number(match[2]), path, timeout: 5_000 }, (response) => {
        let body = ""
        response.setEncoding("utf8").on("data", (chunk: string) => body += chunk)
        response.on("end", () => resume(Effect.succeed(response.statusCode === 200 ? Option.some(body) : Option.none())))
      })
      request.on("timeout", () => request.destroy(new Error("timed out")))
      request.on("error", () => resume(Effect.succeed(Option.none())))
    })
  })

interface StatusJson {
  readonly pid: number
  readonly uptimeSeconds: number
  readonly consumers: ReadonlyArray<{
    readonly queue: string
    readonly consumer: string
    readonly state: string
    readonly currentBatch: string | null
    readonly batches: number
    readonly events: number
    readonly failed: number
    readonly restarts: number
    readonly lagSeconds: number | null
  }>
}

/** `/status`, straight from the endpoint (lighter to poll than a CLI process each time). */
const statusOf = (dir: TestDir) =>
  Effect.map(controlGet(dir.pidfile, "/status"), Option.map((body) => JSON.parse(body) as StatusJson))

const consumerKey = (c: { readonly queue: string; readonly consumer: string }) => `${c.queue}/${c.consumer}`
const isActive = (state: string) => state === "running" || state === "idle"

/**
 * Until the pidfile names `daemon` and `/status` shows exactly `specs`, each
 * running or idle (it holds its consumer's lock and waits for batches).
 */
const waitReady = (dir: TestDir, daemon: DaemonProcess, specs: ReadonlyArray<ConsumerSpec>) =>
  Effect.gen(function*() {
    yield* poll("the pidfile to name the daemon", pidOf(dir.pidfile), (pid) => Option.contains(pid, daemon.pid), {
      context: () => tail(daemon.output())
    })
    const wanted = specs.map(consumerKey).sort().join(",")
    return yield* poll(
      `/status to show ${wanted} running`,
      statusOf(dir),
      (status) =>
        Option.isSome(status) && status.value.pid === daemon.pid &&
        status.value.consumers.map(consumerKey).sort().join(",") === wanted &&
        status.value.consumers.every((c) => isActive(c.state)),
      { context: () => tail(daemon.output()) }
    )
  })

/** Writes the config of `specs` and starts a daemon on it, ready. */
const startWith = (dir: TestDir, specs: ReadonlyArray<ConsumerSpec>, extra?: string) =>
  Effect.gen(function*() {
    const { url } = yield* DaemonDb
    yield* writeFile(dir.config, configSource(dir, { url, consumers: specs, extra }))
    const daemon = yield* startDaemon(dir.config)
    yield* waitReady(dir, daemon, specs)
    return daemon
  })

/** A line of the text log format at level VERBOSE: `<time> VERBOSE …`. */
const VERBOSE_LINE = /^\S+ VERBOSE /m

const exists = (file: string) => Effect.sync(() => Fs.existsSync(file))

/** The pid of a process that has ended. */
const deadPid = Effect.callback<number>((resume) => {
  const child = ChildProcess.spawn(process.execPath, ["-e", ""], { stdio: "ignore" })
  child.on("exit", () => resume(Effect.succeed(child.pid!)))
})

layer(daemonDbLayer, { excludeTestServices: true })("Daemon (real processes)", (it) => {
  it.effect("start, a refused second start, events handled without manual ticks, status --json, stop", () =>
    Effect.gen(function*() {
      const dir = yield* makeDir("d_start")
      const spec = yield* newConsumer("dq")
      const daemon = yield* startWith(dir, [spec])

      const second = yield* daemonCommand("start", dir.config)
      assert.strictEqual(second.code, 1, second.stdout + second.stderr)
      assert.match(second.stderr, /already running/)
      assert.include(second.stderr, `pid ${daemon.pid}`)
      // The refused start left the running daemon and its pidfile alone.
      assert.isTrue(Option.isNone(daemon.ended()))
      assert.isTrue(Option.contains(yield* pidOf(dir.pidfile), daemon.pid))

      // Only the built-in ticker makes batches here: the test never ticks.
      yield* insertEvents(spec, 5, "a")
      yield* waitForRows(spec, 5, daemon)
      // The counters follow the batch's commit: wait for them, then read them with the CLI.
      yield* poll("/status to count the 5 events", statusOf(dir), (s) => Option.isSome(s) && s.value.consumers[0]!.events >= 5)
      const status = yield* daemonCommand("status", dir.config, "--json")
      assert.strictEqual(status.code, 0, status.stderr)
      const json = JSON.parse(status.stdout) as StatusJson
      assert.strictEqual(json.pid, daemon.pid)
      assert.strictEqual(json.consumers.length, 1)
      const [c] = json.consumers
      assert.deepInclude(c, { queue: spec.queue, consumer: spec.consumer, events: 5, failed: 0 })
      assert.isAtLeast(c!.batches, 1)
      assert.isTrue(isActive(c!.state), c!.state)

      const stop = yield* daemonCommand("stop", dir.config)
      assert.strictEqual(stop.code, 0, stop.stdout + stop.stderr)
      assert.include(stop.stdout, `daemon stopped (pid ${daemon.pid})`)
      assert.deepStrictEqual(yield* daemon.exit(), { code: 0, signal: null })
      assert.isFalse(yield* exists(dir.pidfile))
      assert.deepStrictEqual(yield* rowsOf(spec), { n: 5, distinct: 5 })
    }), TIMEOUT)

  it.effect("a graceful stop (SIGTERM) lets the batch in flight commit, then exits 0", () =>
    Effect.gen(function*() {
      const dir = yield* makeDir("d_term")
      const spec = yield* newConsumer("dq", { blocking: true })
      const lock = yield* holdLock(spec.lockKey!)
      const daemon = yield* startWith(dir, [spec])
      yield* insertEvents(spec, 3, "a")
      yield* waitUntilBlocked(spec.lockKey!, daemon)

      // `daemon stop` waits for the daemon to exit: run it aside.
      const stopping = yield* Effect.forkChild(daemonCommand("stop", dir.config))
      yield* poll(
        "the daemon to say it is stopping",
        Effect.sync(daemon.output),
        (out) => out.includes("stopping: batches in hand commit")
      )
      // Still waiting on the handler: a graceful stop does not cut the batch short.
      assert.isTrue(Option.isNone(daemon.ended()), tail(daemon.output()))
      yield* lock.release

      const stop = yield* Fiber.join(stopping)
      assert.strictEqual(stop.code, 0, stop.stdout + stop.stderr)
      assert.deepStrictEqual(yield* daemon.exit(), { code: 0, signal: null }, tail(daemon.output()))
      assert.deepStrictEqual(yield* rowsOf(spec), { n: 3, distinct: 3 })
      assert.isNull(yield* currentBatch(spec))
      assert.isFalse(yield* exists(dir.pidfile))
    }), TIMEOUT)

  it.effect("kill (SIGINT) rolls the batch in flight back, exits 130; a later run gets the events exactly once", () =>
    Effect.gen(function*() {
      const dir = yield* makeDir("d_kill")
      const spec = yield* newConsumer("dq", { blocking: true })
      const lock = yield* holdLock(spec.lockKey!)
      const daemon = yield* startWith(dir, [spec])
      yield* insertEvents(spec, 3, "a")
      yield* waitUntilBlocked(spec.lockKey!, daemon)

      // The lock stays held: a kill must not wait for the handler to finish.
      const kill = yield* daemonCommand("kill", dir.config)
      assert.strictEqual(kill.code, 0, kill.stdout + kill.stderr)
      assert.include(kill.stdout, `daemon killed (pid ${daemon.pid})`)
      assert.deepStrictEqual(yield* daemon.exit(), { code: 130, signal: null }, tail(daemon.output()))
      yield* lock.release
      assert.deepStrictEqual(yield* rowsOf(spec), { n: 0, distinct: 0 })
      assert.isFalse(yield* exists(dir.pidfile))

      // The batch was not finished: the next run gets its events again, once.
      const again = yield* startWith(dir, [spec])
      yield* waitForRows(spec, 3, again)
      const stop = yield* daemonCommand("stop", dir.config)
      assert.strictEqual(stop.code, 0, stop.stdout + stop.stderr)
      assert.deepStrictEqual(yield* again.exit(), { code: 0, signal: null })
      assert.deepStrictEqual(yield* rowsOf(spec), { n: 3, distinct: 3 })
    }), TIMEOUT)

  it.effect("a second SIGTERM, or the stop timeout, escalates a graceful stop to a kill: exit 143, rolled back", () =>
    Effect.gen(function*() {
      const dir = yield* makeDir("d_escalate")
      const spec = yield* newConsumer("dq", { blocking: true })
      const lock = yield* holdLock(spec.lockKey!)

      // A second SIGTERM while the stop waits for the handler.
      const first = yield* startWith(dir, [spec])
      yield* insertEvents(spec, 3, "a")
      yield* waitUntilBlocked(spec.lockKey!, first)
      yield* first.signal("SIGTERM")
      yield* poll(
        "the daemon to say it is stopping",
        Effect.sync(first.output),
        (out) => out.includes("stopping: batches in hand commit")
      )
      yield* first.signal("SIGTERM")
      assert.deepStrictEqual(yield* first.exit(), { code: 143, signal: null }, tail(first.output()))
      assert.deepStrictEqual(yield* rowsOf(spec), { n: 0, distinct: 0 })

      // One SIGTERM, and a handler that outlasts `stopTimeout`.
      const second = yield* startWith(dir, [spec], `stopTimeout: "500 millis",`)
      yield* waitUntilBlocked(spec.lockKey!, second)
      const stop = yield* daemonCommand("stop", dir.config)
      assert.strictEqual(stop.code, 0, stop.stdout + stop.stderr)
      assert.deepStrictEqual(yield* second.exit(), { code: 143, signal: null }, tail(second.output()))
      assert.deepStrictEqual(yield* rowsOf(spec), { n: 0, distinct: 0 })

      // Neither run finished the batch: a third, unblocked, handles it once.
      yield* lock.release
      const third = yield* startWith(dir, [spec])
      yield* waitForRows(spec, 3, third)
      yield* third.signal("SIGTERM")
      assert.deepStrictEqual(yield* third.exit(), { code: 0, signal: null })
      assert.deepStrictEqual(yield* rowsOf(spec), { n: 3, distinct: 3 })
    }), TIMEOUT)

  it.effect("logmore / logless change the log level at once; reload reopens the log file", () =>
    Effect.gen(function*() {
      const dir = yield* makeDir("d_log")
      const spec = yield* newConsumer("dq")
      const daemon = yield* startWith(dir, [spec], `logging: { file: ${JSON.stringify(dir.log)}, level: "NOTICE" },`)
      const log = readFile(dir.log)
      const context = () =>
        `${tail(daemon.output())}\n--- log ---\n${tail(Fs.existsSync(dir.log) ? Fs.readFileSync(dir.log, "utf8") : "")}`
      const count = (text: string, needle: string) => text.split(needle).length - 1

      // NOTICE: batches are handled without a VERBOSE line.
      yield* insertEvents(spec, 1, "notice")
      yield* waitForRows(spec, 1, daemon)
      // "daemon started" is NOTICE: the file is in use.
      yield* poll("the log file to be written", log, (text) => text.includes("daemon started"), { context })

      // logmore: VERBOSE, so each batch is logged as received. Its own line
      // also closes the NOTICE stretch: no VERBOSE line before it.
      const more = yield* daemonCommand("logmore", dir.config)
      assert.strictEqual(more.code, 0, more.stderr)
      const before = yield* poll("the level change to be logged", log, (text) => text.includes("log level VERBOSE"), {
        context
      })
      assert.notMatch(before.slice(0, before.indexOf("log level VERBOSE")), VERBOSE_LINE)
      yield* insertEvents(spec, 1, "verbose")
      yield* waitForRows(spec, 2, daemon)
      yield* poll("a VERBOSE 'batch received' line", log, (text) => /^\S+ VERBOSE .*batch received/m.test(text), {
        context
      })

      // logless: NOTICE again. A second logmore afterwards marks the end of
      // the quiet stretch: between the two level lines, no VERBOSE line.
      const less = yield* daemonCommand("logless", dir.config)
      assert.strictEqual(less.code, 0, less.stderr)
      yield* poll("the level change to be logged", log, (text) => text.includes("log level NOTICE"), { context })
      yield* insertEvents(spec, 1, "quiet")
      yield* waitForRows(spec, 3, daemon)
      assert.strictEqual((yield* daemonCommand("logmore", dir.config)).code, 0)
      const text = yield* poll("the second level change", log, (t) => count(t, "log level VERBOSE") === 2, { context })
      const quiet = text.slice(text.indexOf("log level NOTICE"), text.lastIndexOf("log level VERBOSE"))
      assert.notMatch(quiet, VERBOSE_LINE, quiet)
      assert.notInclude(quiet, "batch received")

      // reload after logrotate's `mv`: new lines go to a new file at the path.
      const rotated = `${dir.log}.1`
      Fs.renameSync(dir.log, rotated)
      const reload = yield* daemonCommand("reload", dir.config)
      assert.strictEqual(reload.code, 0, reload.stderr)
      yield* poll("a new log file with the reload", log, (t) => t.includes("reloading the config"), { context })
      yield* insertEvents(spec, 1, "rotated")
      yield* waitForRows(spec, 4, daemon)
      yield* poll("the new batch in the new file", log, (t) => t.includes("batch received"), { context })
      assert.notInclude(yield* readFile(rotated), "reloading the config")

      const stop = yield* daemonCommand("stop", dir.config)
      assert.strictEqual(stop.code, 0, stop.stderr)
      assert.deepStrictEqual(yield* daemon.exit(), { code: 0, signal: null })
      assert.include(yield* log, "daemon stopped")
    }), TIMEOUT)

  it.effect("reload adds a consumer, removes one, and ignores a broken config", () =>
    Effect.gen(function*() {
      const { url } = yield* DaemonDb
      const dir = yield* makeDir("d_reload")
      const a = yield* newConsumer("qa")
      const b = yield* newConsumer("qb")
      const daemon = yield* startWith(dir, [a])
      const context = () => tail(daemon.output())

      // Add b.
      yield* writeFile(dir.config, configSource(dir, { url, consumers: [a, b] }))
      const reload = yield* daemonCommand("reload", dir.config)
      assert.strictEqual(reload.code, 0, reload.stderr)
      yield* waitReady(dir, daemon, [a, b])
      const status = yield* daemonCommand("status", dir.config, "--json")
      assert.strictEqual(status.code, 0, status.stderr)
      assert.sameMembers(
        (JSON.parse(status.stdout) as StatusJson).consumers.map(consumerKey),
        [consumerKey(a), consumerKey(b)]
      )
      yield* insertEvents(b, 2, "b")
      yield* insertEvents(a, 1, "a")
      yield* waitForRows(b, 2, daemon)
      yield* waitForRows(a, 1, daemon)

      // Remove a: it stops, and its events wait in pgq.
      yield* writeFile(dir.config, configSource(dir, { url, consumers: [b] }))
      assert.strictEqual((yield* daemonCommand("reload", dir.config)).code, 0)
      yield* waitReady(dir, daemon, [b])
      yield* insertEvents(a, 2, "a-after")
      const sql = yield* SqlClient.SqlClient
      const pendingOfA = sql<{ readonly n: number }>`
        select coalesce(pending_events, 0)::int as n from pgq.get_consumer_info(${a.queue}, ${a.consumer})`.pipe(
        Effect.map(([row]) => row!.n)
      )
      // Ticked (so a running consumer could take them) ...
      yield* poll("a's new events to be ticked", pendingOfA, (n) => n >= 2, { context })
      // ... and a full round of b later, still not taken.
      yield* insertEvents(b, 1, "b-after")
      yield* waitForRows(b, 3, daemon)
      assert.strictEqual((yield* rowsOf(a)).n, 1)
      assert.isAtLeast(yield* pendingOfA, 2)

      // A broken config: the CLI refuses to signal, naming the field ...
      yield* writeFile(
        dir.config,
        configSource(dir, { url, consumers: [b] }).replace(JSON.stringify(b.queue), JSON.stringify(""))
      )
      const refused = yield* daemonCommand("reload", dir.config)
      assert.strictEqual(refused.code, 1)
      assert.include(refused.stderr, "consumers[0].queue")
      // ... and a SIGHUP all the same is logged and ignored.
      yield* daemon.signal("SIGHUP")
      yield* poll("the ignored reload to be logged", Effect.sync(daemon.output), (out) => out.includes("reload ignored"), {
        context
      })
      assert.include(daemon.output(), "consumers[0].queue")
      yield* insertEvents(b, 1, "b-broken")
      yield* waitForRows(b, 4, daemon)
      yield* waitReady(dir, daemon, [b])

      yield* daemon.signal("SIGTERM")
      assert.deepStrictEqual(yield* daemon.exit(), { code: 0, signal: null }, context())
    }), TIMEOUT)

  it.effect("a stale pidfile is taken over; a bad config is one line naming the field, exit 1", () =>
    Effect.gen(function*() {
      const { url } = yield* DaemonDb
      const dir = yield* makeDir("d_pidfile")
      const spec = yield* newConsumer("dq")

      const dead = yield* deadPid
      assert.isFalse(isAlive(dead))
      yield* writeFile(dir.pidfile, `${dead}\n127.0.0.1:1\n`)
      const daemon = yield* startWith(dir, [spec])
      assert.include(daemon.output(), "stale")
      const stop = yield* daemonCommand("stop", dir.config)
      assert.strictEqual(stop.code, 0, stop.stderr)
      assert.deepStrictEqual(yield* daemon.exit(), { code: 0, signal: null })

      yield* writeFile(
        dir.config,
        configSource(dir, { url, consumers: [spec] }).replace(JSON.stringify(spec.queue), JSON.stringify(""))
      )
      const bad = yield* daemonCommand("start", dir.config)
      assert.strictEqual(bad.code, 1)
      const lines = bad.stderr.trim().split("\n")
      assert.strictEqual(lines.length, 1, bad.stderr)
      assert.include(lines[0], "consumers[0].queue")
      assert.isFalse(yield* exists(dir.pidfile))
    }), TIMEOUT)

  it.effect("signals while it starts wait their turn; stop works after the config stops loading", () =>
    Effect.gen(function*() {
      const { url } = yield* DaemonDb
      const dir = yield* makeDir("d_early")
      const spec = yield* newConsumer("dq")
      // A config that takes a while to load, and says when it begins: SIGHUP and SIGUSR1 arrive
      // while the daemon starts (before that, Node itself is still loading the command line).
      const marker = `${dir.config}.loading`
      yield* writeFile(
        dir.config,
        configSource(dir, { url, consumers: [spec] }).replace(
          "export default",
          `(await import("node:fs")).writeFileSync(${JSON.stringify(marker)}, "")\n` +
            "await new Promise((resolve) => setTimeout(resolve, 1500))\nexport default"
        )
      )
      const daemon = yield* startDaemon(dir.config)
      yield* poll("the config to begin loading", exists(marker), (found) => found)
      yield* daemon.signal("SIGHUP")
      yield* daemon.signal("SIGUSR1")
      yield* waitReady(dir, daemon, [spec])
      assert.isTrue(Option.isNone(daemon.ended()), "SIGHUP during start must not end the daemon")
      assert.notInclude(daemon.output(), "Debugger listening")

      // A typo saved while it runs: stop still finds it through the pidfile beside the config.
      yield* writeFile(dir.config, "export default {")
      const stop = yield* daemonCommand("stop", dir.config)
      assert.strictEqual(stop.code, 0, stop.stderr)
      assert.deepStrictEqual(yield* daemon.exit(), { code: 0, signal: null })
    }), TIMEOUT)

  it.effect("survives its database going away: backends terminated, PostgreSQL restarted", () =>
    Effect.gen(function*() {
      // A cluster of its own: restarting the shared one would break the other suites.
      const cluster = yield* ThrowawayPostgres.start().pipe(Effect.provide(NodeServices.layer))
      const url = yield* cluster.createDatabase("daemon_restart")
      const psql = (sql: string) => cluster.psql("daemon_restart", sql)
      // psql, not a pool: each call connects afresh, whatever happened to the server.
      const rows = (table: string) => Effect.map(psql(`select count(*) from ${table}`), (out) => Number(out.trim()))
      const queue = "restart_q"
      const table = "restart_seen"
      yield* psql(`select pgq.create_queue('${queue}'); select pgq.register_consumer('${queue}', 'c');
        create table ${table} (event_id bigint not null, data text)`)
      const spec: ConsumerSpec = { queue, consumer: "c", table }

      const dir = yield* makeDir("d_restart")
      yield* writeFile(dir.config, configSource(dir, { url, consumers: [spec] }))
      const daemon = yield* startDaemon(dir.config)
      yield* waitReady(dir, daemon, [spec])
      const context = () => tail(daemon.output())
      const alive = (when: string) => assert.isTrue(Option.isNone(daemon.ended()), `the daemon exited ${when}:\n${context()}`)
      let expected = 0
      const handled = (tag: string) =>
        Effect.gen(function*() {
          yield* psql(`select pgq.insert_event('${queue}', 'test', '${tag}')`)
          expected++
          yield* poll(`${expected} rows after ${tag}`, rows(table), (n) => n >= expected, { timeout: "120 seconds", context })
          alive(`after ${tag}`)
        })
      const restarts = Effect.map(statusOf(dir), (s) => Option.isSome(s) ? s.value.consumers[0]!.restarts : -1)
      /**
       * Its sessions gone, the daemon goes on at once (its pool reconnects);
       * its lock connection went too, so the consumer also notices it may no
       * longer be the active instance, restarts with backoff and takes the
       * lock again. An event before and after that recovery is handled.
       */
      const survives = (tag: string, disrupt: Effect.Effect<void, unknown>) =>
        Effect.gen(function*() {
          const before = yield* restarts
          yield* disrupt
          yield* handled(`${tag}-a`)
          yield* poll(`the consumer to recover after ${tag}`, statusOf(dir), (s) =>
            Option.isSome(s) && s.value.consumers[0]!.restarts > before && isActive(s.value.consumers[0]!.state), {
            timeout: "120 seconds",
            context
          })
          yield* handled(`${tag}-b`)
        })
      yield* handled("before")

      const terminate = Effect.gen(function*() {
        // A backend that ends between the view and the signal makes a WARNING, which psql prints with the count.
        const killed = yield* psql(
          `set client_min_messages = error;
          select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = '${APP}'`
        )
        assert.isAbove(Number(killed.trim()), 0, killed)
      })
      yield* survives("terminated-1", terminate)
      yield* survives("terminated-2", terminate)
      yield* survives("restarted-1", restartPostgres(cluster.dataDir))
      yield* survives("restarted-2", restartPostgres(cluster.dataDir))

      const stop = yield* daemonCommand("stop", dir.config)
      assert.strictEqual(stop.code, 0, stop.stderr)
      assert.deepStrictEqual(yield* daemon.exit(), { code: 0, signal: null }, context())
      // Each event once: no batch was both committed and delivered again.
      assert.strictEqual(
        (yield* psql(`select count(*) || ',' || count(distinct data) from ${table}`)).trim(),
        `${expected},${expected}`
      )
    }), { timeout: 600_000 })

  it.effect("start --detach returns once the pidfile is there; restart gives a new pid; stop ends it", () =>
    Effect.gen(function*() {
      const { url } = yield* DaemonDb
      const dir = yield* makeDir("d_detach")
      const spec = yield* newConsumer("dq")
      yield* writeFile(dir.config, configSource(dir, { url, consumers: [spec] }))

      const started = yield* daemonCommand("start", dir.config, "--detach")
      assert.strictEqual(started.code, 0, started.stdout + started.stderr)
      const first = Option.getOrThrow(yield* pidOf(dir.pidfile))
      yield* reap(first)
      assert.include(started.stdout, `pid ${first}`)
      assert.isTrue(isAlive(first))
      const running = yield* poll(
        "daemon status to list the consumer",
        daemonCommand("status", dir.config),
        (r) => r.code === 0 && r.stdout.includes(consumerKey(spec))
      )
      assert.include(running.stdout, `running (pid ${first}`)

      const restarted = yield* daemonCommand("restart", dir.config)
      assert.strictEqual(restarted.code, 0, restarted.stdout + restarted.stderr)
      const second = Option.getOrThrow(yield* pidOf(dir.pidfile))
      yield* reap(second)
      assert.notStrictEqual(second, first)
      assert.include(restarted.stdout, `pid ${second}`)
      assert.isFalse(isAlive(first))
      assert.isTrue(isAlive(second))

      // The restarted daemon works.
      yield* insertEvents(spec, 2, "detached")
      yield* waitForRows(spec, 2)

      const stop = yield* daemonCommand("stop", dir.config)
      assert.strictEqual(stop.code, 0, stop.stdout + stop.stderr)
      assert.isFalse(isAlive(second))
      assert.isFalse(yield* exists(dir.pidfile))
      const status = yield* daemonCommand("status", dir.config)
      assert.strictEqual(status.code, 1)
      assert.include(status.stderr, "no daemon is running")
    }), TIMEOUT)

  it.effect("a second daemon of the same consumer stands by, and takes over when the first dies", () =>
    Effect.gen(function*() {
      const { url } = yield* DaemonDb
      const spec = yield* newConsumer("dq")
      // Two configs, two pidfiles: two daemons, as on two hosts.
      const activeDir = yield* makeDir("d_active")
      const standbyDir = yield* makeDir("d_standby")
      const active = yield* startWith(activeDir, [spec])
      yield* writeFile(standbyDir.config, configSource(standbyDir, { url, consumers: [spec] }))
      const standby = yield* startDaemon(standbyDir.config)
      yield* poll("the second daemon to stand by", statusOf(standbyDir), (s) =>
        Option.isSome(s) && s.value.pid === standby.pid && s.value.consumers[0]?.state === "standby", {
        context: () => tail(standby.output())
      })

      yield* insertEvents(spec, 2, "active")
      yield* waitForRows(spec, 2, active)
      assert.strictEqual(
        Option.getOrThrow(yield* statusOf(standbyDir)).consumers[0]!.events,
        0,
        "the standby handled events"
      )

      // A crash: no stop, no finalizer; its sessions end with the process.
      yield* active.signal("SIGKILL")
      assert.deepStrictEqual(yield* active.exit(), { code: null, signal: "SIGKILL" })
      yield* waitReady(standbyDir, standby, [spec])
      yield* insertEvents(spec, 2, "standby")
      yield* waitForRows(spec, 4, standby)
      assert.include(standby.output(), "took over")

      const stop = yield* daemonCommand("stop", standbyDir.config)
      assert.strictEqual(stop.code, 0, stop.stdout + stop.stderr)
      assert.deepStrictEqual(yield* standby.exit(), { code: 0, signal: null })
      assert.deepStrictEqual(yield* rowsOf(spec), { n: 4, distinct: 4 })
    }), TIMEOUT)
})

/**
 * `pg_ctl restart` on the cluster, as the user that owns it (`postgres` when
 * we are root, as ThrowawayPostgres runs it); the binary is the one named in
 * `postmaster.opts`, which also gives restart the server's options.
 */
const restartPostgres = (dataDir: string) =>
  Effect.gen(function*() {
    const opts = Fs.readFileSync(Path.join(dataDir, "postmaster.opts"), "utf8")
    const postgres = /^(\S+)/.exec(opts)![1]!
    const pgCtl = Path.join(Path.dirname(postgres), "pg_ctl")
    const args = ["restart", "-D", dataDir, "-m", "fast", "-w", "-t", "120", "-l", Path.join(dataDir, "postgres.log")]
    const [command, argv] = process.getuid?.() === 0 ? ["runuser", ["-u", "postgres", "--", pgCtl, ...args]] : [pgCtl, args]
    const result = yield* Effect.callback<{ readonly code: number | null; readonly output: string }>((resume) => {
      // Output to a pipe of ours would be inherited by the new postmaster; ignore it.
      const child = ChildProcess.spawn(command, argv as Array<string>, { stdio: ["ignore", "ignore", "pipe"] })
      let output = ""
      child.stderr!.setEncoding("utf8").on("data", (chunk: string) => output += chunk)
      child.on("exit", (code) => resume(Effect.succeed({ code, output })))
    })
    assert.strictEqual(result.code, 0, result.output)
  })
