/**
 * The daemon process: the consumers of a config under a `Supervisor`, the
 * built-in ticker, the control endpoint and the logger, driven by signals.
 *
 * | signal | command | what happens |
 * |---|---|---|
 * | SIGTERM | stop | batches in hand commit, then exit 0; after `stopTimeout`, or at a second signal, kill |
 * | SIGINT | kill | batches in flight roll back; exit 130 |
 * | SIGHUP | reload | the config is read again and only what changed is applied; the log file is reopened |
 * | SIGUSR1 | logmore | log level one step more verbose |
 * | SIGUSR2 | logless | log level one step quieter |
 *
 * A config that does not load is exit code 1 at start, and is logged and
 * ignored at a reload (the running consumers stay as they are).
 *
 * @since 0.2.0
 */
import { PgClient } from "@effect/sql-pg"
import { Deferred, Duration, Effect, Fiber, Layer, Queue, Redacted, type Scope, Semaphore } from "effect"
import { OtlpExporter } from "effect/observability"
import * as V8 from "node:v8"
import type { Pgq } from "../api/Pgq.ts"
import * as PgqServices from "../api/Services.ts"
import * as LagMetrics from "../telemetry/LagMetrics.ts"
import * as OtlpExport from "../telemetry/OtlpExport.ts"
import * as TelemetrySettings from "../telemetry/TelemetrySettings.ts"
import { serve } from "./ControlServer.ts"
import * as DaemonConfig from "./DaemonConfig.ts"
import * as DaemonControl from "./DaemonControl.ts"
import { DaemonLogger } from "./Logger.ts"
import * as Pidfile from "./Pidfile.ts"
import * as QueueSettings from "./QueueSettings.ts"
import * as Signals from "./Signals.ts"
import { make as makeSupervisor, Supervisor } from "./Supervisor.ts"
import * as Ticker from "./Ticker.ts"

/** Conventional exit codes: 128 + the signal's number. */
const EXIT_SIGINT = 130
const EXIT_SIGTERM = 143

/**
 * Runs the daemon of `configFile` in this process until a signal ends it;
 * returns the process exit code.
 *
 * @since 0.2.0
 * @category running
 */
export const run = (configFile: string) =>
  Effect.gen(function*() {
    // Listened to from the first moment: a SIGHUP or SIGUSR1 while the daemon starts waits its
    // turn, instead of ending the process (SIGHUP's default) or opening the inspector (SIGUSR1's).
    // SIGTERM and SIGINT interrupt the start until the daemon is up.
    const signals = yield* Signals.listen(["SIGHUP", "SIGUSR1", "SIGUSR2"])
    const config = yield* loadConfig(configFile)
    const pidfile = DaemonConfig.pidfileOf(configFile, config)
    const url = typeof config.database.url === "string" ? Redacted.make(config.database.url) : config.database.url
    const database = PgClient.layer({
      url,
      maxConnections: config.database.maxConnections ?? config.consumers.length + 5,
      applicationName: "effect-pgq daemon"
    })
    // The logger first, so that even the pidfile's notices reach the log file.
    return yield* Effect.andThen(Pidfile.hold(pidfile), supervise(configFile, config, pidfile, signals)).pipe(
      Effect.scoped,
      Effect.provide(PgqServices.layer.pipe(Layer.provideMerge(database))),
      // Outside the database: spans of the pool's last queries are flushed after it closes.
      Effect.provide(telemetryLayer(config)),
      Effect.provide(DaemonLogger.layer(config.logging ?? {}))
    )
  }).pipe(Effect.scoped)

/**
 * OTLP export when the config has a `telemetry` section; metrics not
 * exported are recorded only when `/metrics` can show them.
 */
