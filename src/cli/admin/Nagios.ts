/**
 * `status --nagios`: one line of text and perfdata, and the plugin exit
 * code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), judged on each consumer's
 * lag against the warning and critical thresholds in seconds.
 *
 * @since 0.2.0
 */

/**
 * @since 0.2.0
 * @category models
 */
export interface ConsumerReading {
  readonly queue: string
  readonly consumer: string
  readonly lagSeconds: number | null
  readonly pendingEvents: bigint | null
}

/**
 * @since 0.2.0
 * @category models
 */
export interface QueueReading {
  readonly queue: string
  readonly tickerLagSeconds: number | null
}

/**
 * @since 0.2.0
 * @category models
 */
export interface Verdict {
  readonly exitCode: 0 | 1 | 2 | 3
  readonly line: string
}

const STATES = ["OK", "WARNING", "CRITICAL", "UNKNOWN"] as const

/** Nagios perfdata labels: quoted, a quote inside doubled; `=` would end the label. */
const label = (text: string) => `'${text.replace(/'/g, "''").replace(/=/g, "_")}'`

const secs = (s: number) => `${Math.round(s * 10) / 10} s`

/**
 * The verdict for these readings.
 *
 * @since 0.2.0
 * @category evaluating
 */
export const evaluate = (
  queues: ReadonlyArray<QueueReading>,
  consumers: ReadonlyArray<ConsumerReading>,
  thresholds: { readonly warning: number; readonly critical: number }
): Verdict => {
  const name = (c: ConsumerReading) => `${c.queue}/${c.consumer}`
  const over = (limit: number) => consumers.filter((c) => c.lagSeconds !== null && c.lagSeconds >= limit)
  const critical = over(thresholds.critical)
  const warning = over(thresholds.warning).filter((c) => !critical.includes(c))
  const exitCode = critical.length > 0 ? 2 : warning.length > 0 ? 1 : 0
  const worst = consumers.reduce<ConsumerReading | undefined>(
    (max, c) => (c.lagSeconds !== null && (max === undefined || c.lagSeconds > (max.lagSeconds ?? -1)) ? c : max),
    undefined
  )
  const summary = exitCode === 0
    ? consumers.length === 0
      ? `${queues.length} queue${queues.length === 1 ? "" : "s"}, no consumers`
      : `${consumers.length} consumer${consumers.length === 1 ? "" : "s"}` +
        (worst === undefined ? "" : `, max lag ${secs(worst.lagSeconds ?? 0)} (${name(worst)})`)
    : [...critical, ...warning].map((c) => `${name(c)} lag ${secs(c.lagSeconds ?? 0)}`).join(", ") +
      ` (warning ${thresholds.warning} s, critical ${thresholds.critical} s)`
  const perfdata = [
    ...consumers.flatMap((c) => [
      ...(c.lagSeconds === null
        ? []
        : [`${label(`lag_${c.queue}_${c.consumer}`)}=${c.lagSeconds}s;${thresholds.warning};${thresholds.critical};0`]),
      ...(c.pendingEvents === null ? [] : [`${label(`pending_${c.queue}_${c.consumer}`)}=${c.pendingEvents};;;0`])
    ]),
    ...queues.flatMap((q) => q.tickerLagSeconds === null ? [] : [`${label(`ticker_lag_${q.queue}`)}=${q.tickerLagSeconds}s;;;0`])
  ]
  return {
    exitCode,
    line: `PGQ ${STATES[exitCode]} - ${summary}${perfdata.length === 0 ? "" : ` | ${perfdata.join(" ")}`}`
  }
}

/**
 * The verdict when the lag could not be read at all.
 *
 * @since 0.2.0
 * @category evaluating
 */
export const unknown = (message: string): Verdict => ({ exitCode: 3, line: `PGQ UNKNOWN - ${message}` })
