/**
 * Span names and attribute keys, following the OpenTelemetry messaging
 * conventions; PgQ-specific attributes live under `messaging.pgq.*`.
 *
 * Use them to find effect-pgq's spans wherever they are exported, e.g. in a
 * test that records spans with a tracer of its own:
 *
 * ```ts
 * import type { Tracer } from "effect"
 * import { Semconv } from "effect-pgq"
 *
 * // How many events failed in each batch of `queue`, in the order the batches ran.
 * const failedPerBatch = (spans: ReadonlyArray<Tracer.NativeSpan>, queue: string) =>
 *   spans
 *     .filter((span) => span.name === Semconv.receiveSpanName(queue))
 *     .map((span) => span.attributes.get(Semconv.PGQ_BATCH_FAILED))
 * ```
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 * @category attributes
 */
export const MESSAGING_SYSTEM = "messaging.system"
/** @since 0.1.0 */
export const MESSAGING_SYSTEM_PGQ = "pgq"
/** @since 0.1.0 */
export const MESSAGING_OPERATION_TYPE = "messaging.operation.type"
/** @since 0.1.0 */
export const MESSAGING_OPERATION_NAME = "messaging.operation.name"
/** @since 0.1.0 */
export const MESSAGING_DESTINATION_NAME = "messaging.destination.name"
/** @since 0.1.0 */
export const MESSAGING_CONSUMER_GROUP_NAME = "messaging.consumer.group.name"
/** @since 0.1.0 */
export const MESSAGING_BATCH_MESSAGE_COUNT = "messaging.batch.message_count"
/** @since 0.1.0 */
export const MESSAGING_MESSAGE_ID = "messaging.message.id"
/**
 * Why a span failed: a tagged error's tag, an exception's name, or the
 * handler's result (`Failed`, `AbortBatch`).
 *
 * @since 0.2.0
 */
export const ERROR_TYPE = "error.type"
/** @since 0.1.0 */
export const PGQ_BATCH_ID = "messaging.pgq.batch_id"
/** @since 0.1.0 */
export const PGQ_TICK_ID = "messaging.pgq.tick_id"
/** @since 0.1.0 */
export const PGQ_PREV_TICK_ID = "messaging.pgq.prev_tick_id"
/** @since 0.1.0 */
export const PGQ_EVENT_TYPE = "messaging.pgq.event.type"
/**
 * How many times the event was retried; left out when 0.
 *
 * @since 0.1.0
 */
export const PGQ_EVENT_RETRY = "messaging.pgq.event.retry_count"
/**
 * The handler's result (`Retry`, `Failed`, `AbortBatch`); left out when `Ok`.
 *
 * @since 0.1.0
 */
export const PGQ_EVENT_RESULT = "messaging.pgq.event.result"
/** @since 0.1.0 */
export const PGQ_BATCH_OK = "messaging.pgq.batch.ok_count"
/** @since 0.1.0 */
export const PGQ_BATCH_FAILED = "messaging.pgq.batch.failed_count"
/** @since 0.1.0 */
export const PGQ_BATCH_RETRIED = "messaging.pgq.batch.retried_count"
/** @since 0.1.0 */
export const PGQ_BATCH_REPLAYED = "messaging.pgq.batch.replayed"

/**
 * `receive <queue>`: one batch.
 *
 * @since 0.1.0
 * @category span names
 */
export const receiveSpanName = (queue: string) => `receive ${queue}`
/**
 * `process <queue>`: one event, a child of its batch's span.
 *
 * @since 0.1.0
 * @category span names
 */
export const processSpanName = (queue: string) => `process ${queue}`
/**
 * `send <queue>`: a producer's `send` or `sendMany` call; its traceparent
 * travels with the events it inserts.
 *
 * @since 0.2.0
 * @category span names
 */
export const sendSpanName = (queue: string) => `send ${queue}`
/**
 * `settle <queue>`: finishing a batch, or scheduling an event's retry.
 *
 * @since 0.1.0
 * @category span names
 */
export const settleSpanName = (queue: string) => `settle ${queue}`
