/**
 * The Grafana dashboards of `otel/grafana/dashboards`, read the way Grafana
 * reads them: panels (those inside collapsed rows too) with their Prometheus
 * queries, and the queries with the dashboard's variables filled in.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"

export const DIR = Path.resolve(import.meta.dirname, "../../otel/grafana/dashboards")

export interface Target {
  readonly refId: string
  readonly expr?: string
  readonly datasource?: { readonly type?: string; readonly uid?: string }
}

export interface Panel {
  readonly id: number
  readonly type: string
  readonly title: string
  readonly gridPos: { readonly x: number; readonly y: number; readonly w: number; readonly h: number }
  readonly datasource?: { readonly type?: string; readonly uid?: string }
  readonly targets?: ReadonlyArray<Target>
  /** A row's panels, when the row is collapsed. */
  readonly panels?: ReadonlyArray<Panel>
  readonly fieldConfig?: {
    readonly defaults?: {
      readonly links?: ReadonlyArray<{ readonly url: string }>
      readonly thresholds?: { readonly steps: ReadonlyArray<{ readonly value: number | null }> }
    }
  }
}

export interface Variable {
  readonly name: string
  readonly type: string
  readonly multi?: boolean
  readonly includeAll?: boolean
  readonly allValue?: string
  readonly datasource?: { readonly type?: string; readonly uid?: string }
  readonly query?: string | { readonly query?: string }
  readonly current?: { readonly value?: string | ReadonlyArray<string> }
}

export interface Dashboard {
  readonly file: string
  readonly uid: unknown
  readonly title: unknown
  readonly schemaVersion: unknown
  readonly panels: ReadonlyArray<Panel>
  readonly templating?: { readonly list?: ReadonlyArray<Variable> }
}

export const files = (): Array<string> => Fs.readdirSync(DIR).filter((f) => f.endsWith(".json")).sort()

export const load = (file: string): Dashboard => ({
  ...(JSON.parse(Fs.readFileSync(Path.join(DIR, file), "utf8")) as Omit<Dashboard, "file">),
  file
})

/** Every panel but rows, the panels of collapsed rows included. */
export const panels = (dashboard: Dashboard): Array<Panel> =>
  dashboard.panels.flatMap((p) => p.type === "row" ? [...(p.panels ?? [])] : [p])

/** Every query with an expression, with its panel. */
export const queries = (dashboard: Dashboard): Array<{ readonly panel: Panel; readonly target: Target; readonly expr: string }> =>
  panels(dashboard).flatMap((panel) =>
    (panel.targets ?? []).flatMap((target) => target.expr === undefined ? [] : [{ panel, target, expr: target.expr }])
  )

/** The datasource uids a dashboard names: its panels', its queries' and its variables'. */
export const datasourceUids = (dashboard: Dashboard): Set<string> => {
  const uids = new Set<string>()
  const add = (ds: { readonly uid?: string } | undefined) => {
    if (ds?.uid !== undefined && !ds.uid.startsWith("$")) uids.add(ds.uid)
  }
  for (const panel of panels(dashboard)) {
    add(panel.datasource)
    for (const target of panel.targets ?? []) add(target.datasource)
  }
  for (const variable of dashboard.templating?.list ?? []) add(variable.datasource)
  return uids
}

/**
 * Grafana's built-in variables, with values a dashboard over the last half
 * hour would get (a minute per point).
 */
const BUILT_IN: Record<string, string> = {
  __rate_interval: "1m",
  __interval: "1m",
  __interval_ms: "60000",
  __range: "30m",
  __range_s: "1800",
  __range_ms: "1800000"
}

/**
 * `expr` with its variables replaced, in each of Grafana's syntaxes (`$name`,
 * `${name}`, `${name:format}`, `[[name]]`): `values` first, then the
 * built-ins, then what the dashboard holds (a textbox's or constant's value;
 * for a variable with "All", its `allValue`). Throws on a variable left over.
 */
export const interpolate = (dashboard: Dashboard, expr: string, values: Record<string, string> = {}): string => {
  const known: Record<string, string> = { ...BUILT_IN }
  for (const variable of dashboard.templating?.list ?? []) {
    const current = variable.current?.value
    const fromDashboard = variable.includeAll === true && variable.allValue !== undefined
      ? variable.allValue
      : typeof current === "string" && current !== "$__all"
      ? current
      : typeof variable.query === "string"
      ? variable.query
      : undefined
    if (fromDashboard !== undefined) known[variable.name] = fromDashboard
  }
  Object.assign(known, values)
  const replaced = expr.replace(
    /\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)/g,
    (match, braced?: string, bracketed?: string, plain?: string) => {
      const name = braced ?? bracketed ?? plain ?? ""
      const value = known[name]
      if (value === undefined) throw new Error(`${dashboard.file}: no value for the variable in ${match}: ${expr}`)
      return value
    }
  )
  return replaced
}
