/**
 * Event ticks: a tick for every queue whose event sequence has moved since
 * its newest tick, so that an event waits tens of milliseconds for its batch
 * instead of pgq's `ticker_max_lag` (3 seconds by default).
 *
 * The tick is inserted as `pgq.ticker(queue)` inserts it (the time and the
 * snapshot are the columns' defaults), for queues neither paused nor
 * externally ticked, under the advisory lock effect-pgq tickers take turns
 * with. Each queue ticked is notified on the wake channel, at commit.
 *
 * The loop runs inside PostgreSQL, as one `DO` block per session of
 * `SESSION_SECONDS` on a connection of its own: a round every period,
 * each its own transaction, and no round trip while nothing happens, so an
 * idle daemon spends no CPU on it. A session that loses its client ends
 * within a second (`client_connection_check_interval`, PostgreSQL 14+), or
 * at the latest when its time is up.
 *
 * A fresh queue's very first event does not move its sequence's value
 * (`pgq.seq_getval` reads 1 before and after); pgq's own ticker ticks a
 * queue with fewer than two ticks at its next round anyway.
 *
 * @since 0.2.0
 */
import { PgConnection } from "@effect/sql-pg"
import { Duration, Effect, Schema } from "effect"
import type { SqlClient } from "effect/sql"
import type { PgqError } from "../api/PgqError.ts"
import { findAll } from "../internal/rows.ts"
import type { SqlRunner } from "../internal/sqlRunner.ts"

/** How long one in-database loop runs before the daemon starts the next: also the longest an orphaned one lives. */
export const SESSION_SECONDS = 30

/**
 * The statement that ticks every queue with new events; `lockKey` and
 * `channel` are SQL expressions, `result` the select list over `due` (the
 * queues ticked).
 */
const tickStatement = (lockKey: string, channel: string, result: string) =>
  `with turn as materialized (select pg_try_advisory_xact_lock(${lockKey}) as ok),
  due as materialized (
    select q.queue_id, q.queue_name, q.queue_tick_seq, seq.event_seq
    from pgq.queue q
    cross join lateral (select pgq.seq_getval(q.queue_event_seq) as event_seq) seq
    cross join lateral (
      select tick_event_seq from pgq.tick
      where tick_queue = q.queue_id order by tick_queue desc, tick_id desc limit 1
    ) newest
    where (select ok from turn) and not q.queue_external_ticker and not q.queue_ticker_paused
      and seq.event_seq > newest.tick_event_seq
  ),
  ticked as (
    insert into pgq.tick (tick_queue, tick_id, tick_event_seq)
    select queue_id, nextval(queue_tick_seq::regclass), event_seq from due
    returning tick_queue
  ),
  notified as (
    select due.queue_name, case when ${channel} is not null then pg_notify(${channel}, due.queue_name) end
    from ticked join due on due.queue_id = ticked.tick_queue
  )
  select ${result} from notified`

const decodeTicked = findAll(Schema.Struct({ queue: Schema.String }))

/**
 * One round, one statement and its own transaction. Returns the queues
 * ticked; none when another effect-pgq ticker had the turn.
 *
 * @since 0.2.0
 * @category ticking
 */
export const round = (
  sql: SqlClient.SqlClient,
  run: SqlRunner,
  lockKey: bigint,
  wakeChannel: string | false
): Effect.Effect<ReadonlyArray<string>, PgqError> =>
  run(
    { operation: "Ticker.eventTick" },
    sql.unsafe(tickStatement("$1::int8", "$2::text", "queue_name as queue"), [
      lockKey.toString(),
      wakeChannel === false ? null : wakeChannel
    ])
  ).pipe(Effect.flatMap(decodeTicked), Effect.map((rows) => rows.map((row) => row.queue)))

const literal = (text: string) => `'${text.replaceAll("'", "''")}'`

/** The in-database loop: rounds every `period` until `SESSION_SECONDS` have passed. */
const loopStatement = (lockKey: bigint, wakeChannel: string | false, period: Duration.Duration) =>
  `do $effect_pgq_event_ticks$
  declare
    deadline timestamptz := clock_timestamp() + interval '${SESSION_SECONDS} seconds';
    ticked int8;
  begin
    loop
      ${tickStatement(lockKey.toString(), wakeChannel === false ? "null::text" : literal(wakeChannel), "count(*)")}
        into ticked;
      -- Releases the turn and sends the notifications.
      commit;
      exit when clock_timestamp() >= deadline;
      perform pg_sleep(${Duration.toMillis(period) / 1000});
    end loop;
  end
  $effect_pgq_event_ticks$`

/** Settings of the loop's session: no timeout ends it, and one that outlives its client notices within a second, where PostgreSQL can (14+). */
const SESSION_SETUP = [
  // The loop's text carries the wake channel as a literal, quoted for this setting.
  "set standard_conforming_strings = on",
  "set statement_timeout = 0",
  "set idle_in_transaction_session_timeout = 0",
  `do $effect_pgq_setup$ begin
    perform set_config('client_connection_check_interval', '1000', false);
  exception when undefined_object then null;
  end $effect_pgq_setup$`
]

/**
 * One in-database loop on a connection of its own, opened with `config` and
 * closed at the end. Interrupting it cancels the statement: the round in
 * flight rolls back.
 *
 * @since 0.2.0
 * @category ticking
 */
export const session = (
  run: SqlRunner,
  config: PgConnection.Config,
  lockKey: bigint,
  wakeChannel: string | false,
  period: Duration.Duration
): Effect.Effect<void, PgqError> =>
  run(
    { operation: "Ticker.eventTicks" },
    Effect.scoped(Effect.gen(function*() {
      const connection = yield* PgConnection.make(config)
      for (const statement of SESSION_SETUP) yield* connection.query(statement, [], false)
      yield* connection.query(loopStatement(lockKey, wakeChannel, period), [], false)
    }))
  )
