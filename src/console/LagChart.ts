/**
 * The lag chart: an inline SVG drawn on the server from the lag samples, a
 * line per consumer over the time window, no chart library and no script.
 * Colours come from the style sheet (`series-0` … `series-7`), so the page
 * needs no inline style under its Content-Security-Policy.
 *
 * @since 0.2.0
 */
import { html, type Html } from "./Html.ts"
import type { LagSample } from "./LagHistory.ts"

const WIDTH = 720
const HEIGHT = 220
const LEFT = 56
const RIGHT = 12
const TOP = 12
const BOTTOM = 28

/**
 * How many series colours the style sheet defines.
 *
 * @since 0.2.0
 * @category constants
 */
export const SERIES_COLOURS = 8

/** Maxima of the y axis whose quarters read well: 15 s, 30 s, 45 s, 1 min; 30 min, 1 h, 1.5 h, 2 h. */
const MAXIMA = [1, 2, 4, 8, 20, 40, 60, 120, 240, 480, 1200, 2400, 3600, 7200, 14_400, 28_800, 57_600, 86_400]

const niceMax = (value: number): number => {
  const found = MAXIMA.find((m) => m >= value)
  if (found !== undefined) return found
  let days = 86_400
  while (days < value) days *= 2
  return days
}

const label = (s: number): string =>
  s >= 3600 ? `${+(s / 3600).toFixed(1)} h` : s >= 60 ? `${+(s / 60).toFixed(1)} min` : `${+s.toFixed(1)} s`

const clock = (at: number): string => new Date(at).toISOString().slice(11, 19)

/**
 * A consumer's series: its points in time order, split where it has no value
 * or where samples are missing (more than two intervals apart).
 *
 * @since 0.2.0
 * @category models
 */
export interface Series {
  readonly queue: string
  readonly consumer: string
  readonly segments: ReadonlyArray<ReadonlyArray<readonly [at: number, lagSeconds: number]>>
}

/**
 * @since 0.2.0
 * @category constructors
 */
export const series = (samples: ReadonlyArray<LagSample>, intervalMillis: number): ReadonlyArray<Series> => {
  const byKey = new Map<string, { queue: string; consumer: string; segments: Array<Array<readonly [number, number]>> }>()
  const lastAt = new Map<string, number>()
  for (const sample of samples) {
    for (const point of sample.points) {
      const key = `${point.queue}\u0000${point.consumer}`
      let entry = byKey.get(key)
      if (entry === undefined) {
        entry = { queue: point.queue, consumer: point.consumer, segments: [] }
        byKey.set(key, entry)
      }
      const previous = lastAt.get(key)
      const gap = previous === undefined || sample.at - previous > 2.5 * intervalMillis
      if (point.lagSeconds === null) {
        lastAt.delete(key)
        continue
      }
      if (gap || entry.segments.length === 0) entry.segments.push([])
      entry.segments[entry.segments.length - 1]!.push([sample.at, point.lagSeconds])
      lastAt.set(key, sample.at)
    }
  }
  return [...byKey.values()].sort((a, b) => a.queue.localeCompare(b.queue) || a.consumer.localeCompare(b.consumer))
}

/** Seconds or minutes, for the chart's title. */
const span = (millis: number): string =>
  millis >= 120_000 ? `${Math.round(millis / 60_000)} minutes` : `${Math.round(millis / 1000)} seconds`

/**
 * The chart of the window ending at `now`, with its legend. A console that
 * started a moment ago charts the time since its first sample (a minute at
 * least), not a mostly empty window.
 *
 * @since 0.2.0
 * @category rendering
 */
export const render = (options: {
  readonly samples: ReadonlyArray<LagSample>
  readonly now: number
  readonly windowMillis: number
  readonly intervalMillis: number
}): Html => {
  const all = series(options.samples, options.intervalMillis)
  if (all.length === 0) {
    return html`<p class="empty">No lag samples yet: the chart fills in as the console samples pgq.</p>`
  }
  const first = Math.min(...options.samples.map((s) => s.at))
  const shown = Math.min(options.windowMillis, Math.max(60_000, options.now - first))
  const from = options.now - shown
  const maxLag = niceMax(Math.max(0, ...all.flatMap((s) => s.segments.flatMap((seg) => seg.map(([, lag]) => lag)))))
  const plotWidth = WIDTH - LEFT - RIGHT
  const plotHeight = HEIGHT - TOP - BOTTOM
  const x = (at: number) => LEFT + Math.max(0, Math.min(1, (at - from) / shown)) * plotWidth
  const y = (lag: number) => TOP + plotHeight - (Math.min(lag, maxLag) / maxLag) * plotHeight
  const fixed = (n: number) => n.toFixed(1)
  const ticks = [0, 0.25, 0.5, 0.75, 1]
  const grid = ticks.map((t) => {
    const lag = maxLag * t
    return html`<line class="grid" x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${fixed(y(lag))}" y2="${fixed(y(lag))}"/>
<text class="axis" x="${LEFT - 6}" y="${fixed(y(lag) + 4)}" text-anchor="end">${label(lag)}</text>`
  })
  const times = ticks.map((t) => {
    const at = from + shown * t
    return html`<text class="axis" x="${fixed(x(at))}" y="${HEIGHT - 8}" text-anchor="${
      t === 0 ? "start" : t === 1 ? "end" : "middle"
    }">${clock(at)}</text>`
  })
  const lines = all.map((s, i) => {
    const colour = `series-${i % SERIES_COLOURS}`
    return s.segments.map((segment) =>
      segment.length === 1
        ? html`<circle class="${colour}" cx="${fixed(x(segment[0]![0]))}" cy="${fixed(y(segment[0]![1]))}" r="2.5"/>`
        : html`<polyline class="${colour}" fill="none" points="${
          segment.map(([at, lag]) => `${fixed(x(at))},${fixed(y(lag))}`).join(" ")
        }"/>`
    )
  })
  const title = `Consumer lag over the last ${span(shown)} (times in UTC)`
  return html`<svg class="lag-chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${title}">
<title>${title}</title>
${grid}${times}
<line class="axis-line" x1="${LEFT}" x2="${LEFT}" y1="${TOP}" y2="${TOP + plotHeight}"/>
${lines}
</svg>
<ul class="legend">${
    all.map((s, i) =>
      html`<li><span class="swatch series-${i % SERIES_COLOURS}"></span>${s.queue} / ${s.consumer}</li>`
    )
  }</ul>`
}
