/**
 * Typed failures of the PgQ API. Each says which queue, consumer or batch it
 * is about, so callers can `Effect.catchTag` the ones they expect and let the
 * rest bubble up with a clear message.
 *
 * Every class carries the same type id, so `isPgqError` recognises them by
 * brand, not by a list of tags that could fall behind.
 *
 * @since 0.1.0
 */
import { Predicate, Schema } from "effect"

/**
 * The brand every effect-pgq error carries.
 *
 * @since 0.1.0
 * @category type IDs
 */
const TypeId = "~effect-pgq/PgqError"

/**
 * The database lacks the pgq extension, or effect-pgq's own schema (needed by
 * the failed-event store): run `CREATE EXTENSION pgq` or the installer first.
 *
 * @since 0.1.0
 * @category errors
 */
export class PgqNotInstalled extends Schema.TaggedError<PgqNotInstalled>(
  `${TypeId}/PgqNotInstalled`
)("PgqNotInstalled", {
  operation: Schema.String,
  detail: Schema.String
}) {
  /**
   * Marks this value as an effect-pgq error for `isPgqError`.
   *
   * @since 0.1.0
   */
  readonly [TypeId] = TypeId

  override get message(): string {
    return `${this.operation}: the pgq extension is not installed in this database (${this.detail}); ` +
      `run CREATE EXTENSION pgq or the effect-pgq installer`
  }
}

/**
 * @since 0.1.0
 * @category errors
 */
export class QueueNotFound extends Schema.TaggedError<QueueNotFound>(
  `${TypeId}/QueueNotFound`
)("QueueNotFound", {
  operation: Schema.String,
  queue: Schema.String
}) {
  /**
   * Marks this value as an effect-pgq error for `isPgqError`.
   *
   * @since 0.1.0
   */
  readonly [TypeId] = TypeId

  override get message(): string {
    return `${this.operation}: queue ${JSON.stringify(this.queue)} does not exist`
  }
}

/**
 * @since 0.1.0
 * @category errors
 */
export class ConsumerNotRegistered extends Schema.TaggedError<ConsumerNotRegistered>(
  `${TypeId}/ConsumerNotRegistered`
)("ConsumerNotRegistered", {
  operation: Schema.String,
  queue: Schema.String,
  consumer: Schema.String
}) {
  /**
   * Marks this value as an effect-pgq error for `isPgqError`.
   *
   * @since 0.1.0
   */
  readonly [TypeId] = TypeId

  override get message(): string {
    return `${this.operation}: consumer ${JSON.stringify(this.consumer)} is not registered on queue ${
      JSON.stringify(this.queue)
    }`
  }
}

/**
 * The batch does not exist, or it was already finished.
 *
 * @since 0.1.0
 * @category errors
 */
export class BatchNotFound extends Schema.TaggedError<BatchNotFound>(
  `${TypeId}/BatchNotFound`
)("BatchNotFound", {
  operation: Schema.String,
  batchId: Schema.BigInt
}) {
  /**
   * Marks this value as an effect-pgq error for `isPgqError`.
   *
   * @since 0.1.0
   */
  readonly [TypeId] = TypeId

  override get message(): string {
    return `${this.operation}: batch ${this.batchId} does not exist or is already finished`
  }
}

/**
 * The event is not part of the given batch.
 *
 * @since 0.1.0
 * @category errors
 */
export class EventNotFound extends Schema.TaggedError<EventNotFound>(
  `${TypeId}/EventNotFound`
)("EventNotFound", {
  operation: Schema.String,
  batchId: Schema.BigInt,
  eventId: Schema.BigInt
}) {
  /**
   * Marks this value as an effect-pgq error for `isPgqError`.
   *
   * @since 0.1.0
   */
  readonly [TypeId] = TypeId

  override get message(): string {
    return `${this.operation}: event ${this.eventId} is not in batch ${this.batchId}`
  }
}

/**
 * No stored failed event with this id for this queue and consumer.
 *
 * @since 0.1.0
 * @category errors
 */
