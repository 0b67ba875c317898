/**
 * The control endpoint, in process: health, status with pgq's lag, and
 * Prometheus text for supervised consumers.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import * as Http from "node:http"
import { Installer } from "../../src/api/Installer.ts"
import { Producer } from "../../src/api/Producer.ts"
import { type DaemonStatus, serve } from "../../src/daemon/ControlServer.ts"
import { make as makeSupervisor, Supervisor } from "../../src/daemon/Supervisor.ts"
import * as TestDb from "../TestDb.ts"

const get = (address: string, path: string) =>
  Effect.callback<{ readonly status: number; readonly type: string; readonly body: string }, Error>((resume) => {
    const [host, port] = address.split(":")
    Http.get({ host, port: Number(port), path }, (response) => {
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => body += chunk)
      response.on("end", () =>
        resume(Effect.succeed({ status: response.statusCode ?? 0, type: String(response.headers["content-type"]), body })))
    }).on("error", (error) => resume(Effect.fail(error)))
  })

layer(TestDb.servicesLayer, { excludeTestServices: true })("ControlServer", (it) => {
  it.effect("serves /healthz, /status with lag from pgq, and /metrics", () =>
    Effect.gen(function*() {
      yield* (yield* Installer).install
      const { queue, consumer } = yield* TestDb.queueWithConsumer("ctl")
      yield* (yield* Producer).send(queue, { type: "t", data: "x" })
      yield* TestDb.tick(queue)
      const supervisor = yield* makeSupervisor
      yield* supervisor.apply([{ queue, consumer, wakeChannel: false, idleDelay: "100 millis", onEvent: () => Effect.void }])
      const address = yield* serve({ port: 0 }).pipe(Effect.provideService(Supervisor, supervisor))

      assert.deepStrictEqual(yield* get(address, "/healthz"), { status: 200, type: "text/plain; charset=utf-8", body: "ok\n" })
      const status = yield* get(address, "/status").pipe(
        Effect.map((response) => JSON.parse(response.body) as DaemonStatus),
        Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (s) => s.consumers[0]?.events === 1 }),
        Effect.timeout("20 seconds")
      )
      assert.strictEqual(status.pid, process.pid)
      const [c] = status.consumers
      assert.strictEqual(c!.queue, queue)
      assert.isNumber(c!.lagSeconds)
      assert.strictEqual(c!.pendingEvents, 0)

      const metrics = yield* get(address, "/metrics")
      assert.strictEqual(metrics.status, 200)
      assert.include(metrics.type, "text/plain; version=0.0.4")
      assert.include(metrics.body, `effect_pgq_consumer_events_total{queue="${queue}",consumer="${consumer}"} 1`)
      assert.match(
        metrics.body,
        new RegExp(
          `pgq_consumer_lag_seconds\\{messaging_system="pgq",messaging_destination_name="${queue}",messaging_consumer_group_name="${consumer}"\\} [0-9.]+`
        )
      )
      assert.include(metrics.body, "# TYPE effect_pgq_consumer_up gauge")
      assert.strictEqual((yield* get(address, "/nothing")).status, 404)
      yield* supervisor.stop("10 seconds")
    }).pipe(Effect.scoped))
})
