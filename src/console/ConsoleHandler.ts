/**
 * The web console as a request handler for `node:http`, mounted under
 * `/console` by the daemon's control endpoint and by `effect-pgq console`.
 *
 * | path | what |
 * |---|---|
 * | `/console/` | queues (event rate, ticker lag), consumers (lag, last seen, pending and failed events, state), the lag chart |
 * | `/console/consumer?queue=&consumer=` | a consumer's failed events with their payloads; retry or delete one or all |
 * | `/console/event?queue=&id=` | an event's state for every consumer of its queue |
 * | `/console/jobs` | the job tracker's jobs (`TrackerJobs`) |
 * | `/console/api/overview`, `api/consumer`, `api/event` | the same as JSON |
 * | `POST /console/api/retry`, `POST /console/api/delete` | `{ "queue", "consumer", "target": "<event id>" or "all" }` |
 *
 * On a loopback listener reading needs no token; every action does (see
 * `Security`), and a read-only console refuses them all. A console reachable
 * beyond this machine (`loopbackOnly: false`) needs the token for every
 * page and every `api/` read too: a page asked for without it is a shell
 * with the token field, whose script loads the page again with the token in
 * the `Authorization` header. Actions are logged, with the logger of the
 * code that made the handler.
 *
 * @since 0.2.0
 */
import { type Cause, Duration, Effect, Option, Redacted, Schema, type Scope } from "effect"
import type { SqlClient } from "effect/sql"
import type * as Http from "node:http"
import { EventStatus } from "../api/EventStatus.ts"
import { type FailedEvent, FailedEvents, type FailedEventTarget } from "../api/FailedEvents.ts"
import { EventId } from "../api/Ids.ts"
import { Pgq } from "../api/Pgq.ts"
import type { PgqError } from "../api/PgqError.ts"
import type { ConsumerStatus } from "../daemon/Supervisor.ts"
import { INT8_MAX, isInt8Id, parseInt8Id } from "../internal/int8Id.ts"
import * as Assets from "./Assets.ts"
import * as LagHistory from "./LagHistory.ts"
import * as Overview from "./Overview.ts"
import * as Pages from "./Pages.ts"
import * as Security from "./Security.ts"
import * as TrackerJobs from "./TrackerJobs.ts"

/**
 * Where the console is mounted.
 *
 * @since 0.2.0
 * @category constants
 */
export const BASE = "/console"

/**
 * @since 0.2.0
 * @category models
 */
export interface ConsoleOptions {
  /**
   * The token actions need, at least 16 characters (`Security.MIN_TOKEN_LENGTH`;
   * `ConsoleServer.serve` refuses a shorter one with `ConsoleTokenError`, `make`
   * dies of it). Default: a fresh random one (see `ConsoleHandler.token`, to print it).
   */
  readonly token?: string | Redacted.Redacted<string> | undefined
  /** Show no actions and refuse them all. Default false. */
  readonly readOnly?: boolean | undefined
  /** How often the page refreshes itself. Default 5 seconds. */
  readonly refreshInterval?: Duration.Input | undefined
  /** Time between lag samples for the chart. Default 5 seconds. */
  readonly lagInterval?: Duration.Input | undefined
  /** How far back the chart goes. Default 15 minutes. */
  readonly lagWindow?: Duration.Input | undefined
  /**
   * Accept only loopback host names in `Host` (against DNS rebinding).
   * Default true; false (a console reachable beyond this machine) makes
   * every read need the token too.
   */
  readonly loopbackOnly?: boolean | undefined
  /** The consumers a daemon in this process runs, for their state column. */
  readonly daemonStatus?: Effect.Effect<ReadonlyArray<ConsumerStatus>> | undefined
  /**
   * The jobs page's rows, newest first; a failure is shown on the page.
   * Default: the job tracker's (`TrackerJobs`); `false`: no jobs page.
   */
  readonly jobs?: Effect.Effect<ReadonlyArray<Pages.JobRow>, { readonly message: string }> | false | undefined
}

/**
 * @since 0.2.0
 * @category models
 */
export interface ConsoleHandler {
  /** The token actions need: print it, or the `url` that carries it, for the operator. */
  readonly token: Redacted.Redacted<string>
  readonly readOnly: boolean
  /** Whether reading needs the token too (not `loopbackOnly`): then print it even when read-only. */
  readonly readsNeedToken: boolean
  /** Whether a path is the console's (`/` too: it leads to the console). */
  readonly handles: (path: string) => boolean
  /** Answers one request; call it for paths it `handles`. */
  readonly handle: (request: Http.IncomingMessage, response: Http.ServerResponse) => void
  /**
   * The console's address for a browser, with the token in the fragment: the
   * page's script keeps it for the tab and removes it from the address bar;
   * a fragment is never sent to a server. Without the token in a read-only
   * console that needs none for reading.
   */
  readonly url: (origin: string) => string
}

