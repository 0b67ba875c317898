/**
 * The built `effect-pgq` command line, run as a subprocess against the test
 * database: every admin command, its JSON, and one clear line (and a
 * non-zero exit, and nothing changed) for every kind of bad input.
 */
import { afterAll, assert, beforeAll, describe, inject, it } from "@effect/vitest"
import { Effect, ManagedRuntime } from "effect"
import { SqlClient } from "effect/sql"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { FailedEvents } from "../../src/api/FailedEvents.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import * as TestDb from "../TestDb.ts"
import { cli, ensureBuilt, type Run } from "./runCli.ts"

const url = TestDb.url
const plainUrl = inject("plainDatabaseUrl")
const env = { PGQ_DATABASE_URL: url }
const runtime = ManagedRuntime.make(TestDb.servicesLayer)
const db = <A, E>(effect: Effect.Effect<A, E, Pgq | FailedEvents | SqlClient.SqlClient>) => runtime.runPromise(effect)

/** Quotes, a semicolon and non-ASCII: names travel as data, never as SQL. */
const oddName = (prefix: string) => `${TestDb.unique(prefix)} 'q"; ü→`

/** One line on stderr, nothing on stdout, the exit code. */
const assertFailure = (run: Run, code: number, pattern: RegExp) => {
  assert.strictEqual(run.code, code, `exit code; stderr: ${run.stderr}`)
  assert.strictEqual(run.stdout, "", "nothing on stdout")
  assert.strictEqual(run.stderr.trimEnd().split("\n").length, 1, `one line: ${run.stderr}`)
  assert.match(run.stderr, pattern)
  assert.notMatch(run.stderr, /\n\s+at /, "no stack trace")
}

const ok = (run: Run) => {
  assert.strictEqual(run.code, 0, `stderr: ${run.stderr}`)
  return run.stdout
}

const queueExists = (queue: string) =>
  db(Pgq.use((pgq) => pgq.listQueues)).then((qs) => qs.some((q) => q.queueName === queue))

beforeAll(() => {
  ensureBuilt()
  return cli(["install"], { env }).then(ok)
})
afterAll(() => runtime.dispose())

