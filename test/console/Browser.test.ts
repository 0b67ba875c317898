/**
 * The console in a real browser (Debian's Chromium): it shows a queue and a
 * consumer's lag, rising while the consumer stands still and falling when it
 * catches up; a failed event retried from the page is delivered again; an
 * action without the right token is refused; a payload that is markup shows
 * as text; a console reachable beyond this machine opens locked and shows
 * its pages once the token is entered. Screenshots go to .pgq/artifacts/console/.
 */
import { Effect, Exit, ManagedRuntime, Redacted, Scope } from "effect"
import type { Browser, Page } from "playwright-core"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import type { EventStatus } from "../../src/api/EventStatus.ts"
import type { FailedEvents } from "../../src/api/FailedEvents.ts"
import type { Pgq } from "../../src/api/Pgq.ts"
import * as ConsoleServer from "../../src/console/ConsoleServer.ts"
import type { Installer } from "../../src/api/Installer.ts"
import type { SqlClient } from "effect/sql"
import * as TestDb from "../TestDb.ts"
import { ensureChromium, launch, screenshotPath } from "./Chromium.ts"
import { drain, withFailedEvents } from "./ConsoleKit.ts"

const XSS = "<script>alert(1)</script>"

const runtime = ManagedRuntime.make(TestDb.servicesLayer)
const db = <A, E>(effect: Effect.Effect<A, E, Pgq | FailedEvents | EventStatus | Installer | SqlClient.SqlClient>) =>
  runtime.runPromise(effect)

const scope = Scope.makeUnsafe()
let browser: Browser | undefined = undefined
let running: ConsoleServer.RunningConsole
/** As off loopback: reading needs the token. */
let wide: ConsoleServer.RunningConsole

beforeAll(async () => {
  const chromium = await ensureChromium()
  if ("skip" in chromium) {
    console.warn(`skipping the browser tests: ${chromium.skip}`)
    return
  }
  browser = await launch(chromium.executable)
  running = await runtime.runPromise(
    ConsoleServer.serve({ port: 0, refreshInterval: "300 millis", lagInterval: "300 millis" }).pipe(Scope.provide(scope))
  )
  wide = await runtime.runPromise(
    ConsoleServer.serve({ port: 0, loopbackOnly: false, refreshInterval: "300 millis" }).pipe(Scope.provide(scope))
  )
})

afterAll(async () => {
  await browser?.close()
  await Effect.runPromise(Scope.close(scope, Exit.void))
  await runtime.dispose()
})

/** A fresh page (its own session storage: no token kept from another test) that fails on any dialog but a confirm. */
const newPage = async (): Promise<{ readonly page: Page; readonly alerts: Array<string> }> => {
  const context = await browser!.newContext({ viewport: { width: 1100, height: 760 } })
  const page = await context.newPage()
  const alerts: Array<string> = []
  page.on("dialog", (dialog) => {
    if (dialog.type() === "confirm") return dialog.accept()
    alerts.push(dialog.message())
    return dialog.dismiss()
  })
  return { page, alerts }
}

const lagOf = async (page: Page, queue: string, consumer: string): Promise<number> => {
  const text = await page.locator(`#consumers tr[data-queue="${queue}"][data-consumer="${consumer}"] td.lag`).textContent()
  const match = /^([0-9.]+) s$/.exec(text ?? "")
  assert.isNotNull(match, `lag cell: ${text}`)
  return Number(match![1])
}

