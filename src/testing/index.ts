/**
 * Helpers for testing effect-pgq consumers against a real PostgreSQL.
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