describe.concurrent("effect-pgq command line", () => {
  it("help has every command and examples; --version; bash completions", async () => {
    const [help, createHelp, version, completions] = await Promise.all([
      cli(["--help"]),
      cli(["create-queue", "--help"]),
      cli(["--version"]),
      cli(["--completions", "bash"])
    ])
    for (
      const command of [
        "install",
        "uninstall",
        "check",
        "create-queue",
        "drop-queue",
        "queue-config",
        "register",
        "unregister",
        "insert",
        "failed",
        "delete",
        "retry",
        "event-status",
        "status",
        "ticker",
        "daemon"
      ]
    ) assert.include(ok(help), command)
    assert.include(ok(createHelp), "EXAMPLES")
    assert.include(createHelp.stdout, "--db")
    assert.match(ok(version), /effect-pgq v\d+\.\d+\.\d+/)
    assert.include(ok(completions), "create-queue")
  })

  it("usage errors: one line, exit 2, no help dump", async () => {
    const [missing, unknownFlag, unknownCommand, badId, badCombination] = await Promise.all([
      cli(["create-queue"], { env }),
      cli(["status", "--bogus"], { env }),
      cli(["frobnicate"], { env }),
      cli(["event-status", "12x", "-q", "q"], { env }),
      cli(["uninstall", "--pgq", "-q", "q", "-c", "c"], { env })
    ])
    assertFailure(missing, 2, /create-queue: Missing required flag: --queue/)
    assertFailure(unknownFlag, 2, /--bogus/)
    assertFailure(unknownCommand, 2, /frobnicate/)
    assertFailure(badId, 2, /invalid event id "12x"/)
    assertFailure(badCombination, 2, /--pgq .* cannot be combined with --queue/)
  })

  it("install -q -c, check, register, queue-config, insert, status, event-status, uninstall -q -c", async () => {
    const queue = oddName("cli_q")
    const consumer = oddName("cli_c")
    const installed = ok(await cli(["install", "-q", queue, "-c", consumer], { env }))
    assert.include(installed, `created queue ${JSON.stringify(queue)}`)
    assert.include(installed, `registered consumer ${JSON.stringify(consumer)}`)

    const [again, check, checkJson, missingConsumer, registerAgain] = await Promise.all([
      cli(["install", "-q", queue, "-c", consumer], { env }),
      cli(["check", "-q", queue, "-c", consumer], { env }),
      cli(["check", "-q", queue, "-c", consumer, "--json"], { env }),
      cli(["check", "-q", queue, "-c", "nobody", "--json"], { env }),
      cli(["register", "-q", queue, "-c", consumer], { env })
    ])
    assert.include(ok(again), "already exists")
    assert.include(ok(check), "ok:")
    assert.deepStrictEqual(JSON.parse(ok(checkJson)), {
      ok: true,
      queue,
      queueExists: true,
      consumer,
      consumerRegistered: true
    })
    assert.strictEqual(missingConsumer.code, 1)
    assert.strictEqual(JSON.parse(missingConsumer.stdout).consumerRegistered, false)
    assert.match(missingConsumer.stderr, /consumer "nobody" is not registered/)
    assert.include(ok(registerAgain), "already registered")

    const set = await cli(["queue-config", "-q", queue, "--set", "ticker_max_count=777", "--set", "ticker-max-lag=7 seconds", "--json"], { env })
    const config = JSON.parse(ok(set))
    assert.strictEqual(config.tickerMaxCount, 777)
    assert.strictEqual(config.tickerMaxLagSeconds, 7)

    const one = ok(await cli(["insert", "-q", queue, "--type", "t1", "--data", "d1", "--extra1", "x"], { env }))
    const eventId = /inserted event (\d+)/.exec(one)?.[1]
    assert.isDefined(eventId)
    const lines = Array.from({ length: 1200 }, (_, i) => JSON.stringify({ type: "bulk", data: { i } })).join("\n")
    assert.include(ok(await cli(["insert", "-q", queue], { env, input: lines })), "inserted 1200 events")

    const [status, statusText, eventStatus] = await Promise.all([
      cli(["status", "--json", "-q", queue], { env }),
      cli(["status"], { env }),
      cli(["event-status", eventId!, "-q", queue, "--json"], { env })
    ])
    const doc = JSON.parse(ok(status))
    assert.strictEqual(doc.queues.length, 1)
    assert.strictEqual(doc.queues[0].queue, queue)
    // int8 counts are strings; a ticker of another suite may have ticked the queue already.
    assert.match(doc.queues[0].newEvents, /^\d+$/)
    assert.strictEqual(doc.queues[0].consumers[0].consumer, consumer)
    assert.strictEqual(typeof doc.queues[0].consumers[0].lagSeconds, "number")
    assert.include(ok(statusText), queue)
    assert.deepStrictEqual(JSON.parse(ok(eventStatus)).consumers, [{ consumer, state: "pending", retry: null }])

    // Pending events make unregistering destructive: refused without --yes.
    await db(TestDb.tick(queue).pipe(Effect.asVoid))
    assertFailure(await cli(["uninstall", "-q", queue, "-c", consumer], { env }), 1, /without --yes.*nothing was changed/)
    assert.isTrue(await queueExists(queue))
    const uninstalled = ok(await cli(["uninstall", "-q", queue, "-c", consumer, "--yes"], { env }))
    assert.include(uninstalled, `unregistered consumer ${JSON.stringify(consumer)}`)
    assert.include(uninstalled, `dropped queue ${JSON.stringify(queue)}`)
    assert.isFalse(await queueExists(queue))
    assert.include(ok(await cli(["uninstall", "-q", queue, "-c", consumer], { env })), "nothing to drop")
  })

  it("uninstall -q -c keeps a queue other consumers still use", async () => {
    const queue = TestDb.unique("cli_keep")
    ok(await cli(["install", "-q", queue, "-c", "a"], { env }))
    ok(await cli(["register", "-q", queue, "-c", "b"], { env }))
    const out = ok(await cli(["uninstall", "-q", queue, "-c", "a", "--yes"], { env }))
    assert.include(out, `kept queue ${JSON.stringify(queue)}: "b" still use it`)
    assert.isTrue(await queueExists(queue))
    ok(await cli(["drop-queue", "-q", queue, "--force", "--yes"], { env }))
  })

  it("drop-queue and unregister: consent, --force, unknown names", async () => {
    const queue = oddName("cli_drop")
    ok(await cli(["create-queue", "-q", queue], { env }))
    ok(await cli(["register", "-q", queue, "-c", "c1"], { env }))
    const [noForce, noYes, unknownQueue, unknownConsumer] = await Promise.all([
      cli(["drop-queue", "-q", queue, "--yes"], { env }),
      cli(["drop-queue", "-q", queue, "--force"], { env }),
      cli(["drop-queue", "-q", "no such queue", "--yes"], { env }),
      cli(["unregister", "-q", queue, "-c", "nobody"], { env })
    ])
    assertFailure(noForce, 1, /still has registered consumers.*--force/)
    assertFailure(noYes, 1, /refusing to drop queue .* without --yes/)
    assertFailure(unknownQueue, 1, /queue "no such queue" does not exist/)
    assertFailure(unknownConsumer, 1, /consumer "nobody" is not registered on queue/)
    assert.isTrue(await queueExists(queue))
    assert.include(ok(await cli(["unregister", "-q", queue, "-c", "c1"], { env })), "unregistered consumer")
    assert.include(ok(await cli(["drop-queue", "-q", queue, "--yes"], { env })), "dropped queue")
    assert.isFalse(await queueExists(queue))
  })

  it("insert: a bad line names its number and inserts nothing; unknown queue; unreadable file", async () => {
    const queue = TestDb.unique("cli_ins")
    ok(await cli(["create-queue", "-q", queue], { env }))
    const [bad, notJson, noQueue, noFile] = await Promise.all([
      cli(["insert", "-q", queue], { env, input: `{"type":"a"}\n\n{"data":"no type"}\n` }),
      cli(["insert", "-q", queue], { env, input: `{"type":"a"}\nnot json\n` }),
      cli(["insert", "-q", "missing queue", "--type", "t"], { env }),
      cli(["insert", "-q", queue, "--file", "/nonexistent/events.jsonl"], { env })
    ])
    assertFailure(bad, 1, /stdin, line 3: .*type.*nothing was inserted/)
    assertFailure(notJson, 1, /line 2: .*nothing was inserted/)
    assertFailure(noQueue, 1, /queue "missing queue" does not exist/)
    assertFailure(noFile, 1, /cannot read \/nonexistent\/events.jsonl/)
    const info = await db(Pgq.use((pgq) => pgq.getQueueInfo(queue)))
    assert.strictEqual(info.evNew, 0n)
    const file = Path.join(Os.tmpdir(), `${queue}.jsonl`)
    Fs.writeFileSync(file, `{"type":"a","data":"1"}\n{"type":"b","data":null,"extra4":"x"}\n`)
    assert.include(ok(await cli(["insert", "-q", queue, "-f", file], { env })), "inserted 2 events")
    Fs.rmSync(file)
    ok(await cli(["drop-queue", "-q", queue, "--yes"], { env }))
  })

  it("failed, delete, retry: pages, JSON, consent, unknown ids", async () => {
    const { consumer, queue } = await db(TestDb.queueWithConsumer("cli_failed"))
    await db(Effect.gen(function*() {
      const pgq = yield* Pgq
      for (let i = 0; i < 3; i++) yield* pgq.insertEvent(queue, { type: "t", data: `d${i}` })
      yield* TestDb.tick(queue)
      const batch = yield* pgq.nextBatch(queue, consumer)
      if (batch._tag === "None") return yield* Effect.die("no batch")
      const store = yield* FailedEvents
      for (const event of yield* pgq.getBatchEvents(batch.value)) yield* store.store(queue, consumer, event, "boom")
      yield* pgq.finishBatch(batch.value)
    }))
    const page = JSON.parse(ok(await cli(["failed", "-q", queue, "-c", consumer, "--json", "--limit", "2"], { env })))
    assert.strictEqual(page.total, 3)
    assert.strictEqual(page.events.length, 2)
    assert.strictEqual(typeof page.events[0].id, "string")
    assert.strictEqual(page.events[0].reason, "boom")
    const rest = JSON.parse(ok(await cli(["failed", "-q", queue, "-c", consumer, "--json", "--after", page.nextAfter], { env })))
    assert.strictEqual(rest.events.length, 1)
    const [first, second, third] = [page.events[0].id, page.events[1].id, rest.events[0].id]

    const [text, unknownConsumer, noYes, unknownId] = await Promise.all([
      cli(["failed", "-q", queue, "-c", consumer], { env }),
      cli(["failed", "-q", queue, "-c", "nobody"], { env }),
      cli(["delete", first, "-q", queue, "-c", consumer], { env }),
      cli(["delete", "999999999", "-q", queue, "-c", consumer, "--yes"], { env })
    ])
    assert.include(ok(text), "boom")
    assertFailure(unknownConsumer, 1, /consumer "nobody" is not registered/)
    assertFailure(noYes, 1, /refusing to delete failed event/)
    assertFailure(unknownId, 1, /no failed event 999999999/)
    assert.include(ok(await cli(["delete", first, "-q", queue, "-c", consumer, "--yes"], { env })), "deleted 1 failed event")
    assert.include(ok(await cli(["retry", second, "-q", queue, "-c", consumer], { env })), "re-queued 1 failed event")
    const left = JSON.parse(ok(await cli(["failed", "-q", queue, "-c", consumer, "--json"], { env })))
    assert.deepStrictEqual(left.events.map((e: { id: string }) => e.id), [third])
    assert.include(ok(await cli(["retry", "all", "-q", queue, "-c", consumer], { env })), "re-queued 1 failed event")
    assert.include(ok(await cli(["delete", "all", "-q", queue, "-c", consumer], { env })), "nothing to delete")
    ok(await cli(["drop-queue", "-q", queue, "--force", "--yes"], { env }))
  })

  it("status --nagios: OK with perfdata, CRITICAL over the threshold, UNKNOWN without pgq", async () => {
    const queue = oddName("cli_nagios")
    ok(await cli(["install", "-q", queue, "-c", "watcher"], { env }))
    const [fine, critical] = await Promise.all([
      cli(["status", "--nagios", "-q", queue, "--warning", "600", "--critical", "900"], { env }),
      cli(["status", "--nagios", "-q", queue, "--warning", "0", "--critical", "0"], { env })
    ])
    assert.match(ok(fine), /^PGQ OK - 1 consumer.* \| 'lag_.*'=[\d.]+s;600;900;0/)
    assert.strictEqual(critical.code, 2)
    assert.match(critical.stdout, /^PGQ CRITICAL - /)
    ok(await cli(["drop-queue", "-q", queue, "--force", "--yes"], { env }))
  })

  it("a database without pgq: status and check fail, install needs a superuser for the extension", async () => {
    if (plainUrl === "") return
    const plain = { PGQ_DATABASE_URL: plainUrl }
    const [status, nagios, check] = await Promise.all([
      cli(["status"], { env: plain }),
      cli(["status", "--nagios"], { env: plain }),
      cli(["check", "-q", "q"], { env: plain })
    ])
    assertFailure(status, 1, /pgq extension is not installed.*effect-pgq install/)
    assert.strictEqual(nagios.code, 3)
    assert.match(nagios.stdout, /^PGQ UNKNOWN - the pgq extension is not installed/)
    assertFailure(check, 1, /pgq extension is not installed/)
  })

  it("connection failures: refused, not PostgreSQL, unknown database, bad URL, PG* variables", async () => {
    const garbage = Net.createServer((socket) => socket.end("HTTP/1.1 400 Bad Request\r\n\r\n"))
    await new Promise<void>((resolve) => garbage.listen(0, "127.0.0.1", resolve))
    const port = (garbage.address() as Net.AddressInfo).port
    const target = new URL(url)
    const [refused, notPg, noDb, badUrl, fromPg] = await Promise.all([
      cli(["status", "--db", "postgres://postgres@127.0.0.1:1/x"]),
      cli(["status", "--db", `postgres://postgres@127.0.0.1:${port}/x`]),
      cli(["status", "--db", `postgres://postgres@${target.host}/no_such_db`]),
      cli(["status", "--db", "mysql://localhost/x"]),
      cli(["check", "-q", "no such queue"], {
        env: { PGHOST: target.hostname, PGPORT: target.port, PGUSER: "postgres", PGDATABASE: target.pathname.slice(1) }
      })
    ])
    garbage.close()
    assertFailure(refused, 1, /cannot connect to PostgreSQL: .*127\.0\.0\.1:1.*check --db/)
    assertFailure(notPg, 1, /does not speak PostgreSQL's protocol/)
    assertFailure(noDb, 1, /database "no_such_db" does not exist; check the database name/)
    assertFailure(badUrl, 1, /protocol/)
    assertFailure(fromPg, 1, /check failed: queue "no such queue" does not exist/)
  })

  it("--debug adds the cause with its stack trace", async () => {
    const run = await cli(["status", "--debug", "--db", "postgres://postgres@127.0.0.1:1/x"])
    assert.strictEqual(run.code, 1)
    assert.match(run.stderr, /^effect-pgq: cannot connect/)
    assert.match(run.stderr, /\n\s+at /)
  })
})

describe("effect-pgq command line, as a role that is not a superuser", () => {
  const role = TestDb.unique("cli_role").toLowerCase()
  let hba: { readonly file: string; readonly original: string } | undefined

  beforeAll(async () => {
    await db(SqlClient.SqlClient.use((sql) =>
      sql.unsafe(`create role ${role} login password 'right-password'`)))
    // The throwaway cluster trusts every login; ask this role for its password.
    const [row] = await db(SqlClient.SqlClient.use((sql) => sql<{ hba_file: string }>`show hba_file`))
    if (row !== undefined && Fs.existsSync(row.hba_file) && process.env["PGQ_DATABASE_URL"] === undefined) {
      const original = Fs.readFileSync(row.hba_file, "utf8")
      Fs.writeFileSync(row.hba_file, `host all ${role} 127.0.0.1/32 scram-sha-256\n${original}`)
      hba = { file: row.hba_file, original }
      await db(SqlClient.SqlClient.use((sql) => sql`select pg_reload_conf()`))
    }
  })
  afterAll(async () => {
    if (hba !== undefined) {
      Fs.writeFileSync(hba.file, hba.original)
      await db(SqlClient.SqlClient.use((sql) => sql`select pg_reload_conf()`))
    }
    await db(SqlClient.SqlClient.use((sql) => sql.unsafe(`drop role if exists ${role}`)))
  })

  const as = (password: string, base: string) => {
    const u = new URL(base)
    u.username = role
    u.password = password
    return u.toString()
  }

  it.concurrent("a wrong password, and what the role may not do", async () => {
    const runs = await Promise.all([
      cli(["status", "--db", as("wrong", url)]),
      plainUrl === "" ? Promise.resolve(undefined) : cli(["install", "--db", as("right-password", plainUrl)]),
      cli(["create-queue", "-q", "q", "--db", as("right-password", url)])
    ])
    const [wrong, install, createQueue] = runs
    if (hba !== undefined) assertFailure(wrong, 1, /password authentication failed.*check the password/)
    if (install !== undefined) {
      assertFailure(install, 1, /creating the pgq extension needs a superuser; ask one to run CREATE EXTENSION pgq/)
    }
    assertFailure(createQueue, 1, /permission denied/)
  })
})
