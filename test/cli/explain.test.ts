import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import { ConsumerNotRegistered, PgqNotInstalled, PgqSqlError, QueueNotFound } from "../../src/api/PgqError.ts"
import { failure, usage } from "../../src/cli/admin/CliFailure.ts"
import { explain } from "../../src/cli/admin/explain.ts"
import { parseLines } from "../../src/cli/admin/Insert.ts"
import * as Nagios from "../../src/cli/admin/Nagios.ts"

const sqlError = (sqlState: string | undefined, detail: string, cause: unknown = undefined) =>
  new PgqSqlError({ operation: "Installer.install", sqlState, detail, isRetryable: false, cause })

describe("explain", () => {
  it("says what to do for the server's refusals", () => {
    assert.match(
      explain(sqlError("42501", 'permission denied to create extension "pgq"'))!.message,
      /needs a superuser; ask one to run CREATE EXTENSION pgq/
    )
    assert.match(explain(sqlError("28P01", 'password authentication failed for user "x"'))!.message, /check the password/)
    assert.match(explain(sqlError("3D000", 'database "x" does not exist'))!.message, /check the database name/)
    assert.match(explain(sqlError("42501", "permission denied for database shop"))!.message, /GRANT CREATE ON DATABASE/)
  })

  it("reads socket codes and protocol garbage when no server answered", () => {
    const refused = sqlError(undefined, "connect ECONNREFUSED 127.0.0.1:1", {
      reason: { cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }) }
    })
    assert.match(explain(refused)!.message, /cannot connect to PostgreSQL: ECONNREFUSED 127\.0\.0\.1:1; is the server running/)
    assert.match(
      explain(sqlError(undefined, "Message length 1414811695 exceeds maxMessageSize 16777216"))!.message,
      /does not speak PostgreSQL's protocol/
    )
  })

  it("names the object and the next command; keeps exit codes", () => {
    assert.match(explain(new QueueNotFound({ operation: "x", queue: "o'q" }))!.message, /queue "o'q" does not exist; .*create-queue/)
    assert.match(
      explain(new ConsumerNotRegistered({ operation: "x", queue: "q", consumer: "c" }))!.message,
      /effect-pgq register/
    )
    assert.match(explain(new PgqNotInstalled({ operation: "x", detail: 'schema "effect_pgq" does not exist' }))!.message, /effect-pgq's schema/)
    assert.deepStrictEqual(explain(usage("bad")), { message: "bad", exitCode: 2 })
    assert.deepStrictEqual(explain(failure("no")), { message: "no", exitCode: 1 })
    assert.isUndefined(explain(new Error("surprise")))
  })
})

describe("Nagios.evaluate", () => {
  const queues = [{ queue: "q", tickerLagSeconds: 0.5 }]
  const reading = (lagSeconds: number) => [{ queue: "q", consumer: "it's", lagSeconds, pendingEvents: 3n }]
  it("OK, WARNING and CRITICAL by lag, with perfdata", () => {
    const t = { warning: 60, critical: 300 }
    const ok = Nagios.evaluate(queues, reading(1.5), t)
    assert.strictEqual(ok.exitCode, 0)
    assert.strictEqual(
      ok.line,
      "PGQ OK - 1 consumer, max lag 1.5 s (q/it's) | 'lag_q_it''s'=1.5s;60;300;0 'pending_q_it''s'=3;;;0 'ticker_lag_q'=0.5s;;;0"
    )
    assert.strictEqual(Nagios.evaluate(queues, reading(60), t).exitCode, 1)
    assert.match(Nagios.evaluate(queues, reading(301), t).line, /^PGQ CRITICAL - q\/it's lag 301 s/)
    assert.deepStrictEqual(Nagios.unknown("down"), { exitCode: 3, line: "PGQ UNKNOWN - down" })
  })
})

describe("insert's JSON lines", () => {
  it("data as text or JSON, blank lines skipped, the first bad line named", () => {
    const parsed = parseLines('{"type":"a","data":{"x":1}}\n\n{"type":"b","data":"s","extra2":"e"}\n')
    assert.deepStrictEqual(Result.getOrThrow(parsed), [
      { type: "a", data: '{"x":1}' },
      { type: "b", data: "s", extra2: "e" }
    ])
    const bad = parseLines('{"type":"a"}\n{"type":1}\n')
    assert.isTrue(Result.isFailure(bad) && bad.failure.startsWith("line 2: "))
  })
})
