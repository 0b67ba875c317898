/**
 * A tracer that keeps every span it makes, so tests can assert names,
 * attributes, parents and outcomes.
 */
import { Effect, Layer, Tracer } from "effect"

export interface Recorded {
  readonly spans: Array<Tracer.NativeSpan>
  readonly named: (name: string) => Array<Tracer.NativeSpan>
  readonly layer: Layer.Layer<never>
}

export const make = (): Recorded => {
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span(options) {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
  return {
    spans,
    named: (name) => spans.filter((span) => span.name === name),
    layer: Layer.succeed(Tracer.Tracer, tracer)
  }
}

/** Runs `effect` with the recording tracer. */
export const traced = <A, E, R>(recorded: Recorded, effect: Effect.Effect<A, E, R>) =>
  Effect.provide(effect, recorded.layer)

/** The span's outcome: "ok", "error" or "running". */
export const outcome = (span: Tracer.Span): "ok" | "error" | "running" =>
  span.status._tag === "Started" ? "running" : span.status.exit._tag === "Success" ? "ok" : "error"
