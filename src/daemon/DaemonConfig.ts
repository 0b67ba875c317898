/**
 * The daemon's configuration: a TypeScript module (`effect-pgq.config.ts`,
 * run directly by Node) whose default export is built with `defineConfig`.
 * The same consumer definitions run from `effect-pgq daemon start` and from
 * a program of your own (`Supervisor.layer`).
 *
 * ```ts
 * import { Effect } from "effect"
 * import { DaemonConfig, EventResult } from "effect-pgq"
 *
 * export default DaemonConfig.defineConfig({
 *   database: { url: process.env.PGQ_DATABASE_URL ?? "postgres://localhost/app" },
 *   consumers: [
 *     { queue: "orders", consumer: "mailer", onEvent: (event) => Effect.as(Effect.logInfo(event.data), EventResult.Ok) }
 *   ],
 *   control: { port: 7787 },
 *   logging: { level: "NOTICE", file: "/var/log/effect-pgq/orders.log" }
 * })
 * ```
 *
 * A module that does not load, or a config that does not decode, is one
 * `DaemonConfigError` whose message names the file, the field and what is
 * wrong: `effect-pgq.config.ts: consumers[1].queue: Expected a non-empty string`.
 *
 * @since 0.2.0
 */
import { Data, Duration, Effect, Predicate, Redacted, Schema, SchemaIssue } from "effect"
import type { SqlClient } from "effect/sql"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import type { Services } from "../api/Services.ts"
import type { ConsumerOptions } from "../consumer/Consumer.ts"
import { LogFormat, LogLevelName } from "./Logger.ts"
import type { QueueSettings } from "./QueueSettings.ts"
import type { TickerSettings } from "./Ticker.ts"

/**
 * What a handler of a configured consumer may use: effect-pgq's services and
 * the daemon's `SqlClient` (its writes join the batch's transaction).
 *
 * @since 0.2.0
 * @category models
 */
export type DaemonServices = Services | SqlClient.SqlClient

/**
 * One consumer the daemon runs: the options of `Consumer.make`, and, for
 * the other kinds, `remote` or `coop`.
 *
 * @since 0.2.0
 * @category models
 */
export type ConsumerDefinition = ConsumerOptions<unknown, DaemonServices> & {
  /**
   * A remote consumer (`RemoteConsumer`): handlers apply events to this
   * database, exactly once; their `SqlClient` is this database's. With
   * `perEvent: true`, an event-remote consumer (`EventRemoteConsumer`): a
   * savepoint per event.
   */
  readonly remote?: {
    readonly url: string | Redacted.Redacted
    readonly perEvent?: boolean | undefined
    /** Default 2. */
    readonly maxConnections?: number | undefined
  } | undefined
  /** A subconsumer of a cooperative consumer (`CoopConsumer`). */
  readonly coop?: {
    readonly subconsumer: string
    /** Take over a silent peer's batch after this long. Default never. */
    readonly deadInterval?: Duration.Input | undefined
    /** Default 10 seconds. */
    readonly heartbeat?: Duration.Input | undefined
  } | undefined
}

/**
 * Where the control endpoint listens: a loopback port (default host
 * 127.0.0.1), or a unix socket.
 *
 * @since 0.2.0
 * @category models
 */
export type ControlAddress =
  | { readonly host?: string | undefined; readonly port: number }
  | { readonly socket: string }

/**
 * The daemon's `telemetry` section.
 *
 * @since 0.2.0
 * @category models
 */
export interface TelemetryConfig {
  /** Export spans. Default true. */
  readonly tracing?: boolean | undefined
  /** A `process <queue>` span per event. Default true. */
  readonly eventSpans?: boolean | undefined
  /** Share of batches traced, 0 to 1. Default 1. */
  readonly samplingRatio?: number | undefined
  /**
   * Export metrics. Default true. With a control endpoint, `false` still
   * serves them on `/metrics`: where Prometheus scrapes it, exporting them
   * too would count every event twice.
   */
  readonly metrics?: boolean | undefined
  /** OTLP/HTTP base URL (`http://localhost:4318`); default from `OTEL_EXPORTER_OTLP_ENDPOINT` and friends. */
  readonly endpoint?: string | undefined
  /** Default `OTEL_SERVICE_NAME`, else `effect-pgq`. */
  readonly serviceName?: string | undefined
  /** How often spans and metrics are sent. Default `OTEL_BSP_SCHEDULE_DELAY` / `OTEL_METRIC_EXPORT_INTERVAL`. */
  readonly exportInterval?: Duration.Input | undefined
  /** How often the lag gauges are read from pgq for export. Default 15 seconds. */
  readonly lagInterval?: Duration.Input | undefined
}

