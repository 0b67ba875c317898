/**
 * Debian's Chromium for the browser tests, driven by playwright-core. The
 * browser comes from apt, never from a download: when it is missing and we
 * run as root with apt (CI), it is installed; otherwise the tests are skipped
 * with the reason printed.
 */
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { type Browser, chromium } from "playwright-core"

const EXECUTABLE = "/usr/bin/chromium"

/** Screenshots of the browser tests (git-ignored). */
export const ARTIFACTS = Path.resolve(import.meta.dirname, "..", "..", ".pgq", "artifacts", "console")

const apt = (args: ReadonlyArray<string>) =>
  new Promise<{ readonly ok: boolean; readonly stderr: string }>((resolve) =>
    execFile(
      "apt-get",
      args,
      { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" }, maxBuffer: 64 * 1024 * 1024 },
      (error, _stdout, stderr) => resolve({ ok: error === null, stderr })
    )
  )

/** Installs Debian's chromium when missing and we may; the reason when we may not. */
export const ensureChromium = async (): Promise<{ readonly executable: string } | { readonly skip: string }> => {
  if (Fs.existsSync(EXECUTABLE)) return { executable: EXECUTABLE }
  if (process.getuid?.() !== 0 || !Fs.existsSync("/usr/bin/apt-get")) {
    return { skip: `${EXECUTABLE} is missing; install it with 'sudo apt-get install chromium' to run the browser tests` }
  }
  const install = ["install", "-y", "-q", "--no-install-recommends", "chromium", "fonts-dejavu-core"]
  // A fresh machine may have no package lists yet: refresh them once and try again.
  if (!(await apt(install)).ok) {
    await apt(["update", "-q"])
    const second = await apt(install)
    if (!second.ok) return { skip: `apt-get install chromium failed: ${second.stderr.trim().split("\n").pop()}` }
  }
  return Fs.existsSync(EXECUTABLE) ? { executable: EXECUTABLE } : { skip: `installed chromium but ${EXECUTABLE} is missing` }
}

export const launch = (executable: string): Promise<Browser> =>
  chromium.launch({
    executablePath: executable,
    headless: true,
    // As root (CI) Chromium's sandbox cannot start.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
  })

export const screenshotPath = (name: string): string => {
  Fs.mkdirSync(ARTIFACTS, { recursive: true })
  return Path.join(ARTIFACTS, `${name}.png`)
}