const telemetryLayer = (config: DaemonConfig.DaemonConfig): Layer.Layer<OtlpExporter.Flusher> => {
  const telemetry = config.telemetry
  const control = config.control !== undefined && config.control !== false
  if (telemetry === undefined || telemetry === false) {
    return Layer.merge(TelemetrySettings.layer({ metrics: control }), OtlpExporter.layerFlusher)
  }
  const exporting = OtlpExport.layer({
    tracing: telemetry.tracing,
    eventSpans: telemetry.eventSpans,
    samplingRatio: telemetry.samplingRatio,
    metrics: telemetry.metrics,
    endpoint: telemetry.endpoint,
    serviceName: telemetry.serviceName,
    tracesExportInterval: telemetry.exportInterval,
    metricsExportInterval: telemetry.exportInterval
  })
  // Spans over OTLP, metrics scraped from /metrics: recorded all the same (the later layer's settings win).
  return telemetry.metrics === false && control
    ? Layer.merge(
      exporting,
      TelemetrySettings.layer({ eventSpans: telemetry.eventSpans, samplingRatio: telemetry.samplingRatio, metrics: true })
    )
    : exporting
}

/** The lag gauges, read from pgq for export while metrics are exported. */
const pollLag = (config: DaemonConfig.DaemonConfig) =>
  config.telemetry === undefined || config.telemetry === false || config.telemetry.metrics === false
    ? Effect.void
    : Effect.forkScoped(LagMetrics.poll(config.telemetry.lagInterval ?? "15 seconds"))

/** A config module that never finishes loading (a top-level await on nothing) must not hang the daemon. */
const loadConfig = (configFile: string) =>
  DaemonConfig.load(configFile).pipe(
    Effect.timeoutOrElse({
      duration: CONFIG_LOAD_TIMEOUT,
      orElse: () =>
        Effect.fail(
          new DaemonConfig.DaemonConfigError({
            file: configFile,
            reason: `did not finish loading within ${Duration.format(CONFIG_LOAD_TIMEOUT)}`
          })
        )
    })
  )

const CONFIG_LOAD_TIMEOUT = Duration.seconds(30)

/**
 * A daemon in the foreground runs with the Node.js flags it was started
 * with: without `--max-old-space-size` V8 lets garbage pile up to a quarter
 * of the machine's memory. Said once, at start.
 */
const warnUncappedHeap = (config: DaemonConfig.DaemonConfig) =>
  Effect.suspend(() => {
    const cap = config.maxHeapMb ?? 512
    const limitMb = Math.round(V8.getHeapStatistics().heap_size_limit / 1048576)
    // The limit also counts the young generation: some slack over the cap.
    return limitMb <= cap + 128 ? Effect.void : Effect.logWarning(
      `the heap is not capped at maxHeapMb (${cap} MiB; V8's limit is ${limitMb} MiB): start the daemon with ` +
        `node ${DaemonControl.nodeFlags(config).join(" ")}, as daemon start --detach and the systemd unit do`
    )
  })

