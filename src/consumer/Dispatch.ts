/**
 * Typed dispatch: one handler per `ev_type`, each receiving its payload
 * decoded with a Schema. A payload that does not decode is `Failed` with the
 * decode error as its reason (kept in the failed-event store, never lost);
 * an event type without a route follows `onUnknownType`.
 *
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Consumer, Dispatch } from "effect-pgq"
 *
 * const OrderCreated = Schema.Struct({ orderId: Schema.Int, sku: Schema.String })
 * declare const ship: (order: typeof OrderCreated.Type) => Effect.Effect<void>
 *
 * const handler = Dispatch.make({
 *   "order.created": Dispatch.json(OrderCreated, (order) => ship(order)),
 *   "order.note": Dispatch.text(Schema.String, (note) => Effect.logInfo(note))
 * })
 * Consumer.make({ queue: "orders", consumer: "shipping", onEvent: handler })
 * ```
 *
 * @since 0.1.0
 */
import { Effect, Schema, SchemaIssue } from "effect"
import type { PgqEvent } from "../api/PgqEvent.ts"
import type { BatchContext, EventHandler } from "./Handler.ts"
import * as EventResult from "./EventResult.ts"

/**
 * How one event type is decoded and handled.
 *
 * @since 0.1.0
 * @category models
 */
export interface Route<E, R> {
  readonly handle: EventHandler<E, R>
}

/**
 * What to do with an event whose type has no route: leave it done (`"ok"`),
 * store it as failed (`"failed"`, the default), retry it later (`"retry"`,
 * while a newer release of the consumer is rolling out), or a handler.
 *
 * @since 0.1.0
 * @category models
 */
export type UnknownTypePolicy<E, R> = "ok" | "failed" | "retry" | EventHandler<E, R>

type RouteError<T> = T extends Route<infer E, infer _R> ? E : never
type RouteContext<T> = T extends Route<infer _E, infer R> ? R : never

const decodeFailure = (event: PgqEvent, error: Schema.SchemaError): EventResult.EventResult =>
  EventResult.Failed(
    `cannot decode the payload of event type ${JSON.stringify(event.type)}: ${
      SchemaIssue.makeFormatterDefault()(error.issue)
    }`
  )

const route = <S extends Schema.Decoder<unknown>, E, R>(
  decode: (event: PgqEvent) => Effect.Effect<S["Type"], Schema.SchemaError, S["DecodingServices"]>,
  handle: (payload: S["Type"], event: PgqEvent, context: BatchContext) => Effect.Effect<EventResult.EventResult | void, E, R>
): Route<E, R | S["DecodingServices"]> => ({
  handle: (event, context) =>
    decode(event).pipe(
      Effect.matchEffect({
        onFailure: (error) => Effect.succeed(decodeFailure(event, error)),
        onSuccess: (payload) => handle(payload, event, context)
      })
    )
})

/**
 * A route for JSON payloads: `ev_data` is parsed as JSON, then decoded with `schema`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const json = <S extends Schema.Decoder<unknown>, E, R>(
  schema: S,
  handle: (payload: S["Type"], event: PgqEvent, context: BatchContext) => Effect.Effect<EventResult.EventResult | void, E, R>
): Route<E, R | S["DecodingServices"]> => {
  const decode = Schema.decodeUnknownEffect(Schema.fromJsonString(schema))
  return route<S, E, R>((event) => decode(event.data), handle)
}

/**
 * A route for text payloads: `ev_data` itself is decoded with `schema`
 * (`Schema.String`, or any schema from a string such as
 * `Schema.FiniteFromString`; note that `Schema.NumberFromString` accepts
 * "twelve" as NaN, and both read "" as 0).
 *
 * @since 0.1.0
 * @category constructors
 */
export const text = <S extends Schema.Decoder<unknown>, E, R>(
  schema: S,
  handle: (payload: S["Type"], event: PgqEvent, context: BatchContext) => Effect.Effect<EventResult.EventResult | void, E, R>
): Route<E, R | S["DecodingServices"]> => {
  const decode = Schema.decodeUnknownEffect(schema)
  return route<S, E, R>((event) => decode(event.data), handle)
}

/**
 * One event handler from routes keyed by event type.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <const Routes extends Record<string, Route<unknown, unknown>>, E2 = never, R2 = never>(
  routes: Routes,
  options?: { readonly onUnknownType?: UnknownTypePolicy<E2, R2> }
): EventHandler<RouteError<Routes[keyof Routes]> | E2, RouteContext<Routes[keyof Routes]> | R2> => {
  const table = new Map<string, Route<unknown, unknown>>(Object.entries(routes))
  const unknown = options?.onUnknownType ?? "failed"
  const onUnknown: EventHandler<E2, R2> = typeof unknown === "function"
    ? unknown
    : (event) =>
      Effect.succeed(
        unknown === "ok"
          ? EventResult.Ok
          : unknown === "retry"
          ? EventResult.Retry("1 minute")
          : EventResult.Failed(`no handler for event type ${JSON.stringify(event.type)}`)
      )
  return ((event: PgqEvent, context: BatchContext) => {
    const found = event.type === null ? undefined : table.get(event.type)
    return found === undefined ? onUnknown(event, context) : found.handle(event, context)
  }) as EventHandler<RouteError<Routes[keyof Routes]> | E2, RouteContext<Routes[keyof Routes]> | R2>
}
