/**
 * A subconsumer of a cooperative consumer: several processes (effect-pgq's
 * or Skytools' Python `CoopConsumer`) share one consumer's batches through
 * the pgq_coop API (`PgqCoop`), each batch going to one of them, so one
 * stream is processed in parallel.
 *
 * Each batch is made the subconsumer's (and that committed) before it is
 * delivered; the delivery is one transaction on the queue's database, as for
 * the plain consumer, with every result, isolation and stop of it. While a
 * batch is in hand, a heartbeat marks the subconsumer alive every
 * `heartbeat`, so its peers never take over a long batch of a live
 * subconsumer; a subconsumer silent for longer than a peer's `deadInterval`
 * is dead, and its batch goes to the first peer that asks. A subconsumer
 * that finds its batch taken over rolls its delivery back.
 *
 * ```ts
 * import { Effect } from "effect"
 * import { CoopConsumer, EventResult } from "effect-pgq"
 *
 * const worker = (name: string) =>
 *   Effect.gen(function*() {
 *     const consumer = yield* CoopConsumer.make({
 *       queue: "images",
 *       consumer: "resizer",
 *       subconsumer: name,
 *       register: true,
 *       deadInterval: "5 minutes",
 *       onEvent: () => Effect.succeed(EventResult.Ok)
 *     })
 *     yield* consumer.run
 *   })
 * ```
 *
 * @since 0.2.0
 */
import { Context, Duration, Effect, Option, type Scope } from "effect"
import { SqlClient } from "effect/sql"
import type { NextBatch } from "../api/BatchInfo.ts"
import type { FailedEvents } from "../api/FailedEvents.ts"
import { Pgq } from "../api/Pgq.ts"
import { InvalidArgument, type PgqError } from "../api/PgqError.ts"
import * as PgqCoop from "../api/PgqCoop.ts"
import { DEFAULT_FETCH_SIZE } from "../internal/fetchSize.ts"
import * as Consumer from "./Consumer.ts"
import { DeliveryAborted, type DeliveryPlan } from "./Delivery.ts"

/**
 * @since 0.2.0
 * @category models
 */
export interface CoopSettings {
  /** This process's name among the consumer's subconsumers. */
  readonly subconsumer: string
  /**
   * Take over a peer's batch once the peer has given no sign of life for
   * this long; longer than two heartbeats of every peer. Default none: this
   * subconsumer never takes over, and a subconsumer that is gone for good
   * keeps its last batch (and pgq's table rotation waits for it) until one
   * with a dead interval takes it, or it is unregistered with `closeBatch`.
   */
  readonly deadInterval?: Duration.Input | undefined
  /** How often a batch in hand is marked alive. Default 10 seconds. */
  readonly heartbeat?: Duration.Input | undefined
  /** Install pgq_coop's API when the queue's database has neither the extension nor effect-pgq's. Default true. */
  readonly installApi?: boolean | undefined
}

/**
 * @since 0.2.0
 * @category models
 */
export type CoopConsumerOptions<E, R> = Consumer.ConsumerOptions<E, R> & CoopSettings

/**
 * A subconsumer, checked (or registered, with `register: true`) and ready.
 * Nothing runs until `run`, `processNext` or `processAvailable`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = Effect.fn("CoopConsumer.make")(function*<E, R>(
  options: CoopConsumerOptions<E, R>
): Effect.fn.Return<Consumer.Consumer<R>, PgqError, Scope.Scope | Pgq | FailedEvents | SqlClient.SqlClient> {
  const pgq = yield* Pgq
  const sql = yield* SqlClient.SqlClient
  const coop = PgqCoop.make(sql)
  const { queue, consumer, subconsumer } = options
  const heartbeatEvery = Duration.fromInputUnsafe(options.heartbeat ?? "10 seconds")
  // A dead interval within two heartbeats would take live peers' batches over.
  if (
    options.deadInterval !== undefined &&
    Duration.isLessThanOrEqualTo(Duration.fromInputUnsafe(options.deadInterval), Duration.times(heartbeatEvery, 2))
  ) {
    return yield* new InvalidArgument({
      operation: "CoopConsumer.make",
      argument: "deadInterval",
      reason: `${Duration.format(Duration.fromInputUnsafe(options.deadInterval))} is not longer than two heartbeats (${
        Duration.format(heartbeatEvery)
      } each): live subconsumers' batches would be taken over`
    })
  }
  if ((yield* coop.provider) === "none" && options.installApi !== false) yield* coop.install
  if (options.register === true) yield* coop.registerSubconsumer(queue, consumer, subconsumer)
  // Fail now, with a typed error, if the queue or a registration is missing.
  yield* pgq.getConsumerInfo(queue, consumer)
  yield* pgq.getConsumerInfo(queue, `${consumer}.${subconsumer}`)

  const conditions = options.batchConditions
  const pageSize = options.fetchSize ?? DEFAULT_FETCH_SIZE
  /** The batch `assign` made this subconsumer's, for `take`. */
  let assigned: Option.Option<NextBatch> = Option.none()

  // The heartbeat must commit while the delivery's transaction is open: outside it, on a pooled connection.
  const outsideTransaction = <A, E2, R2>(effect: Effect.Effect<A, E2, R2>) =>
    Effect.updateContext(effect, (context: Context.Context<R2>) =>
      Context.omit(sql.transactionService)(context) as Context.Context<R2>)

  const lost = new DeliveryAborted({ reason: "another subconsumer took this batch over" })

  const plan: DeliveryPlan = {
    assign: Effect.map(
      coop.nextBatch(queue, consumer, subconsumer, {
        minLag: conditions?.minLag,
        minCount: conditions?.minCount,
        minInterval: conditions?.minInterval,
        deadInterval: options.deadInterval
      }),
      (batch) => {
        assigned = batch
        return Option.isSome(batch)
      }
    ),
    take: Effect.sync(() =>
      Option.map(assigned, (info) => {
        const events = pgq.streamBatchEvents(info.batchId, { pageSize })
        return { info, firstPage: [], rest: events, events }
      })
    ),
    // Still ours? The heartbeat's row lock then holds until the commit: no peer can take it in between.
    finish: (batch) =>
      Effect.flatMap(
        coop.heartbeat(queue, consumer, subconsumer, batch.batchId),
        (ours): Effect.Effect<void, PgqError | DeliveryAborted> =>
          ours ? Effect.asVoid(coop.finishBatch(batch.batchId)) : Effect.fail(lost)
      ),
    watch: (batch) =>
      Effect.forever(
        Effect.andThen(
          Effect.sleep(heartbeatEvery),
          Effect.flatMap(
            outsideTransaction(coop.heartbeat(queue, consumer, subconsumer, batch.batchId)),
            (ours): Effect.Effect<void, DeliveryAborted> => ours ? Effect.void : Effect.fail(lost)
          )
        )
      )
  }
  return yield* Consumer.assemble(options, plan)
})
