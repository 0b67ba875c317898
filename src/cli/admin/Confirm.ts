/**
 * Consent for commands that destroy queued events: `--yes`, or a question
 * when stdin is a terminal. Without either the command refuses and changes
 * nothing, so a script never drops data by accident.
 *
 * @since 0.2.0
 */
import { Effect, Stdio } from "effect"
import { Prompt } from "effect/cli"
import { failure } from "./CliFailure.ts"

/**
 * Succeeds when the user agrees to `what` (a phrase such as
 * `drop queue "orders" and its events`); fails with a `CliFailure` otherwise.
 *
 * @since 0.2.0
 * @category confirmation
 */
export const confirm = Effect.fnUntraced(function*(what: string, yes: boolean) {
  if (yes) return
  const stdio = yield* Stdio.Stdio
  if (!(yield* stdio.stdinIsTerminal)) {
    return yield* failure(`refusing to ${what} without --yes (stdin is not a terminal to ask); nothing was changed`)
  }
  const agreed = yield* Prompt.run(Prompt.Confirm({ message: `${what[0]?.toUpperCase() ?? ""}${what.slice(1)}?` }))
  if (!agreed) return yield* failure(`not confirmed; nothing was changed`)
})