interface Reply {
  readonly status: number
  readonly type: string
  readonly body: string
  readonly headers?: Readonly<Record<string, string>> | undefined
}

const HTML = "text/html; charset=utf-8"
const JSON_TYPE = "application/json; charset=utf-8"

const htmlReply = (body: string, status = 200): Reply => ({ status, type: HTML, body })

/** JSON with int8 values (bigints) as strings. */
const jsonReply = (value: unknown, status = 200): Reply => ({
  status,
  type: JSON_TYPE,
  body: `${JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2)}\n`
})

const messageOf = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error && typeof error.message === "string"
    ? error.message
    : String(error)

/** An id beyond int8 is the operator's mistake (400), not a query PostgreSQL refuses (500). */
const ActionBody = Schema.Struct({
  queue: Schema.String.check(Schema.isNonEmpty()),
  consumer: Schema.String.check(Schema.isNonEmpty()),
  target: Schema.Union([
    Schema.Literal("all"),
    Schema.String.check(Schema.makeFilter(isInt8Id, { expected: "an event id (a whole number within int8)" }))
  ])
})

const decodeActionBody = Schema.decodeUnknownEffect(Schema.fromJsonString(ActionBody))

/** Action bodies are a few names and an id. */
const MAX_BODY_BYTES = 16 * 1024

/**
 * How much of a body too large is read and dropped before the 413: closing
 * a connection with unread data resets it, and the client would see the reset,
 * not the 413. Past this the connection is cut.
 */
const MAX_DRAINED_BYTES = 1024 * 1024

const TOO_LARGE = { status: 413, reason: "request body too large" } as const

const readBody = (request: Http.IncomingMessage) =>
  Effect.callback<string, { readonly status: 413 | 400; readonly reason: string }>((resume) => {
    let size = 0
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => {
      size += chunk.length
      if (size <= MAX_BODY_BYTES) chunks.push(chunk)
      else if (size > MAX_DRAINED_BYTES) {
        resume(Effect.fail(TOO_LARGE))
        request.destroy()
      } else chunks.length = 0
    })
    request.on("end", () =>
      resume(size > MAX_BODY_BYTES ? Effect.fail(TOO_LARGE) : Effect.succeed(Buffer.concat(chunks).toString("utf8"))))
    request.on("error", (error) => resume(Effect.fail({ status: 400, reason: error.message })))
  })

/** The status of an action's failure: what the operator asked for is not there (404) or is wrong (400). */
const statusOf = (error: PgqError): number => {
  switch (error._tag) {
    case "FailedEventNotFound":
    case "ConsumerNotRegistered":
    case "QueueNotFound":
      return 404
    case "InvalidArgument":
      return 400
    default:
      return 500
  }
}

/** A page's data could not be read: not there (404), asked wrongly (400), or the database failed (503). */
const failureStatus = (error: PgqError | Cause.TimeoutError): number =>
  error._tag === "TimeoutError" ? 503 : statusOf(error) === 500 ? 503 : statusOf(error)

const failedEventJson = (f: FailedEvent) => ({
  id: f.event.id,
  time: f.event.time.toString(),
  retry: f.event.retry,
  type: f.event.type,
  data: f.event.data,
  extra1: f.event.extra1,
  extra2: f.event.extra2,
  extra3: f.event.extra3,
  extra4: f.event.extra4,
  failedAt: f.failedAt.toString(),
  reason: f.reason
})

const FAILED_PAGE = 50

