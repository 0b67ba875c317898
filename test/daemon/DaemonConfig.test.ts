/**
 * A daemon config that does not decode is one line naming the field and what
 * is wrong with it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as DaemonConfig from "../../src/daemon/DaemonConfig.ts"

const consumer = { queue: "q", consumer: "c", onEvent: () => Effect.void }
const base = { database: { url: "postgres://localhost/app" }, consumers: [consumer] }

const problem = (input: unknown) =>
  Effect.map(Effect.flip(DaemonConfig.decode("cfg.ts", input)), (error) => error.message)

describe("DaemonConfig.decode", () => {
  it.effect("accepts a valid config as it is", () =>
    Effect.gen(function*() {
      const config = yield* DaemonConfig.decode("cfg.ts", { ...base, logging: { level: "notice" }, control: { port: 0 } })
      assert.strictEqual(config.consumers[0]!.queue, "q")
    }))

  it.effect("names the field and the problem, in one line", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [unknown, string]> = [
        [{ ...base, consumers: [{ ...consumer, queue: "" }] }, "cfg.ts: consumers[0].queue: Expected a non-empty string"],
        [{ ...base, consumers: [{ queue: "q", consumer: "c" }] }, "cfg.ts: consumers[0]: Expected exactly one of onEvent and onBatch"],
        [{ ...base, consumers: [consumer, consumer] }, "cfg.ts: consumers: Expected each (queue, consumer) pair"],
        [{ ...base, consumers: [{ ...consumer, remote: { url: "" } }] }, "cfg.ts: consumers[0].remote.url: Expected a non-empty string"],
        [{ ...base, consumers: [{ ...consumer, coop: { subconsumer: "" } }] }, "cfg.ts: consumers[0].coop.subconsumer: Expected a non-empty string"],
        [
          { ...base, consumers: [{ ...consumer, remote: { url: "postgres://x/y" }, coop: { subconsumer: "a" } }] },
          "cfg.ts: consumers[0]: Expected at most one of remote and coop"
        ],
        [{ ...base, control: { port: 99999 } }, "cfg.ts: control.port: Expected a port number from 0 to 65535"],
        [{ ...base, logging: { level: "loud" } }, "cfg.ts: logging.level: Expected one of DEBUG, VERBOSE, NOTICE, WARNING, ERROR, FATAL"],
        [{ ...base, ticker: { tickerPeriod: "soon" } }, "cfg.ts: ticker.tickerPeriod: Expected a duration"],
        [{ consumers: [] }, "cfg.ts: database: Missing key"]
      ]
      for (const [input, expected] of cases) {
        const message = yield* problem(input)
        assert.isTrue(message.startsWith(expected), `${message} should start with ${expected}`)
        assert.notInclude(message, "\n")
      }
    }))

  it.effect("subconsumers of one consumer are distinct instances", () =>
    Effect.gen(function*() {
      const config = yield* DaemonConfig.decode("cfg.ts", {
        ...base,
        consumers: [{ ...consumer, coop: { subconsumer: "a" } }, { ...consumer, coop: { subconsumer: "b" } }, consumer]
      })
      assert.deepStrictEqual(config.consumers.map(DaemonConfig.keyOf), ["q/c.a", "q/c.b", "q/c"])
    }))

  it.effect("a module that does not load, or exports nothing, is a DaemonConfigError", () =>
    Effect.gen(function*() {
      const missing = yield* Effect.flip(DaemonConfig.load("/nonexistent/effect-pgq.config.ts"))
      assert.strictEqual(missing._tag, "DaemonConfigError")
      assert.include(missing.message, "effect-pgq.config.ts: cannot load")
    }))
})
