/**
 * Flags shared by the commands.
 *
 * @since 0.2.0
 */
import { Config } from "effect"
import { Flag } from "effect/cli"

/**
 * `--db URL`, falling back to `PGQ_DATABASE_URL`.
 *
 * @since 0.2.0
 * @category flags
 */
export const db = Flag.Redacted("db").pipe(
  Flag.withDescription("PostgreSQL connection URL (default: $PGQ_DATABASE_URL)"),
  Flag.withFallbackConfig(Config.Redacted("PGQ_DATABASE_URL"))
)
