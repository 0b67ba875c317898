/**
 * `effect-pgq job create|status|list|clean`, run as the built command line
 * against the test database; status events are appended in-process, as a
 * worker would.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, ManagedRuntime } from "effect"
import { JobId } from "../../src/tracker/Job.ts"
import { Tracker } from "../../src/tracker/Tracker.ts"
import { cli, ensureBuilt, type Run } from "../cli/runCli.ts"
import * as TestDb from "../TestDb.ts"
import { drain, pgLayer } from "./TrackerHelpers.ts"

const env = { PGQ_DATABASE_URL: TestDb.url }
const runtime = ManagedRuntime.make(pgLayer(2))

const ok = (run: Run) => {
  assert.strictEqual(run.code, 0, `stderr: ${run.stderr}`)
  return run.stdout
}

const failsWith = (run: Run, code: number, pattern: RegExp) => {
  assert.strictEqual(run.code, code, `exit code; stderr: ${run.stderr}`)
  assert.strictEqual(run.stdout, "")
  assert.strictEqual(run.stderr.trimEnd().split("\n").length, 1, `one line: ${run.stderr}`)
  assert.match(run.stderr, pattern)
}

describe("effect-pgq job", () => {
  beforeAll(async () => {
    ensureBuilt()
    await runtime.runPromise(Effect.void)
  }, 300_000)
  afterAll(() => runtime.dispose())

  it("create, status, list, clean, with --json", async () => {
    const { queue, consumer } = await runtime.runPromise(TestDb.queueWithConsumer("jobcli"))
    const name = TestDb.unique("cli_images")
    const created = JSON.parse(ok(
      await cli(
        ["job", "create", name, "download_0", "download_1", "resize 'q'", "--follow-up-queue", queue, "--follow-up-data", "{\"u\":1}", "--json"],
        { env }
      )
    )) as { id: string; components: number; followUp: { queue: string; type: string; data: string } }
    assert.strictEqual(created.components, 3)
    assert.deepStrictEqual(created.followUp, { queue, type: "job.finished", data: "{\"u\":1}" })
    const id = JobId.make(BigInt(created.id))

    const pending = ok(await cli(["job", "status", created.id], { env }))
    assert.match(pending, new RegExp(`^job ${id} \\("${name}"\\): pending; 0 completed, 0 in progress, 3 pending, 0 failed`))
    assert.include(pending, "resize 'q'")

    await runtime.runPromise(Effect.gen(function*() {
      const tracker = yield* Tracker
      yield* tracker.append({ jobId: id, component: "download_0", status: "completed" })
      yield* tracker.append({ jobId: id, component: "download_1", status: "in_progress", message: "50%" })
    }))
    const progress = JSON.parse(ok(await cli(["job", "status", created.id, "--json"], { env }))) as {
      status: string
      counts: Record<string, number>
      components: ReadonlyArray<{ component: string; status: string; message: string | null; seq: string | null }>
    }
    assert.strictEqual(progress.status, "in_progress")
    assert.deepStrictEqual(progress.counts, { pending: 1, in_progress: 1, completed: 1, failed: 0 })
    assert.deepStrictEqual(progress.components.map((c) => [c.component, c.status, c.message]), [
      ["download_0", "completed", ""],
      ["download_1", "in_progress", "50%"],
      ["resize 'q'", "pending", null]
    ])
    assert.isString(progress.components[0]!.seq)

    await runtime.runPromise(Effect.gen(function*() {
      const tracker = yield* Tracker
      yield* tracker.appendMany(["download_1", "resize 'q'"].map((component) => ({ jobId: id, component, status: "completed" as const })))
    }))
    const done = ok(await cli(["job", "status", created.id], { env }))
    assert.match(done, /: completed; 3 completed, 0 in progress, 0 pending, 0 failed; finished completed at .*, follow-up event \d+/)
    assert.strictEqual(done.trimEnd().split("\n").length, 1, "no table when every component is completed")
    assert.lengthOf(await runtime.runPromise(drain(queue, consumer)), 1)

    const listed = JSON.parse(ok(await cli(["job", "list", "--name", name, "--finished", "yes", "--json"], { env }))) as {
      jobs: ReadonlyArray<{ id: string; finished: { status: string } | null }>
      nextAfter: string | null
    }
    assert.deepStrictEqual(listed.jobs.map((j) => [j.id, j.finished?.status]), [[created.id, "completed"]])
    assert.isNull(listed.nextAfter)
    const table = ok(await cli(["job", "list", "--name", name], { env }))
    assert.match(table, /^ID\s+NAME\s+COMPONENTS\s+CREATED\s+FINISHED\n/)

    const kept = JSON.parse(ok(await cli(["job", "clean", "--older-than", "1h", "--name", name, "--json"], { env })))
    assert.deepStrictEqual(kept, { deleted: 0 })
    await new Promise((resolve) => setTimeout(resolve, 20))
    assert.strictEqual(ok(await cli(["job", "clean", "--older-than", "0s", "--name", name], { env })).trim(), "deleted 1 job with their status events")
    failsWith(await cli(["job", "status", created.id], { env }), 1, /job \d+ does not exist \(or was cleaned\)/)
  })

  it("bad input: one line and a non-zero exit", async () => {
    failsWith(await cli(["job", "status", "abc"], { env }), 2, /job id must be a positive integer/)
    failsWith(await cli(["job", "clean", "--older-than", "soon"], { env }), 2, /--older-than must be like/)
    failsWith(await cli(["job", "create", "x", "a", "a"], { env }), 1, /"a" is listed twice/)
    failsWith(
      await cli(["job", "create", "x", "a", "--follow-up-queue", TestDb.unique("missing")], { env }),
      1,
      /queue "missing_.*" does not exist/
    )
  })
})
