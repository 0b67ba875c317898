/**
 * The daemon's logger, installed as Effect's logger: `Effect.logInfo` and
 * the others, anywhere in the program, print through it.
 *
 * - Levels: DEBUG < VERBOSE < NOTICE < WARNING < ERROR < FATAL, each one of
 *   Effect's levels under another name, so that code logs with Effect's own
 *   functions:
 *
 *   | daemon  | Effect | written with                   |
 *   |---------|--------|--------------------------------|
 *   | DEBUG   | Trace  | `Effect.logTrace`              |
 *   | VERBOSE | Debug  | `Effect.logDebug`              |
 *   | NOTICE  | Info   | `Effect.logInfo`, `Effect.log` |
 *   | WARNING | Warn   | `Effect.logWarning`            |
 *   | ERROR   | Error  | `Effect.logError`              |
 *   | FATAL   | Fatal  | `Effect.logFatal`              |
 *
 *   Effect's default level (Info) stays the daemon's default (NOTICE), and
 *   `logDebug` is one step below it, where `logmore` finds it.
 * - The minimum level lives in the `DaemonLogger` service. `more` and `less`
 *   (`logmore` / `logless`) move it one step and take effect at once in
 *   every fiber, including fibers forked earlier: the logger reads the
 *   minimum for each line. Effect's `References.MinimumLogLevel` cannot do
 *   that (a fiber reads it from the context it was forked with), so the
 *   layer lowers it to `All` and leaves the filtering to this logger.
 * - Lines: text (`2026-11-23T16:00:00.123Z NOTICE queue=orders batchId=12
 *   message`) or JSON (one object per line: `time`, `level`, `message`, each
 *   log annotation as a field, and `spans`, `traceId`, `spanId`, `cause` when
 *   there are any). Annotations (`Effect.annotateLogs`) carry the structure:
 *   consumers annotate `queue`, `consumer`, `batchId`, `eventId`.
 * - Destinations: stderr, a file appended to (created with mode 0o640), or
 *   both. The file is a Node write stream, so a line costs no system call
 *   of its own; `reopen` (logrotate, `reload`) opens the path afresh, then
 *   flushes and closes the old file, so every line lands in one or the other.
 * - Secrets: the password of a URL (`postgres://user:***@host`), a
 *   `password=` setting, any `Redacted` value and any annotation or object
 *   field named like a password or a secret print as `***`.
 *
 * @since 0.2.0
 */
import * as Fs from "node:fs"
import {
  Cause,
  Context,
  Effect,
  Inspectable,
  Layer,
  Logger,
  type LogLevel as EffectLogLevel,
  Redacted,
  References,
  Schema,
  SchemaTransformation,
  Semaphore,
  type Scope,
  type Stream,
  SubscriptionRef
} from "effect"

/** One of `literals`, decoded from a string in any case with blanks around. */
function oneOf<const L extends ReadonlyArray<string>>(
  literals: L,
  toCase: SchemaTransformation.Transformation<string, string>
) {
  return Schema.String.pipe(
    Schema.decode(SchemaTransformation.composeTransformation(SchemaTransformation.trim(), toCase)),
    Schema.decodeTo(Schema.Literals(literals), SchemaTransformation.passthroughSupertype())
  )
}

// ---------------------------------------------------------------------------
// Levels
// ---------------------------------------------------------------------------

/**
 * The level names, most verbose first.
 *
 * @since 0.2.0
 * @category constants
 */
export const logLevels = ["DEBUG", "VERBOSE", "NOTICE", "WARNING", "ERROR", "FATAL"] as const

/**
 * A daemon log level.
 *
 * @since 0.2.0
 * @category models
 */
export type LogLevelName = typeof logLevels[number]

/**
 * Decodes a level name from a config file or a flag, in any case and with
 * surrounding blanks (`"verbose"` and `" Verbose "` decode to `"VERBOSE"`);
 * encodes to the upper-case name.
 *
 * @since 0.2.0
 * @category schemas
 */
export const LogLevelName = oneOf(logLevels, SchemaTransformation.toUpperCase()).annotate({
  description: "DEBUG, VERBOSE, NOTICE, WARNING, ERROR or FATAL (any case)",
  expected: "one of DEBUG, VERBOSE, NOTICE, WARNING, ERROR, FATAL"
})

const defaultLevel: LogLevelName = "NOTICE"

