/**
 * Helpers for testing effect-pgq consumers against a real PostgreSQL.
 *
 * A suite with `@effect/vitest`: every test gets the effect-pgq services on
 * the database in `PGQ_DATABASE_URL`, or else on a throwaway cluster started
 * once for the suite.
 *
 * ```ts
 * import { assert, layer } from "@effect/vitest"
 * import { Effect, Layer } from "effect"
 * import { Pgq, PgqServices } from "effect-pgq"
 * import { DevDatabase } from "effect-pgq/testing"
 *
 * const services = PgqServices.layer.pipe(Layer.provideMerge(DevDatabase.layer()))
 *
 * layer(services, { excludeTestServices: true })("orders", (it) => {
 *   it.effect("registers the mailer", () =>
 *     Effect.gen(function*() {
 *       const pgq = yield* Pgq
 *       yield* pgq.createQueue("orders")
 *       assert.isTrue(yield* pgq.registerConsumer("orders", "mailer"))
 *     }))
 * })
 * ```
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as DevDatabase from "./DevDatabase.ts"

/**
 * @since 0.1.0
 */
export * as ThrowawayPostgres from "./ThrowawayPostgres.ts"
