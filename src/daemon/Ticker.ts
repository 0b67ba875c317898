/**
 * The built-in ticker and maintenance: what `pgqd` does for a database, as
 * Effect loops, so that pgqd is optional.
 *
 * | loop | every (pgqd's setting, default) | runs |
 * |---|---|---|
 * | tick | `tickerPeriod` (`ticker_period`, 1 second) | `pgq.ticker()`, then a NOTIFY on `wakeChannel` for each queue that got a new tick (payload: the queue's name), sent with the tick's commit; every `HEARTBEAT` also an empty one |
 * | event tick | `eventTickPeriod` (no pgqd equivalent, 50 ms) | a tick for each queue with events since its newest tick, with the same NOTIFY, in a loop inside PostgreSQL (`EventTicks`) |
 * | retry | `retryPeriod` (`retry_period`, 30 seconds) | `pgq.maint_retry_events()` until it returns 0 |
 * | maintenance | `maintenancePeriod` (`maint_period`, 120 seconds) | each step `pgq.maint_operations()` lists: table rotation step 1 per queue, step 2, VACUUM of pgq's busy tables (listed only when autovacuum is off), pgq_node / londiste steps |
 *
 * Every step is a transaction of its own, as in pgqd, and never the
 * caller's: step 2 of a rotation must commit after step 1, and VACUUM cannot
 * run inside a transaction. Interrupting the ticker at any point rolls back
 * at most the step in flight.
 *
 * pgq warns that `pgq.ticker()` calls must not run in parallel. effect-pgq
 * tickers take turns through a transaction-level advisory lock, so several
 * daemons may run the ticker on one database. pgqd takes no lock: with
 * `whenPgqdRuns: "stay-off"` (the default) the ticker looks for pgqd's
 * sessions (`detectPgqd`) every `pgqdCheckPeriod`, stands by (all three
 * loops) while it finds one, and takes over once pgqd has been gone for two
 * checks in a row.
 *
 * pgq ticks a queue with new events only once `ticker_max_lag` (3 seconds
 * by default) has passed or `ticker_max_count` events wait, so with pgqd an
 * event waits 1.5 seconds for its batch at the median. Event ticks make
 * that tens of milliseconds without touching the queues' settings: a busy
 * queue gets at most one extra tick per period, an idle one none, and the
 * loop runs inside PostgreSQL, so an idle daemon spends nothing on it.
 * Inserting into `pgq.tick` needs a superuser or pgq's owner; a role
 * without that privilege is told once and keeps pgq's own thresholds.
 *
 * In `run`, a lost connection is logged once and retried with backoff; any
 * other failure of a step is logged once and the step runs again at its
 * next period. `run` fails only on a database without pgq, at start; `once`
 * fails on the first lost connection.
 *
 * @since 0.2.0
 */
import { Clock, Context, DateTime, Deferred, Duration, Effect, Fiber, Option, Predicate, Schema, type Scope } from "effect"
import { PgClient } from "@effect/sql-pg"
import { SqlClient } from "effect/sql"
import { type MaintOperation, Pgq } from "../api/Pgq.ts"
import type { PgqError, PgqNotInstalled } from "../api/PgqError.ts"
import { DEFAULT_WAKE_CHANNEL } from "../consumer/Consumer.ts"
import { findAll, findOne } from "../internal/rows.ts"
import { makeSqlRunner, type SqlRunner } from "../internal/sqlRunner.ts"
import { lostConnectionFirst } from "../internal/lostConnection.ts"
import * as EventTicks from "./EventTicks.ts"

/**
 * What the ticker does while a pgqd ticks the same database:
 * `"stay-off"` stands by until pgqd is gone; `"run"` never looks and ticks
 * anyway. pgq warns that two tickers at once are dangerous: choose `"run"`
 * only when you know no pgqd ticks this database (for instance when the
 * role cannot see other sessions and you run no pgqd).
 *
 * @since 0.2.0
 * @category models
 */
export type WhenPgqdRuns = "stay-off" | "run"

/**
 * @since 0.2.0
 * @category models
 */