const supervise = (
  configFile: string,
  config: DaemonConfig.DaemonConfig,
  pidfile: string,
  signals: Queue.Queue<Signals.DaemonSignal>
) =>
  Effect.gen(function*() {
    const logger = yield* DaemonLogger
    yield* Signals.listen(["SIGTERM", "SIGINT"], signals)
    const supervisor = yield* makeSupervisor
    yield* Effect.addFinalizer(() => supervisor.kill)
    yield* applyQueueSettings(config)
    yield* supervisor.apply(config.consumers)
    yield* pollLag(config)
    if (config.ticker !== false) {
      yield* Effect.forkScoped(Ticker.run(config.ticker === true || config.ticker === undefined ? {} : config.ticker))
    }
    if (config.control !== undefined && config.control !== false) {
      const address = yield* serve(config.control, config.console).pipe(Effect.provideService(Supervisor, supervisor))
      yield* Pidfile.recordControl(pidfile, address)
      yield* Effect.logInfo(`control endpoint on ${address}`)
    }
    yield* Effect.logInfo(`daemon started (pid ${process.pid}, ${config.consumers.length} consumers)`)
    yield* warnUncappedHeap(config)

    const exitCode = yield* Deferred.make<number>()
    const stopTimeout = Duration.fromInputUnsafe(config.stopTimeout ?? "30 seconds")
    const oneReload = yield* Semaphore.make(1)
    let stopping = false
    let reload: Fiber.Fiber<void> | undefined = undefined

    /** Ends whatever a reload is doing: the daemon is stopping. */
    const cancelReload = Effect.suspend(() => reload === undefined ? Effect.void : Fiber.interrupt(reload))

    const kill = (code: number) =>
      Effect.gen(function*() {
        stopping = true
        yield* Effect.logWarning("killing: batches in flight roll back")
        yield* cancelReload
        yield* supervisor.kill
        yield* Deferred.succeed(exitCode, code)
      })

    const reloadConfig = Effect.gen(function*() {
      yield* logger.reopen.pipe(Effect.catch((error) => Effect.logError(`log file not reopened: ${error.message}`)))
      const reloaded = yield* Effect.result(loadConfig(configFile))
      if (reloaded._tag === "Failure") {
        return yield* Effect.logError(`reload ignored, the running config stays: ${reloaded.failure.message}`)
      }
      if (stopping) return
      yield* Effect.logInfo("reloading the config")
      yield* applyQueueSettings(reloaded.success)
      yield* supervisor.apply(reloaded.success.consumers, stopTimeout)
    })

    // Stop and kill are handled here and at once; a reload runs beside, one at a time, so that a
    // slow one (a consumer finishing its batch) never holds up a stop.
    const onSignal = (signal: Signals.DaemonSignal): Effect.Effect<void, never, Scope.Scope | Pgq> => {
      switch (signal) {
        case "SIGTERM":
          if (stopping) return kill(EXIT_SIGTERM)
          stopping = true
          return Effect.gen(function*() {
            yield* Effect.logInfo(`stopping: batches in hand commit (at most ${Duration.format(stopTimeout)})`)
            yield* cancelReload
            const outcome = yield* supervisor.stop(stopTimeout)
            yield* Deferred.succeed(exitCode, outcome === "graceful" ? 0 : EXIT_SIGTERM)
          }).pipe(Effect.forkScoped, Effect.asVoid)
        case "SIGINT":
          return kill(EXIT_SIGINT)
        case "SIGHUP":
          if (stopping) return Effect.logInfo("reload ignored: the daemon is stopping")
          return Effect.gen(function*() {
            reload = yield* Effect.forkScoped(oneReload.withPermits(1)(reloadConfig))
          })
        case "SIGUSR1":
          return Effect.flatMap(logger.more, (level) => Effect.logInfo(`log level ${level}`))
        case "SIGUSR2":
          return Effect.flatMap(logger.less, (level) => Effect.logInfo(`log level ${level}`))
      }
    }

    yield* Effect.forkScoped(Effect.forever(
      Effect.flatMap(Queue.take(signals), (signal) =>
        onSignal(signal).pipe(
          Effect.catchCause((cause) => Effect.logError(`handling ${signal} failed`, cause))
        ))
    ))
    const code = yield* Deferred.await(exitCode)
    yield* Effect.logInfo(code === 0 ? "daemon stopped" : `daemon stopped (exit code ${code})`)
    return code
  }).pipe(Effect.scoped, Effect.annotateLogs({ pid: String(process.pid) }))

/** A queue setting that cannot be applied (the database away, a queue missing) is logged; the consumers say the rest. */
const applyQueueSettings = (config: DaemonConfig.DaemonConfig) =>
  config.queues === undefined ? Effect.void : QueueSettings.apply(config.queues).pipe(
    Effect.flatMap((applied) => Effect.logDebug(`applied ${applied} queue settings`)),
    Effect.catch((error) => Effect.logError(`queue settings not applied: ${error.message}`))
  )
