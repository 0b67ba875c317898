/**
 * The daemon's control endpoint: a small HTTP server on a loopback port or a
 * unix socket.
 *
 * | path | what |
 * |---|---|
 * | `/healthz` | `ok` while the daemon runs |
 * | `/status` | JSON: pid, uptime, and per consumer its state, batch in hand, counters, lag and pending events |
 * | `/metrics` | the same figures in Prometheus' text format, and effect-pgq's metrics (`Metrics`) |
 * | `/console/` | the web console (`ConsoleHandler`), unless the config's `console` section turns it off |
 *
 * Lag and pending events come from pgq itself (`pgq.get_consumer_info`), so
 * they keep growing while a consumer is stopped; `/metrics` asks pgq at each
 * scrape. effect-pgq's metrics carry the names the OpenTelemetry Collector
 * gives them (`pgq_consumer_lag_seconds`, `messaging_client_consumed_messages_total`,
 * …), so one dashboard reads the daemon and a collector alike.
 *
 * @since 0.2.0
 */
import { Clock, Data, Duration, Effect, Option, Redacted, type Scope } from "effect"
import type { SqlClient } from "effect/sql"
import * as Fs from "node:fs"
import * as Http from "node:http"
import type { EventStatus } from "../api/EventStatus.ts"
import type { FailedEvents } from "../api/FailedEvents.ts"
import { Pgq } from "../api/Pgq.ts"
import * as ConsoleHandler from "../console/ConsoleHandler.ts"
import { isLoopback } from "../console/Security.ts"
import * as LagMetrics from "../telemetry/LagMetrics.ts"
import * as PrometheusText from "../telemetry/PrometheusText.ts"
import type { ConsoleConfig, ControlAddress } from "./DaemonConfig.ts"
import { type ConsumerStatus, Supervisor } from "./Supervisor.ts"

/**
 * What `/status` returns.
 *
 * @since 0.2.0
 * @category models
 */
export interface DaemonStatus {
  readonly pid: number
  readonly uptimeSeconds: number
  readonly consumers: ReadonlyArray<
    ConsumerStatus & {
      /** Age of the newest event the consumer has finished, in seconds; null when pgq could not be asked. */
      readonly lagSeconds: number | null
      readonly pendingEvents: number | null
    }
  >
}

/**
 * The endpoint could not listen (a port in use, a socket path not writable).
 *
 * @since 0.2.0
 * @category errors
 */
export class ControlEndpointError extends Data.TaggedError("ControlEndpointError")<{
  readonly address: string
  readonly reason: string
}> {
  override get message(): string {
    return `control endpoint ${this.address}: ${this.reason}`
  }
}

/**
 * Serves the endpoint until the scope closes; returns where it listens
 * (`host:port`, with the real port when 0 was asked, or the socket path).
 * The web console is mounted under `/console` unless `consoleConfig` is `false`
 * or says `enabled: false`; its address (with a token made at start, when
 * the config sets none) is logged.
 *
 * @since 0.2.0
 * @category constructors
 */
export const serve = (
  address: ControlAddress,
  consoleConfig?: ConsoleConfig | false | undefined
): Effect.Effect<
  string,
  ControlEndpointError,
  Scope.Scope | Supervisor | Pgq | FailedEvents | EventStatus | SqlClient.SqlClient
