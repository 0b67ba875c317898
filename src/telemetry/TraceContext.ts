/**
 * W3C trace context carried by an event, from its producer to its consumers.
 *
 * The producer writes the `traceparent` of its `send <queue>` span into one
 * of the event's extra fields (`ev_extra4` unless told otherwise); the
 * consumer links each event's `process` span, and its batch's `receive`
 * span, to that producer span. pgq's own triggers (`logutriga`, `sqltriga`,
 * `jsontriga`) fill `ev_extra1` with the table name and leave the others to
 * trigger arguments (`ev_extra2=…`), so `ev_extra4` is free unless a trigger
 * of yours sets it: choose another field, or none, with `TraceparentField`.
 *
 * ```ts
 * import { Effect } from "effect"
 * import { Producer, TraceContext } from "effect-pgq"
 *
 * // Triggers of this app fill ev_extra4: carry the trace context in ev_extra3.
 * const send = Effect.gen(function*() {
 *   const producer = yield* Producer
 *   return yield* producer.send("orders", { type: "created", data: "{}" })
 * }).pipe(Effect.provideService(TraceContext.TraceparentField, "extra3"))
 * ```
 *
 * @since 0.2.0
 */
import { Context, Effect, Option, References, Tracer } from "effect"

/**
 * An event's extra field: `extra1` is `ev_extra1`, and so on.
 *
 * @since 0.2.0
 * @category models
 */
export type ExtraField = "extra1" | "extra2" | "extra3" | "extra4"

/**
 * Where producers write, and consumers read, the `traceparent`; `false`
 * turns propagation off on both sides. Producer and consumers must agree.
 *
 * @since 0.2.0
 * @category references
 */
export const TraceparentField: Context.Reference<ExtraField | false> = Context.Reference<ExtraField | false>(
  "effect-pgq/telemetry/TraceparentField",
  { defaultValue: () => "extra4" }
)

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/**
 * A span's `traceparent` header value (version 00).
 *
 * @since 0.2.0
 * @category encoding
 */
export const format = (span: Tracer.AnySpan): string =>
  `00-${span.traceId.padStart(32, "0")}-${span.spanId.padStart(16, "0")}-${span.sampled ? "01" : "00"}`

/**
 * The producer span a `traceparent` names; `None` for anything that is not
 * a valid version-00 value (a field used for something else, say).
 *
 * @since 0.2.0
 * @category decoding
 */
export const parse = (value: string | null | undefined): Option.Option<Tracer.ExternalSpan> => {
  if (value == null) return Option.none()
  const match = TRACEPARENT.exec(value)
  if (match === null || /^0+$/.test(match[1]!) || /^0+$/.test(match[2]!)) return Option.none()
  return Option.some(Tracer.externalSpan({
    traceId: match[1]!,
    spanId: match[2]!,
    sampled: (Number.parseInt(match[3]!, 16) & 1) === 1
  }))
}

/**
 * Whether spans made now go anywhere: tracing is enabled and the tracer is
 * not Effect's built-in one, which keeps spans in memory only. Per-event work
 * for tracing is skipped otherwise.
 *
 * @since 0.2.0
 * @category tracing
 */
export const isRecording: Effect.Effect<boolean> = Effect.gen(function*() {
  if (!(yield* References.TracerEnabled)) return false
  return (yield* Effect.tracer) !== Tracer.nativeTracer
})
