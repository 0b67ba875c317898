/**
 * The console over HTTP, in process: pages and JSON from pgq, values shown as
 * text, and actions that need the token, come from the console's own origin
 * and are refused when read-only; off loopback, reading needs the token too.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Exit, Logger, Redacted } from "effect"
import { FailedEvents } from "../../src/api/FailedEvents.ts"
import { Installer } from "../../src/api/Installer.ts"
import * as ConsoleServer from "../../src/console/ConsoleServer.ts"
import { serve as serveControl } from "../../src/daemon/ControlServer.ts"
import { make as makeSupervisor, Supervisor } from "../../src/daemon/Supervisor.ts"
import { Tracker } from "../../src/tracker/Tracker.ts"
import * as TestDb from "../TestDb.ts"
import { action, drain, request, withFailedEvents } from "./ConsoleKit.ts"

const XSS = "<script>alert(1)</script>"

layer(TestDb.servicesLayer, { excludeTestServices: true })("Console over HTTP", (it) => {
  it.effect("shows queues, consumers with lag and failed payloads as text; answers JSON; sets a strict CSP", () =>
    Effect.gen(function*() {
      const { consumer, events, queue } = yield* withFailedEvents("con_http", [XSS, "{\"n\":2}"])
      const { address } = yield* ConsoleServer.serve({ port: 0 })

      const page = yield* request(address, "/console/")
      assert.strictEqual(page.status, 200)
      assert.strictEqual(page.headers["content-type"], "text/html; charset=utf-8")
      assert.include(page.headers["content-security-policy"], "script-src 'self'")
      assert.notInclude(page.headers["content-security-policy"], "unsafe-inline")
      assert.include(page.body, `<tr data-queue="${queue}" data-consumer="${consumer}">`)
      assert.notMatch(page.body, /<script>(?!<\/script>)/, "no inline script")

      const overview = JSON.parse((yield* request(address, "/console/api/overview")).body) as {
        consumers: ReadonlyArray<{ queue: string; consumer: string; lagSeconds: number | null; failedEvents: number }>
        queues: ReadonlyArray<{ name: string }>
      }
      assert.isTrue(overview.queues.some((q) => q.name === queue))
      const mine = overview.consumers.find((c) => c.queue === queue && c.consumer === consumer)
      assert.isNumber(mine?.lagSeconds)
      assert.strictEqual(mine?.failedEvents, 2)

      const params = new URLSearchParams({ queue, consumer }).toString()
      const failedPage = yield* request(address, `/console/consumer?${params}`)
      assert.strictEqual(failedPage.status, 200)
      assert.include(failedPage.body, "&lt;script&gt;alert(1)&lt;/script&gt;")
      assert.notInclude(failedPage.body, XSS)
      assert.include(failedPage.body, `data-action="retry" data-queue="${queue}" data-consumer="${consumer}" data-target="all"`)

      const lookup = yield* request(address, `/console/api/event?queue=${queue}&id=${events[0]!.id}`)
      const states = JSON.parse(lookup.body) as { statuses: ReadonlyArray<{ consumer: string; state: string }> }
      assert.deepStrictEqual(states.statuses.map((s) => [s.consumer, s.state]), [[consumer, "failed"]])
      const lookupPage = yield* request(address, `/console/event?queue=${queue}&id=${events[0]!.id}`)
      assert.match(lookupPage.body, new RegExp(`<tr data-consumer="${consumer}">.*<span class="state failed">failed</span>`))
      assert.strictEqual((yield* request(address, `/console/api/event?queue=${queue}&id=x`)).status, 400)

      const script = yield* request(address, "/console/assets/console.js")
      assert.strictEqual(script.headers["content-type"], "text/javascript; charset=utf-8")
      assert.strictEqual((yield* request(address, "/")).headers.location, "/console/")
      assert.strictEqual((yield* request(address, "/console/nothing")).status, 404)
    }).pipe(Effect.scoped))

  it.effect("an action needs the token, the console's origin and JSON; with them, retry re-delivers and delete deletes", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      const { consumer, events, queue } = yield* withFailedEvents("con_act", ["a", "b", "c"])
      const { address, handler } = yield* ConsoleServer.serve({ port: 0 })
      const token = Redacted.value(handler.token)
      const auth = { authorization: `Bearer ${token}` }
      const first = { queue, consumer, target: events[0]!.id.toString() }

      const refusals = [
        [yield* action(address, "retry", first, {}), 401],
        [yield* action(address, "retry", first, { authorization: "Bearer wrong-token" }), 401],
        [yield* action(address, "retry", first, { ...auth, "sec-fetch-site": "cross-site" }), 403],
        [yield* action(address, "retry", first, { ...auth, origin: "http://evil.example" }), 403],
        [yield* request(address, "/console/api/retry", { method: "POST", headers: { ...auth, "content-type": "text/plain" }, body: JSON.stringify(first) }), 415],
        [yield* action(address, "retry", { queue, consumer, target: "1; drop table x" }, auth), 400],
        [yield* request(address, "/console/api/retry", { headers: auth }), 405],
        [yield* request(address, "/console/", { headers: { host: "evil.example:80" } }), 421]
      ] as const
      assert.deepStrictEqual(refusals.map(([response]) => response.status), refusals.map(([, status]) => status))
      assert.strictEqual(yield* store.count(queue, consumer), 3, "nothing was done")

      const retried = yield* action(address, "retry", first, { ...auth, origin: `http://${address}`, "sec-fetch-site": "same-origin" })
      assert.strictEqual(retried.status, 200, retried.body)
      assert.include(JSON.parse(retried.body).message, "retried 1 failed event")
      const again = yield* drain(queue, consumer)
      assert.deepStrictEqual(again.map((e) => e.data), ["a"])

      const missing = yield* action(address, "delete", first, auth)
      assert.strictEqual(missing.status, 404)
      const deleted = yield* action(address, "delete", { queue, consumer, target: "all" }, auth)
      assert.strictEqual(JSON.parse(deleted.body).count, 2)
      assert.strictEqual(yield* store.count(queue, consumer), 0)
    }).pipe(Effect.scoped))

  it.effect("read-only: no buttons, no token field, actions refused even with the token", () =>
    Effect.gen(function*() {
      const store = yield* FailedEvents
      const { consumer, queue } = yield* withFailedEvents("con_ro", ["x"])
      const { address, handler, url } = yield* ConsoleServer.serve({ port: 0, readOnly: true, token: "a-token-of-my-own-choosing" })
      assert.notInclude(url, "#token")
      const page = yield* request(address, `/console/consumer?${new URLSearchParams({ queue, consumer })}`)
      assert.notInclude(page.body, "data-action")
      assert.notInclude(page.body, "token-form")
      const refused = yield* action(address, "retry", { queue, consumer, target: "all" }, {
        authorization: `Bearer ${Redacted.value(handler.token)}`
      })
      assert.strictEqual(refused.status, 403)
      assert.strictEqual(yield* store.count(queue, consumer), 1)
    }).pipe(Effect.scoped))

  it.effect("lists the tracker's jobs, names as text", () =>
    Effect.gen(function*() {
      yield* (yield* Installer).install
      const name = `<b>${TestDb.unique("resize")}</b>`
      const job = yield* Tracker.use((tracker) => tracker.create({ name, components: ["a", "b"] })).pipe(
        Effect.provide(Tracker.layer)
      )
      const { address } = yield* ConsoleServer.serve({ port: 0 })
      const page = yield* request(address, "/console/jobs")
      assert.strictEqual(page.status, 200)
      assert.include(page.body, `<tr data-job="${job.id}"><td class="num">${job.id}</td><td>&lt;b&gt;resize_`)
      assert.include(page.body, "unfinished")
      const { address: none } = yield* ConsoleServer.serve({ port: 0, jobs: false })
      assert.strictEqual((yield* request(none, "/console/jobs")).status, 404)
    }).pipe(Effect.scoped))

  it.effect("the daemon's control endpoint serves the console beside /healthz, with its consumers' state", () =>
    Effect.gen(function*() {
      const { consumer, queue } = yield* TestDb.queueWithConsumer("con_ctl")
      const supervisor = yield* makeSupervisor
      yield* supervisor.apply([{ queue, consumer, wakeChannel: false, idleDelay: "100 millis", onEvent: () => Effect.void }])
      const address = yield* serveControl({ port: 0 }, { token: "sixteen-chars-or-more" }).pipe(
        Effect.provideService(Supervisor, supervisor)
      )
      assert.strictEqual((yield* request(address, "/healthz")).body, "ok\n")
      const page = yield* request(address, "/console/")
      assert.strictEqual(page.status, 200)
      assert.include(page.body, "<th>State</th>")
      assert.match(page.body, new RegExp(`data-consumer="${consumer}">[\\s\\S]*?<span class="state \\w+">`))
      const refused = yield* action(address, "retry", { queue, consumer, target: "all" }, { authorization: "Bearer nope" })
      assert.strictEqual(refused.status, 401)
      const disabled = yield* serveControl({ port: 0 }, { enabled: false }).pipe(Effect.provideService(Supervisor, supervisor))
      assert.strictEqual((yield* request(disabled, "/console/")).status, 404)
      yield* supervisor.stop("10 seconds")
    }).pipe(Effect.scoped))

  it.effect("logs an action with the logger of the code that serves the console", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      const recorder = Logger.make<unknown, void>(({ message }) => {
        logged.push((Array.isArray(message) ? message : [message]).map(String).join(" "))
      })
      const { consumer, queue } = yield* withFailedEvents("con_log", ["a"])
      const { address, handler } = yield* ConsoleServer.serve({ port: 0 }).pipe(Effect.provide(Logger.layer([recorder])))
      const done = yield* action(address, "delete", { queue, consumer, target: "all" }, {
        authorization: `Bearer ${Redacted.value(handler.token)}`
      })
      assert.strictEqual(done.status, 200, done.body)
      assert.include(logged.join("\n"), `console: deleted 1 failed event of ${JSON.stringify(consumer)}`)
    }).pipe(Effect.scoped))

  it.effect("an event id beyond int8 is a 400 in a lookup and in an action (the page says why)", () =>
    Effect.gen(function*() {
      const { consumer, queue } = yield* withFailedEvents("con_int8", ["a"])
      const { address, handler } = yield* ConsoleServer.serve({ port: 0 })
      const auth = { authorization: `Bearer ${Redacted.value(handler.token)}` }
      for (const id of ["9223372036854775808", "9999999999999999999"]) {
        const lookup = yield* request(address, `/console/api/event?queue=${queue}&id=${id}`)
        assert.strictEqual(lookup.status, 400, lookup.body)
        assert.include((yield* request(address, `/console/event?queue=${queue}&id=${id}`)).body, "An event id is a whole number")
        const retry = yield* action(address, "retry", { queue, consumer, target: id }, auth)
        assert.strictEqual(retry.status, 400, retry.body)
      }
      const largest = yield* action(address, "retry", { queue, consumer, target: "9223372036854775807" }, auth)
      assert.strictEqual(largest.status, 404, "the largest int8 is an id, of no failed event")
    }).pipe(Effect.scoped))

  it.effect("a body too large is answered 413, the connection closed", () =>
    Effect.gen(function*() {
      const { address, handler } = yield* ConsoleServer.serve({ port: 0 })
      const tooLarge = yield* request(address, "/console/api/retry", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${Redacted.value(handler.token)}` },
        body: JSON.stringify({ queue: "q", consumer: "c", target: "all", padding: "x".repeat(256 * 1024) })
      })
      assert.strictEqual(tooLarge.status, 413, tooLarge.body)
      assert.strictEqual(tooLarge.headers.connection, "close")
      assert.include(tooLarge.body, "request body too large")
    }).pipe(Effect.scoped))

  it.effect("off loopback every read needs the token: pages come locked, api reads are refused", () =>
    Effect.gen(function*() {
      const { consumer, queue } = yield* withFailedEvents("con_wide", ["secret-payload"])
      const { address, handler, url } = yield* ConsoleServer.serve({ host: "0.0.0.0", port: 0 })
      assert.isTrue(handler.readsNeedToken)
      const auth = { authorization: `Bearer ${Redacted.value(handler.token)}` }
      const params = new URLSearchParams({ queue, consumer }).toString()
      for (const path of ["/console/", `/console/consumer?${params}`, "/console/event", "/console/jobs"]) {
        const locked = yield* request(address, path)
        assert.strictEqual(locked.status, 401, path)
        assert.include(locked.body, "data-locked=\"true\"")
        assert.include(locked.body, "token-form")
        assert.notInclude(locked.body, queue, path)
      }
      for (const path of ["/console/api/overview", `/console/api/consumer?${params}`, `/console/api/event?queue=${queue}&id=1`]) {
        const refused = yield* request(address, path)
        assert.strictEqual(refused.status, 401, path)
        assert.notInclude(refused.body, queue)
        assert.strictEqual((yield* request(address, path, { headers: { authorization: "Bearer wrong-token" } })).status, 401)
      }
      const page = yield* request(address, `/console/consumer?${params}`, { headers: auth })
      assert.strictEqual(page.status, 200)
      assert.include(page.body, "secret-payload")
      const data = yield* request(address, `/console/api/consumer?${params}`, { headers: auth })
      assert.strictEqual(data.status, 200)
      assert.include(data.body, "secret-payload")
      assert.strictEqual((yield* request(address, "/console/assets/console.js")).status, 200, "no data in the script")
      assert.include(url, "#token=")

      const readOnly = yield* ConsoleServer.serve({ host: "0.0.0.0", port: 0, readOnly: true })
      assert.include(readOnly.url, "#token=", "a read-only console off loopback still needs its token to be read")
      assert.strictEqual((yield* request(readOnly.address, "/console/api/overview")).status, 401)
      assert.include((yield* request(readOnly.address, "/console/")).body, "token-form")

      const loopback = yield* ConsoleServer.serve({ port: 0 })
      assert.isFalse(loopback.handler.readsNeedToken)
      assert.strictEqual((yield* request(loopback.address, `/console/api/consumer?${params}`)).status, 200)
    }).pipe(Effect.scoped))

  it.effect("refuses a token shorter than 16 characters", () =>
    Effect.gen(function*() {
      const exit = yield* ConsoleServer.serve({ port: 0, token: "too-short" }).pipe(Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      const error = yield* ConsoleServer.serve({ port: 0, token: Redacted.make("fifteen-chars!!") }).pipe(Effect.flip)
      assert.strictEqual(error._tag, "ConsoleTokenError")
      assert.strictEqual(error.message, "the console's token must have at least 16 characters, got 15")
      const { handler } = yield* ConsoleServer.serve({ port: 0, token: "sixteen-chars-ok" })
      assert.strictEqual(Redacted.value(handler.token), "sixteen-chars-ok")
    }).pipe(Effect.scoped))
})