export interface TickerSettings {
  /** How often `pgq.ticker()` runs. Default 1 second, as pgqd's `ticker_period`. */
  readonly tickerPeriod?: Duration.Input | undefined
  /**
   * How often queues with new events get a tick, whatever pgq's
   * `ticker_max_lag`: the wait of an event for its batch. Default 50
   * milliseconds; `false` leaves ticking to pgq's thresholds, as pgqd does.
   */
  readonly eventTickPeriod?: Duration.Input | false | undefined
  /** How often due retry events go back into their queues. Default 30 seconds, as pgqd's `retry_period`. */
  readonly retryPeriod?: Duration.Input | undefined
  /** How often a maintenance round runs. Default 120 seconds, as pgqd's `maint_period`. */
  readonly maintenancePeriod?: Duration.Input | undefined
  /**
   * NOTIFY channel told, after each tick, the name of every queue that got a
   * new tick: consumers listening on it take their batch at once instead of
   * at their next poll. Default `effect_pgq_tick` (the consumers' default);
   * `false` sends nothing.
   */
  readonly wakeChannel?: string | false | undefined
  /** Default `"stay-off"`. */
  readonly whenPgqdRuns?: WhenPgqdRuns | undefined
  /** How often `"stay-off"` looks for pgqd. Default 10 seconds. */
  readonly pgqdCheckPeriod?: Duration.Input | undefined
}

/**
 * Whether a pgqd works on this database, as `pg_stat_activity` shows it.
 *
 * @since 0.2.0
 * @category models
 */
export interface PgqdPresence {
  readonly running: boolean
  /** Server pids of pgqd's sessions on this database. */
  readonly pids: ReadonlyArray<number>
  /**
   * Other sessions on this database whose query this role may not see: a
   * pgqd among them goes unnoticed unless the role has `pg_read_all_stats`
   * or pgqd connects with `application_name=pgqd`.
   */
  readonly hiddenSessions: number
}

/**
 * What `once` did.
 *
 * @since 0.2.0
 * @category models
 */
export interface OnceReport {
  /** A pgqd ticks this database and `whenPgqdRuns` is `"stay-off"`: nothing was done. */
  readonly pgqdRunning: boolean
  /** Another effect-pgq ticker had the turn: `pgq.ticker()` was not called. */
  readonly tickerBusy: boolean
  /** Queues that got a new tick, by name. */
  readonly queuesTicked: ReadonlyArray<string>
  /** Retry events moved back into their queues. */
  readonly retriesMoved: number
  /** Maintenance steps that ran, in order. */
  readonly maintenanceSteps: ReadonlyArray<MaintOperation>
}

/**
 * @since 0.2.0
 * @category models
 */
export type TickerState =
  /** Checking that pgq is installed (waiting for the database, if need be). */
  | "starting"
  | "ticking"
  /** A pgqd ticks this database. */
  | "standing-by"
  /** The database cannot be reached; retrying with backoff. */
  | "unavailable"
  /** The database has no pgq; the ticker has ended. */
  | "failed"
  /** `stop` was called. */
  | "stopped"

/**
 * @since 0.2.0
 * @category models
 */
export interface TickerStatus {
  readonly state: TickerState
  /** When `pgq.ticker()` last ran. */
  readonly lastTickAt: Option.Option<DateTime.Utc>
  /** Totals since start. */
  readonly queuesTicked: number
  readonly retriesMoved: number
  readonly maintenanceSteps: number
}

/**
 * A ticker started by `start`.
 *
 * @since 0.2.0
 * @category models
 */
export interface Ticker {
  readonly status: Effect.Effect<TickerStatus>
  /** Interrupts the loops (the step in flight rolls back) and waits until they have ended. Idempotent. */
  readonly stop: Effect.Effect<void>
}

interface Resolved {
  readonly tickerPeriod: Duration.Duration
  readonly eventTickPeriod: Duration.Duration | false
  readonly retryPeriod: Duration.Duration
  readonly maintenancePeriod: Duration.Duration
  readonly wakeChannel: string | false
  readonly whenPgqdRuns: WhenPgqdRuns
  readonly pgqdCheckPeriod: Duration.Duration
}

/** A bad setting is the program's bug (or an unchecked config file's): a defect that names it. */
const periodOf = (name: string, input: Duration.Input | undefined, fallback: Duration.Input) => {
  const duration = Duration.fromInput(input ?? fallback)
  return Option.isSome(duration) && Duration.isFinite(duration.value) && Duration.isPositive(duration.value)
    ? Effect.succeed(duration.value)
    : Effect.die(new Error(`Ticker: ${name} must be a positive, finite duration, not ${String(input)}`))
}

