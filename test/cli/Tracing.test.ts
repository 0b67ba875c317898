/**
 * The built command line with the standard OpenTelemetry variables: `insert`
 * sends its `send <queue>` span to the OTLP endpoint before it exits, and the
 * event carries that span's traceparent in ev_extra4, as otel/README.md
 * shows. Without the variables, no traceparent is written.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Installer } from "../../src/api/Installer.ts"
import type { PgqEvent } from "../../src/api/PgqEvent.ts"
import * as EventResult from "../../src/consumer/EventResult.ts"
import * as InteractiveConsumer from "../../src/consumer/InteractiveConsumer.ts"
import * as Semconv from "../../src/telemetry/Semconv.ts"
import * as OtlpReceiver from "../telemetry/OtlpReceiver.ts"
import * as TestDb from "../TestDb.ts"
import { cli, ensureBuilt } from "./runCli.ts"

const run = (args: ReadonlyArray<string>, env: Record<string, string>, input?: string) =>
  Effect.promise(() => {
    ensureBuilt()
    return cli(args, input === undefined ? { env } : { env, input })
  })

/** The events of the queue so far, through a consumer. */
const consumed = (queue: string, consumer: string) =>
  Effect.gen(function*() {
    const events: Array<PgqEvent> = []
    yield* TestDb.tick(queue)
    yield* InteractiveConsumer.processAvailable({
      queue,
      consumer,
      onEvent: (event) => Effect.sync(() => events.push(event)).pipe(Effect.as(EventResult.Ok))
    })
    return events
  })

const traceparent = (span: OtlpReceiver.OtlpSpan) => `00-${span.traceId}-${span.spanId}-01`

layer(TestDb.servicesLayer, { excludeTestServices: true })("effect-pgq insert with OTEL_* variables", (it) => {
  it.effect("sends the send span to OTEL_EXPORTER_OTLP_ENDPOINT; the event carries its traceparent", () =>
    Effect.gen(function*() {
      yield* (yield* Installer).install
      const receiver = yield* OtlpReceiver.make
      const { queue, consumer } = yield* TestDb.queueWithConsumer("cli_otel")
      const env = { PGQ_DATABASE_URL: TestDb.url, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SERVICE_NAME: "shop" }

      const one = yield* run(["insert", "-q", queue, "--type", "created", "--data", "{\"id\":1}"], env)
      assert.strictEqual(one.code, 0, one.stderr)
      assert.strictEqual(one.stderr, "")
      const id = /inserted event (\d+)/.exec(one.stdout)?.[1]
      assert.isDefined(id, one.stdout)
      // Received before the process ended: nothing is left to flush now.
      const sends = receiver.spans().filter((span) => span.name === Semconv.sendSpanName(queue))
      assert.strictEqual(sends.length, 1)
      const send = sends[0]!
      assert.strictEqual(send.kind, OtlpReceiver.SPAN_KIND.producer)
      assert.strictEqual(OtlpReceiver.attribute(send.attributes, Semconv.MESSAGING_DESTINATION_NAME), queue)

      // Many events from stdin: one sendMany span, its traceparent on each.
      const many = yield* run(["insert", "-q", queue], env, "{\"type\":\"a\"}\n{\"type\":\"b\"}\n")
      assert.strictEqual(many.code, 0, many.stderr)
      const manySend = receiver.spans().filter((span) => span.name === Semconv.sendSpanName(queue))[1]
      assert.isDefined(manySend)

      // Without the variables: no span, no traceparent.
      const plain = yield* run(["insert", "-q", queue, "--type", "plain"], { PGQ_DATABASE_URL: TestDb.url })
      assert.strictEqual(plain.code, 0, plain.stderr)

      const events = yield* consumed(queue, consumer)
      assert.deepStrictEqual(
        events.map((e) => [e.type, e.extra4]),
        [
          ["created", traceparent(send)],
          ["a", traceparent(manySend!)],
          ["b", traceparent(manySend!)],
          ["plain", null]
        ]
      )
      assert.strictEqual(String(events[0]!.id), id)
      assert.strictEqual(receiver.spans().filter((span) => span.name === Semconv.sendSpanName(queue)).length, 2)
    }).pipe(Effect.scoped))

  it.effect("an endpoint that does not answer does not fail the insert", () =>
    Effect.gen(function*() {
      yield* (yield* Installer).install
      const { queue } = yield* TestDb.queueWithConsumer("cli_otel_down")
      // Port 9 (discard) on loopback: nothing listens, the connection is refused.
      const down = yield* run(["insert", "-q", queue, "--type", "created"], {
        PGQ_DATABASE_URL: TestDb.url,
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9"
      })
      assert.strictEqual(down.code, 0, down.stderr)
      assert.match(down.stdout, /inserted event \d+/)
    }))

  it.effect("an endpoint that is not a URL is a usage error, and nothing is inserted", () =>
    Effect.gen(function*() {
      yield* (yield* Installer).install
      const { queue, consumer } = yield* TestDb.queueWithConsumer("cli_otel_bad")
      const bad = yield* run(["insert", "-q", queue, "--type", "created"], {
        PGQ_DATABASE_URL: TestDb.url,
        OTEL_EXPORTER_OTLP_ENDPOINT: "::bad"
      })
      assert.strictEqual(bad.code, 2, bad.stderr)
      assert.strictEqual(bad.stderr.trim(), "effect-pgq: OTEL_EXPORTER_OTLP_ENDPOINT is not a URL: ::bad")
      assert.strictEqual((yield* consumed(queue, consumer)).length, 0)
    }))
})
