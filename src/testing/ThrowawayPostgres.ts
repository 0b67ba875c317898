/**
 * A throwaway PostgreSQL cluster with the PgQ extension, for tests, demos and
 * benchmarks on a machine without Docker.
 *
 * The cluster lives in a git-ignored folder (`.pgq/` under the working
 * directory), listens on a free loopback port, and is stopped and removed when
 * the scope closes. Clusters left behind by a process that died are cleaned up
 * by the next start. When the pgq extension is missing and the process runs as
 * root on a Debian-like system, the Debian package is installed first.
 *
 * @since 0.1.0
 */
import { Effect, FileSystem, Path, Predicate, Schema, Scope, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import * as Net from "node:net"
import * as Os from "node:os"

/**
 * Why the throwaway cluster could not be started or used.
 *
 * @since 0.1.0
 * @category errors
 */
export class ThrowawayPostgresError extends Schema.TaggedError<ThrowawayPostgresError>()(
  "ThrowawayPostgresError",
  {
    step: Schema.String,
    message: Schema.String
  }
) {}

/**
 * A running cluster.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunningPostgres {
  readonly host: string
  readonly port: number
  readonly user: string
  readonly dataDir: string
  /** Connection URL of a database in this cluster. */
  readonly url: (database: string) => string
  /** Runs `psql` against a database of the cluster and returns its output. */
  readonly psql: (database: string, sql: string) => Effect.Effect<string, ThrowawayPostgresError>
  /**
   * Creates a database (name: lower-case letters, digits and `_`) and, unless
   * `pgq: false`, installs the pgq extension in it. Returns its URL.
   */
  readonly createDatabase: (
    name: string,
    options?: { readonly pgq?: boolean }
  ) => Effect.Effect<string, ThrowawayPostgresError>
}

const POSTGRES_USER = "postgres"
const HOST = "127.0.0.1"
const DATABASE_NAME = /^[a-z_][a-z0-9_]{0,62}$/

const fail = (step: string, message: string) => new ThrowawayPostgresError({ step, message })

/**
 * Starts a throwaway cluster; it is stopped and deleted when the scope closes.
 *
 * ```ts
 * import { NodeServices } from "@effect/platform-node"
 * import { PgClient } from "@effect/sql-pg"
 * import { Effect, Layer, Redacted } from "effect"
 * import { ThrowawayPostgres } from "effect-pgq/testing"
 *
 * // A client on a fresh database with pgq; the cluster goes with the layer.
 * const database = Layer.unwrap(
 *   Effect.gen(function*() {
 *     const cluster = yield* ThrowawayPostgres.start()
 *     const url = yield* cluster.createDatabase("shop")
 *     yield* cluster.psql("shop", "create table orders (id int primary key, email text not null)")
 *     return PgClient.layer({ url: Redacted.make(url) })
 *   })
 * ).pipe(Layer.provide(NodeServices.layer))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = Effect.fn("ThrowawayPostgres.start")(function*(options?: {
  /** Folder that holds the clusters. Defaults to `.pgq` in the working directory. */
  readonly baseDir?: string
}): Effect.fn.Return<
  RunningPostgres,
  ThrowawayPostgresError,
  Scope.Scope | ChildProcessSpawner.ChildProcessSpawner | FileSystem.FileSystem | Path.Path