const resolve = Effect.fnUntraced(function*(settings: TickerSettings | undefined) {
  const wakeChannel = settings?.wakeChannel ?? DEFAULT_WAKE_CHANNEL
  if (wakeChannel === "") return yield* Effect.die(new Error("Ticker: wakeChannel must not be empty (false sends nothing)"))
  const whenPgqdRuns = settings?.whenPgqdRuns ?? "stay-off"
  if (whenPgqdRuns !== "stay-off" && whenPgqdRuns !== "run") {
    return yield* Effect.die(new Error(`Ticker: whenPgqdRuns must be "stay-off" or "run", not ${String(whenPgqdRuns)}`))
  }
  return {
    tickerPeriod: yield* periodOf("tickerPeriod", settings?.tickerPeriod, "1 second"),
    eventTickPeriod: settings?.eventTickPeriod === false
      ? false
      : yield* periodOf("eventTickPeriod", settings?.eventTickPeriod, "50 millis"),
    retryPeriod: yield* periodOf("retryPeriod", settings?.retryPeriod, "30 seconds"),
    maintenancePeriod: yield* periodOf("maintenancePeriod", settings?.maintenancePeriod, "120 seconds"),
    wakeChannel,
    whenPgqdRuns,
    pgqdCheckPeriod: yield* periodOf("pgqdCheckPeriod", settings?.pgqdCheckPeriod, "10 seconds")
  } satisfies Resolved
})

interface Env {
  readonly pgq: Pgq["Service"]
  readonly sql: SqlClient.SqlClient
  readonly run: SqlRunner
}

const environment = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return { pgq: yield* Pgq, sql, run: makeSqlRunner(sql) } satisfies Env
})

/**
 * Runs `effect` outside any transaction of the caller's: each step must
 * commit on its own.
 */
const standalone = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R | SqlClient.SqlClient> =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      // The transaction service is looked up at run time, never required: omitting it leaves R as it is.
      Effect.updateContext(effect, (context: Context.Context<R>) =>
        Context.omit(sql.transactionService)(context) as Context.Context<R>)
  )

// ---------------------------------------------------------------------------
// Tick
// ---------------------------------------------------------------------------

/**
 * The advisory lock (one int8 key: "pgq_tick" in ASCII) effect-pgq tickers
 * take turns with: each tick round holds it for its transaction, and a
 * round that cannot take it at once skips its turn.
 *
 * @since 0.2.0
 * @category constants
 */
export const TICK_LOCK_KEY = 0x7067715f7469636bn

/**
 * How often a running ticker sends an empty notification on the wake
 * channel. Consumers that hear it know a ticker notifies them of every
 * tick, and poll only as a fallback (see the consumers' `idleDelay`).
 *
 * @since 0.2.0
 * @category constants
 */
export const HEARTBEAT = Duration.seconds(10)

const decodeLocked = findOne(Schema.Struct({ r: Schema.Boolean }))("pg_try_advisory_xact_lock()")
const decodeLastTicks = findAll(Schema.Struct({ queue: Schema.String, tickId: Schema.BigInt }))

type LastTicks = ReadonlyMap<string, bigint>

/** Each queue's newest tick: one index probe per queue (pgq.tick's key is queue, tick id). */
const lastTicks = (env: Env): Effect.Effect<LastTicks, PgqError> =>
  env.run(
    { operation: "Ticker.lastTicks" },
    env.sql`select q.queue_name as queue, t.tick_id as "tickId"
      from pgq.queue q
      cross join lateral (
        select tick_id from pgq.tick where tick_queue = q.queue_id order by tick_queue desc, tick_id desc limit 1
      ) t
      order by q.queue_name`
  ).pipe(
    Effect.flatMap(decodeLastTicks),
    Effect.map((rows) => new Map(rows.map((row) => [row.queue, row.tickId])))
  )

interface TickRound {
  /** None when another effect-pgq ticker had the turn. */
  readonly ticked: Option.Option<ReadonlyArray<string>>
  readonly lastTicks: Option.Option<LastTicks>
}

/**
 * One transaction: the turn, `pgq.ticker()`, the queues whose newest tick
 * changed since `previous` (or since just before, without it), and their
 * notifications, which PostgreSQL delivers at commit, with the ticks. With
 * `heartbeat`, also an empty notification (see `HEARTBEAT`).
 */
const tickRound = (env: Env, wakeChannel: string | false, previous: LastTicks | undefined, heartbeat = false) =>
  env.run(
    { operation: "Ticker.tick" },
    env.sql.withTransaction(Effect.gen(function*() {
      const turn = yield* env.run(
        { operation: "Ticker.tick" },
        env.sql`select pg_try_advisory_xact_lock(${TICK_LOCK_KEY}) as r`
      ).pipe(Effect.flatMap(decodeLocked))
      if (!turn.r) return { ticked: Option.none(), lastTicks: Option.none() } satisfies TickRound
      const before = previous ?? (yield* lastTicks(env))
      yield* env.pgq.ticker
      const after = yield* lastTicks(env)
      const ticked = Array.from(after).filter(([queue, tick]) => before.get(queue) !== tick).map(([queue]) => queue)
      const payloads = heartbeat ? [...ticked, ""] : ticked
      if (wakeChannel !== false && payloads.length > 0) {
        yield* env.run(
          { operation: "Ticker.notify" },
          env.sql.unsafe("select pg_notify($1, queue) from unnest($2::text[]) as queue", [wakeChannel, payloads])
        )
      }
      return { ticked: Option.some(ticked), lastTicks: Option.some(after) } satisfies TickRound
    })).pipe(Effect.catchCause(lostConnectionFirst))
  )



