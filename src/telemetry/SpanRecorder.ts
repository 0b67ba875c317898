/**
 * Spans handed to a tracer whole, once they have ended, with no span object:
 * the consumer's `process` span of an event whose handler returned a
 * completed result (`Effect.void`, `Effect.succeed(…)`) had no code running
 * inside it, so it needs no span to be current, only to be exported. A tracer
 * that can take such a span says so with `TypeId`; for any other, the
 * consumer makes the span as usual.
 *
 * The record is the caller's and is reused from span to span: a recorder
 * reads it before it returns and keeps nothing of it.
 *
 * @internal
 */
import type { Tracer } from "effect"

export const TypeId: unique symbol = Symbol.for("effect-pgq/SpanRecorder")

/** An ended span that succeeded (status OK). */
export interface EndedSpan {
  name: string
  /** Its parent, whose trace it joins. */
  parent: Tracer.AnySpan
  kind: Tracer.SpanKind
  startTime: bigint
  endTime: bigint
  /** Attributes many spans share: the same array each time, as `SharedAttributes` hands them. */
  shared: ReadonlyArray<unknown>
  /** Its own attributes, keys and values in turn. */
  readonly attributes: Array<unknown>
  /** Its one link, if any. */
  link: Tracer.AnySpan | undefined
}

/** A tracer's way to take an ended span whole. */
export type Record = (span: EndedSpan) => void

/** A tracer that takes ended spans whole. */
export interface Recorder {
  readonly [TypeId]: Record
}

/** `tracer`'s way to take an ended span whole, if it has one. */
export const recordOf = (tracer: Tracer.Tracer): Record | undefined =>
  TypeId in tracer ? (tracer as Tracer.Tracer & Recorder)[TypeId] : undefined
