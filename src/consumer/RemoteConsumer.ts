/**
 * A consumer whose handlers apply events to another database, exactly once.
 *
 * Each batch is made the consumer's (and that committed) before it is
 * delivered, so it keeps its id if the delivery rolls back. A delivery then
 * runs two transactions, the queue's around the remote one: handlers work in
 * the remote transaction, which also records the batch as applied
 * (`pgq_ext.set_batch_done`) and commits first; the queue's settles the
 * results and finishes the batch. A crash between the two commits leaves the
 * batch applied on the remote database and open in the queue: delivered
 * again, it is recognised (`pgq_ext.is_batch_done`) and only finished, never
 * applied twice. Its Retry and Failed results from the applied delivery are
 * not settled then: those events count as done.
 *
 * Results: Ok and Failed keep the event's remote work (Failed also stores the
 * event as failed), Retry keeps it and retries the event; AbortBatch and any
 * failure of effect-pgq's own work roll back both sides. A handler that fails
 * is undone as the plain consumer undoes it (`isolation`). For an event's
 * remote work to be undone with its Failed or Retry, use
 * `EventRemoteConsumer`.
 *
 * ```ts
 * import { PgClient } from "@effect/sql-pg"
 * import { Effect, Redacted } from "effect"
 * import { SqlClient } from "effect/sql"
 * import { EventResult, RemoteConsumer } from "effect-pgq"
 *
 * const program = Effect.gen(function*() {
 *   const consumer = yield* RemoteConsumer.make({
 *     queue: "orders",
 *     consumer: "warehouse",
 *     remote: PgClient.layer({ url: Redacted.make("postgres://localhost/warehouse") }),
 *     onEvent: (event) =>
 *       Effect.gen(function*() {
 *         // The remote database, in the transaction that records the batch as applied.
 *         const sql = yield* SqlClient.SqlClient
 *         yield* sql`insert into shipments (order_id) values (${event.data})`
 *         return EventResult.Ok
 *       })
 *   })
 *   yield* consumer.run
 * })
 * ```
 *
 * @since 0.2.0
 */
import { Context, Effect, Layer, Option, type Scope } from "effect"
import { SqlClient } from "effect/sql"
import type { FailedEvents } from "../api/FailedEvents.ts"
import { Pgq } from "../api/Pgq.ts"
import type { PgqError } from "../api/PgqError.ts"
import * as PgqExt from "../api/PgqExt.ts"
import { DEFAULT_FETCH_SIZE } from "../internal/fetchSize.ts"
import * as Consumer from "./Consumer.ts"
import type { DeliveryPlan } from "./Delivery.ts"
import * as Handler from "./Handler.ts"

/**
 * @since 0.2.0
 * @category models
 */
export interface RemoteSettings<RE> {
  /** The remote database: where handlers work and batches are recorded as applied. */
  readonly remote: Layer.Layer<SqlClient.SqlClient, RE>
  /**
   * Install pgq_ext's tracking API on the remote database when it has
   * neither the extension nor effect-pgq's implementation. Default true.
   */
  readonly installTracking?: boolean | undefined
  /** Under which name batches are recorded on the remote database. Default the consumer's name. */
  readonly trackingName?: string | undefined
}

/**
 * @since 0.2.0
 * @category models
 */
export type RemoteConsumerOptions<E, R, RE> = Consumer.ConsumerOptions<E, R> & RemoteSettings<RE>

/** Handlers see the remote database as their `SqlClient`; the contract checks stay the processor's. */
const onRemote = <E, R>(
  handler: Handler.Handler<E, R>,
  remote: SqlClient.SqlClient
): Handler.Handler<E, Exclude<R, SqlClient.SqlClient>> =>
  "onEvent" in handler
    ? {
      onEvent: (event, context) =>
        Effect.provideService(Handler.call(() => handler.onEvent(event, context)), SqlClient.SqlClient, remote)
    }
    : {
      onBatch: (events, context) =>
        Effect.provideService(Handler.call(() => handler.onBatch(events, context)), SqlClient.SqlClient, remote)
    }

/**
 * Builds the remote consumer; `undoFailedResults` makes the event-remote one.
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeWith = Effect.fnUntraced(function*<E, R, RE>(
  options: RemoteConsumerOptions<E, R, RE>,
  undoFailedResults: boolean
): Effect.fn.Return<
  Consumer.Consumer<Exclude<R, SqlClient.SqlClient>>,
  PgqError | RE,
  Scope.Scope | Pgq | FailedEvents | SqlClient.SqlClient
> {
  const pgq = yield* Pgq
  const { queue, consumer } = options
  if (options.register === true) yield* pgq.registerConsumer(queue, consumer)
  yield* pgq.getConsumerInfo(queue, consumer)

  const remote = Context.get(yield* Layer.build(options.remote), SqlClient.SqlClient)
  const ext = PgqExt.make(remote)
  if ((yield* ext.provider) === "none" && options.installTracking !== false) yield* ext.install

  const plan: DeliveryPlan = {
    // Committed on its own: the batch keeps its id whatever becomes of its delivery.
    assign: Effect.map(
      options.batchConditions === undefined
        ? pgq.nextBatchInfo(queue, consumer)
        : pgq.nextBatchCustom(queue, consumer, options.batchConditions),
      Option.isSome
    ),
    take: pgq.takeNextBatch(queue, consumer, {
      conditions: options.batchConditions,
      pageSize: options.fetchSize ?? DEFAULT_FETCH_SIZE
    }),
    finish: (batch) => pgq.finishBatch(batch.batchId),
    remote: { sql: remote, ext, consumer: options.trackingName ?? consumer, undoFailedResults }
  }
  const { onEvent: _onEvent, onBatch: _onBatch, ...settings } = options as Consumer.ConsumerOptions<E, R> & {
    readonly onEvent?: unknown
    readonly onBatch?: unknown
  }
  const remoteOptions: Consumer.ConsumerOptions<E, Exclude<R, SqlClient.SqlClient>> = {
    ...settings,
    ...onRemote(options, remote)
  }
  return yield* Consumer.assemble(remoteOptions, plan)
})

/**
 * A remote consumer, checked and ready; its remote database is connected in
 * the scope. Nothing runs until `run`, `processNext` or `processAvailable`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = <E, R, RE>(options: RemoteConsumerOptions<E, R, RE>) =>
  makeWith(options, false).pipe(Effect.withSpan("RemoteConsumer.make"))