// ---------------------------------------------------------------------------
// Retry
// ---------------------------------------------------------------------------

/** pgq moves at most 10 events per call, each call its own transaction. */
const drainRetries = (env: Env): Effect.Effect<number, PgqError> =>
  Effect.gen(function*() {
    let moved = 0
    while (true) {
      const n = yield* env.pgq.maintRetryEvents
      if (n === 0) return moved
      moved += n
    }
  })

// ---------------------------------------------------------------------------
// Maintenance
// ---------------------------------------------------------------------------

/** Steps pgq names that are statements, not functions (pgqd's list). */
const STATEMENTS: ReadonlyMap<string, string> = new Map([["vacuum", "vacuum"], ["vacuum analyze", "vacuum analyze"]])

/** A step that keeps asking to be called again is left for the next round after this many calls. */
const MAX_CALLS_PER_STEP = 1000

/** pgq's contract for maintenance functions: a non-zero result asks to be called again at once (pgqd reads it with atoi). */
const asksAgain = (value: unknown): boolean =>
  Predicate.isNumber(value)
    ? value !== 0
    : Predicate.isBigInt(value)
    ? value !== 0n
    : Predicate.isString(value)
    ? (Number.parseInt(value, 10) || 0) !== 0
    : false

const describeStep = (op: MaintOperation) =>
  STATEMENTS.has(op.funcName.toLowerCase()) ? `${op.funcName} ${op.funcArg}` : `${op.funcName}(${op.funcArg ?? ""})`

/** One call of a step, in its own transaction; true when it asks to be called again. */
const callStep = (env: Env, op: MaintOperation): Effect.Effect<boolean, PgqError> => {
  const context = { operation: `Ticker.maintenance: ${op.funcName}` }
  const statement = STATEMENTS.get(op.funcName.toLowerCase())
  if (statement !== undefined) {
    // A table name cannot be a bind parameter: it goes in as a quoted identifier.
    return op.funcArg === null
      ? Effect.as(Effect.logWarning(`maintenance step ${op.funcName} names no table: skipped`), false)
      : Effect.as(env.run(context, env.sql`${env.sql.literal(statement)} ${env.sql(op.funcArg)}`.unprepared), false)
  }
  if (op.funcName === "pgq.maint_rotate_tables_step1" && op.funcArg !== null) {
    return Effect.map(env.pgq.maintRotateTablesStep1(op.funcArg), (n) => n !== 0)
  }
  if (op.funcName === "pgq.maint_rotate_tables_step2" && op.funcArg === null) {
    return Effect.map(env.pgq.maintRotateTablesStep2, (n) => n !== 0)
  }
  // pgq_node, londiste and queue_extra_maint functions: the name as a quoted identifier, the argument bound.
  const call = op.funcArg === null
    ? env.sql`select ${env.sql(op.funcName)}()`
    : env.sql`select ${env.sql(op.funcName)}(${op.funcArg})`
  return Effect.map(env.run(context, call.valuesUnprepared), (rows) => asksAgain(rows[0]?.[0]))
}

const runStep = Effect.fnUntraced(function*(env: Env, op: MaintOperation) {
  yield* Effect.logDebug(`maintenance: ${describeStep(op)}`)
  for (let calls = 1; yield* callStep(env, op); calls++) {
    if (calls === MAX_CALLS_PER_STEP) {
      return yield* Effect.logWarning(
        `maintenance step ${describeStep(op)} still asks to run again after ${calls} calls: left for the next round`
      )
    }
  }
})

/**
 * Runs every step `pgq.maint_operations()` lists, each in its own
 * transaction. A failing step is logged and the round goes on; a lost
 * connection ends the round.
 */
const maintenanceRound = (env: Env): Effect.Effect<ReadonlyArray<MaintOperation>, PgqError> =>
  Effect.gen(function*() {
    const done: Array<MaintOperation> = []
    for (const op of yield* env.pgq.maintOperations) {
      const result = yield* Effect.result(runStep(env, op))
      if (result._tag === "Success") {
        done.push(op)
        continue
      }
      if (isConnectionLoss(result.failure)) return yield* result.failure
      yield* Effect.logWarning(`maintenance step ${describeStep(op)} failed: ${result.failure.message}`)
    }
    return done
  })