/**
 * The daemon's `console` section: the web console under `/console` of the
 * control endpoint.
 *
 * @since 0.2.0
 * @category models
 */
export interface ConsoleConfig {
  /** Serve the console. Default true (when there is a control endpoint). */
  readonly enabled?: boolean | undefined
  /**
   * The token retry and delete need, at least 16 characters; keep it out of
   * the file with `Redacted.make(process.env.…)`. Default: a fresh one at
   * each start, logged with the console's address.
   */
  readonly token?: string | Redacted.Redacted | undefined
  /** Show no actions and refuse them all. Default false. */
  readonly readOnly?: boolean | undefined
}

/**
 * @since 0.2.0
 * @category models
 */
export interface DaemonConfig {
  readonly database: {
    /** A connection URL; keep passwords out of the file with `Redacted.make(process.env.…)`. */
    readonly url: string | Redacted.Redacted
    /** Pool size. Default: one per consumer, plus five (the ticker's loops, the control endpoint). */
    readonly maxConnections?: number | undefined
  }
  readonly consumers: ReadonlyArray<ConsumerDefinition>
  /**
   * pgq settings of queues, by name, applied at start and at each reload
   * (e.g. `{ orders: { tickerMaxCount: 5000 } }`). The built-in ticker's
   * event ticks take an event to its consumer in tens of milliseconds
   * whatever `tickerMaxLag` says; a pgqd honours only the queue's settings.
   */
  readonly queues?: Readonly<Record<string, QueueSettings>> | undefined
  /**
   * The built-in ticker and maintenance. Default on, staying off while a
   * pgqd ticks the database; `false` never runs it.
   */
  readonly ticker?: boolean | TickerSettings | undefined
  /** The control endpoint (`/healthz`, `/status`, `/metrics`, `/console/`). Default none. */
  readonly control?: ControlAddress | false | undefined
  /** The web console on the control endpoint (`/console`). Default on, with a token made at start. */
  readonly console?: ConsoleConfig | false | undefined
  /**
   * OpenTelemetry export over OTLP/HTTP (see `OtlpExport`). Default none:
   * no spans leave the process, and metrics are kept only for `/metrics`
   * when there is a control endpoint. Read at start only.
   */
  readonly telemetry?: TelemetryConfig | false | undefined
  readonly logging?: {
    /** Default `notice`. */
    readonly level?: LogLevelName | undefined
    /** Append to this file; `reload` reopens it (logrotate). */
    readonly file?: string | undefined
    /** Also write to stderr. Default true without a file, false with one. */
    readonly stderr?: boolean | undefined
    /** Default `text`. */
    readonly format?: LogFormat | undefined
  } | undefined
  /** Default: `effect-pgq.pid` beside the config file. */
  readonly pidfile?: string | undefined
  /** How long `stop` waits for the batches in hand before it kills. Default 30 seconds. */
  readonly stopTimeout?: Duration.Input | undefined
  /** Heap cap of a detached daemon, in MiB (`--max-old-space-size`). Default 512. */
  readonly maxHeapMb?: number | undefined
  /**
   * Semi-space of a detached daemon's young generation, in MiB
   * (`--max-semi-space-size`). Default 1, which keeps an idle daemon small;
   * handlers that allocate much may run faster with more (V8's default is 16).
   */
  readonly semiSpaceMb?: number | undefined
}

/**
 * The typed helper a config module exports its config with.
 *
 * @since 0.2.0
 * @category constructors
 */
export const defineConfig = (config: DaemonConfig): DaemonConfig => config

/**
 * The config module could not be loaded, or its config is invalid.
 *
 * @since 0.2.0
 * @category errors
 */