> {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
  const isRoot = process.getuid?.() === 0

  /** Runs a command to completion; a non-zero exit becomes a typed error carrying its output. */
  const run = (step: string, command: string, args: ReadonlyArray<string>, env?: Record<string, string>) =>
    Effect.scoped(Effect.gen(function*() {
      const handle = yield* spawner.spawn(
        ChildProcess.make(command, args, { env: env ?? {}, extendEnv: true, stdin: "ignore" })
      )
      const [output, exitCode] = yield* Effect.all([
        handle.all.pipe(Stream.decodeText(), Stream.mkString),
        handle.exitCode
      ], { concurrency: 2 })
      if (exitCode !== 0) {
        return yield* fail(step, `${command} ${args.join(" ")} exited with ${exitCode}:\n${output.trim()}`)
      }
      return output
    })).pipe(
      Effect.catchTag("PlatformError", (error) => Effect.fail(fail(step, `${command}: ${error.message}`)))
    )

  /** PostgreSQL refuses to run as root: as root, its commands run as the `postgres` user. */
  const runPg = (step: string, binary: string, args: ReadonlyArray<string>) =>
    isRoot ? run(step, "runuser", ["-u", POSTGRES_USER, "--", binary, ...args]) : run(step, binary, args)

  const bindir = yield* findBindir(fs, path, run)
  const sharedir = (yield* run("pg_config", path.join(bindir, "pg_config"), ["--sharedir"]).pipe(
    Effect.map((out) => out.trim()),
    Effect.orElseSucceed(() => "")
  )) || path.join("/usr/share/postgresql", yield* majorVersion(bindir, path, run))
  yield* ensurePgqExtension({ fs, path, run, bindir, sharedir, isRoot })

  const baseDir = yield* chooseBaseDir(options?.baseDir ?? path.join(process.cwd(), ".pgq"), {
    fs,
    run,
    isRoot
  })
  yield* removeAbandonedClusters(baseDir, { fs, path, runPg, bindir })

  const dataDir = path.join(baseDir, `cluster-${process.pid}-${Math.random().toString(36).slice(2, 8)}`)
  const mapFs = Effect.mapError((error: { readonly message: string }) => fail("data directory", error.message))
  yield* fs.makeDirectory(dataDir, { recursive: true, mode: 0o700 }).pipe(mapFs)
  if (isRoot) yield* run("chown", "chown", [POSTGRES_USER, dataDir])

  const port = yield* freePort
  const pgCtl = path.join(bindir, "pg_ctl")
  const stopAndRemove = runPg("pg_ctl stop", pgCtl, ["stop", "-D", dataDir, "-m", "immediate", "-w"]).pipe(
    Effect.ignore,
    Effect.andThen(fs.remove(dataDir, { recursive: true }).pipe(Effect.ignore))
  )
  yield* Effect.addFinalizer(() => stopAndRemove)

  yield* runPg("initdb", path.join(bindir, "initdb"), [
    "-D",
    dataDir,
    "-U",
    POSTGRES_USER,
    "--auth=trust",
    "--encoding=UTF8",
    "--locale=C",
    "--no-sync",
    "--no-instructions"
  ])
  yield* runPg("pg_ctl start", pgCtl, [
    "start",
    "-D",
    dataDir,
    "-w",
    "-t",
    "60",
    "-l",
    path.join(dataDir, "postgres.log"),
    "-o",
    [
      `-p ${port}`,
      `-c listen_addresses=${HOST}`,
      "-c unix_socket_directories=''",
      // A throwaway cluster needs no durability; this keeps tests and benchmarks off the disk.
      "-c fsync=off",
      "-c synchronous_commit=off",
      "-c full_page_writes=off",
      "-c max_connections=200"
    ].join(" ")
  ])

  const url = (database: string) => `postgres://${POSTGRES_USER}@${HOST}:${port}/${database}`
  const psqlBinary = path.join(bindir, "psql")
  const psql = (database: string, sql: string) =>
    run("psql", psqlBinary, ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url(database), "-c", sql])

  const createDatabase = (name: string, createOptions?: { readonly pgq?: boolean }) =>
    Effect.gen(function*() {
      if (!DATABASE_NAME.test(name)) {
        return yield* fail("create database", `invalid database name ${JSON.stringify(name)}`)
      }
      yield* psql("postgres", `CREATE DATABASE ${name}`)
      if (createOptions?.pgq !== false) yield* psql(name, "CREATE EXTENSION pgq")
      return url(name)
    })

  return { host: HOST, port, user: POSTGRES_USER, dataDir, url, psql, createDatabase }
})

type Run = (
  step: string,
  command: string,
  args: ReadonlyArray<string>,
  env?: Record<string, string>
) => Effect.Effect<string, ThrowawayPostgresError>

/** `initdb` from PATH, else the newest Debian `/usr/lib/postgresql/<major>/bin`. */
const findBindir = (fs: FileSystem.FileSystem, path: Path.Path, run: Run) =>
  Effect.gen(function*() {
    const fromPath = yield* run("which initdb", "sh", ["-c", "command -v initdb"]).pipe(
      Effect.map((out) => out.trim()),
      Effect.orElseSucceed(() => "")
    )
    if (fromPath !== "") {
      const real = yield* fs.realPath(fromPath).pipe(Effect.orElseSucceed(() => fromPath))
      return path.dirname(real)
    }
    const versions = yield* fs.readDirectory("/usr/lib/postgresql").pipe(Effect.orElseSucceed(() => []))
    const newest = versions.filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))[0]
    if (newest === undefined) {
      return yield* fail(
        "find PostgreSQL",
        "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH nor in /usr/lib/postgresql/<version>/bin; " +
          "install PostgreSQL 15 (Debian: apt-get install postgresql-15 postgresql-15-pgq3) or set PGQ_DATABASE_URL"
      )
    }
    return path.join("/usr/lib/postgresql", newest, "bin")
  })

