/**
 * effect-pgq's metrics in Prometheus' text format, named the way the
 * OpenTelemetry Collector's Prometheus exporter names them (see
 * `Metrics.prometheusName`), so a dashboard reads the daemon's `/metrics`
 * and a collector's alike.
 *
 * @since 0.2.0
 */
import { type Context, Effect, Metric } from "effect"
import * as Metrics from "./Metrics.ts"

const byName = new Map(Metrics.all.map((m) => [m.name, m]))

const sanitizeLabel = (key: string): string => key.replace(/[^a-zA-Z0-9_]/g, "_")
const escapeValue = (value: string): string => value.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")

const labelsOf = (attributes: Metric.Metric.AttributeSet | undefined, extra?: readonly [string, string]): string => {
  const labels: Array<string> = []
  for (const [key, value] of Object.entries(attributes ?? {})) {
    if (key === "unit") continue
    labels.push(`${sanitizeLabel(key)}="${escapeValue(value)}"`)
  }
  if (extra !== undefined) labels.push(`${extra[0]}="${extra[1]}"`)
  return labels.length === 0 ? "" : `{${labels.join(",")}}`
}

/**
 * The current values of effect-pgq's metrics in the registry of `context`.
 *
 * @since 0.2.0
 * @category formatting
 */
export const formatUnsafe = (context: Context.Context<never>): string => {
  const families = new Map<string, { readonly help: string; readonly type: string; readonly lines: Array<string> }>()
  for (const snapshot of Metric.snapshotUnsafe(context)) {
    const known = byName.get(snapshot.id)
    if (known === undefined) continue
    const name = Metrics.prometheusName(known.name, known.kind, known.unit)
    let family = families.get(name)
    if (family === undefined) {
      family = { help: snapshot.description ?? known.name, type: known.kind, lines: [] }
      families.set(name, family)
    }
    switch (snapshot.type) {
      case "Counter":
        family.lines.push(`${name}${labelsOf(snapshot.attributes)} ${snapshot.state.count}`)
        break
      case "Gauge":
        family.lines.push(`${name}${labelsOf(snapshot.attributes)} ${snapshot.state.value}`)
        break
      case "Histogram": {
        const { buckets, count, sum } = snapshot.state
        const base = name
        for (const [boundary, cumulative] of buckets) {
          if (boundary === Number.POSITIVE_INFINITY) continue
          family.lines.push(`${base}_bucket${labelsOf(snapshot.attributes, ["le", String(boundary)])} ${cumulative}`)
        }
        family.lines.push(`${base}_bucket${labelsOf(snapshot.attributes, ["le", "+Inf"])} ${count}`)
        family.lines.push(`${base}_sum${labelsOf(snapshot.attributes)} ${sum}`)
        family.lines.push(`${base}_count${labelsOf(snapshot.attributes)} ${count}`)
        break
      }
      default:
        break
    }
  }
  const out: Array<string> = []
  for (const [name, family] of families) {
    out.push(`# HELP ${name} ${family.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`, `# TYPE ${name} ${family.type}`)
    out.push(...family.lines)
  }
  return out.length === 0 ? "" : `${out.join("\n")}\n`
}

/**
 * @since 0.2.0
 * @category formatting
 */
export const format: Effect.Effect<string> = Effect.map(Effect.context<never>(), formatUnsafe)
