/**
 * Helpers of the console suites: failed events to show, a way to see what a
 * consumer receives, and plain HTTP requests with any headers (a browser
 * would not let a test forge Origin or Sec-Fetch-Site).
 */
import { Effect, Option } from "effect"
import * as Http from "node:http"
import { FailedEvents } from "../../src/api/FailedEvents.ts"
import { Installer } from "../../src/api/Installer.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import type { PgqEvent } from "../../src/api/PgqEvent.ts"
import * as TestDb from "../TestDb.ts"

/** A queue and consumer whose events with these payloads were delivered once and stored as failed. */
export const withFailedEvents = (prefix: string, payloads: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    const store = yield* FailedEvents
    yield* (yield* Installer).install
    const { queue, consumer } = yield* TestDb.queueWithConsumer(prefix)
    for (const data of payloads) yield* pgq.insertEvent(queue, { type: "order.created", data })
    yield* TestDb.tick(queue)
    const batch = Option.getOrThrow(yield* pgq.nextBatch(queue, consumer))
    const events = yield* pgq.getBatchEvents(batch)
    for (const event of events) yield* store.store(queue, consumer, event, "mailer said no")
    yield* pgq.finishBatch(batch)
    return { queue, consumer, events }
  })

/** Every event the consumer receives after retry maintenance and a tick. */
export const drain = (queue: string, consumer: string) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    yield* TestDb.maintAllRetries
    yield* TestDb.tick(queue)
    const events: Array<PgqEvent> = []
    while (true) {
      const batch = yield* pgq.nextBatch(queue, consumer)
      if (Option.isNone(batch)) return events
      events.push(...(yield* pgq.getBatchEvents(batch.value)))
      yield* pgq.finishBatch(batch.value)
    }
  })

export interface Response {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly body: string
}

/** One request to `host:port`; `Host` is the address unless `headers` says otherwise. */
export const request = (
  address: string,
  path: string,
  options: {
    readonly method?: string
    readonly headers?: Record<string, string>
    readonly body?: string
  } = {}
) =>
  Effect.callback<Response, Error>((resume) => {
    const colon = address.lastIndexOf(":")
    const outgoing = Http.request({
      host: address.slice(0, colon),
      port: Number(address.slice(colon + 1)),
      path,
      method: options.method ?? "GET",
      headers: options.headers
    }, (response) => {
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => body += chunk)
      response.on("end", () => resume(Effect.succeed({ status: response.statusCode ?? 0, headers: response.headers, body })))
    })
    outgoing.on("error", (error) => resume(Effect.fail(error)))
    outgoing.end(options.body)
  })

/** A POST of an action as the page's script sends it. */
export const action = (
  address: string,
  name: "retry" | "delete",
  body: unknown,
  headers: Record<string, string>
) =>
  request(address, `/console/api/${name}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body)
  })