// ---------------------------------------------------------------------------
// pgqd
// ---------------------------------------------------------------------------

/**
 * What pgqd 3.5 sends, verbatim. Its ticker keeps its connection between
 * ticks, so `pg_stat_activity` shows `select pgq.ticker()` as that idle
 * session's last query; pgqd sets no application_name of its own.
 */
const PGQD_QUERIES = [
  "select pgq.ticker()",
  "select * from pgq.maint_retry_events()",
  "select func_name, func_arg from pgq.maint_operations()"
]

const decodePresence = findOne(Schema.Struct({ pids: Schema.Array(Schema.Number), hidden: Schema.Number }))(
  "pg_stat_activity"
)

/** A session hidden from this role shows no backend_type either: it counts as a client. */
const detect = (env: Env): Effect.Effect<PgqdPresence, PgqError> =>
  env.run(
    { operation: "Ticker.detectPgqd" },
    env.sql.unsafe(
      `select coalesce(array_agg(pid order by pid) filter (where query = any($1::text[]) or application_name = $2), '{}') as pids,
         (count(*) filter (where query = $3 and application_name <> $2))::int4 as hidden
       from pg_stat_activity
       where datname = current_database() and pid <> pg_backend_pid()
         and (backend_type = $4 or backend_type is null)`,
      [PGQD_QUERIES, "pgqd", "<insufficient privilege>", "client backend"]
    )
  ).pipe(
    Effect.flatMap(decodePresence),
    Effect.map(({ hidden, pids }) => ({ running: pids.length > 0, pids, hiddenSessions: hidden }))
  )

/**
 * Whether a pgqd works on the current database: a session other than this
 * one whose last query is one of pgqd's own (pgqd 3.5 sets no
 * application_name, and its ticker's connection stays open between ticks),
 * or whose application_name is `pgqd`. Seeing other roles' queries takes
 * superuser or `pg_read_all_stats`; `hiddenSessions` counts the sessions this
 * role could not look into.
 *
 * @since 0.2.0
 * @category pgqd
 */
export const detectPgqd: Effect.Effect<PgqdPresence, PgqError, SqlClient.SqlClient | Pgq> = standalone(
  // Outside a transaction: inside one, pg_stat_activity keeps showing its first snapshot.
  Effect.flatMap(environment, detect)
).pipe(Effect.withSpan("Ticker.detectPgqd"))

// ---------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------

const isConnectionLoss = (error: PgqError): boolean => error._tag === "PgqSqlError" && error.isRetryable

const isPermissionDenied = (error: PgqError): boolean => error._tag === "PgqSqlError" && error.sqlState === "42501"

const eventTickDenied = (error: PgqError) =>
  `event ticks are off: this role may not insert into pgq.tick (${error.message}); ` +
  `queues tick at pgq's ticker_max_lag, or run the ticker as a superuser or pgq's owner`

/** Backoff while the database is unreachable: 200 ms doubling, at most 30 s (as consumers do). */
const reconnectDelay = (failures: number): Duration.Duration => Duration.millis(Math.min(30_000, 200 * 2 ** failures))

/**
 * Runs one maintenance step the way pgqd does: `vacuum` / `vacuum analyze`
 * as a statement outside any transaction, a function in a transaction of its
 * own, called again while it returns non-zero.
 *
 * @since 0.2.0
 * @category maintenance
 */
export const maintenanceStep = (op: MaintOperation): Effect.Effect<void, PgqError, Pgq | SqlClient.SqlClient> =>
  standalone(Effect.flatMap(environment, (env) => runStep(env, op))).pipe(
    Effect.withSpan("Ticker.maintenanceStep", { attributes: { operation: op.funcName } })
  )

/**
 * One round of everything: due retry events moved back (first, so that the
 * tick takes them), one tick with its notifications, one maintenance round.
 * With `whenPgqdRuns: "stay-off"`, nothing when a pgqd works on this
 * database. Fails on the first lost connection; a failing maintenance step is
 * logged and skipped.
 *
 * @since 0.2.0
 * @category running
 */
