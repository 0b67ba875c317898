/**
 * The daemon's logger: level filtering and `logmore` / `logless` (seen by
 * fibers forked before the change), the text and JSON lines, redaction of
 * passwords, and `reopen` after logrotate's rename losing no line.
 */
import { assert, describe, it, vi } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Option, Redacted, Schema, Stream } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import {
  DaemonLogger,
  type DaemonLoggerOptions,
  LogFormat,
  LogLevelName,
  redactSecrets
} from "../../src/daemon/Logger.ts"

/** A fresh directory, removed with the test's scope. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-pgq-logger-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

/** Runs `program` with the logger installed; the file is closed (all lines written) when it returns. */
const withLogger = <A, E>(options: DaemonLoggerOptions, program: Effect.Effect<A, E, DaemonLogger>) =>
  program.pipe(Effect.provide(DaemonLogger.layer({ stderr: false, ...options })))

const lines = (file: string) =>
  Effect.sync(() => Fs.readFileSync(file, "utf8").split("\n").filter((line) => line !== ""))

const logEveryLevel = Effect.gen(function*() {
  yield* Effect.logTrace("trace")
  yield* Effect.logDebug("debug")
  yield* Effect.logInfo("info")
  yield* Effect.logWarning("warning")
  yield* Effect.logError("error")
  yield* Effect.logFatal("fatal")
})

/** The level and message of text lines without annotations. */
const levelAndMessage = (line: string) => line.split(" ").slice(1).join(" ")