const majorVersion = (bindir: string, path: Path.Path, run: Run) =>
  run("initdb --version", path.join(bindir, "initdb"), ["--version"]).pipe(
    Effect.map((out) => /(\d+)(\.\d+)?/.exec(out)?.[1] ?? "15")
  )

/** Installs Debian's pgq package when the extension is missing and we may; otherwise says what to install. */
const ensurePgqExtension = (options: {
  readonly fs: FileSystem.FileSystem
  readonly path: Path.Path
  readonly run: Run
  readonly bindir: string
  readonly sharedir: string
  readonly isRoot: boolean
}) =>
  Effect.gen(function*() {
    const { fs, path, run, bindir, sharedir, isRoot } = options
    const control = path.join(sharedir, "extension", "pgq.control")
    const present = fs.exists(control).pipe(Effect.orElseSucceed(() => false))
    if (yield* present) return
    const major = yield* majorVersion(bindir, path, run)
    const packages = [`postgresql-${major}-pgq3`, "pgqd"]
    const hasApt = yield* fs.exists("/usr/bin/apt-get").pipe(Effect.orElseSucceed(() => false))
    if (!isRoot || !hasApt) {
      return yield* fail(
        "pgq extension",
        `the pgq extension is not installed (${control} is missing); install it with ` +
          `'sudo apt-get install ${packages.join(" ")}' or point PGQ_DATABASE_URL at a database that has it`
      )
    }
    yield* Effect.logInfo(`installing ${packages.join(" ")} (the pgq extension is missing)`)
    const env = { DEBIAN_FRONTEND: "noninteractive" }
    const install = run("apt-get install", "apt-get", ["install", "-y", "-q", ...packages], env)
    // A fresh machine may have no package lists yet: refresh them once and try again.
    yield* install.pipe(
      Effect.catch(() => run("apt-get update", "apt-get", ["update", "-q"], env).pipe(Effect.andThen(install)))
    )
    if (!(yield* present)) {
      return yield* fail("pgq extension", `installed ${packages.join(" ")} but ${control} is still missing`)
    }
  })

/** The cluster folder must be writable by the `postgres` user when we run as root. */
const chooseBaseDir = (
  preferred: string,
  options: { readonly fs: FileSystem.FileSystem; readonly run: Run; readonly isRoot: boolean }
) =>
  Effect.gen(function*() {
    const { fs, run, isRoot } = options
    const prepare = (dir: string) =>
      Effect.gen(function*() {
        yield* fs.makeDirectory(dir, { recursive: true }).pipe(
          Effect.mapError((error) => fail("data directory", error.message))
        )
        if (isRoot) {
          yield* run("chown", "chown", [POSTGRES_USER, dir])
          yield* run("access check", "runuser", ["-u", POSTGRES_USER, "--", "test", "-w", dir])
        }
        return dir
      })
    return yield* prepare(preferred).pipe(
      Effect.catch(() => prepare(`${Os.tmpdir()}/effect-pgq-${process.getuid?.() ?? "user"}`))
    )
  })

/** Stops and removes clusters whose owning process (its pid is in the folder name) is gone. */
const removeAbandonedClusters = (
  baseDir: string,
  options: {
    readonly fs: FileSystem.FileSystem
    readonly path: Path.Path
    readonly runPg: (step: string, binary: string, args: ReadonlyArray<string>) => Effect.Effect<string, unknown>
    readonly bindir: string
  }
) =>
  Effect.gen(function*() {
    const { fs, path, runPg, bindir } = options
    const entries = yield* fs.readDirectory(baseDir).pipe(Effect.orElseSucceed(() => []))
    for (const entry of entries) {
      const pid = Number(/^cluster-(\d+)-/.exec(entry)?.[1])
      if (!Number.isInteger(pid) || (yield* isAlive(pid))) continue
      const dir = path.join(baseDir, entry)
      yield* runPg("pg_ctl stop", path.join(bindir, "pg_ctl"), ["stop", "-D", dir, "-m", "immediate"]).pipe(
        Effect.ignore
      )
      yield* fs.remove(dir, { recursive: true }).pipe(Effect.ignore)
    }
  })

/** Signal 0 only asks whether the process exists; EPERM means it does, as another user's. */
const isAlive = (pid: number): Effect.Effect<boolean> =>
  Effect.try(() => process.kill(pid, 0)).pipe(
    Effect.as(true),
    Effect.catch((error) =>
      Effect.succeed(Predicate.hasProperty(error.cause, "code") && error.cause.code === "EPERM")
    )
  )

const freePort = Effect.callback<number, ThrowawayPostgresError>((resume) => {
  const server = Net.createServer()
  server.once("error", (error) => resume(Effect.fail(fail("free port", error.message))))
  server.listen(0, HOST, () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})