export const once = Effect.fn("Ticker.once")(
  function*(settings?: TickerSettings): Effect.fn.Return<OnceReport, PgqError, Pgq | SqlClient.SqlClient> {
    const resolved = yield* resolve(settings)
    const env = yield* environment
    if (resolved.whenPgqdRuns === "stay-off") {
      const presence = yield* detect(env)
      if (presence.running) {
        yield* Effect.logInfo(`pgqd works on this database (pid ${presence.pids.join(", ")}): nothing done`)
        return { pgqdRunning: true, tickerBusy: false, queuesTicked: [], retriesMoved: 0, maintenanceSteps: [] }
      }
    }
    const retriesMoved = yield* drainRetries(env)
    const round = yield* tickRound(env, resolved.wakeChannel, undefined)
    const eventTicked = resolved.eventTickPeriod === false || Option.isNone(round.ticked)
      ? []
      : yield* EventTicks.round(env.sql, env.run, TICK_LOCK_KEY, resolved.wakeChannel).pipe(
        Effect.catchIf(isPermissionDenied, (error) => Effect.as(Effect.logWarning(eventTickDenied(error)), []))
      )
    const maintenanceSteps = yield* maintenanceRound(env)
    return {
      pgqdRunning: false,
      tickerBusy: Option.isNone(round.ticked),
      queuesTicked: [...Option.getOrElse(round.ticked, () => []), ...eventTicked],
      retriesMoved,
      maintenanceSteps
    }
  },
  (effect, _settings?: TickerSettings) => standalone(effect).pipe(Effect.annotateLogs({ component: "ticker" }))
)

/** The loops' shared, mutable view; `status` reads it. */
interface Shared {
  state: TickerState
  standingBy: boolean
  /** Done when standing by begins; a fresh one once it ends. */
  standby: Deferred.Deferred<void>
  lastTicks: LastTicks | undefined
  lastTickAt: Option.Option<DateTime.Utc>
  queuesTicked: number
  retriesMoved: number
  maintenanceSteps: number
}

const makeShared = (): Shared => ({
  state: "starting",
  standingBy: false,
  standby: Deferred.makeUnsafe<void>(),
  lastTicks: undefined,
  lastTickAt: Option.none(),
  queuesTicked: 0,
  retriesMoved: 0,
  maintenanceSteps: 0
})

/** How a step ended, for the loop's logging and backoff. */
type Outcome =
  | { readonly _tag: "Done" }
  | { readonly _tag: "ConnectionLost"; readonly message: string }
  | { readonly _tag: "Failed"; readonly message: string; readonly defect: unknown }

const outcomeOf = (step: Effect.Effect<void, PgqError>): Effect.Effect<Outcome> =>
  step.pipe(
    Effect.as<Outcome>({ _tag: "Done" }),
    Effect.catch((error) =>
      Effect.succeed<Outcome>(
        isConnectionLoss(error)
          ? { _tag: "ConnectionLost", message: error.message }
          : { _tag: "Failed", message: error.message, defect: undefined }
      )
    ),
    // A bug in one step must not end the other loops: it is logged as an error and the step runs again.
    Effect.catchDefect((defect) =>
      Effect.succeed<Outcome>({ _tag: "Failed", message: `unexpected defect: ${String(defect)}`, defect })
    )
  )

/**
 * Runs `step` every `period`, skipping while standing by. A lost connection
 * is retried with backoff and logged once; another failure is logged once
 * (until the step succeeds again) and retried at the next period.
 */
const every = (
  name: string,
  period: Duration.Duration,
  shared: Shared,
  step: Effect.Effect<void, PgqError>,
  onConnection: (available: boolean) => void = () => {}
): Effect.Effect<never> =>
  Effect.gen(function*() {
    let failures = 0
    let warned: string | undefined = undefined
    while (true) {
      if (shared.standingBy) {
        yield* Effect.sleep(period)
        continue
      }
      const outcome = yield* outcomeOf(step)
      if (outcome._tag === "ConnectionLost") {
        if (failures === 0) yield* Effect.logWarning(`database unavailable, retrying with backoff: ${outcome.message}`)
        onConnection(false)
        yield* Effect.sleep(reconnectDelay(failures++))
        continue
      }
      if (failures > 0) {
        failures = 0
        onConnection(true)
        yield* Effect.logInfo("database available again")
      }
      if (outcome._tag === "Failed") {
        if (warned !== outcome.message) {
          warned = outcome.message
          const message = `${name} failed, trying again every ${Duration.format(period)}: ${warned}`
          yield* outcome.defect === undefined ? Effect.logWarning(message) : Effect.logError(message, outcome.defect)
        }
      } else if (warned !== undefined) {
        warned = undefined
        yield* Effect.logInfo(`${name} works again`)
      }
      yield* Effect.sleep(period)
    }
  }).pipe(Effect.annotateLogs({ loop: name }))

