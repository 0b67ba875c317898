import { assert, describe, it } from "@effect/vitest"
import { SqlError, UnknownError } from "effect/sql/SqlError"
import {
  BatchNotFound,
  ConsumerNotRegistered,
  EventNotFound,
  FailedEventNotFound,
  InvalidArgument,
  InvalidName,
  isPgqError,
  PgqNotInstalled,
  PgqSqlError,
  QueueHasConsumers,
  QueueNotFound
} from "../../src/api/PgqError.ts"
import { type ErrorContext, mapSqlError } from "../../src/internal/mapSqlError.ts"

/** A server error as @effect/sql-pg reports it: the driver's error, with its SQLSTATE, as the cause. */
const serverError = (code: string, message: string) =>
  new SqlError({ reason: new UnknownError({ cause: { code, message }, message, operation: "execute" }) })

const raise = (message: string, context: ErrorContext) => mapSqlError(serverError("P0001", message), context)

describe("mapSqlError", () => {
  it("builds a typed error when the operation knows its subject", () => {
    const operation = "op"
    assert.instanceOf(raise("no such queue", { operation, queue: "q" }), QueueNotFound)
    const consumer = raise("Not subscriber to queue: q/c", { operation, queue: "q", consumer: "c" })
    assert.instanceOf(consumer, ConsumerNotRegistered)
    assert.instanceOf(raise("batch not found", { operation, batchId: 7n }), BatchNotFound)
    assert.instanceOf(raise("event not found", { operation, batchId: 7n, eventId: 9n }), EventNotFound)
    const attached = raise("cannot drop queue, consumers still attached", { operation, queue: "q" })
    assert.instanceOf(attached, QueueHasConsumers)
    const batch = raise("batch not found", { operation, batchId: 7n })
    assert.strictEqual(batch.message, "op: batch 7 does not exist or is already finished")
  })

  it("never invents a subject: without one, pgq's message is kept in a PgqSqlError", () => {
    const cases: ReadonlyArray<readonly [string, ErrorContext]> = [
      ["no such queue", { operation: "op" }],
      ["Not subscriber to queue: q/c", { operation: "op", queue: "q" }],
      ["Not subscriber to queue: q/c", { operation: "op", consumer: "c" }],
      ["batch not found", { operation: "op", queue: "q" }],
      ["event not found", { operation: "op", batchId: 7n }],
      ["cannot drop queue, consumers still attached", { operation: "op" }]
    ]
    for (const [message, context] of cases) {
      const error = raise(message, context)
      if (error._tag !== "PgqSqlError") return assert.fail(`${message}: ${error._tag}`)
      assert.strictEqual(error.sqlState, "P0001")
      assert.strictEqual(error.detail, message)
      assert.isFalse(error.isRetryable)
      assert.notInclude(error.message, "-1")
      assert.notInclude(error.message, `""`)
    }
  })
})

describe("isPgqError", () => {
  it("recognises every effect-pgq error by its brand", () => {
    const errors = [
      new PgqNotInstalled({ operation: "op", detail: "d" }),
      new QueueNotFound({ operation: "op", queue: "q" }),
      new ConsumerNotRegistered({ operation: "op", queue: "q", consumer: "c" }),
      new BatchNotFound({ operation: "op", batchId: 1n }),
      new EventNotFound({ operation: "op", batchId: 1n, eventId: 2n }),
      new FailedEventNotFound({ operation: "op", queue: "q", consumer: "c", eventId: 2n }),
      new QueueHasConsumers({ operation: "op", queue: "q" }),
      new InvalidName({ kind: "queue", name: "", reason: "must not be empty" }),
      new InvalidArgument({ operation: "op", argument: "a", reason: "r" }),
      new PgqSqlError({ operation: "op", detail: "d", isRetryable: false, cause: null })
    ]
    for (const error of errors) assert.isTrue(isPgqError(error), error._tag)
  })

  it("refuses look-alikes: a tag alone is not the brand", () => {
    assert.isFalse(isPgqError({ _tag: "QueueNotFound", operation: "op", queue: "q" }))
    assert.isFalse(isPgqError(serverError("P0001", "no such queue")))
    assert.isFalse(isPgqError(null))
    assert.isFalse(isPgqError("QueueNotFound"))
  })
})