export class DaemonConfigError extends Data.TaggedError("DaemonConfigError")<{
  readonly file: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.file}: ${this.reason}`
  }
}

const aFunction = Schema.declare(Predicate.isFunction).annotate({ expected: "a function" })
const nonEmpty = Schema.String.check(Schema.isNonEmpty()).annotate({ expected: "a non-empty string" })
const port = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 65535 })).annotate({
  expected: "a port number from 0 to 65535"
})
const positiveInt = Schema.Int.check(Schema.isGreaterThan(0)).annotate({ expected: "a positive integer" })
const duration = Schema.Unknown.check(
  Schema.makeFilter((u) => Duration.fromInput(u as Duration.Input)._tag === "Some", {
    expected: "a duration such as \"30 seconds\" or a number of milliseconds"
  })
)

const ConsumerSchema = Schema.Struct({
  queue: nonEmpty,
  consumer: nonEmpty,
  onEvent: Schema.optional(aFunction),
  onBatch: Schema.optional(aFunction),
  remote: Schema.optional(Schema.Struct({
    url: Schema.Union([nonEmpty, Schema.declare(Redacted.isRedacted).annotate({ expected: "a Redacted" })]),
    perEvent: Schema.optional(Schema.Boolean),
    maxConnections: Schema.optional(positiveInt)
  })),
  coop: Schema.optional(Schema.Struct({
    subconsumer: nonEmpty,
    deadInterval: Schema.optional(duration),
    heartbeat: Schema.optional(duration)
  }))
}).check(
  Schema.makeFilter((c) => (c.onEvent === undefined) !== (c.onBatch === undefined), {
    expected: "exactly one of onEvent and onBatch"
  }),
  Schema.makeFilter((c) => c.remote === undefined || c.coop === undefined, {
    expected: "at most one of remote and coop"
  })
)

const ConfigSchema = Schema.Struct({
  database: Schema.Struct({
    url: Schema.Union([nonEmpty, Schema.declare(Redacted.isRedacted).annotate({ expected: "a Redacted" })]),
    maxConnections: Schema.optional(positiveInt)
  }),
  consumers: Schema.Array(ConsumerSchema).check(
    Schema.makeFilter(
      (consumers) => new Set(consumers.map((c) => `${c.queue}\u0000${instanceName(c)}`)).size === consumers.length,
      { expected: "each (queue, consumer) pair, or (queue, consumer, subconsumer), at most once" }
    )
  ),
  queues: Schema.optional(Schema.Record(
    nonEmpty,
    Schema.Struct({
      tickerMaxLag: Schema.optional(duration),
      tickerMaxCount: Schema.optional(positiveInt),
      tickerIdlePeriod: Schema.optional(duration),
      rotationPeriod: Schema.optional(duration)
    })
  )),
  ticker: Schema.optional(Schema.Union([
    Schema.Boolean,
    Schema.Struct({
      tickerPeriod: Schema.optional(duration),
      eventTickPeriod: Schema.optional(Schema.Union([duration, Schema.Literal(false)])),
      retryPeriod: Schema.optional(duration),
      maintenancePeriod: Schema.optional(duration),
      wakeChannel: Schema.optional(Schema.Union([nonEmpty, Schema.Literal(false)])),
      whenPgqdRuns: Schema.optional(Schema.Literals(["stay-off", "run"])),
      pgqdCheckPeriod: Schema.optional(duration)
    })
  ])),
  control: Schema.optional(Schema.Union([
    Schema.Literal(false),
    Schema.Struct({ host: Schema.optional(nonEmpty), port }),
    Schema.Struct({ socket: nonEmpty })
  ])),
  console: Schema.optional(Schema.Union([
    Schema.Literal(false),
    Schema.Struct({
      enabled: Schema.optional(Schema.Boolean),
      token: Schema.optional(Schema.Union([
        Schema.String.check(Schema.isMinLength(16)).annotate({ expected: "a string of at least 16 characters" }),
        Schema.declare((u): u is Redacted.Redacted =>
          Redacted.isRedacted(u) && String(Redacted.value(u)).length >= 16
        ).annotate({ expected: "a Redacted of at least 16 characters" })
      ])),
      readOnly: Schema.optional(Schema.Boolean)
    })
  ])),
  telemetry: Schema.optional(Schema.Union([
    Schema.Literal(false),
    Schema.Struct({
      tracing: Schema.optional(Schema.Boolean),
      eventSpans: Schema.optional(Schema.Boolean),
      samplingRatio: Schema.optional(
        Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 1 })).annotate({ expected: "a number from 0 to 1" })
      ),
      metrics: Schema.optional(Schema.Boolean),
      endpoint: Schema.optional(nonEmpty),
      serviceName: Schema.optional(nonEmpty),
      exportInterval: Schema.optional(duration),
      lagInterval: Schema.optional(duration)
    })
  ])),
  logging: Schema.optional(Schema.Struct({
    level: Schema.optional(LogLevelName),
    file: Schema.optional(nonEmpty),
    stderr: Schema.optional(Schema.Boolean),
    format: Schema.optional(LogFormat)
  })),
  pidfile: Schema.optional(nonEmpty),
  stopTimeout: Schema.optional(duration),
  maxHeapMb: Schema.optional(positiveInt),
  semiSpaceMb: Schema.optional(positiveInt)
})

const formatIssue = SchemaIssue.makeFormatterStandardSchemaV1()

/** `consumers[1].queue: Expected …`, the first problem only: one line to read and fix. */
const oneLine = (issue: SchemaIssue.Issue): string => {
  const [first] = formatIssue(issue).issues
  if (first === undefined) return "invalid config"
  const path = (first.path ?? []).map((key) => {
    const k = typeof key === "object" && key !== null && "key" in key ? key.key : key
    return typeof k === "number" ? `[${k}]` : `.${String(k)}`
  }).join("").replace(/^\./, "")
  return path === "" ? first.message : `${path}: ${first.message}`
}

/**
 * Checks a config value (what a config module exports) and returns it typed.
 *
 * @since 0.2.0
 * @category decoding
 */
export const decode = (file: string, input: unknown): Effect.Effect<DaemonConfig, DaemonConfigError> =>
  Schema.decodeUnknownEffect(ConfigSchema)(input).pipe(
    Effect.as(input as DaemonConfig),
    Effect.mapError((error) => new DaemonConfigError({ file, reason: oneLine(error.issue) }))
  )

let loads = 0

/**
 * Loads and checks a config module: its default export, or its export
 * named `config`. Each load reads the file afresh (for `reload`).
 *
 * @since 0.2.0
 * @category constructors
 */
export const load = (file: string): Effect.Effect<DaemonConfig, DaemonConfigError> =>
  Effect.gen(function*() {
    const absolute = Path.resolve(file)
    const name = Path.basename(absolute)
    const module: unknown = yield* Effect.tryPromise({
      // A fresh URL each time: Node caches modules by URL, and a reload must see the file as it is now.
      try: () => import(`${pathToFileURL(absolute).href}?load=${++loads}`),
      catch: (cause) => new DaemonConfigError({ file: name, reason: `cannot load: ${messageOf(cause)}` })
    })
    const exported = Predicate.hasProperty(module, "default") && module.default !== undefined
      ? module.default
      : Predicate.hasProperty(module, "config")
      ? module.config
      : undefined
    if (exported === undefined) {
      return yield* new DaemonConfigError({ file: name, reason: "exports no config (export default defineConfig({ … }))" })
    }
    return yield* decode(name, exported)
  })

/**
 * Where the pidfile of a config lives.
 *
 * @since 0.2.0
 * @category utils
 */
export const pidfileOf = (file: string, config: DaemonConfig): string =>
  Path.resolve(Path.dirname(Path.resolve(file)), config.pidfile ?? "effect-pgq.pid")

/**
 * A consumer's identity in a config: reloads compare consumers by it.
 *
 * @since 0.2.0
 * @category utils
 */
export const keyOf = (definition: ConsumerDefinition): string => `${definition.queue}/${instanceName(definition)}`

/**
 * The pgq consumer a definition runs as: its name, or `<consumer>.<subconsumer>`
 * for a subconsumer. One instance of it is active across processes.
 *
 * @since 0.2.0
 * @category models
 */
export const instanceName = (definition: {
  readonly consumer: string
  readonly coop?: { readonly subconsumer: string } | undefined
}): string => definition.coop === undefined ? definition.consumer : `${definition.consumer}.${definition.coop.subconsumer}`

const messageOf = (cause: unknown): string =>
  (Predicate.hasProperty(cause, "message") && Predicate.isString(cause.message) ? cause.message : String(cause))
    .split("\n")[0]!
