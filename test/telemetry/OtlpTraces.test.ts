import { assert, it } from "@effect/vitest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Context, Effect, Exit, Layer, Option, Tracer } from "effect"
import * as OtlpTraces from "../../src/telemetry/OtlpTraces.ts"
import * as SharedAttributes from "../../src/telemetry/SharedAttributes.ts"
import * as OtlpReceiver from "./OtlpReceiver.ts"

const { attribute } = OtlpReceiver

/** An internal span of `tracer`: a root unless `parent` is given. */
const internalSpan = (tracer: Tracer.Tracer, name: string, parent: Option.Option<Tracer.AnySpan> = Option.none()) =>
  tracer.span({
    name,
    parent,
    annotations: Context.empty(),
    links: [],
    startTime: 1n,
    kind: "internal",
    root: Option.isNone(parent),
    sampled: true
  })

it.effect("shared attributes, and spans of any length, as protobuf", () =>
  Effect.gen(function*() {
    const receiver = yield* OtlpReceiver.make
    const shared = SharedAttributes.flatten({ "messaging.system": "pgq", "messaging.destination.name": "orders" })
    const long = "x".repeat(20_000)
    yield* Effect.gen(function*() {
      const tracer = yield* Effect.tracer
      yield* Effect.gen(function*() {
        const parent = yield* Effect.currentSpan
        const span = (name: string) => {
          const made = tracer.span({
            name,
            parent: Option.some(parent),
            annotations: parent.annotations,
            links: [],
            startTime: 1n,
            kind: "consumer",
            root: false,
            sampled: true
          })
          SharedAttributes.set(made, shared)
          return made
        }
        const a = span("a")
        a.attribute("id", "1")
        a.end(2n, Exit.void)
        // Setting a shared key again replaces its value for this span only.
        const b = span("b")
        b.attribute("messaging.destination.name", "refunds")
        assert.deepStrictEqual([...b.attributes.keys()], ["messaging.system", "messaging.destination.name"])
        b.end(2n, Exit.void)
        const c = span("c")
        c.attribute("long", long)
        c.attribute("unicode", "zażółć")
        c.attribute("long unicode", "ü€𝄞".repeat(100))
        c.end(2n, Exit.void)
        const d = internalSpan(tracer, "d")
        d.end(2n, Exit.void)
        // A parent from elsewhere: its trace id (left-padded, as Effect pads) and span id as given.
        const e = internalSpan(tracer, "e", Option.some(Tracer.externalSpan({ traceId: "abc123", spanId: "00f067aa0ba902b7" })))
        assert.strictEqual(e.traceId, "abc123")
        e.end(2n, Exit.void)
      }).pipe(Effect.withSpan("parent"))
    }).pipe(
      Effect.provide(
        OtlpTraces.layer({ url: `${receiver.url}/v1/traces`, resource: { serviceName: "otlp-traces-test" }, protocol: "http/protobuf" }).pipe(
          Layer.provide(NodeHttpClient.layerNodeHttpOptions({ keepAlive: true }))
        )
      )
    )
    const spans = receiver.spans()
    const named = (name: string) => spans.find((s) => s.name === name)!
    assert.deepStrictEqual(
      ["a", "b", "c"].map((name) => [
        attribute(named(name).attributes, "messaging.system"),
        attribute(named(name).attributes, "messaging.destination.name")
      ]),
      [["pgq", "orders"], ["pgq", "refunds"], ["pgq", "orders"]]
    )
    assert.strictEqual(attribute(named("a").attributes, "id"), "1")
    assert.strictEqual(attribute(named("c").attributes, "long"), long)
    assert.strictEqual(attribute(named("c").attributes, "unicode"), "zażółć")
    assert.strictEqual(attribute(named("c").attributes, "long unicode"), "ü€𝄞".repeat(100))
    assert.strictEqual(named("d").attributes.length, 0)
    assert.strictEqual(named("b").parentSpanId, named("parent").spanId)
    assert.strictEqual(named("b").traceId, named("parent").traceId)
    assert.match(named("d").traceId, /^[0-9a-f]{32}$/)
    assert.notStrictEqual(named("d").traceId, named("parent").traceId)
    assert.deepStrictEqual([named("e").traceId, named("e").parentSpanId], ["abc123".padStart(32, "0"), "00f067aa0ba902b7"])
  }).pipe(Effect.scoped))