/** Waits for the database (logging once) and fails only when it has no pgq. */
const awaitPgq = (env: Env): Effect.Effect<void, PgqNotInstalled> =>
  Effect.gen(function*() {
    for (let failures = 0;; failures++) {
      const result = yield* Effect.result(env.pgq.version)
      if (result._tag === "Success") {
        if (failures > 0) yield* Effect.logInfo("database available")
        return
      }
      if (result.failure._tag === "PgqNotInstalled") return yield* result.failure
      if (failures === 0) yield* Effect.logWarning(`cannot start yet, retrying with backoff: ${result.failure.message}`)
      yield* Effect.sleep(reconnectDelay(failures))
    }
  })

/** Looks for pgqd now and then; stands by on sight, takes over after two checks without it. */
const watchPgqd = (env: Env, resolved: Resolved, shared: Shared) => {
  let absentChecks = 0
  let warnedHidden = false
  const apply = (presence: PgqdPresence, first: boolean) =>
    Effect.gen(function*() {
      if (presence.running) {
        absentChecks = 0
        if (!shared.standingBy) {
          shared.standingBy = true
          Deferred.doneUnsafe(shared.standby, Effect.void)
          shared.lastTicks = undefined
          shared.state = "standing-by"
          yield* Effect.logInfo(
            `pgqd works on this database (pid ${presence.pids.join(", ")}): the built-in ticker stays off`
          )
        }
      } else if (shared.standingBy && (first || ++absentChecks >= 2)) {
        shared.standingBy = false
        shared.standby = Deferred.makeUnsafe<void>()
        shared.state = "ticking"
        yield* Effect.logInfo("pgqd no longer works on this database: the built-in ticker takes over")
      }
      if (!presence.running && presence.hiddenSessions > 0 && !warnedHidden) {
        warnedHidden = true
        yield* Effect.logWarning(
          `${presence.hiddenSessions} other sessions on this database hide their queries from this role, ` +
            `so a pgqd among them would go unseen: grant pg_read_all_stats to this role, ` +
            `or set application_name=pgqd in pgqd's base_connstr`
        )
      }
    })

  const first = Effect.gen(function*() {
    for (let failures = 0;; failures++) {
      const result = yield* Effect.result(detect(env))
      if (result._tag === "Success") return yield* apply(result.success, true)
      if (!isConnectionLoss(result.failure)) {
        // Without pg_stat_activity there is nothing to stand by for; the loop tries again.
        return yield* Effect.logWarning(`cannot look for pgqd: ${result.failure.message}`)
      }
      yield* Effect.sleep(reconnectDelay(failures))
    }
  })

  const loop = Effect.gen(function*() {
    while (true) {
      yield* Effect.sleep(resolved.pgqdCheckPeriod)
      const result = yield* Effect.result(detect(env))
      if (result._tag === "Success") yield* apply(result.success, false)
      else yield* Effect.logDebug(`cannot look for pgqd: ${result.failure.message}`)
    }
  }).pipe(Effect.annotateLogs({ loop: "pgqd" }))

  return { first, loop }
}

