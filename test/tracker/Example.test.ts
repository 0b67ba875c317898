/**
 * Seed 003's example (examples/tracker/images.ts) runs as its reader would
 * run it, on the test database, and tells the story it claims: nothing is
 * notified before the last block is resized, then exactly one notification.
 */
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import * as Path from "node:path"
import { inject } from "vitest"

const url = inject("pgqDatabaseUrl")
const root = Path.resolve(import.meta.dirname, "../..")

describe("examples/tracker", () => {
  it.live("images.ts: download, resize, then one notification from the follow-up event", () =>
    Effect.scoped(Effect.gen(function*() {
      const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
      const handle = yield* spawner.spawn(ChildProcess.make(process.execPath, ["examples/tracker/images.ts"], {
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
      const transcript = `exit code ${exitCode}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`
      assert.strictEqual(exitCode, 0, transcript)
      const lines = stdout.split("\n").filter((l) => l !== "")
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
      assert.strictEqual(lines.length, expected.length, transcript)
      expected.forEach((pattern, i) => assert.match(lines[i]!, pattern, transcript))
      assert.strictEqual(pattern(lines[0]!, expected[0]!), pattern(lines[5]!, expected[5]!))
    }).pipe(Effect.timeout("60 seconds"), Effect.provide(NodeServices.layer))))
})

const pattern = (line: string, re: RegExp) => re.exec(line)?.[1]