const toEffectLevel: Record<LogLevelName, EffectLogLevel.Severity> = {
  DEBUG: "Trace",
  VERBOSE: "Debug",
  NOTICE: "Info",
  WARNING: "Warn",
  ERROR: "Error",
  FATAL: "Fatal"
}

// "All" and "None" are thresholds, not severities a log line carries; they
// are mapped to the ends so that any value has a place.
const ordinalOfEffect: Record<EffectLogLevel.LogLevel, number> = {
  All: 0,
  Trace: 0,
  Debug: 1,
  Info: 2,
  Warn: 3,
  Error: 4,
  Fatal: 5,
  None: 5
}

const ordinalOf: Record<LogLevelName, number> = { DEBUG: 0, VERBOSE: 1, NOTICE: 2, WARNING: 3, ERROR: 4, FATAL: 5 }

/**
 * Effect's severity for a daemon level.
 *
 * @since 0.2.0
 * @category conversions
 */
export const toEffectLogLevel = (level: LogLevelName): EffectLogLevel.Severity => toEffectLevel[level]

/**
 * The daemon level that prints an Effect level (`"Info"` is `"NOTICE"`).
 *
 * @since 0.2.0
 * @category conversions
 */
export const fromEffectLogLevel = (level: EffectLogLevel.LogLevel): LogLevelName => logLevels[ordinalOfEffect[level]]!

// Called for every log line, so it compares numbers.
const allows = (minimum: LogLevelName, level: EffectLogLevel.LogLevel): boolean =>
  ordinalOfEffect[level] >= ordinalOf[minimum]

/**
 * One step more verbose (`logmore`): NOTICE -> VERBOSE; DEBUG stays DEBUG.
 *
 * @since 0.2.0
 * @category combinators
 */
export const moreVerbose = (level: LogLevelName): LogLevelName => logLevels[Math.max(0, ordinalOf[level] - 1)]!

/**
 * One step quieter (`logless`): NOTICE -> WARNING; FATAL stays FATAL.
 *
 * @since 0.2.0
 * @category combinators
 */
export const lessVerbose = (level: LogLevelName): LogLevelName =>
  logLevels[Math.min(logLevels.length - 1, ordinalOf[level] + 1)]!

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/**
 * How lines are written: `text` for people, `json` for log shippers.
 * Decodes in any case (`"JSON"`).
 *
 * @since 0.2.0
 * @category schemas
 */
export const LogFormat = oneOf(["text", "json"], SchemaTransformation.toLowerCase()).annotate({
  description: "text or json",
  expected: "text or json"
})

/**
 * @since 0.2.0
 * @category models
 */
export type LogFormat = typeof LogFormat.Type

/**
 * Where and how the daemon logs.
 *
 * @since 0.2.0
 * @category models
 */
export interface DaemonLoggerOptions {
  /** The minimum level at start. Default: NOTICE. */
  readonly level?: LogLevelName | undefined
  /** Default: `text`. */
  readonly format?: LogFormat | undefined
  /** Write lines to stderr. Default: true without a file, false with one. */
  readonly stderr?: boolean | undefined
  /** Also append lines to this file, created with mode 0o640 if missing. */
  readonly file?: string | undefined
}

/**
 * The log file could not be opened (at start or on `reopen`). After a
 * failed `reopen` the logger keeps writing to the file it had.
 *
 * @since 0.2.0
 * @category errors
 */
export class LogFileError extends Schema.TaggedError<LogFileError>("effect-pgq/daemon/LogFileError")(
  "LogFileError",
  {
    operation: Schema.String,
    path: Schema.String,
    reason: Schema.String
  }
) {
  override get message(): string {
    return `${this.operation}: cannot open log file ${JSON.stringify(this.path)} for appending (${this.reason}); ` +
      `check that its directory exists and that the daemon's user may write there`
  }
}

/**
 * @since 0.2.0
 * @category services
 */
