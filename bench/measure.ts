/**
 * Timing helpers: each measurement runs several times and reports the median,
 * as one JSON object per line on stdout.
 */
import { Clock, Console, Effect } from "effect"

export interface Measurement {
  readonly name: string
  readonly events: number
  readonly seconds: number
  readonly eventsPerSec: number
  readonly runs: number
  readonly [extra: string]: unknown
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = values.toSorted((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** Runs `setup` then times `run` `runs` times; reports the median duration. */
export const measure = <E, R, S, E2, R2>(options: {
  readonly name: string
  readonly events: number
  readonly runs: number
  readonly setup: Effect.Effect<S, E2, R2>
  readonly run: (state: S) => Effect.Effect<unknown, E, R>
  readonly extra?: Record<string, unknown>
}): Effect.Effect<Measurement, E | E2, R | R2> =>
  Effect.gen(function*() {
    const durations: Array<number> = []
    for (let i = 0; i < options.runs; i++) {
      const state = yield* options.setup
      const start = yield* Clock.currentTimeNanos
      yield* options.run(state)
      const end = yield* Clock.currentTimeNanos
      durations.push(Number(end - start) / 1e9)
    }
    const seconds = median(durations)
    const measurement: Measurement = {
      name: options.name,
      events: options.events,
      seconds: Number(seconds.toFixed(4)),
      eventsPerSec: Math.round(options.events / seconds),
      runs: options.runs,
      ...options.extra
    }
    yield* Console.log(JSON.stringify(measurement))
    return measurement
  })

/**
 * Times several contenders in alternation (a, b, c, a, b, c, …), so drift in
 * the machine or the database during the run affects them alike; reports each
 * one's median. A contender that times itself (another process, whose start-up
 * should not count) returns its own seconds.
 */
export const measureInterleaved = <S, E, R>(options: {
  readonly events: number
  readonly runs: number
  readonly setup: Effect.Effect<S, E, R>
  readonly teardown: (state: S) => Effect.Effect<unknown, E, R>
  readonly contenders: ReadonlyArray<{
    readonly name: string
    readonly run: (state: S) => Effect.Effect<void | { readonly seconds: number }, E, R>
    /** Fields added to the contender's row, such as `{ handler: "noop" }`. */
    readonly extra?: Record<string, unknown>
  }>
}): Effect.Effect<ReadonlyArray<Measurement>, E, R> =>
  Effect.gen(function*() {
    const durations = options.contenders.map(() => new Array<number>())
    for (let i = 0; i < options.runs; i++) {
      for (let c = 0; c < options.contenders.length; c++) {
        const state = yield* options.setup
        const start = yield* Clock.currentTimeNanos
        const own = yield* options.contenders[c]!.run(state)
        const end = yield* Clock.currentTimeNanos
        durations[c]!.push(own === undefined ? Number(end - start) / 1e9 : own.seconds)
        yield* options.teardown(state)
      }
    }
    const results: Array<Measurement> = []
    for (let c = 0; c < options.contenders.length; c++) {
      const seconds = median(durations[c]!)
      const measurement: Measurement = {
        name: options.contenders[c]!.name,
        events: options.events,
        seconds: Number(seconds.toFixed(4)),
        eventsPerSec: Math.round(options.events / seconds),
        runs: options.runs,
        ...options.contenders[c]!.extra
      }
      yield* Console.log(JSON.stringify(measurement))
      results.push(measurement)
    }
    return results
  })

/** Prints a ratio of two measurements (a / b, by events per second). */
export const ratio = (name: string, a: Measurement, b: Measurement) =>
  Console.log(JSON.stringify({
    name,
    numerator: a.name,
    denominator: b.name,
    ratio: Number((a.eventsPerSec / b.eventsPerSec).toFixed(3))
  }))

/** A payload of about `bytes` bytes that differs per event. */
export const payload = (i: number, bytes = 100): string => {
  const head = `{"id":${i},"pad":"`
  return head + "x".repeat(Math.max(0, bytes - head.length - 2)) + `"}`
}
