/**
 * How the admin commands print: aligned tables for people, one JSON
 * document for programs. In JSON, event ids, tick ids and event counts
 * (PostgreSQL int8) are strings, so no reader loses precision; durations are
 * seconds as numbers; times are ISO 8601 strings.
 *
 * @since 0.2.0
 */
import { Console, DateTime, Duration, type Effect } from "effect"

/**
 * Columns padded to their widest cell; the last column is not padded.
 *
 * @since 0.2.0
 * @category formatting
 */
export const table = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => (row[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join("  ").trimEnd()
  return [line(headers), ...rows.map(line)].join("\n")
}

/**
 * A value as JSON text; bigints become strings.
 *
 * @since 0.2.0
 * @category formatting
 */
export const toJson = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2)

/**
 * Prints one JSON document on stdout.
 *
 * @since 0.2.0
 * @category printing
 */
export const printJson = (value: unknown): Effect.Effect<void> => Console.log(toJson(value))

/**
 * Seconds, for JSON; `null` stays `null`.
 *
 * @since 0.2.0
 * @category formatting
 */
export const seconds = (duration: Duration.Duration | null): number | null =>
  duration === null ? null : Math.round(Duration.toMillis(duration)) / 1000

/**
 * A duration for a table: `0.4 s`, `12 min 3 s`, `2 h 5 min`; `-` when unknown.
 *
 * @since 0.2.0
 * @category formatting
 */
export const human = (duration: Duration.Duration | null): string => {
  if (duration === null) return "-"
  const s = Duration.toMillis(duration) / 1000
  if (s < 10) return `${s.toFixed(1)} s`
  if (s < 60) return `${Math.round(s)} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`
  return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`
}

/**
 * A time as ISO 8601 text.
 *
 * @since 0.2.0
 * @category formatting
 */
export const iso = (time: DateTime.DateTime): string => DateTime.formatIso(time)

/**
 * A name as it is shown in messages: quoted, so blanks and quotes inside it
 * are visible.
 *
 * @since 0.2.0
 * @category formatting
 */
export const quote = (name: string): string => JSON.stringify(name)

/**
 * Text for one table cell: control characters escaped, at most `max` characters.
 *
 * @since 0.2.0
 * @category formatting
 */
export const cell = (text: string | null, max = 40): string => {
  if (text === null) return "-"
  // eslint-disable-next-line no-control-regex
  const flat = text.replace(/[\u0000-\u001f\u007f]/g, (c) => (c === "\n" ? "\\n" : c === "\t" ? "\\t" : "?"))
  return [...flat].length > max ? `${[...flat].slice(0, max - 1).join("")}…` : flat
}
