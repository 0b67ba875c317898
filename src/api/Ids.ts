/**
 * Branded ids: PgQ's int8 ids arrive as `bigint` and cannot be mixed up.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * @since 0.1.0
 * @category ids
 */
export const BatchId = Schema.BigInt.pipe(Schema.brand("effect-pgq/BatchId"))
/**
 * @since 0.1.0
 * @category ids
 */
export type BatchId = typeof BatchId.Type

/**
 * @since 0.1.0
 * @category ids
 */
export const EventId = Schema.BigInt.pipe(Schema.brand("effect-pgq/EventId"))
/**
 * @since 0.1.0
 * @category ids
 */
export type EventId = typeof EventId.Type

/**
 * @since 0.1.0
 * @category ids
 */
export const TickId = Schema.BigInt.pipe(Schema.brand("effect-pgq/TickId"))
/**
 * @since 0.1.0
 * @category ids
 */
export type TickId = typeof TickId.Type