export class DaemonLogger extends Context.Service<DaemonLogger, {
  /**
   * Writes a line for each log entry at or above the current level.
   * `DaemonLogger.layer` installs it; `make` gives it to be combined with
   * other loggers.
   */
  readonly logger: Logger.Logger<unknown, void>
  /** Whether a line at this Effect level is printed now (to skip costly log arguments). */
  readonly isEnabled: (level: EffectLogLevel.LogLevel) => boolean
  /** The current minimum level. */
  readonly level: Effect.Effect<LogLevelName>
  /** The current minimum level, then each change (for a status page). */
  readonly levelChanges: Stream.Stream<LogLevelName>
  readonly setLevel: (level: LogLevelName) => Effect.Effect<void>
  /** One step more verbose (`logmore`, SIGUSR1), DEBUG at most; returns the new level. */
  readonly more: Effect.Effect<LogLevelName>
  /** One step quieter (`logless`, SIGUSR2), FATAL at most; returns the new level. */
  readonly less: Effect.Effect<LogLevelName>
  /**
   * Opens the file's path again and closes the old file once its lines are
   * written: after logrotate's `mv daemon.log daemon.log.1`, new lines go to
   * a new `daemon.log`. Does nothing without a file. On failure the old file
   * stays in use.
   */
  readonly reopen: Effect.Effect<void, LogFileError>
}>()("effect-pgq/daemon/DaemonLogger") {
  /**
   * The daemon's logger, installed as Effect's logger (see `install`), with
   * the service to change its level and reopen its file. Provide it to the
   * whole daemon program, so that every fiber logs through it. Fails when
   * the file cannot be opened; closes the file, its lines written, with the
   * layer's scope.
   *
   * @since 0.2.0
   * @category layers
   */
  static layer(options: DaemonLoggerOptions = {}): Layer.Layer<DaemonLogger, LogFileError> {
    return install.pipe(Layer.provideMerge(Layer.effect(DaemonLogger, make(options))))
  }
}

/**
 * Makes Effect log through the `DaemonLogger` in context, in place of the
 * default logger (`DaemonLogger.layer` includes it). Span events (Effect's
 * tracer logger) are kept, filtered by the same level. Effect's
 * `MinimumLogLevel` is set to `All`, since the daemon's level is applied by
 * the logger.
 *
 * @since 0.2.0
 * @category layers
 */
export const install: Layer.Layer<never, never, DaemonLogger> = Layer.mergeAll(
  Logger.layer([
    Effect.map(Effect.service(DaemonLogger), (service) => service.logger),
    Effect.map(Effect.service(DaemonLogger), (service) =>
      Logger.make<unknown, void>((options) => {
        if (service.isEnabled(options.logLevel)) Logger.tracerLogger.log(options)
      }))
  ]),
  Layer.succeed(References.MinimumLogLevel, "All")
)

// ---------------------------------------------------------------------------
// Redaction
// ---------------------------------------------------------------------------

const REDACTED = "***"

