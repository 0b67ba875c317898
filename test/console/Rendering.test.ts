/**
 * The console without a server: escaping, the lag chart, the daemon config's console section.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { html, render, trusted } from "../../src/console/Html.ts"
import * as LagChart from "../../src/console/LagChart.ts"
import * as DaemonConfig from "../../src/daemon/DaemonConfig.ts"

describe("Html", () => {
  it("escapes every interpolation that is not Html, in content and attributes", () => {
    const value = `<img src=x onerror="alert(1)"> & 'q'`
    assert.strictEqual(
      render(html`<td title="${value}">${value}${trusted("<br>")}${[1, null, "<"]}</td>`),
      `<td title="&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &#39;q&#39;">` +
        `&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &#39;q&#39;<br>1&lt;</td>`
    )
  })
})

describe("LagChart", () => {
  const point = (lagSeconds: number | null) => ({ queue: "q", consumer: "c", lagSeconds })

  it("splits a series where samples are missing or lag is unknown", () => {
    const [series] = LagChart.series([
      { at: 0, points: [point(1)] },
      { at: 5_000, points: [point(2)] },
      { at: 30_000, points: [point(3)] },
      { at: 35_000, points: [point(null)] },
      { at: 40_000, points: [point(4)] }
    ], 5_000)
    assert.deepStrictEqual(series?.segments, [[[0, 1], [5_000, 2]], [[30_000, 3]], [[40_000, 4]]])
  })

  it("draws names as text", () => {
    const svg = render(LagChart.render({
      samples: [{ at: 0, points: [{ queue: "<q>", consumer: "c", lagSeconds: 1 }] }, {
        at: 5_000,
        points: [{ queue: "<q>", consumer: "c", lagSeconds: 70 }]
      }],
      now: 5_000,
      windowMillis: 900_000,
      intervalMillis: 5_000
    }))
    assert.include(svg, "&lt;q&gt; / c")
    assert.notInclude(svg, "<q>")
    assert.include(svg, "<polyline")
    assert.include(svg, ">2 min</text>")
  })
})

describe("DaemonConfig console section", () => {
  const config = (console: unknown) => ({ database: { url: "postgres://localhost/x" }, consumers: [], console })

  it.effect("takes a token of 16 characters or more, as text or Redacted, and refuses a shorter one", () =>
    Effect.gen(function*() {
      yield* DaemonConfig.decode("c.ts", config({ token: "0123456789abcdef", readOnly: true }))
      yield* DaemonConfig.decode("c.ts", config({ token: Redacted.make("0123456789abcdef") }))
      yield* DaemonConfig.decode("c.ts", config(false))
      const short = yield* Effect.flip(DaemonConfig.decode("c.ts", config({ token: Redacted.make("short-secret") })))
      assert.match(short.message, /^c\.ts: console\.token: Expected a Redacted of at least 16 characters/)
      assert.notInclude(short.message, "short-secret")
    }))
})
