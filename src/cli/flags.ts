/**
 * Flags shared by the commands.
 *
 * @since 0.2.0
 */
import { Flag, GlobalFlag } from "effect/cli"

/**
 * `--db URL`, a global flag: before or after the command's name. Absent,
 * `Connection` falls back to `PGQ_DATABASE_URL`, then to the PG* variables
 * psql reads.
 *
 * @since 0.2.0
 * @category flags
 */
export const db = GlobalFlag.Setting("db")({
  flag: Flag.Redacted("db").pipe(
    Flag.withMetavar("url"),
    Flag.withDescription(
      "PostgreSQL connection URL, e.g. postgres://user@host:5432/db (default: $PGQ_DATABASE_URL, else PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE)"
    ),
    Flag.optional
  )
})

/**
 * @since 0.2.0
 * @category flags
 */
export const queue = Flag.String("queue").pipe(
  Flag.withAlias("q"),
  Flag.withMetavar("name"),
  Flag.withDescription("Queue name")
)

/**
 * @since 0.2.0
 * @category flags
 */
export const consumer = Flag.String("consumer").pipe(
  Flag.withAlias("c"),
  Flag.withMetavar("name"),
  Flag.withDescription("Consumer name")
)

/**
 * @since 0.2.0
 * @category flags
 */
export const json = Flag.Boolean("json").pipe(
  Flag.withDescription("Print one JSON document on stdout (ids and counts of events as strings)"),
  Flag.withDefault(false)
)

/**
 * Consent for a destructive command where no terminal can ask for it.
 *
 * @since 0.2.0
 * @category flags
 */
export const yes = Flag.Boolean("yes").pipe(
  Flag.withAlias("y"),
  Flag.withDescription("Do it without asking (required when stdin is not a terminal)"),
  Flag.withDefault(false)
)

/**
 * `--debug`: a failure prints its full cause, stack traces included, instead
 * of one line. Read by the executable before the command runs (`main.ts`).
 *
 * @since 0.2.0
 * @category flags
 */
export const debug = GlobalFlag.Setting("debug")({
  flag: Flag.Boolean("debug").pipe(
    Flag.withDescription("On failure, print the full cause with stack traces"),
    Flag.withDefault(false)
  )
})
