/**
 * `effect-pgq console` as users run it: it prints the address with the
 * token, serves the console on the CLI's database, and stops on SIGINT.
 */
import { assert, beforeAll, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as Path from "node:path"
import * as TestDb from "../TestDb.ts"
import { ensureBuilt } from "../cli/runCli.ts"

const MAIN = Path.resolve(import.meta.dirname, "..", "..", "dist", "cli", "main.js")

beforeAll(() => ensureBuilt())

it("prints the address with its token, serves the console, stops on SIGINT", async () => {
  const child = spawn(process.execPath, [MAIN, "console", "--port", "0"], {
    env: { PATH: process.env["PATH"] ?? "", PGQ_DATABASE_URL: TestDb.url },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
      const found = /effect-pgq console on (\S+)/.exec(stdout)
      if (found !== null) resolve(found[1]!)
    })
    child.on("close", (code) => reject(new Error(`exited with ${code} before serving: ${stderr}`)))
  })
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/console\/#token=[\w-]{32}$/)
  const page = await fetch(url.replace(/#.*$/, ""))
  assert.strictEqual(page.status, 200)
  assert.include(await page.text(), "<h2>Consumers</h2>")
  const refused = await fetch(new URL("api/retry", url), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ queue: "q", consumer: "c", target: "all" })
  })
  assert.strictEqual(refused.status, 401)
  const code = await new Promise<number | null>((resolve) => {
    child.on("close", resolve)
    child.kill("SIGINT")
  })
  assert.strictEqual(code, 130, stderr)
})
