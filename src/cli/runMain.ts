/**
 * Runs the command line as the process's main program. Like
 * `NodeRuntime.runMain`, SIGINT and SIGTERM interrupt it, except where a
 * daemon in this process handles them itself (a graceful stop on SIGTERM).
 *
 * @since 0.2.0
 */
import { Runtime } from "effect"
import * as Os from "node:os"
import * as Signals from "../daemon/Signals.ts"

/**
 * @since 0.2.0
 * @category running
 */
export const runMain = Runtime.makeRunMain(({ fiber, teardown }) => {
  let interruptedBy: NodeJS.Signals | undefined = undefined
  const onSignal = (signal: NodeJS.Signals) => {
    if (Signals.isClaimed(signal)) return
    interruptedBy = signal
    fiber.interruptUnsafe(fiber.id)
  }
  fiber.addObserver((exit) => {
    process.removeListener("SIGINT", onSignal)
    process.removeListener("SIGTERM", onSignal)
    teardown(exit, (code) => {
      // The conventional code of the signal that ended it: 128 + its number.
      if (interruptedBy !== undefined) process.exit(128 + (Os.constants.signals[interruptedBy] ?? 0))
      if (code !== 0) process.exit(code)
    })
  })
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
})