const runWith = (settings: TickerSettings | undefined, shared: Shared) =>
  Effect.gen(function*() {
    const resolved = yield* resolve(settings)
    const { eventTickPeriod } = resolved
    const env = yield* environment
    yield* awaitPgq(env)
    const pgqd = watchPgqd(env, resolved, shared)
    if (resolved.whenPgqdRuns === "stay-off") yield* pgqd.first
    if (!shared.standingBy) shared.state = "ticking"
    yield* Effect.logInfo(
      `ticker started: tick every ${Duration.format(resolved.tickerPeriod)}${
        eventTickPeriod === false ? "" : ` (queues with new events every ${Duration.format(eventTickPeriod)})`
      }, retry every ${
        Duration.format(resolved.retryPeriod)
      }, maintenance every ${Duration.format(resolved.maintenancePeriod)}`
    )

    let lastHeartbeatAt = 0
    const tick = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const heartbeat = now - lastHeartbeatAt >= Duration.toMillis(HEARTBEAT)
      // Event ticks in between move the newest ticks: compare within the round, not with the last one.
      const previous = eventTickPeriod === false ? shared.lastTicks : undefined
      const round = yield* tickRound(env, resolved.wakeChannel, previous, heartbeat)
      if (heartbeat && Option.isSome(round.ticked)) lastHeartbeatAt = now
      shared.lastTicks = Option.getOrUndefined(round.lastTicks)
      if (Option.isNone(round.ticked)) return yield* Effect.logDebug("another effect-pgq ticker had the turn")
      shared.lastTickAt = Option.some(yield* DateTime.now)
      shared.queuesTicked += round.ticked.value.length
      if (round.ticked.value.length > 0) yield* Effect.logDebug(`ticked ${round.ticked.value.join(", ")}`)
    })
    const eventTickDenial = Deferred.makeUnsafe<void>()
    const client = yield* Effect.serviceOption(PgClient.PgClient)
    const eventTicks = (period: Duration.Duration) =>
      Option.match(client, {
        // The loop inside PostgreSQL, until its time is up or a pgqd is seen.
        onSome: (client) =>
          Effect.raceFirst(
            EventTicks.session(env.run, client.config, TICK_LOCK_KEY, resolved.wakeChannel, period),
            Deferred.await(shared.standby)
          ),
        // Another SqlClient: one round per period from here.
        onNone: () =>
          Effect.flatMap(EventTicks.round(env.sql, env.run, TICK_LOCK_KEY, resolved.wakeChannel), (ticked) => {
            shared.queuesTicked += ticked.length
            return ticked.length === 0 ? Effect.void : Effect.logDebug(`event tick: ${ticked.join(", ")}`)
          })
      }).pipe(
        Effect.catchIf(isPermissionDenied, (error) =>
          Effect.andThen(Effect.logWarning(eventTickDenied(error)), Deferred.succeed(eventTickDenial, undefined)))
      )
    const retry = Effect.gen(function*() {
      const moved = yield* drainRetries(env)
      shared.retriesMoved += moved
      if (moved > 0) yield* Effect.logDebug(`moved ${moved} retry events back into their queues`)
    })
    const maintenance = Effect.gen(function*() {
      const steps = yield* maintenanceRound(env)
      shared.maintenanceSteps += steps.length
    })
    const onConnection = (available: boolean) => {
      if (!shared.standingBy) shared.state = available ? "ticking" : "unavailable"
    }

    return yield* Effect.all([
      every("tick", resolved.tickerPeriod, shared, tick, onConnection),
      eventTickPeriod === false ? Effect.never : Effect.raceFirst(
        every("event tick", eventTickPeriod, shared, eventTicks(eventTickPeriod)),
        Effect.andThen(Deferred.await(eventTickDenial), Effect.never)
      ),
      every("retry", resolved.retryPeriod, shared, retry),
      every("maintenance", resolved.maintenancePeriod, shared, maintenance),
      resolved.whenPgqdRuns === "stay-off" ? pgqd.loop : Effect.never
    ], { concurrency: "unbounded" }).pipe(Effect.andThen(Effect.never))
  }).pipe(standalone, Effect.annotateLogs({ component: "ticker" }))

/**
 * The ticker, until interrupted: the three loops and, with `"stay-off"`, the
 * watch for pgqd. Interrupting it at any point rolls back at most the step
 * in flight. Waits for the database at start; fails only when it has no
 * pgq.
 *
 * ```ts
 * import { PgClient } from "@effect/sql-pg"
 * import { Config, Effect, Layer } from "effect"
 * import { Pgq, Ticker } from "effect-pgq"
 *
 * const database = PgClient.layerConfig({ url: Config.Redacted("PGQ_DATABASE_URL") })
 *
 * // pgqd's periods but a slower maintenance; stands by while a pgqd ticks the same database.
 * export const ticker = Ticker.run({ maintenancePeriod: "5 minutes" }).pipe(
 *   Effect.provide(Pgq.layer.pipe(Layer.provideMerge(database)))
 * )
 * ```
 *
 * @since 0.2.0
 * @category running
 */
export const run = (settings?: TickerSettings): Effect.Effect<never, PgqNotInstalled, Pgq | SqlClient.SqlClient> =>
  Effect.suspend(() => runWith(settings, makeShared()))

/**
 * Starts the ticker in the background of the current scope and returns its
 * status and a way to stop it; closing the scope stops it too. A database
 * without pgq shows as the state `failed` (and is logged).
 *
 * @since 0.2.0
 * @category running
 */
export const start = Effect.fnUntraced(
  function*(settings?: TickerSettings): Effect.fn.Return<Ticker, never, Scope.Scope | Pgq | SqlClient.SqlClient> {
    const shared = makeShared()
    const fiber = yield* runWith(settings, shared).pipe(
      Effect.catch((error) =>
        Effect.andThen(
          Effect.sync(() => void (shared.state = "failed")),
          Effect.logError(error.message).pipe(Effect.annotateLogs({ component: "ticker" }))
        )
      ),
      Effect.forkScoped
    )
    const stop = Effect.andThen(
      Fiber.interrupt(fiber),
      Effect.sync(() => {
        if (shared.state !== "failed") shared.state = "stopped"
      })
    )
    const status = Effect.sync((): TickerStatus => ({
      state: shared.state,
      lastTickAt: shared.lastTickAt,
      queuesTicked: shared.queuesTicked,
      retriesMoved: shared.retriesMoved,
      maintenanceSteps: shared.maintenanceSteps
    }))
    return { status, stop }
  }
)
