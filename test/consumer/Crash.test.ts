/**
 * The crash harness: a child process applies a queue's events to a table of
 * a remote database and is killed with SIGKILL at random moments, 20 times,
 * each time started again, then let finish. RemoteConsumer and
 * EventRemoteConsumer apply every event exactly once; the plain Consumer,
 * whose handler writes outside its batch's transaction, at least once, with
 * duplicates only from batches in flight when it was killed.
 *
 * CI runs 3,000 events per consumer kind; EFFECT_PGQ_CRASH_FULL=1 runs
 * 20,000.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Random } from "effect"
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import { Installer } from "../../src/api/Installer.ts"
import { Producer } from "../../src/api/Producer.ts"
import * as TestDb from "../TestDb.ts"

const FULL = process.env["EFFECT_PGQ_CRASH_FULL"] === "1"
const EVENTS = FULL ? 20_000 : 3_000
/** Events per tick: the size of a batch. */
const CHUNK = 50
const KILLS = 20
const CHILD = Path.join(import.meta.dirname, "crashChild.ts")
const REPO = Path.resolve(import.meta.dirname, "..", "..")

interface Run {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly output: string
}

/** Starts the child; `killAfter` milliseconds after it says "started", SIGKILL (when it still runs). */
const runChild = (args: ReadonlyArray<string>, killAfter: number | undefined) =>
  Effect.callback<Run & { readonly killed: boolean }>((resume) => {
    const child = ChildProcess.spawn(process.execPath, [CHILD, ...args], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    let killed = false
    let timer: NodeJS.Timeout | undefined
    const keep = (chunk: Buffer) => {
      output += chunk.toString()
      if (killAfter !== undefined && timer === undefined && output.includes("started")) {
        timer = setTimeout(() => {
          if (child.exitCode === null && child.signalCode === null) killed = child.kill("SIGKILL")
        }, killAfter)
      }
    }
    child.stdout.on("data", keep)
    child.stderr.on("data", keep)
    child.on("exit", (code, signal) => {
      if (timer !== undefined) clearTimeout(timer)
      resume(Effect.succeed({ code, signal, output: output.slice(-4000), killed }))
    })
    return Effect.sync(() => void child.kill("SIGKILL"))
  })

/** A fresh remote database with the table the child applies events to. */
const remoteDatabase = Effect.gen(function*() {
  const { url, sql: remote } = yield* TestDb.scratchDatabase("crash")
  yield* remote`create table applied (ev_id bigint not null)`
  return { url, remote }
})

layer(TestDb.servicesLayer, { excludeTestServices: true })("crash harness", (it) => {
  for (const kind of ["remote", "event-remote", "plain"] as const) {
    it.effect(`${kind}: ${EVENTS} events, killed ${KILLS} times with SIGKILL`, () =>
      Effect.gen(function*() {
        yield* (yield* Installer).install
        const { url, remote } = yield* remoteDatabase
        const { queue, consumer } = yield* TestDb.queueWithConsumer(`crash_${kind.replace("-", "_")}`)
        const producer = yield* Producer
        for (let at = 0; at < EVENTS; at += CHUNK) {
          yield* producer.sendMany(queue, Array.from({ length: Math.min(CHUNK, EVENTS - at) }, () => ({ type: "t", data: "x" })))
          yield* TestDb.tick(queue)
        }
        const args = [kind, TestDb.url, url, queue, consumer]

        let killedInFlight = 0
        for (let i = 0; i < KILLS; i++) {
          const run = yield* runChild(args, yield* Random.nextIntBetween(20, 400))
          if (run.killed) killedInFlight++
          else assert.strictEqual(run.code, 0, `the child failed:\n${run.output}`)
        }
        const last = yield* runChild(args, undefined)
        assert.strictEqual(last.code, 0, `the last run failed:\n${last.output}`)

        const [row] = yield* remote<{ readonly n: number; readonly distinct: number }>`
          select count(*)::int as n, count(distinct ev_id)::int as distinct from applied`
        assert.isAtLeast(killedInFlight, KILLS / 2, "most kills landed while the child worked")
        assert.strictEqual(row!.distinct, EVENTS, "every event applied")
        if (kind === "plain") {
          assert.isAtMost(row!.n - row!.distinct, killedInFlight * CHUNK, "duplicates only from batches in flight")
        } else {
          assert.strictEqual(row!.n, EVENTS, "no event applied twice")
        }
      }), { timeout: FULL ? 900_000 : 240_000 })
  }
})