export class FailedEventNotFound extends Schema.TaggedError<FailedEventNotFound>(
  `${TypeId}/FailedEventNotFound`
)("FailedEventNotFound", {
  operation: Schema.String,
  queue: Schema.String,
  consumer: Schema.String,
  eventId: Schema.BigInt
}) {
  /**
   * Marks this value as an effect-pgq error for `isPgqError`.
   *
   * @since 0.1.0
   */
  readonly [TypeId] = TypeId

  override get message(): string {
    return `${this.operation}: no failed event ${this.eventId} for consumer ${JSON.stringify(this.consumer)} on queue ${
      JSON.stringify(this.queue)
    }`
  }
}

/**
 * `dropQueue` without `force` on a queue that still has consumers.
 *
 * @since 0.1.0
 * @category errors
 */
export class QueueHasConsumers extends Schema.TaggedError<QueueHasConsumers>(
  `${TypeId}/QueueHasConsumers`
)("QueueHasConsumers", {
  operation: Schema.String,
  queue: Schema.String
}) {
  /**
   * Marks this value as an effect-pgq error for `isPgqError`.
   *
   * @since 0.1.0
   */
  readonly [TypeId] = TypeId

  override get message(): string {
    return `${this.operation}: queue ${
      JSON.stringify(this.queue)
    } still has registered consumers; unregister them or drop with force`
  }
}

/**
 * A queue, consumer or other name that effect-pgq refuses before it reaches
 * the database.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidName extends Schema.TaggedError<InvalidName>(
  `${TypeId}/InvalidName`
)("InvalidName", {
  kind: Schema.String,
  name: Schema.String,
  reason: Schema.String
}) {
  /**
   * Marks this value as an effect-pgq error for `isPgqError`.
   *
   * @since 0.1.0
   */
  readonly [TypeId] = TypeId

  override get message(): string {
    const shown = this.name.length > 60 ? `${JSON.stringify(this.name.slice(0, 60))}…` : JSON.stringify(this.name)
    return `invalid ${this.kind} name ${shown}: ${this.reason}`
  }
}

/**
 * An argument pgq rejects (a negative retry delay, an unknown queue setting…).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidArgument extends Schema.TaggedError<InvalidArgument>(
  `${TypeId}/InvalidArgument`
)("InvalidArgument", {
  operation: Schema.String,
  argument: Schema.String,
  reason: Schema.String
}) {
  /**
   * Marks this value as an effect-pgq error for `isPgqError`.
   *
   * @since 0.1.0
   */
  readonly [TypeId] = TypeId

  override get message(): string {
    return `${this.operation}: invalid ${this.argument}: ${this.reason}`
  }
}

/**
 * Any other database failure, with PostgreSQL's SQLSTATE and message kept.
 * `isRetryable` is true for lost connections, deadlocks and serialization
 * failures: running the operation again may succeed.
 *
 * @since 0.1.0
 * @category errors
 */
export class PgqSqlError extends Schema.TaggedError<PgqSqlError>(
  `${TypeId}/PgqSqlError`
)("PgqSqlError", {
  operation: Schema.String,
  sqlState: Schema.optional(Schema.String),
  detail: Schema.String,
  isRetryable: Schema.Boolean,
  cause: Schema.Defect()
}) {
  /**
   * Marks this value as an effect-pgq error for `isPgqError`.
   *
   * @since 0.1.0
   */
  readonly [TypeId] = TypeId

  override get message(): string {
    return `${this.operation}: ${this.detail}${this.sqlState === undefined ? "" : ` (SQLSTATE ${this.sqlState})`}`
  }
}

/**
 * Every failure the PgQ API can report.
 *
 * @since 0.1.0
 * @category errors
 */
export type PgqError =
  | PgqNotInstalled
  | QueueNotFound
  | ConsumerNotRegistered
  | BatchNotFound
  | EventNotFound
  | FailedEventNotFound
  | QueueHasConsumers
  | InvalidName
  | InvalidArgument
  | PgqSqlError

/**
 * @since 0.1.0
 * @category guards
 */
export const isPgqError = (u: unknown): u is PgqError => Predicate.hasProperty(u, TypeId)