/**
 * Builds the handler; its lag sampler runs until the scope closes.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (
  options: ConsoleOptions = {}
): Effect.Effect<ConsoleHandler, never, Scope.Scope | Pgq | FailedEvents | EventStatus | SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    const store = yield* FailedEvents
    const eventStatus = yield* EventStatus
    // The caller's services, logger and log level too (the daemon's file, say), for every request.
    const context = yield* Effect.context<Pgq | SqlClient.SqlClient>()
    const jobs = options.jobs === false ? undefined : options.jobs ?? (yield* TrackerJobs.source)
    const history = yield* LagHistory.make({ interval: options.lagInterval, window: options.lagWindow })
    const token = yield* Effect.orDie(Security.makeToken(options.token))
    const readOnly = options.readOnly ?? false
    const loopbackOnly = options.loopbackOnly ?? true
    const readsNeedToken = !loopbackOnly
    const page: Pages.PageContext = {
      base: BASE,
      readOnly,
      readsNeedToken,
      refreshMillis: Duration.toMillis(Duration.fromInputUnsafe(options.refreshInterval ?? "5 seconds")),
      daemon: options.daemonStatus !== undefined,
      jobs: jobs !== undefined
    }
    const chart = { windowMillis: Duration.toMillis(history.window), intervalMillis: Duration.toMillis(history.interval) }

    const overview = Overview.gather({ lag: history.samples, daemonStatus: options.daemonStatus }).pipe(
      Effect.provideContext(context)
    )

    const consumerData = Effect.fnUntraced(function*(params: URLSearchParams) {
      const queue = params.get("queue") ?? ""
      const consumer = params.get("consumer") ?? ""
      const after = params.get("after")
      const afterId = after === null ? undefined : Option.getOrUndefined(Option.map(parseInt8Id(after), EventId.make))
      // One after the other: one connection of the daemon's small pool at a time.
      const found = yield* Effect.all([
        pgq.getConsumerInfo(queue, consumer),
        store.list(queue, consumer, { limit: FAILED_PAGE + 1, afterId }),
        store.count(queue, consumer).pipe(Effect.option)
      ]).pipe(Effect.timeout("5 seconds"), Effect.result)
      if (found._tag === "Failure") {
        return {
          queue,
          consumer,
          view: undefined,
          failed: [],
          nextAfter: undefined,
          error: messageOf(found.failure),
          status: failureStatus(found.failure)
        }
      }
      const [info, failed, count] = found.success
      const statuses = options.daemonStatus === undefined ? [] : yield* options.daemonStatus
      const shown = failed.slice(0, FAILED_PAGE)
      return {
        queue,
        consumer,
        view: Overview.consumerView(
          info,
          Option.getOrNull(count),
          statuses.find((s) => s.queue === queue && s.consumer === consumer)
        ),
        failed: shown,
        nextAfter: failed.length > FAILED_PAGE ? shown[shown.length - 1]?.event.id.toString() : undefined,
        error: null,
        status: 200
      }
    })

    const eventData = Effect.fnUntraced(function*(params: URLSearchParams) {
      const queueParam = params.get("queue")
      const idParam = params.get("id")
      const queues = yield* pgq.listQueues.pipe(
        Effect.map((qs) => qs.map((q) => q.queueName)),
        Effect.timeout("5 seconds"),
        Effect.orElseSucceed((): ReadonlyArray<string> => [])
      )
      const queue = queueParam === null || queueParam === "" ? undefined : queueParam
      const id = idParam === null || idParam === "" ? undefined : idParam.trim()
      if (queue === undefined || id === undefined) {
        return { queues, queue, id, statuses: undefined, error: null, status: 200 }
      }
      const eventId = parseInt8Id(id)
      if (Option.isNone(eventId)) {
        return {
          queues,
          queue,
          id,
          statuses: undefined,
          error: `An event id is a whole number from 0 to ${INT8_MAX}.`,
          status: 400
        }
      }
      const found = yield* eventStatus.forEvent(queue, EventId.make(eventId.value)).pipe(
        Effect.timeout("10 seconds"),
        Effect.result
      )
      return found._tag === "Success"
        ? { queues, queue, id, statuses: found.success, error: null, status: 200 }
        : { queues, queue, id, statuses: undefined, error: messageOf(found.failure), status: failureStatus(found.failure) }
    })

    const jobsData = Effect.suspend(() =>
      jobs === undefined
        ? Effect.succeed({ jobs: [], error: "This console shows no jobs." })
        : jobs.pipe(
          Effect.timeout("5 seconds"),
          Effect.match({
            onSuccess: (jobs) => ({ jobs, error: null }),
            onFailure: (error) => ({ jobs: [], error: messageOf(error) })
          })
        )
    )

    const act = Effect.fnUntraced(function*(action: "retry" | "delete", request: Http.IncomingMessage) {
      if (readOnly) return jsonReply({ error: "this console is read-only" }, 403)
      const refused = Security.checkAction(request, token)
      if (refused !== undefined) return jsonReply({ error: refused.reason }, refused.status)
      const text = yield* readBody(request).pipe(Effect.result)
      if (text._tag === "Failure") {
        const reply = jsonReply({ error: text.failure.reason }, text.failure.status)
        // Not another request on a connection whose body was not all read.
        return text.failure.status === 413 ? { ...reply, headers: { connection: "close" } } : reply
      }
      const body = yield* decodeActionBody(text.success).pipe(Effect.result)
      if (body._tag === "Failure") {
        return jsonReply({ error: "expected {\"queue\", \"consumer\", \"target\": an event id or \"all\"}" }, 400)
      }
      const { consumer, queue } = body.success
      const target: FailedEventTarget = body.success.target === "all"
        ? "all"
        : EventId.make(Option.getOrThrow(parseInt8Id(body.success.target)))
      const done = yield* (action === "retry" ? store.retry : store.delete)(queue, consumer, target).pipe(Effect.result)
      if (done._tag === "Failure") return jsonReply({ error: done.failure.message }, statusOf(done.failure))
      const n = done.success
      const message = `${action === "retry" ? "retried" : "deleted"} ${n} failed event${n === 1 ? "" : "s"} of ${
        JSON.stringify(consumer)
      } on ${JSON.stringify(queue)}${action === "retry" ? " (delivered again after the next retry maintenance)" : ""}`
      yield* Effect.logInfo(`console: ${message}`)
      return jsonReply({ message, count: n })
    })

    const route = (method: string, path: string, params: URLSearchParams, request: Http.IncomingMessage) => {
      const reading = method === "GET" || method === "HEAD"
      const sub = path === BASE ? "/" : path.slice(BASE.length)
      if (path === "/") return Effect.succeed<Reply>({ status: 302, type: HTML, body: "", headers: { location: `${BASE}/` } })
      if (sub === "/api/retry" || sub === "/api/delete") {
        if (method !== "POST") return Effect.succeed(jsonReply({ error: "use POST" }, 405))
        return act(sub === "/api/retry" ? "retry" : "delete", request)
      }
      if (!reading) return Effect.succeed(jsonReply({ error: "method not allowed" }, 405))
      if (readsNeedToken && !sub.startsWith("/assets/")) {
        const refused = Security.checkRead(request, token)
        if (refused !== undefined) {
          return Effect.succeed(
            sub.startsWith("/api/")
              ? jsonReply({ error: refused.reason }, refused.status)
              : htmlReply(Pages.lockedPage(page), refused.status)
          )
        }
      }
      switch (sub) {
        case "/":
          return Effect.map(overview, (o) => htmlReply(Pages.overviewPage(page, o, chart)))
        case "/consumer":
          return Effect.map(consumerData(params), (data) => htmlReply(Pages.consumerPage(page, data)))
        case "/event":
          return Effect.map(eventData(params), (data) => htmlReply(Pages.eventPage(page, data)))
        case "/jobs":
          return jobs === undefined
            ? Effect.succeed(htmlReply(Pages.notFoundPage(page, "This console shows no jobs."), 404))
            : Effect.map(jobsData, (data) => htmlReply(Pages.jobsPage(page, data)))
        case "/api/overview":
          return Effect.map(overview, (o) => jsonReply({ ...o, readOnly, lagIntervalMillis: chart.intervalMillis }))
        case "/api/consumer":
          return Effect.map(consumerData(params), ({ status, ...data }) =>
            jsonReply({ ...data, failed: data.failed.map(failedEventJson) }, status))
        case "/api/event":
          return Effect.map(eventData(params), ({ status, ...data }) => jsonReply(data, status))
        case "/assets/console.js":
          return Effect.succeed<Reply>({ status: 200, type: "text/javascript; charset=utf-8", body: Assets.script })
        case "/assets/console.css":
          return Effect.succeed<Reply>({ status: 200, type: "text/css; charset=utf-8", body: Assets.style })
        default:
          return Effect.succeed(htmlReply(Pages.notFoundPage(page, `Nothing at ${path}.`), 404))
      }
    }

    const send = (response: Http.ServerResponse, head: boolean, reply: Reply) => {
      response.writeHead(reply.status, {
        ...Security.SECURITY_HEADERS,
        "content-type": reply.type,
        "content-length": Buffer.byteLength(reply.body),
        ...reply.headers
      })
      response.end(head ? undefined : reply.body)
    }

    const handle = (request: Http.IncomingMessage, response: Http.ServerResponse) => {
      const method = request.method ?? "GET"
      const url = new URL(request.url ?? "/", "http://localhost")
      const refusedHost = Security.checkHost(request, loopbackOnly)
      if (refusedHost !== undefined) {
        send(response, false, { status: refusedHost.status, type: "text/plain; charset=utf-8", body: `${refusedHost.reason}\n` })
        return
      }
      Effect.runForkWith(context)(route(method, url.pathname, url.searchParams, request)).addObserver((exit) => {
        if (exit._tag === "Success") {
          send(response, method === "HEAD", exit.value)
        } else {
          send(response, false, { status: 500, type: "text/plain; charset=utf-8", body: "internal error\n" })
        }
      })
    }

    return {
      token,
      readOnly,
      readsNeedToken,
      handles: (path) => path === "/" || path === BASE || path.startsWith(`${BASE}/`),
      handle,
      url: (origin) => `${origin}${BASE}/${readOnly && !readsNeedToken ? "" : `#token=${Redacted.value(token)}`}`
    } satisfies ConsoleHandler
  })

