/**
 * The examples are documentation that runs: each one is run as its reader
 * would run it, on the project's Node with the test database in
 * PGQ_DATABASE_URL, and what it prints is checked, so an example that starts
 * telling a different story fails CI, not only one that crashes.
 */
import { NodeServices } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Redacted, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import { SqlClient } from "effect/sql"
import * as Path from "node:path"
import { inject } from "vitest"

const url = inject("pgqDatabaseUrl")
const root = Path.resolve(import.meta.dirname, "../..")

interface Output {
  readonly pid: number
  readonly exitCode: number
  readonly lines: ReadonlyArray<string>
  readonly stderr: string
}

/** Runs `examples/<name>` to its end (a minute at most) and collects what it prints. */
const runExample = (name: string): Effect.Effect<Output, unknown> =>
  Effect.scoped(Effect.gen(function*() {
    const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
    const handle = yield* spawner.spawn(ChildProcess.make(process.execPath, [Path.join("examples", name)], {
      cwd: root,
      env: { PGQ_DATABASE_URL: url },
      extendEnv: true,
      stdin: "ignore"
    }))
    const [stdout, stderr, exitCode] = yield* Effect.all([
      handle.stdout.pipe(Stream.decodeText(), Stream.mkString),
      handle.stderr.pipe(Stream.decodeText(), Stream.mkString),
      handle.exitCode
    ], { concurrency: 3 })
    return { pid: handle.pid, exitCode, lines: stdout.split("\n").filter((line) => line !== ""), stderr }
  })).pipe(
    Effect.timeout("60 seconds"),
    Effect.provide(NodeServices.layer)
  )

const transcript = (output: Output) =>
  `exit code ${output.exitCode}\n--- stdout\n${output.lines.join("\n")}\n--- stderr\n${output.stderr}`

/** The lines matching `pattern`, with their captures. */
const matching = (output: Output, pattern: RegExp): Array<RegExpExecArray> =>
  output.lines.flatMap((line) => {
    const match = pattern.exec(line)
    return match === null ? [] : [match]
  })

/** The one line matching `pattern`; fails with the whole transcript otherwise. */
const lineMatching = (output: Output, pattern: RegExp): RegExpExecArray => {
  const found = matching(output, pattern)
  assert.lengthOf(found, 1, `one line matching ${pattern}:\n${transcript(output)}`)
  return found[0]!
}

/** Whether the example left its queue behind on the shared test database. */
const queueExists = (queue: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ readonly n: number }>`select count(*)::int as n from pgq.queue where queue_name = ${queue}`
    return (rows[0]?.n ?? 0) > 0
  }).pipe(Effect.provide(Layer.fresh(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 }))))

describe("examples", () => {
  it.live("demo.ts produces, consumes every kind of result, lists failures and retries", () =>
    Effect.gen(function*() {
      const output = yield* runExample("demo.ts")
      assert.strictEqual(output.exitCode, 0, transcript(output))

      lineMatching(output, /^installed pgq \d+\.\d+ and effect-pgq schema v\d+$/)
      const queue = lineMatching(output, /^queue "(\w+)" with consumer "mailer"$/)[1]!
      lineMatching(output, /^produced 1002 events in one transaction/)

      // 1000 orders and 2 bad events: order 7 asks for a retry, the bad ones fail.
      lineMatching(output, /^first pass: [1-9]\d* batch\(es\), 1002 events: 999 ok, 1 retried, 2 failed$/)
      const failed = matching(output, /^ {2}failed event (\d+) \(([\w.]+)\): (.+)$/)
      assert.deepStrictEqual(
        failed.map(([, , type, reason]) => [type, reason]),
        [
          ["order.placed", "cannot decode the payload of event type \"order.placed\": Expected number"],
          ["order.refunded", "no handler for event type \"order.refunded\""]
        ],
        transcript(output)
      )
      const statusOf = lineMatching(output, /^ {2}status of event (\d+): mailer=failed$/)[1]
      assert.strictEqual(statusOf, failed[0]?.[1], "the status shown is the first failed event's")

      // The retried order comes back alone, and succeeds.
      lineMatching(output, /^second pass \(order 7 retried\): [1-9]\d* batch\(es\), 1 events: 1 ok, 0 retried, 0 failed$/)
      lineMatching(output, /^deleted 2 failed event\(s\) from the store$/)
      lineMatching(output, /^consumer "mailer" is at tick \d+, no batch open: true$/)

      assert.isFalse(yield* queueExists(queue), `the demo drops its queue ${queue}`)
    }))

  // mailer.ts runs its consumer until three orders are mailed, then stops it.
  it.live("mailer.ts mails each order once and stops", () =>
    Effect.gen(function*() {
      const output = yield* runExample("mailer.ts")
      assert.strictEqual(output.exitCode, 0, transcript(output))

      const mailed = matching(output, /^ {2}mail sent to (\S+)$/).map(([, email]) => email).sort()
      assert.deepStrictEqual(
        mailed,
        ["customer1@example.com", "customer2@example.com", "customer3@example.com"],
        transcript(output)
      )
      assert.strictEqual(output.lines.at(-1), "mailer stopped after 3 orders", transcript(output))

      assert.isFalse(yield* queueExists(`orders_${output.pid}`), "the mailer drops its queue")
    }))

  // Seed 003's example: nothing is notified before the last block is resized, then exactly one notification.
  it.live("tracker/images.ts: download, resize, then one notification from the follow-up event", () =>
    Effect.gen(function*() {
      const output = yield* runExample("tracker/images.ts")
      assert.strictEqual(output.exitCode, 0, transcript(output))
      const expected = [
        /^job (\d+) created with 20 components, follow-up to notify_\d+$/,
        /^after downloading: in_progress \(completed 10, in_progress 0, pending 10, failed 0\)$/,
        /^notifications so far: 0$/,
        /^after resizing: completed \(completed 20, in_progress 0, pending 0, failed 0\)$/,
        /^download_0 newest: completed \(seq \d+\)$/,
        /^notify user@example\.com: job (\d+) completed$/,
        /^notifications: 1$/,
        /^cleaned 1 finished job\(s\)$/
      ]
      assert.strictEqual(output.lines.length, expected.length, transcript(output))
      expected.forEach((pattern, i) => assert.match(output.lines[i]!, pattern, transcript(output)))
      const created = lineMatching(output, expected[0]!)[1]
      assert.strictEqual(lineMatching(output, expected[5]!)[1], created, "the notification is the created job's")
    }))
})
