/**
 * Attributes many spans share, handed to a span at once: the same array
 * (keys and values in turn, never changed once made) for every span, so that
 * a tracer that knows it can keep it as it is and encode it once, not once
 * per span.
 *
 * @internal
 */
import type { Tracer } from "effect"

/** The method of a span that takes shared attributes as they are. */
export const TypeId: unique symbol = Symbol.for("effect-pgq/SharedAttributes")

/** A span that keeps shared attributes as they are. */
export interface Taker {
  readonly [TypeId]: (flat: ReadonlyArray<unknown>) => void
}

const isTaker = (span: Tracer.Span): span is Tracer.Span & Taker => TypeId in span

/** Keys and values in turn, from a record. */
export const flatten = (record: Readonly<Record<string, unknown>>): ReadonlyArray<unknown> => {
  const flat: Array<unknown> = []
  for (const key in record) flat.push(key, record[key])
  return flat
}

/** Sets `flat`'s attributes on `span`: at once where it takes them so, else one by one. */
export const set = (span: Tracer.Span, flat: ReadonlyArray<unknown>): void => {
  if (isTaker(span)) return span[TypeId](flat)
  for (let i = 0; i < flat.length; i += 2) span.attribute(flat[i] as string, flat[i + 1])
}