// `scheme://user:PASSWORD@host`. An unescaped "@" may sit in the password, so
// it runs to the "@" before the host. Anchored on "://" so that long tokens
// without a URL are scanned once, not once per start position.
const URL_PASSWORD = /(:\/\/[^\s:@/?#]*:)\S*?(?=@[^\s@/?#]*(?:[\s/?#]|$))/g
// libpq's keyword form and URL parameters: `password=secret`,
// `sslpassword='s e'`, `?password=secret&...`.
const KEYWORD_PASSWORD = /(password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s&'"]+)/gi
// Annotations and object fields under such names are secrets whatever they hold.
const SECRET_KEY = /passw(or)?d|secret/i

/** A field's value: `***` under a secret's name. */
const sanitizeField = (key: string, value: unknown, ancestors: Array<object>): unknown =>
  SECRET_KEY.test(key) ? REDACTED : sanitize(value, ancestors)

/**
 * Replaces the passwords in a text with `***`: a URL's
 * (`postgres://user:***@host/db`) and `password=` settings.
 *
 * @since 0.2.0
 * @category redaction
 */
export const redactSecrets = (text: string): string =>
  text.replace(URL_PASSWORD, `$1${REDACTED}`).replace(KEYWORD_PASSWORD, `$1${REDACTED}`)

/** A JSON-safe copy of a logged value, every string redacted. */
const sanitize = (value: unknown, ancestors: Array<object>): unknown => {
  switch (typeof value) {
    case "string":
      return redactSecrets(value)
    case "bigint":
      // ids are bigints; as strings they keep every digit
      return value.toString()
    case "function":
    case "symbol":
      return String(value)
    case "object":
      break
    default:
      return value
  }
  if (value === null) return null
  if (Redacted.isRedacted(value)) return REDACTED
  if (ancestors.includes(value)) return "[Circular]"
  ancestors.push(value)
  const copy = sanitizeObject(value, ancestors)
  ancestors.pop()
  return copy
}

const sanitizeObject = (value: object, ancestors: Array<object>): unknown => {
  if (Array.isArray(value)) return value.map((item) => sanitize(item, ancestors))
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? "Invalid Date" : value.toISOString()
  if (value instanceof Map) return sanitize(Object.fromEntries(value), ancestors)
  if (value instanceof Set) return sanitize(Array.from(value), ancestors)
  // toJSON and Effect's Redactable, as Effect's own loggers apply them
  const json = Inspectable.toJson(value)
  if (json !== value) return sanitize(json, ancestors)
  const copy: Record<string, unknown> = Object.create(null)
  if (value instanceof Error) {
    copy["name"] = value.name
    copy["message"] = redactSecrets(value.message)
  }
  // Data properties only: a getter could throw, and a log call must not fail.
  for (const [key, property] of Object.entries(Object.getOwnPropertyDescriptors(value))) {
    if (property.enumerable === true && "value" in property) copy[key] = sanitizeField(key, property.value, ancestors)
  }
  return copy
}

/** Text for a message part or an annotation: strings as they are, other values as JSON. */
const stringify = (value: unknown): string => {
  const safe = sanitize(value, [])
  return typeof safe === "string" ? safe : JSON.stringify(safe) ?? String(safe)
}

// ---------------------------------------------------------------------------
// Formats
// ---------------------------------------------------------------------------

const messageText = (message: unknown): string =>
  Array.isArray(message) ? message.map(stringify).join(" ") : stringify(message)

const causeText = (cause: Cause.Cause<unknown>): string | undefined =>
  cause.reasons.length > 0 ? redactSecrets(Cause.pretty(cause)) : undefined

const NEEDS_QUOTES = /[\s="\\]/

const textKey = (key: string): string => key.replace(/[\s="]/g, "_")

const textValue = (key: string, value: unknown): string => {
  const text = SECRET_KEY.test(key) ? REDACTED : stringify(value)
  return text === "" || NEEDS_QUOTES.test(text) ? JSON.stringify(text) : text
}

/**
 * One text line: time, level, annotations and log spans as `key=value`,
 * the message, and a failure's cause on the lines after. Only a record's
 * first line starts with its time: the message's and the cause's further
 * lines are indented, so a logged value cannot fake a record of its own.
 *
 * @since 0.2.0
 * @category formats
 */
export const formatText: Logger.Logger<unknown, string> = Logger.make(
  ({ cause, date, fiber, logLevel, message }) => {
    let line = `${date.toISOString()} ${fromEffectLogLevel(logLevel)}`
    for (const [key, value] of Object.entries(fiber.getRef(References.CurrentLogAnnotations))) {
      line += ` ${textKey(key)}=${textValue(key, value)}`
    }
    const now = date.getTime()
    for (const [label, start] of fiber.getRef(References.CurrentLogSpans)) {
      line += ` ${textKey(label)}=${now - start}ms`
    }
    const text = messageText(message)
    if (text !== "") line += ` ${text}`
    const failure = causeText(cause)
    if (failure !== undefined) line += `\n${failure}`
    return `${line.replace(/\r?\n/g, "\n  ")}\n`
  }
)

// Annotations under these names are written as `annotation.<name>`.
const RESERVED = new Set(["time", "level", "message", "spans", "traceId", "spanId", "cause"])

/**
 * One JSON object per line: `time`, `level`, `message` (a string), each
 * annotation as a field, then `spans` (log spans, in ms), `traceId` and
 * `spanId` (the current span) and `cause` when present. Bigints are
 * written as strings.
 *
 * @since 0.2.0
 * @category formats
 */
export const formatJson: Logger.Logger<unknown, string> = Logger.make(
  ({ cause, date, fiber, logLevel, message }) => {
    const record: Record<string, unknown> = Object.create(null)
    record["time"] = date.toISOString()
    record["level"] = fromEffectLogLevel(logLevel)
    record["message"] = messageText(message)
    for (const [key, value] of Object.entries(fiber.getRef(References.CurrentLogAnnotations))) {
      record[RESERVED.has(key) ? `annotation.${key}` : key] = sanitizeField(key, value, [])
    }
    const logSpans = fiber.getRef(References.CurrentLogSpans)
    if (logSpans.length > 0) {
      const spans: Record<string, number> = Object.create(null)
      const now = date.getTime()
      for (const [label, start] of logSpans) spans[label] = now - start
      record["spans"] = spans
    }
    const span = fiber.cache.span
    if (span !== undefined) {
      record["traceId"] = span.traceId
      record["spanId"] = span.spanId
    }
    const failure = causeText(cause)
    if (failure !== undefined) record["cause"] = failure
    return `${JSON.stringify(record)}\n`
  }
)

// ---------------------------------------------------------------------------
// The log file
// ---------------------------------------------------------------------------

/**
 * Opens `path` for appending; resolves once the file is open, so a bad path
 * fails here rather than on the first line. `onError` takes the stream's
 * later failures, which would otherwise crash the process.
 */
const openFile = (operation: string, path: string, onError: (stream: Fs.WriteStream, error: Error) => void) =>
  Effect.callback<Fs.WriteStream, LogFileError>((resume) => {
    const stream = Fs.createWriteStream(path, { flags: "a", mode: 0o640 })
    const onOpenError = (error: Error) => {
      stream.off("ready", onReady)
      resume(Effect.fail(new LogFileError({ operation, path, reason: error.message })))
    }
    const onReady = () => {
      stream.off("error", onOpenError)
      stream.on("error", (error) => onError(stream, error))
      resume(Effect.succeed(stream))
    }
    stream.once("ready", onReady)
    stream.once("error", onOpenError)
    return Effect.sync(() => {
      stream.off("ready", onReady)
      stream.destroy()
    })
  })

/** Ends the stream and waits until its lines are written and it is closed. */
const closeFile = (stream: Fs.WriteStream) =>
  Effect.callback<void>((resume) => {
    if (stream.closed) {
      resume(Effect.void)
      return
    }
    stream.once("close", () => resume(Effect.void))
    if (!stream.destroyed) stream.end()
  })

/**
 * Makes the service without installing it, for a logger combined with
 * others; the file closes with the scope.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make: (
  options: DaemonLoggerOptions
) => Effect.Effect<DaemonLogger["Service"], LogFileError, Scope.Scope> = Effect.fnUntraced(function*(
  options: DaemonLoggerOptions
) {
  const level = yield* SubscriptionRef.make<LogLevelName>(options.level ?? defaultLevel)
  const path = options.file
  const format = options.format === "json" ? formatJson : formatText
  const toStderr = options.stderr ?? path === undefined
  const lock = yield* Semaphore.make(1)
  // The file in use; undefined without a file, after a write error, and
  // after the layer's scope closed (`closed`, so that `reopen` stays a no-op).
  let file: Fs.WriteStream | undefined
  let closed = false

  const onWriteError = (stream: Fs.WriteStream, error: Error) => {
    if (file !== stream) return
    file = undefined
    stream.destroy()
    const then = toStderr ? "lines go to stderr only" : "lines are dropped"
    process.stderr.write(
      `effect-pgq: writing log file ${JSON.stringify(path)} failed (${error.message}); ${then} until it is reopened\n`
    )
  }

  if (path !== undefined) {
    file = yield* openFile("DaemonLogger.layer", path, onWriteError)
    yield* Effect.addFinalizer(() =>
      lock.withPermits(1)(Effect.suspend(() => {
        const last = file
        file = undefined
        closed = true
        return last === undefined ? Effect.void : closeFile(last)
      }))
    )
  }

  const isEnabled = (logLevel: EffectLogLevel.LogLevel) =>
    allows(SubscriptionRef.getUnsafe(level), logLevel)

  const logger = Logger.make<unknown, void>((entry) => {
    if (!isEnabled(entry.logLevel)) return
    const line = format.log(entry)
    if (toStderr) process.stderr.write(line)
    file?.write(line)
  })

  // The new file is in place before the old one is closed, and closing
  // writes what the old one still holds: no line is lost or reordered.
  const reopen = lock.withPermits(1)(Effect.gen(function*() {
    if (path === undefined || closed) return
    const next = yield* openFile("DaemonLogger.reopen", path, onWriteError)
    const previous = file
    file = next
    if (previous !== undefined) yield* closeFile(previous)
  })).pipe(Effect.uninterruptible, Effect.withSpan("DaemonLogger.reopen"))

  return DaemonLogger.of({
    logger,
    isEnabled,
    level: SubscriptionRef.get(level),
    levelChanges: SubscriptionRef.changes(level),
    setLevel: (next) => SubscriptionRef.set(level, next),
    more: SubscriptionRef.updateAndGet(level, moreVerbose),
    less: SubscriptionRef.updateAndGet(level, lessVerbose),
    reopen
  })
})
