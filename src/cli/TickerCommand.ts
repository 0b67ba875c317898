/**
 * `effect-pgq ticker`: the built-in ticker and maintenance (pgqd's work) for
 * one database, in the foreground until SIGINT or SIGTERM; `--once` runs one
 * round and prints what it did.
 *
 * @since 0.2.0
 */
import { Console, Effect } from "effect"
import { Command, Flag } from "effect/cli"
import * as Ticker from "../daemon/Ticker.ts"
import { withDatabase } from "./admin/Connection.ts"


const once = Flag.Boolean("once").pipe(
  Flag.withDescription("Move due retry events, tick, run one maintenance round, print what was done and exit"),
  Flag.withDefault(false)
)

const whenPgqdRuns = Flag.Literals("when-pgqd-runs", ["stay-off", "run"]).pipe(
  Flag.withDescription(
    "stay-off: do nothing while a pgqd works on the database; run: never look for pgqd (the role may not see its session)"
  ),
  Flag.withDefault("stay-off")
)

/**
 * The report of `--once`, one line per loop.
 *
 * @since 0.2.0
 * @category formatting
 */
export const formatReport = (report: Ticker.OnceReport): string => {
  if (report.pgqdRunning) return "pgqd works on this database: the built-in ticker did nothing"
  const steps = report.maintenanceSteps.map((op) =>
    op.funcName.toLowerCase().startsWith("vacuum") ? `${op.funcName} ${op.funcArg}` : `${op.funcName}(${op.funcArg ?? ""})`
  )
  return [
    `retry events moved back: ${report.retriesMoved}`,
    report.tickerBusy
      ? "ticked: nothing, another effect-pgq ticker had the turn"
      : `ticked: ${report.queuesTicked.length === 0 ? "no queue needed a tick" : report.queuesTicked.join(", ")}`,
    `maintenance: ${steps.length === 0 ? "nothing due" : steps.join(", ")}`
  ].join("\n")
}

/**
 * @since 0.2.0
 * @category commands
 */
export const ticker = Command.make("ticker", { once, whenPgqdRuns }, ({ once, whenPgqdRuns }) =>
  withDatabase(
    once
      ? Effect.flatMap(Ticker.once({ whenPgqdRuns }), (report) => Console.log(formatReport(report)))
      : Ticker.run({ whenPgqdRuns }),
    "effect-pgq ticker"
  )).pipe(
    Command.withDescription(
      "Tick queues, move due retry events back and rotate event tables, as pgqd does (defaults: every 1 s, 30 s, 120 s)"
    ),
    Command.withExamples([
      { command: "effect-pgq ticker --db postgres://localhost/shop", description: "Run until SIGINT or SIGTERM" },
      { command: "effect-pgq ticker --once", description: "One round on $PGQ_DATABASE_URL, then print what it did" }
    ])
  )
