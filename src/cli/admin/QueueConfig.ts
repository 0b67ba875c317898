/**
 * `effect-pgq queue-config`: shows a queue's pgq settings, and with
 * `--set name=value` (repeatable) changes them, all in one transaction.
 * Names are pgq's (`ticker_max_lag`), with or without the `queue_` prefix;
 * intervals take PostgreSQL's syntax (`30 seconds`, `00:00:30`).
 *
 * @since 0.2.0
 */
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { SqlClient } from "effect/sql"
import { Pgq, type QueueSetting } from "../../api/Pgq.ts"
import type { QueueInfo } from "../../api/QueueInfo.ts"
import { json, queue } from "../flags.ts"
import { usage } from "./CliFailure.ts"
import { withDatabase } from "./Connection.ts"
import { human, printJson, seconds, table } from "./Output.ts"

const SETTINGS: ReadonlyArray<QueueSetting> = [
  "ticker_max_count",
  "ticker_max_lag",
  "ticker_idle_period",
  "ticker_paused",
  "rotation_period",
  "external_ticker",
  "disable_insert"
]

const settingOf = (name: string): QueueSetting | undefined => {
  const bare = name.trim().toLowerCase().replace(/-/g, "_").replace(/^queue_/, "")
  return SETTINGS.find((s) => s === bare)
}

const describe = (info: QueueInfo) => ({
  queue: info.queueName,
  tickerMaxCount: info.tickerMaxCount,
  tickerMaxLagSeconds: seconds(info.tickerMaxLag),
  tickerIdlePeriodSeconds: seconds(info.tickerIdlePeriod),
  tickerPaused: info.tickerPaused,
  rotationPeriodSeconds: seconds(info.rotationPeriod),
  externalTicker: info.externalTicker
})

/**
 * @since 0.2.0
 * @category commands
 */
export const queueConfig = Command.make(
  "queue-config",
  {
    queue,
    set: Flag.KeyValuePair("set").pipe(
      Flag.withDescription(
        `Change a setting (repeatable): ${SETTINGS.join(", ")}`
      ),
      Flag.optional
    ),
    json
  },
  ({ json, queue, set }) =>
    withDatabase(
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const pgq = yield* Pgq
        const changes = Object.entries(Option.getOrElse(set, () => ({})))
        const settings: Array<readonly [QueueSetting, string]> = []
        for (const [name, value] of changes) {
          const setting = settingOf(name)
          if (setting === undefined) {
            return yield* usage(`queue-config: unknown setting ${JSON.stringify(name)}; known: ${SETTINGS.join(", ")}`)
          }
          settings.push([setting, value])
        }
        const info = yield* Effect.gen(function*() {
          for (const [setting, value] of settings) yield* pgq.setQueueConfig(queue, setting, value)
          return yield* pgq.getQueueInfo(queue)
        }).pipe(sql.withTransaction)
        if (json) return yield* printJson(describe(info))
        if (settings.length > 0) {
          yield* Console.log(`changed ${settings.map(([s, v]) => `${s} = ${v}`).join(", ")} on queue ${JSON.stringify(queue)}`)
        }
        yield* Console.log(table(["SETTING", "VALUE"], [
          ["ticker_max_count", String(info.tickerMaxCount)],
          ["ticker_max_lag", human(info.tickerMaxLag)],
          ["ticker_idle_period", human(info.tickerIdlePeriod)],
          ["ticker_paused", String(info.tickerPaused)],
          ["rotation_period", human(info.rotationPeriod)],
          ["external_ticker", String(info.externalTicker)]
        ]))
      })
    )
).pipe(
  Command.withDescription("Show a queue's pgq settings, or change them with --set name=value"),
  Command.withExamples([
    { command: "effect-pgq queue-config -q orders", description: "Show the settings" },
    {
      command: "effect-pgq queue-config -q orders --set ticker_max_lag='5 seconds' --set ticker_max_count=1000",
      description: "Tick at least every 5 s or every 1000 events"
    }
  ])
)