/** Polls `read` until `done` holds (10 seconds at most); returns the last value. */
const waitFor = async <A>(read: () => Promise<A>, done: (a: A) => boolean): Promise<A> => {
  const deadline = Date.now() + 10_000
  while (true) {
    const value = await read()
    if (done(value)) return value
    if (Date.now() > deadline) assert.fail(`still ${String(value)} after 10 seconds`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const consumerUrl = (queue: string, consumer: string, token?: string) =>
  `http://${running.address}/console/consumer?${new URLSearchParams({ queue, consumer })}${
    token === undefined ? "" : `#token=${token}`
  }`

describe("Console in Chromium", () => {
  it("shows a queue and a consumer's lag, rising while it stands still and falling when it catches up", async (context) => {
    context.skip(browser === undefined, "no chromium (see the warning above)")
    const { consumer, queue } = await db(TestDb.queueWithConsumer("web_lag"))
    await db(drain(queue, consumer))
    const { page } = await newPage()
    await page.goto(`http://${running.address}/console/`)
    await page.locator(`#queues tr[data-queue="${queue}"]`).waitFor()
    const before = await lagOf(page, queue, consumer)
    // The page refreshes itself: the same cell shows a greater lag without a reload.
    const risen = await waitFor(() => lagOf(page, queue, consumer), (lag) => lag >= before + 1.5)
    await db(drain(queue, consumer))
    await waitFor(() => lagOf(page, queue, consumer), (lag) => lag < 1 && lag < risen)
    await page.locator("#lag svg polyline").first().waitFor()
    await page.screenshot({ path: screenshotPath("overview"), fullPage: true })
    await page.context().close()
  })

  it("retries a failed event from the page, and the consumer receives it again", async (context) => {
    context.skip(browser === undefined, "no chromium (see the warning above)")
    const { consumer, events, queue } = await db(withFailedEvents("web_retry", ["{\"order\":41}", "{\"order\":42}"]))
    const { page } = await newPage()
    await page.goto(consumerUrl(queue, consumer, Redacted.value(running.handler.token)))
    assert.notInclude(page.url(), "#token", "the token leaves the address bar")
    const second = events[1]!.id.toString()
    await page.locator(`#failed tr[data-event="${second}"]`).waitFor()
    await page.screenshot({ path: screenshotPath("failed-events"), fullPage: true })
    await page.locator(`#failed tr[data-event="${second}"] button[data-action="retry"]`).click()
    await page.locator("#flash.ok").filter({ hasText: "retried 1 failed event" }).waitFor()
    await page.locator(`#failed tr[data-event="${second}"]`).waitFor({ state: "detached" })
    const received = await db(drain(queue, consumer))
    assert.deepStrictEqual(received.map((e) => [e.id, e.data]), [[events[1]!.id, "{\"order\":42}"]])
    await page.context().close()
  })

  it("refuses an action without the right token", async (context) => {
    context.skip(browser === undefined, "no chromium (see the warning above)")
    const { consumer, events, queue } = await db(withFailedEvents("web_token", ["{\"order\":7}"]))
    const id = events[0]!.id.toString()
    const { page } = await newPage()
    await page.goto(consumerUrl(queue, consumer))
    const retry = page.locator(`#failed tr[data-event="${id}"] button[data-action="retry"]`)
    // No token at all: the page asks for it and sends nothing.
    await retry.click()
    await page.locator("#flash.error").filter({ hasText: "token" }).waitFor()
    // A wrong one: the console refuses it.
    await page.locator("#token-input").fill("not-the-token")
    await page.locator("#token-form button[type=submit]").click()
    await retry.click()
    await page.locator("#flash.error").filter({ hasText: "wrong token" }).waitFor()
    // And a request of the page's own without the header.
    const status = await page.evaluate(
      (body) =>
        fetch("/console/api/retry", { method: "POST", headers: { "content-type": "application/json" }, body })
          .then((response) => response.status),
      JSON.stringify({ queue, consumer, target: id })
    )
    assert.strictEqual(status, 401)
    const still = await db(drain(queue, consumer))
    assert.deepStrictEqual(still, [], "nothing was re-delivered")
    await page.locator(`#failed tr[data-event="${id}"]`).waitFor()
    await page.context().close()
  })

  it("shows a payload that is markup as text", async (context) => {
    context.skip(browser === undefined, "no chromium (see the warning above)")
    const { consumer, events, queue } = await db(withFailedEvents("web_xss", [XSS]))
    const { alerts, page } = await newPage()
    await page.goto(consumerUrl(queue, consumer))
    const payload = page.locator(`#failed tr[data-event="${events[0]!.id}"] pre.payload`)
    assert.strictEqual(await payload.textContent(), XSS)
    assert.strictEqual(await page.locator("#failed script").count(), 0)
    // After a refresh swapped the section in, still text.
    await page.waitForTimeout(700)
    assert.strictEqual(await payload.textContent(), XSS)
    assert.deepStrictEqual(alerts, [])
    await page.screenshot({ path: screenshotPath("payload-as-text"), fullPage: true })
    await page.context().close()
  })

  it("off loopback, opens locked and shows its pages once the token is entered", async (context) => {
    context.skip(browser === undefined, "no chromium (see the warning above)")
    const { consumer, events, queue } = await db(withFailedEvents("web_wide", ["{\"order\":9}"]))
    const id = events[0]!.id.toString()
    const { page } = await newPage()
    await page.goto(`http://${wide.address}/console/consumer?${new URLSearchParams({ queue, consumer })}`)
    await page.locator("#locked").waitFor()
    assert.strictEqual(await page.locator("#failed").count(), 0, "no data without the token")
    await page.locator("#token-input").fill("not-the-token")
    await page.locator("#token-form button[type=submit]").click()
    await page.locator("#live-status.error").filter({ hasText: "token was refused" }).waitFor()
    assert.strictEqual(await page.locator("#failed").count(), 0)
    await page.locator("#token-input").fill(Redacted.value(wide.handler.token))
    await page.locator("#token-form button[type=submit]").click()
    await page.locator(`#failed tr[data-event="${id}"]`).waitFor()
    await page.screenshot({ path: screenshotPath("unlocked"), fullPage: true })
    await page.locator(`#failed tr[data-event="${id}"] button[data-action="retry"]`).click()
    await page.locator("#flash.ok").filter({ hasText: "retried 1 failed event" }).waitFor()
    // Another page, opened by its link, comes locked and unlocks itself with the token the tab keeps.
    await page.locator("header nav a", { hasText: "Overview" }).click()
    await page.locator(`#consumers tr[data-queue="${queue}"][data-consumer="${consumer}"]`).waitFor()
    await page.context().close()
  })
})
