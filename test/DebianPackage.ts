/**
 * Debian packages some suites need beside PostgreSQL (prometheus,
 * python3-pgq): installed when missing and the tests may (root with
 * apt-get), the way the throwaway cluster installs pgq. Returns why a suite
 * must skip, or undefined when the package is there.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"

/**
 * `present` tells whether the package is usable (a file exists, a module
 * imports). Package scripts do not start services (RUNLEVEL=1).
 */
export const ensure = (pkg: string, present: () => boolean): string | undefined => {
  if (present()) return undefined
  if (process.getuid?.() !== 0 || !Fs.existsSync("/usr/bin/apt-get")) {
    return `${pkg} is not installed (Debian: apt-get install ${pkg}) and cannot be installed here (not root, or no apt-get)`
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive", RUNLEVEL: "1" }
  const install = () =>
    ChildProcess.spawnSync("apt-get", ["install", "-y", "-q", "--no-install-recommends", pkg], { env, stdio: "ignore" })
  if (install().status !== 0) {
    // A fresh machine may have no package lists yet.
    ChildProcess.spawnSync("apt-get", ["update", "-q"], { env, stdio: "ignore" })
    if (install().status !== 0) return `apt-get install ${pkg} failed`
  }
  return present() ? undefined : `installed ${pkg} but it is still not usable`
}

/** Debian's Python, where its python3-* packages install (another python3 may come first on PATH). */
export const DEBIAN_PYTHON = "/usr/bin/python3"

/** Skytools' Python client (Debian: python3-pgq): Debian's Python imports `pgq`. */
export const ensureSkytools = (): string | undefined =>
  ensure("python3-pgq", () => ChildProcess.spawnSync(DEBIAN_PYTHON, ["-c", "import pgq"], { stdio: "ignore" }).status === 0)
