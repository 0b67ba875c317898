/**
 * Producing events: one at a time through `pgq.insert_event`, or in bulk,
 * thousands per round trip, straight into the queue's current event table
 * (the way Skytools' bulk insert works).
 *
 * Both run in the caller's transaction when there is one, so events become
 * visible exactly when the business change that caused them commits.
 *
 * Each call is a `send <queue>` span (kind producer). When a tracer records
 * it, its W3C `traceparent` is written into every event's trace-context field
 * (`ev_extra4` unless `TraceContext.TraceparentField` says otherwise; an event
 * that sets that field itself keeps its value), and consumers link their
 * spans to it.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Metric, Option, Random } from "effect"
import { SqlClient } from "effect/sql"
import { makeSqlRunner } from "../internal/sqlRunner.ts"
import * as Metrics from "../telemetry/Metrics.ts"
import * as Semconv from "../telemetry/Semconv.ts"
import { TelemetrySettings } from "../telemetry/TelemetrySettings.ts"
import * as TraceContext from "../telemetry/TraceContext.ts"
import { validateQueue } from "../internal/validateName.ts"
import type { EventId } from "./Ids.ts"
import { type NewEvent, Pgq } from "./Pgq.ts"
import { InvalidArgument, type PgqError } from "./PgqError.ts"

/**
 * @since 0.1.0
 * @category models
 */
export interface BulkOptions {
  /** Events per INSERT statement (one round trip). Default 5,000. */
  readonly chunkSize?: number | undefined
}

/**
 * @since 0.1.0
 * @category services
 */
export class Producer extends Context.Service<Producer, {
  /** Inserts one event; returns its id. */
  readonly send: (queue: string, event: NewEvent) => Effect.Effect<EventId, PgqError>
  /**
   * Inserts many events in one transaction (the caller's, or its own):
   * all of them become visible together, or none. Returns how many.
   */
  readonly sendMany: (
    queue: string,
    events: ReadonlyArray<NewEvent>,
    options?: BulkOptions
  ) => Effect.Effect<number, PgqError>
}>()("effect-pgq/api/Producer") {
  /**
   * @since 0.1.0
   * @category layers
   */
  static readonly layer: Layer.Layer<Producer, never, SqlClient.SqlClient | Pgq> = Layer.effect(
    Producer,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const pgq = yield* Pgq
      return make(sql, pgq)
    })
  )
}

const DEFAULT_CHUNK_SIZE = 5_000

