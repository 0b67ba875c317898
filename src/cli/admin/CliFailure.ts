/**
 * A failure of the command line itself (a refused confirmation, a bad input
 * line, a failed check): it already says what went wrong and what to do,
 * and carries the exit code the process should end with.
 *
 * @since 0.2.0
 */
import { Effect, Schema } from "effect"

/**
 * @since 0.2.0
 * @category errors
 */
export class CliFailure extends Schema.TaggedError<CliFailure>("effect-pgq/cli/CliFailure")("CliFailure", {
  message: Schema.String,
  /** 1 for a failure, 2 for a usage error. */
  exitCode: Schema.Number
}) {}

/**
 * A usage error (exit code 2): the command line itself is wrong.
 *
 * @since 0.2.0
 * @category constructors
 */
export const usage = (message: string): CliFailure => new CliFailure({ message, exitCode: 2 })

/**
 * A failure (exit code 1).
 *
 * @since 0.2.0
 * @category constructors
 */
export const failure = (message: string): CliFailure => new CliFailure({ message, exitCode: 1 })

/**
 * Ends the process with `code` once the command has finished normally: for
 * commands whose exit code is their answer (`status --nagios`).
 *
 * @since 0.2.0
 * @category utils
 */
export const setExitCode = (code: number): Effect.Effect<void> =>
  Effect.sync(() => {
    process.exitCode = code
  })