> =>
  Effect.gen(function*() {
    const supervisor = yield* Supervisor
    const pgq = yield* Pgq
    const consoleSection = consoleConfig === false ? { enabled: false } : consoleConfig ?? {}
    const configuredToken = consoleSection.token === undefined ? undefined : Redacted.make(
      Redacted.isRedacted(consoleSection.token) ? String(Redacted.value(consoleSection.token)) : consoleSection.token
    )
    const webConsole = consoleSection.enabled === false ? undefined : yield* ConsoleHandler.make({
      token: configuredToken,
      readOnly: consoleSection.readOnly,
      daemonStatus: supervisor.status,
      loopbackOnly: !("socket" in address) && isLoopback(address.host ?? "127.0.0.1")
    })
    const startedAt = yield* Clock.currentTimeMillis
    const context = yield* Effect.context<never>()

    const status: Effect.Effect<DaemonStatus> = Effect.gen(function*() {
      const consumers = yield* supervisor.status
      // One query for all; a database that is away leaves lag unknown, not the endpoint broken.
      const infos = yield* Effect.option(pgq.listConsumers()).pipe(
        // A database that is slow to answer must not hang the endpoint.
        Effect.timeoutOption("2 seconds"),
        Effect.map(Option.flatten)
      )
      const lagOf = (c: ConsumerStatus) =>
        Option.flatMap(infos, (all) =>
          Option.fromNullishOr(all.find((info) => info.queueName === c.queue && info.consumerName === c.consumer)))
      return {
        pid: process.pid,
        uptimeSeconds: Math.round(((yield* Clock.currentTimeMillis) - startedAt) / 1000),
        consumers: consumers.map((c) => {
          const info = lagOf(c)
          return {
            ...c,
            lagSeconds: Option.match(info, {
              onNone: () => null,
              onSome: (i) => i.lag === null ? null : Duration.toMillis(i.lag) / 1000
            }),
            pendingEvents: Option.match(info, {
              onNone: () => null,
              onSome: (i) => i.pendingEvents === null ? null : Number(i.pendingEvents)
            })
          }
        })
      }
    })

    const respond = (path: string): Effect.Effect<readonly [number, string, string]> => {
      switch (path) {
        case "/healthz":
          return Effect.succeed([200, "text/plain; charset=utf-8", "ok\n"])
        case "/status":
          return Effect.map(status, (s) => [200, "application/json", `${JSON.stringify(s, null, 2)}\n`] as const)
        case "/metrics":
          return Effect.gen(function*() {
            const s = yield* status
            // The gauges from pgq, fresh for this scrape; a database away leaves the last values.
            yield* LagMetrics.refresh.pipe(Effect.provideService(Pgq, pgq), Effect.ignore, Effect.timeoutOption("2 seconds"))
            const registry = yield* PrometheusText.format
            return [200, "text/plain; version=0.0.4; charset=utf-8", metricsText(s) + registry] as const
          })
        default:
          return Effect.succeed([404, "text/plain; charset=utf-8", "not found\n"])
      }
    }

    const server = Http.createServer((request, response) => {
      const path = new URL(request.url ?? "/", "http://localhost").pathname
      if (webConsole !== undefined && webConsole.handles(path)) return webConsole.handle(request, response)
      if (request.method !== "GET" && request.method !== "HEAD") {
        response.writeHead(405, { "content-type": "text/plain; charset=utf-8", allow: "GET, HEAD" }).end("method not allowed\n")
        return
      }
      Effect.runFork(Effect.provideContext(respond(path), context)).addObserver((exit) => {
        if (exit._tag === "Success") {
          const [code, type, body] = exit.value
          response.writeHead(code, { "content-type": type, "cache-control": "no-store" }).end(body)
        } else {
          response.writeHead(500, { "content-type": "text/plain; charset=utf-8" }).end("internal error\n")
        }
      })
    })

    const listening = yield* Effect.acquireRelease(
      Effect.callback<string, ControlEndpointError>((resume) => {
        const shown = "socket" in address ? address.socket : `${address.host ?? "127.0.0.1"}:${address.port}`
        server.once("error", (error) => resume(Effect.fail(new ControlEndpointError({ address: shown, reason: error.message }))))
        const listening = () => {
          // Later errors (EMFILE on accept, say) are logged; the daemon goes on.
          server.on("error", (error) => Effect.runFork(Effect.logError(`control endpoint: ${error.message}`)))
          const bound = server.address()
          resume(Effect.succeed(
            typeof bound === "string" || bound === null ? String(bound) : `${bound.address}:${bound.port}`
          ))
        }
        if ("socket" in address) {
          // A socket file left by a daemon that died would make listen fail.
          if (Fs.existsSync(address.socket) && Fs.statSync(address.socket).isSocket()) Fs.unlinkSync(address.socket)
          server.listen(address.socket, listening)
        } else {
          server.listen(address.port, address.host ?? "127.0.0.1", listening)
        }
      }),
      () =>
        Effect.callback<void>((resume) => {
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )
    if (webConsole !== undefined) {
      // A token of the config's is not repeated in the log; one made here must be where someone needs
      // it (to act, or to read off loopback), or no one could.
      const showToken = configuredToken === undefined && (!webConsole.readOnly || webConsole.readsNeedToken)
      yield* Effect.logInfo(
        "socket" in address
          ? `console under ${ConsoleHandler.BASE}/ on ${listening}` +
            (showToken ? ` (token ${Redacted.value(webConsole.token)})` : "")
          : `console on ${showToken ? webConsole.url(`http://${listening}`) : `http://${listening}${ConsoleHandler.BASE}/`}`
      )
    }
    return listening
  })

const escapeLabel = (value: string): string => value.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")

/**
 * The status as Prometheus text exposition: a gauge per consumer state, and
 * the counters, labelled by queue and consumer. Lag and pending events are
 * effect-pgq's metrics (`pgq_consumer_lag_seconds`, `pgq_consumer_pending_events`),
 * labelled the OpenTelemetry way.
 *
 * @since 0.2.0
 * @category utils
 */
export const metricsText = (status: DaemonStatus): string => {
  const lines: Array<string> = []
  const metric = (name: string, type: "gauge" | "counter", help: string, values: ReadonlyArray<readonly [string, number]>) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    for (const [labels, value] of values) lines.push(`${name}{${labels}} ${value}`)
  }
  const labels = (c: ConsumerStatus) =>
    `queue="${escapeLabel(c.queue)}",consumer="${escapeLabel(c.consumer)}"`
  metric("effect_pgq_daemon_uptime_seconds", "gauge", "Seconds since the daemon started.", [["", status.uptimeSeconds]])
  metric(
    "effect_pgq_consumer_up",
    "gauge",
    "1 while the consumer runs (running or idle), else 0.",
    status.consumers.map((c) => [labels(c), c.state === "running" || c.state === "idle" ? 1 : 0])
  )
  metric("effect_pgq_consumer_batches_total", "counter", "Batches finished.", status.consumers.map((c) => [labels(c), c.batches]))
  metric("effect_pgq_consumer_events_total", "counter", "Events processed.", status.consumers.map((c) => [labels(c), c.events]))
  metric("effect_pgq_consumer_failed_total", "counter", "Events stored as failed.", status.consumers.map((c) => [labels(c), c.failed]))
  metric("effect_pgq_consumer_retried_total", "counter", "Events put back for retry.", status.consumers.map((c) => [labels(c), c.retried]))
  metric("effect_pgq_consumer_restarts_total", "counter", "Restarts after a failure.", status.consumers.map((c) => [labels(c), c.restarts]))
  return `${lines.join("\n").replace(/\{\} /g, " ")}\n`
}
