/**
 * Runs the built command line (`dist/cli/main.js`) as a subprocess, the way
 * users run it. `ensureBuilt` compiles it first when any source file is newer
 * than the build (CI builds before testing; a local run may not have).
 */
import { spawn, spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"

const REPO = Path.resolve(import.meta.dirname, "..", "..")
const MAIN = Path.join(REPO, "dist", "cli", "main.js")

const newestSource = (dir: string): number =>
  Fs.readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((file) => file.endsWith(".ts"))
    .reduce((max, file) => Math.max(max, Fs.statSync(Path.join(dir, file)).mtimeMs), 0)

export const ensureBuilt = (): void => {
  const built = Fs.existsSync(MAIN) ? Fs.statSync(MAIN).mtimeMs : 0
  if (built >= newestSource(Path.join(REPO, "src"))) return
  const tsc = Path.join(REPO, "node_modules", "typescript", "bin", "tsc")
  const result = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: REPO, encoding: "utf8" })
  if (result.status !== 0) throw new Error(`npm run build failed:\n${result.stdout}${result.stderr}`)
}

export interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

export interface RunOptions {
  /** Written to stdin, which is then closed; stdin is never a terminal. */
  readonly input?: string
  /** The environment besides PATH and HOME; PGQ_DATABASE_URL and PG* only when given here. */
  readonly env?: Record<string, string>
}

export const cli = (args: ReadonlyArray<string>, options: RunOptions = {}): Promise<Run> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd: REPO,
      env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "", ...options.env },
      stdio: ["pipe", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(options.input ?? "")
  })
