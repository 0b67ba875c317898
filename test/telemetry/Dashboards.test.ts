import { assert, describe, it } from "@effect/vitest"
import { metricsText } from "../../src/daemon/ControlServer.ts"
import * as Metrics from "../../src/telemetry/Metrics.ts"
import * as Dashboards from "./GrafanaDashboards.ts"

/** Every series name effect-pgq exports: its metrics, as Prometheus names, and the daemon's own. */
const exported = (): Set<string> => {
  const names = new Set<string>()
  for (const m of Metrics.all) {
    const name = Metrics.prometheusName(m.name, m.kind, m.unit)
    if (m.kind === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) names.add(name + suffix)
    else names.add(name)
  }
  const daemon = metricsText({
    pid: 1,
    uptimeSeconds: 1,
    consumers: [{
      queue: "q",
      consumer: "c",
      state: "running",
      currentBatch: null,
      batches: 0,
      events: 0,
      failed: 0,
      retried: 0,
      restarts: 0,
      lastError: null,
      lagSeconds: 0,
      pendingEvents: 0
    }]
  })
  for (const match of daemon.matchAll(/^# TYPE (\S+) /gm)) names.add(match[1]!)
  return names
}

const PROMQL_WORDS = new Set([
  "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool", "le"
])

/** The metric names a PromQL expression selects: identifiers that are not functions, labels or keywords. */
const metricNames = (expr: string): Array<string> => {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, "\"\"") // strings
    .replace(/\{[^}]*\}/g, "") // label matchers
    .replace(/\[[^\]]*\]/g, "") // ranges
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, "") // grouping labels
  const names: Array<string> = []
  for (const match of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const word = match[0]
    const after = stripped.slice(match.index + word.length).trimStart()
    if (after.startsWith("(") || PROMQL_WORDS.has(word)) continue
    names.push(word)
  }
  return names
}

describe("Grafana dashboards (otel/grafana/dashboards)", () => {
  const files = Dashboards.files()

  it("there is at least one", () => assert.isAbove(files.length, 0))

  for (const file of files) {
    describe(file, () => {
      const dashboard = Dashboards.load(file)
      const panels = Dashboards.panels(dashboard)

      it("is a Grafana dashboard: uid, title, schema version, panels with ids, types, positions and queries", () => {
        assert.isString(dashboard.uid)
        assert.isString(dashboard.title)
        assert.isNumber(dashboard.schemaVersion)
        assert.isAtLeast(dashboard.schemaVersion as number, 30)
        assert.isArray(dashboard.panels)
        const ids = panels.map((p) => p.id)
        assert.strictEqual(new Set(ids).size, ids.length, "panel ids are unique")
        for (const panel of panels) {
          assert.isNumber(panel.id)
          assert.isString(panel.type)
          assert.isString(panel.title)
          for (const key of ["x", "y", "w", "h"] as const) assert.isNumber(panel.gridPos[key], `${panel.title}: gridPos.${key}`)
          assert.isAtMost(panel.gridPos.x + panel.gridPos.w, 24, `${panel.title} fits the 24-column grid`)
          assert.isAbove(panel.targets?.length ?? 0, 0, `${panel.title} has queries`)
          for (const target of panel.targets ?? []) {
            assert.isString(target.refId)
            assert.isString(target.expr)
          }
        }
      })

      it("every variable its queries use has a value (the dashboard's, or Grafana's built-ins)", () => {
        for (const { expr } of Dashboards.queries(dashboard)) {
          assert.doesNotThrow(() => Dashboards.interpolate(dashboard, expr), undefined, undefined, expr)
        }
      })

      it("queries only metrics effect-pgq exports", () => {
        const known = exported()
        const used = Dashboards.queries(dashboard).flatMap(({ expr }) => metricNames(Dashboards.interpolate(dashboard, expr)))
        assert.isAbove(used.length, 0)
        for (const name of used) assert.isTrue(known.has(name), `${name} is not a metric effect-pgq exports`)
      })

      it("shows lag per consumer with thresholds, rates, duration quantiles, batch size, failures, and links to traces", () => {
        const exprs = Dashboards.queries(dashboard).map(({ expr }) => expr)
        const lag = panels.find((p) => (p.targets ?? []).some((t) => t.expr?.includes("pgq_consumer_lag_seconds")))
        assert.isDefined(lag)
        assert.include(lag!.targets![0]!.expr, "messaging_consumer_group_name")
        assert.isAbove(lag!.fieldConfig?.defaults?.thresholds?.steps.length ?? 0, 1)
        for (const q of ["0.5", "0.95", "0.99"]) {
          assert.isTrue(exprs.some((e) => e.includes(`histogram_quantile(${q}`) && e.includes("messaging_process_duration_seconds_bucket")))
        }
        assert.isTrue(exprs.some((e) => e.includes("messaging_client_consumed_messages_total")))
        assert.isTrue(exprs.some((e) => e.includes("messaging_client_sent_messages_total")))
        assert.isTrue(exprs.some((e) => e.includes("pgq_consumer_batches_total")))
        assert.isTrue(exprs.some((e) => e.includes("pgq_consumer_failed_events_total")))
        assert.isTrue(exprs.some((e) => e.includes("pgq_consumer_retried_events_total")))
        assert.isTrue(panels.some((p) => (p.fieldConfig?.defaults?.links ?? []).some((l) => l.url.includes("jaeger"))))
      })
    })
  }

  it("the metric-name check catches a name effect-pgq does not export", () => {
    assert.deepStrictEqual(metricNames("sum by (a) (rate(foo_total{x=\"y\"}[5m])) / bar"), ["foo_total", "bar"])
  })
})