describe("DaemonLogger", () => {
  it.live("prints Effect's levels under the daemon's names, from the minimum up", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const notice = Path.join(dir, "notice.log")
      const debug = Path.join(dir, "debug.log")
      yield* withLogger({ file: notice }, logEveryLevel)
      yield* withLogger({ file: debug, level: "DEBUG" }, logEveryLevel)
      assert.deepStrictEqual((yield* lines(notice)).map(levelAndMessage), [
        "NOTICE info",
        "WARNING warning",
        "ERROR error",
        "FATAL fatal"
      ])
      assert.deepStrictEqual((yield* lines(debug)).map(levelAndMessage), [
        "DEBUG trace",
        "VERBOSE debug",
        "NOTICE info",
        "WARNING warning",
        "ERROR error",
        "FATAL fatal"
      ])
    }))

  it.live("more and less move one step and stop at DEBUG and FATAL", () =>
    withLogger(
      {},
      Effect.gen(function*() {
        const logger = yield* DaemonLogger
        assert.strictEqual(yield* logger.level, "NOTICE")
        assert.deepStrictEqual(yield* Stream.runHead(logger.levelChanges), Option.some("NOTICE"))
        const steps = []
        for (let i = 0; i < 3; i++) steps.push(yield* logger.more)
        assert.deepStrictEqual(steps, ["VERBOSE", "DEBUG", "DEBUG"])
        steps.length = 0
        for (let i = 0; i < 6; i++) steps.push(yield* logger.less)
        assert.deepStrictEqual(steps, ["VERBOSE", "NOTICE", "WARNING", "ERROR", "FATAL", "FATAL"])
        assert.strictEqual(yield* logger.level, "FATAL")
        yield* logger.setLevel("WARNING")
        assert.strictEqual(yield* logger.level, "WARNING")
        assert.isTrue(logger.isEnabled("Warn"))
        assert.isFalse(logger.isEnabled("Info"))
      })
    ))

  it.live("a fiber forked before more / less logs at the new level", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = Path.join(dir, "daemon.log")
      yield* withLogger(
        { file },
        Effect.gen(function*() {
          const logger = yield* DaemonLogger
          const loggedBefore = yield* Deferred.make<void>()
          const loggedAfter = yield* Deferred.make<void>()
          const afterMore = yield* Deferred.make<void>()
          const afterLess = yield* Deferred.make<void>()
          const fiber = yield* Effect.forkChild(Effect.gen(function*() {
            yield* Effect.logDebug("verbose before more")
            yield* Deferred.succeed(loggedBefore, undefined)
            yield* Deferred.await(afterMore)
            yield* Effect.logDebug("verbose after more")
            yield* Deferred.succeed(loggedAfter, undefined)
            yield* Deferred.await(afterLess)
            yield* Effect.logInfo("notice after less")
            yield* Effect.logWarning("warning after less")
          }))
          yield* Deferred.await(loggedBefore)
          yield* logger.more
          yield* Deferred.succeed(afterMore, undefined)
          yield* Deferred.await(loggedAfter)
          yield* logger.less
          yield* logger.less
          yield* Deferred.succeed(afterLess, undefined)
          yield* Fiber.join(fiber)
        })
      )
      assert.deepStrictEqual((yield* lines(file)).map(levelAndMessage), [
        "VERBOSE verbose after more",
        "WARNING warning after less"
      ])
    }))

  it.live("text lines: time, level, annotations as key=value, log spans, message, indented cause", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = Path.join(dir, "daemon.log")
      yield* withLogger(
        { file },
        Effect.gen(function*() {
          yield* Effect.logInfo("batch", "done")
          yield* Effect.logWarning("spaced").pipe(Effect.annotateLogs({ note: "two words", empty: "" }))
          yield* Effect.logError("handler failed", Cause.fail(new Error("boom\nsecond line")))
          yield* Effect.logInfo("timed").pipe(Effect.withLogSpan("fetch"))
        }).pipe(Effect.annotateLogs({ queue: "orders", consumer: "mailer", batchId: 12n }))
      )
      const text = yield* lines(file)
      assert.match(text[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z NOTICE queue=orders consumer=mailer batchId=12 batch done$/)
      assert.match(text[1]!, / WARNING queue=orders consumer=mailer batchId=12 note="two words" empty="" spaced$/)
      assert.match(text[2]!, / ERROR queue=orders consumer=mailer batchId=12 handler failed$/)
      // the cause follows, each of its lines indented
      assert.match(text[3]!, /^ {2}Error: boom$/)
      assert.match(text[4]!, /^ {2}second line/)
      const timed = text.find((line) => line.endsWith(" timed"))
      assert.match(timed!, / NOTICE queue=orders consumer=mailer batchId=12 fetch=\d+ms timed$/)
      for (const line of text) assert.match(line, /^(\d{4}-|  )/)
    }))

  it.live("JSON lines: one object per line with time, level, message, annotations, spans, trace ids, cause", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = Path.join(dir, "daemon.log")
      yield* withLogger(
        { file, format: "json" },
        Effect.gen(function*() {
          yield* Effect.logInfo("batch done", { events: 3 })
          yield* Effect.logError("event failed", Cause.fail(new Error("boom"))).pipe(
            Effect.annotateLogs({ eventId: 7n, level: "shadowed" }),
            Effect.withLogSpan("process"),
            Effect.withSpan("process orders")
          )
        }).pipe(Effect.annotateLogs({ queue: "orders", consumer: "mailer", batchId: 12n }))
      )
      const records = (yield* lines(file)).map((line) => JSON.parse(line) as Record<string, unknown>)
      assert.strictEqual(records.length, 2)
      const [done, failed] = records
      assert.match(String(done!["time"]), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
      assert.deepInclude(done, {
        level: "NOTICE",
        message: "batch done {\"events\":3}",
        queue: "orders",
        consumer: "mailer",
        batchId: "12"
      })
      assert.notProperty(done, "cause")
      assert.deepInclude(failed, {
        level: "ERROR",
        message: "event failed",
        queue: "orders",
        batchId: "12",
        eventId: "7",
        "annotation.level": "shadowed"
      })
      assert.include(String(failed!["cause"]), "boom")
      assert.isNumber((failed!["spans"] as Record<string, unknown>)["process"])
      assert.isString(failed!["traceId"])
      assert.isString(failed!["spanId"])
    }))

  it.live("no password reaches the output, in either format", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const logSecrets = Effect.gen(function*() {
        yield* Effect.logInfo("connecting to postgres://app:s3cret@db.example:5432/pgq?sslmode=require")
        yield* Effect.logInfo("settings", { url: "postgresql://app:s3cret@db/pgq", token: Redacted.make("s3cret") })
        yield* Effect.logInfo("options", { user: "app", password: "s3cret" })
        yield* Effect.logInfo("password", Redacted.make("s3cret"))
        yield* Effect.logWarning("conninfo host=db password=s3cret user=app")
        yield* Effect.logError("connect failed", Cause.fail(new Error("cannot reach postgres://app:s3cret@db/pgq")))
      }).pipe(Effect.annotateLogs({
        database: "postgres://app:s3cret@db/pgq",
        token: Redacted.make("s3cret"),
        dbPassword: "s3cret"
      }))
      for (const format of ["text", "json"] as const) {
        const file = Path.join(dir, `${format}.log`)
        yield* withLogger({ file, format }, logSecrets)
        const content = Fs.readFileSync(file, "utf8")
        assert.notInclude(content, "s3cret", format)
        assert.include(content, "postgres://app:***@db.example:5432/pgq?sslmode=require", format)
        assert.include(content, "password=***", format)
        assert.isAbove(content.split("***").length, 10, format)
      }
    }))

  it("redactSecrets: URL passwords, also with an unescaped @, and password= settings", () => {
    assert.strictEqual(redactSecrets("postgres://u:p@ss@h:5432/db"), "postgres://u:***@h:5432/db")
    assert.strictEqual(
      redactSecrets("from postgres://a:x@h1/db to postgres://b:y@h2/db"),
      "from postgres://a:***@h1/db to postgres://b:***@h2/db"
    )
    const noPassword = "postgres://u@h/db postgres://h:5432/db"
    assert.strictEqual(redactSecrets(noPassword), noPassword)
    assert.strictEqual(
      redactSecrets("postgres://h/db?user=u&password=x&sslmode=require"),
      "postgres://h/db?user=u&password=***&sslmode=require"
    )
    assert.strictEqual(redactSecrets("sslpassword='a b' user=u"), "sslpassword=*** user=u")
    assert.strictEqual(redactSecrets("url=\"postgres://u:pw@h\""), "url=\"postgres://u:***@h\"")
  })

  it.live("reopen after a rename: old lines stay in the renamed file, new lines go to a new one", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = Path.join(dir, "daemon.log")
      Fs.writeFileSync(file, "kept\n")
      yield* withLogger(
        { file },
        Effect.gen(function*() {
          const logger = yield* DaemonLogger
          yield* Effect.logInfo("before")
          Fs.renameSync(file, `${file}.1`)
          yield* Effect.logInfo("after rename, before reopen")
          yield* logger.reopen
          yield* Effect.logInfo("after reopen")
        })
      )
      const [kept, ...old] = yield* lines(`${file}.1`)
      assert.strictEqual(kept, "kept")
      assert.deepStrictEqual(old.map(levelAndMessage), ["NOTICE before", "NOTICE after rename, before reopen"])
      assert.deepStrictEqual((yield* lines(file)).map(levelAndMessage), ["NOTICE after reopen"])
      // created with mode 0o640 (the umask may only take bits away)
      assert.strictEqual(Fs.statSync(file).mode & 0o777 & ~0o640, 0)
    }))

  it.live("reopen while another fiber logs: every line lands once, in order", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = Path.join(dir, "daemon.log")
      const count = 5_000
      yield* withLogger(
        { file, format: "json" },
        Effect.gen(function*() {
          const logger = yield* DaemonLogger
          const halfway = yield* Deferred.make<void>()
          const writer = yield* Effect.forkChild(Effect.gen(function*() {
            for (let i = 1; i <= count; i++) {
              yield* Effect.logInfo(String(i))
              if (i === count / 2) yield* Deferred.succeed(halfway, undefined)
              if (i % 100 === 0) yield* Effect.yieldNow
            }
          }))
          yield* Deferred.await(halfway)
          Fs.renameSync(file, `${file}.1`)
          yield* logger.reopen
          yield* Fiber.join(writer)
        })
      )
      const old = yield* lines(`${file}.1`)
      const current = yield* lines(file)
      assert.isAbove(old.length, 0)
      assert.isAbove(current.length, 0)
      const all = [...old, ...current].map((line) => Number((JSON.parse(line) as { message: string }).message))
      assert.deepStrictEqual(all, Array.from({ length: count }, (_, i) => i + 1))
    }))

  it.live("a file that cannot be opened fails the layer with LogFileError", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = Path.join(dir, "missing", "daemon.log")
      const exit = yield* Effect.exit(withLogger({ file }, Effect.void))
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      assert.strictEqual((error as { _tag?: string })._tag, "LogFileError")
      assert.include(String((error as Error).message), file)
    }))

  it.live("stderr by default without a file, and not by default with one", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const written: Array<string> = []
      const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
        written.push(String(chunk))
        return true
      })
      yield* Effect.ensuring(
        Effect.gen(function*() {
          yield* Effect.logInfo("to stderr").pipe(Effect.provide(DaemonLogger.layer()))
          yield* Effect.logInfo("to the file").pipe(Effect.provide(DaemonLogger.layer({ file: Path.join(dir, "d.log") })))
        }),
        Effect.sync(() => spy.mockRestore())
      )
      assert.strictEqual(written.length, 1)
      assert.match(written[0]!, / NOTICE to stderr\n$/)
    }))

  it.live.skipIf(!Fs.existsSync("/dev/full"))("a failing file is dropped with one notice on stderr, not a crash", () =>
    Effect.gen(function*() {
      const written: Array<string> = []
      const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
        written.push(String(chunk))
        return true
      })
      // every write to /dev/full fails with ENOSPC
      yield* Effect.ensuring(
        withLogger(
          { file: "/dev/full", stderr: true },
          Effect.gen(function*() {
            yield* Effect.logInfo("one")
            for (let i = 0; i < 200 && !written.some((chunk) => chunk.includes("failed")); i++) {
              yield* Effect.sleep("5 millis")
            }
            yield* Effect.logInfo("two")
          })
        ),
        Effect.sync(() => spy.mockRestore())
      )
      const notices = written.filter((chunk) => chunk.startsWith("effect-pgq: writing log file \"/dev/full\" failed"))
      assert.strictEqual(notices.length, 1)
      assert.include(notices[0], "lines go to stderr only until it is reopened")
      assert.deepStrictEqual(written.filter((chunk) => / NOTICE /.test(chunk)).map(levelAndMessage), [
        "NOTICE one\n",
        "NOTICE two\n"
      ])
    }))

  it("LogLevelName and LogFormat decode any case", () => {
    const level = Schema.decodeUnknownSync(LogLevelName)
    assert.strictEqual(level("notice"), "NOTICE")
    assert.strictEqual(level(" Verbose "), "VERBOSE")
    assert.throws(() => level("info"))
    assert.strictEqual(Schema.encodeSync(LogLevelName)("WARNING"), "WARNING")
    assert.strictEqual(Schema.decodeUnknownSync(LogFormat)("JSON"), "json")
    assert.throws(() => Schema.decodeUnknownSync(LogFormat)("xml"))
  })
})