/** pgq builds event table names from numeric ids (`pgq.event_<id>_<n>`); anything else is refused. */
const EVENT_TABLE = /^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$/

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = (sql: SqlClient.SqlClient, pgq: Pgq["Service"]): Producer["Service"] => {
  const run = makeSqlRunner(sql)
  const send = (queue: string, event: NewEvent): Effect.Effect<EventId, PgqError> =>
    traced(
      queue,
      "send",
      Effect.gen(function*() {
        const traceparent = yield* currentTraceparent
        const id = yield* pgq.insertEvent(queue, withTraceparent(event, traceparent))
        yield* Effect.annotateCurrentSpan(Semconv.MESSAGING_MESSAGE_ID, String(id))
        yield* countSent(queue, 1)
        return id
      })
    )

  const sendMany = (queue: string, events: ReadonlyArray<NewEvent>, options?: BulkOptions) =>
    traced(queue, "sendMany", sendManyTraced(queue, events, options))

  const sendManyTraced = Effect.fnUntraced(
    function*(queue: string, events: ReadonlyArray<NewEvent>, options?: BulkOptions) {
      const operation = "Producer.sendMany"
      yield* validateQueue(queue)
      const chunkSize = options?.chunkSize ?? DEFAULT_CHUNK_SIZE
      if (!Number.isInteger(chunkSize) || chunkSize < 1) {
        return yield* new InvalidArgument({ operation, argument: "chunkSize", reason: "must be a positive integer" })
      }
      yield* Effect.annotateCurrentSpan(Semconv.MESSAGING_BATCH_MESSAGE_COUNT, events.length)
      if (events.length === 0) return 0
      const traceparent = yield* currentTraceparent
      const stamped = Option.isNone(traceparent) ? events : events.map((event) => withTraceparent(event, traceparent))

      const context = { operation, queue }
      // BEGIN and COMMIT fail as SqlErrors too: the outer run maps those.
      return yield* run(
        context,
        Effect.gen(function*() {
          // Valid only inside this transaction: a table rotation waits for it to end.
          const table = yield* pgq.currentEventTable(queue)
          if (!EVENT_TABLE.test(table)) {
            const reason = `unexpected name ${table}`
            return yield* new InvalidArgument({ operation, argument: "event table", reason })
          }
          for (let start = 0; start < stamped.length; start += chunkSize) {
            yield* run(context, insertChunk(table, stamped.slice(start, start + chunkSize)))
          }
          return events.length
        }).pipe(sql.withTransaction, Effect.tap((n) => countSent(queue, n)))
      )
    }
  )

  /**
   * One INSERT … SELECT for the whole chunk: each column travels as one JSON
   * array of strings (escaped natively by JSON.stringify, parsed in C by
   * json_array_elements_text, NULLs kept) and ROWS FROM zips them back into
   * rows. Event tables default ev_id and ev_txid but not ev_time.
   */
  const insertChunk = (table: string, chunk: ReadonlyArray<NewEvent>) => {
    const withExtras = chunk.some((e) => e.extra1 != null || e.extra2 != null || e.extra3 != null || e.extra4 != null)
    const column = (pick: (event: NewEvent) => string | null | undefined) =>
      JSON.stringify(chunk.map((event) => pick(event) ?? null))
    if (!withExtras) {
      return sql.unsafe(
        `insert into ${table} (ev_time, ev_type, ev_data)
         select now(), e.t, e.d from rows from (${elements(1)}, ${elements(2)}) as e(t, d)`,
        [column((e) => e.type), column((e) => e.data)]
      )
    }
    return sql.unsafe(
      `insert into ${table} (ev_time, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4)
       select now(), e.* from rows from (${elements(1)}, ${elements(2)}, ${elements(3)}, ${elements(4)},
         ${elements(5)}, ${elements(6)}) as e(t, d, x1, x2, x3, x4)`,
      [
        column((e) => e.type),
        column((e) => e.data),
        column((e) => e.extra1),
        column((e) => e.extra2),
        column((e) => e.extra3),
        column((e) => e.extra4)
      ]
    )
  }

  return Producer.of({ send, sendMany })
}

const elements = (parameter: number) => `json_array_elements_text($${parameter}::json)`

/**
 * A `send <queue>` span of kind producer. Without a parent span, it is
 * sampled at the settings' ratio.
 */
const traced = <A, E, R>(queue: string, operation: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.gen(function*() {
    const { samplingRatio } = yield* TelemetrySettings
    const sampled = samplingRatio >= 1 || Option.isSome(yield* Effect.option(Effect.currentParentSpan))
      ? undefined
      : (yield* Random.next) < samplingRatio
    return yield* Effect.withSpan(effect, Semconv.sendSpanName(queue), {
      kind: "producer",
      sampled,
      captureStackTrace: false,
      attributes: {
        ...Metrics.attributesOf(queue),
        [Semconv.MESSAGING_OPERATION_TYPE]: "send",
        [Semconv.MESSAGING_OPERATION_NAME]: operation
      }
    })
  })

/** The current span's traceparent, when a tracer records it, it is sampled, and a field is chosen. */
const currentTraceparent: Effect.Effect<Option.Option<{ readonly field: TraceContext.ExtraField; readonly value: string }>> =
  Effect.gen(function*() {
    const field = yield* TraceContext.TraceparentField
    if (field === false || !(yield* TraceContext.isRecording)) return Option.none()
    const span = yield* Effect.option(Effect.currentSpan)
    if (Option.isNone(span) || !span.value.sampled) return Option.none()
    return Option.some({ field, value: TraceContext.format(span.value) })
  })

const withTraceparent = (
  event: NewEvent,
  traceparent: Option.Option<{ readonly field: TraceContext.ExtraField; readonly value: string }>
): NewEvent =>
  Option.isNone(traceparent) || event[traceparent.value.field] != null
    ? event
    : { ...event, [traceparent.value.field]: traceparent.value.value }

const countSent = (queue: string, n: number) =>
  Effect.gen(function*() {
    if (!(yield* TelemetrySettings).metrics) return
    yield* Metric.update(Metric.withAttributes(Metrics.sentMessages, Metrics.attributesOf(queue)), n)
  })