it.live("every span arrives once and intact over many requests, sent while earlier ones are still being read", () =>
  Effect.gen(function*() {
    // Bodies of about 10 MB, more than the sockets' buffers hold, read 100 ms late: each stays
    // with the sender while the next spans are encoded.
    const receiver = yield* OtlpReceiver.makeWith({ readAfterMs: 100 })
    const count = 160
    const text = (n: number) => `${n}:`.padEnd(300_000, String.fromCharCode(97 + (n % 26)))
    yield* Effect.gen(function*() {
      const tracer = yield* Effect.tracer
      for (let n = 0; n < count; n++) {
        const span = internalSpan(tracer, "s")
        span.attribute("n", n)
        span.attribute("text", text(n))
        span.end(2n, Exit.void)
        // Full batches go out once this yields.
        if (n % 16 === 15) yield* Effect.sleep("25 millis")
      }
    }).pipe(
      Effect.provide(
        OtlpTraces.layer({
          url: `${receiver.url}/v1/traces`,
          resource: { serviceName: "otlp-traces-test" },
          protocol: "http/protobuf",
          maxBatchSize: 32
        }).pipe(Layer.provide(NodeHttpClient.layerNodeHttpOptions({ keepAlive: true })))
      )
    )
    const spans = receiver.spans()
    assert.isAbove(receiver.requests(), 2)
    // One request at a time: the spans ended meanwhile wait for the next, in one buffer.
    assert.strictEqual(receiver.mostAtOnce(), 1)
    assert.deepStrictEqual(
      spans.map((span) => attribute(span.attributes, "n")).sort((a, b) => Number(a) - Number(b)),
      Array.from({ length: count }, (_, n) => n)
    )
    for (const span of spans) assert.strictEqual(attribute(span.attributes, "text"), text(Number(attribute(span.attributes, "n"))))
  }).pipe(Effect.scoped), { timeout: 30_000 })

it.live("many more spans than are kept for a failing endpoint, ended without a pause, all arrive", () =>
  Effect.gen(function*() {
    const receiver = yield* OtlpReceiver.make
    const count = 50_000
    yield* Effect.gen(function*() {
      const tracer = yield* Effect.tracer
      for (let n = 0; n < count; n++) {
        const span = internalSpan(tracer, "s")
        span.attribute("n", n)
        span.end(2n, Exit.void)
      }
    }).pipe(
      Effect.provide(
        OtlpTraces.layer({
          url: `${receiver.url}/v1/traces`,
          resource: { serviceName: "otlp-traces-test" },
          protocol: "http/protobuf"
        }).pipe(Layer.provide(NodeHttpClient.layerNodeHttpOptions({ keepAlive: true })))
      )
    )
    assert.strictEqual(new Set(receiver.spans().map((span) => attribute(span.attributes, "n"))).size, count)
  }))

it.live("an endpoint that refuses connections costs the spans, not the program", () =>
  Effect.gen(function*() {
    const port = yield* OtlpReceiver.make.pipe(Effect.map((receiver) => receiver.url), Effect.scoped)
    const ended = yield* Effect.gen(function*() {
      for (let n = 0; n < 10_000; n++) yield* Effect.void.pipe(Effect.withSpan("s", { attributes: { n } }))
      return "ended"
    }).pipe(
      Effect.provide(
        OtlpTraces.layer({
          url: `${port}/v1/traces`,
          resource: { serviceName: "otlp-traces-test" },
          protocol: "http/protobuf",
          maxBatchSize: 256,
          shutdownTimeout: "1 second"
        }).pipe(Layer.provide(NodeHttpClient.layerNodeHttpOptions({ keepAlive: true })))
      ),
      Effect.timeout("20 seconds")
    )
    assert.strictEqual(ended, "ended")
  }))
