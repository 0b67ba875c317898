/**
 * Cooperative consumption through the SQL API of Skytools' `pgq_coop`:
 * subconsumers share one consumer's batches, each batch going to one of
 * them, so a stream is processed in parallel by several processes.
 *
 * When the real `pgq_coop` extension is installed, it is used. Otherwise
 * `install` creates effect-pgq's implementation of the same functions in the
 * same schema, so Skytools' Python `CoopConsumer` and effect-pgq's
 * subconsumers can share one consumer. It keeps pgq's own model of
 * subconsumers: a subconsumer is the pgq consumer `<consumer>.<subconsumer>`
 * subscribed with the main consumer's subscription id (so retried events
 * come back to the whole group), holding the ticks of its batch while it has
 * one and none otherwise.
 *
 * | function | does |
 * |---|---|
 * | `register_subconsumer(queue, consumer, subconsumer)` | registers both as needed; 1 when the subconsumer is new, else 0 |
 * | `unregister_subconsumer(queue, consumer, subconsumer, batch_handling)` | with an open batch: refuses (0), or (1) sends its events to retry and closes it; returns the batches closed |
 * | `next_batch[_info](queue, consumer, subconsumer[, dead_interval])` | the subconsumer's open batch, or a batch older than `dead_interval` taken over from a dead subconsumer, or the main consumer's next one; registers as needed |
 * | `next_batch_custom(queue, consumer, subconsumer, min_lag, min_count, min_interval[, dead_interval])` | the same with pgq's batch conditions |
 * | `finish_batch(batch_id)` | closes the batch; 1 when it was open |
 * | `heartbeat(queue, consumer, subconsumer, batch_id)` | effect-pgq's addition: marks the subconsumer alive while it holds the batch, so a long batch of a live subconsumer is never taken over; 0 when it no longer holds it |
 *
 * @since 0.2.0
 */
import { Duration, Effect, type Option, Schema } from "effect"
import type { SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import { findOne, findOneOption } from "../internal/rows.ts"
import type { ErrorContext } from "../internal/mapSqlError.ts"
import * as InstallableApi from "../internal/installableApi.ts"
import { makeSqlRunner } from "../internal/sqlRunner.ts"
import { NextBatch } from "./BatchInfo.ts"
import type { BatchId } from "./Ids.ts"
import type { PgqError } from "./PgqError.ts"

/** One int8 key ("pgq_coop" in ASCII): concurrent installers wait for each other. */
const INSTALL_LOCK = 0x7067715f636f6f70n

const NEXT_BATCH_COLUMNS = `out batch_id int8, out cur_tick_id int8, out prev_tick_id int8,
    out cur_tick_time timestamptz, out prev_tick_time timestamptz,
    out cur_tick_event_seq int8, out prev_tick_event_seq int8`

/**
 * The functions, for a database without `pgq_coop`. They change pgq's own
 * tables, so they run with their owner's rights (`security definer`), as
 * pgq's functions do, and only roles in `pgq_reader` may call them, as
 * pgq's `next_batch` and `finish_batch`.
 */
const INSTALL: ReadonlyArray<string> = [
  `create schema pgq_coop`,
  `create function pgq_coop.version() returns text language sql immutable as $$ select '3.4' $$`,
  `create function pgq_coop.register_subconsumer(i_queue_name text, i_consumer_name text, i_subconsumer_name text)
    returns integer language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
    declare
      main record;
      sub_co_id integer;
    begin
      select s.sub_id, s.sub_queue into main
        from pgq.subscription s
        join pgq.queue q on q.queue_id = s.sub_queue
        join pgq.consumer c on c.co_id = s.sub_consumer
        where q.queue_name = i_queue_name and c.co_name = i_consumer_name;
      if not found then
        -- pgq.register_consumer locks the consumer's name: only when it is missing.
        perform pgq.register_consumer(i_queue_name, i_consumer_name);
        select s.sub_id, s.sub_queue into main
          from pgq.subscription s
          join pgq.queue q on q.queue_id = s.sub_queue
          join pgq.consumer c on c.co_id = s.sub_consumer
          where q.queue_name = i_queue_name and c.co_name = i_consumer_name;
      end if;
      select co_id into sub_co_id from pgq.consumer where co_name = i_consumer_name || '.' || i_subconsumer_name;
      if not found then
        insert into pgq.consumer (co_name) values (i_consumer_name || '.' || i_subconsumer_name)
          returning co_id into sub_co_id;
      end if;
      perform 1 from pgq.subscription where sub_queue = main.sub_queue and sub_consumer = sub_co_id;
      if found then
        return 0;
      end if;
      insert into pgq.subscription (sub_id, sub_queue, sub_consumer, sub_last_tick, sub_next_tick, sub_batch)
        values (main.sub_id, main.sub_queue, sub_co_id, null, null, null);
      return 1;
    end
    $$`,
  `create function pgq_coop.unregister_subconsumer(
      i_queue_name text, i_consumer_name text, i_subconsumer_name text, i_batch_handling integer)
    returns integer language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
    declare
      sub record;
      closed integer := 0;
    begin
      select s.sub_queue, s.sub_consumer, s.sub_batch into sub
        from pgq.subscription s
        join pgq.queue q on q.queue_id = s.sub_queue
        join pgq.consumer c on c.co_id = s.sub_consumer
        where q.queue_name = i_queue_name and c.co_name = i_consumer_name || '.' || i_subconsumer_name
        for update of s;
      if not found then
        return 0;
      end if;
      if sub.sub_batch is not null then
        if i_batch_handling <> 1 then
          raise exception 'subconsumer has active batch';
        end if;
        -- Its events go to the retry queue, back to the whole group: nothing is lost.
        perform pgq.batch_retry(sub.sub_batch, 0);
        closed := 1;
      end if;
      delete from pgq.subscription where sub_queue = sub.sub_queue and sub_consumer = sub.sub_consumer;
      perform 1 from pgq.subscription where sub_consumer = sub.sub_consumer;
      if not found then
        delete from pgq.consumer where co_id = sub.sub_consumer;
      end if;
      return closed;
    end
    $$`,
  `create function pgq_coop.next_batch_custom(
      i_queue_name text, i_consumer_name text, i_subconsumer_name text,
      i_min_lag interval, i_min_count int4, i_min_interval interval, i_dead_interval interval,
      ${NEXT_BATCH_COLUMNS})
    language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
    declare
      main record;
      sub record;
      dead record;
      next record;
    begin
      -- The main consumer's row serialises the subconsumers' turns, their registration included:
      -- it is locked first, so two turns never wait on each other's locks in a cycle.
      for attempt in 1..2 loop
        select s.sub_queue, s.sub_consumer, s.sub_id into main
          from pgq.subscription s
          join pgq.queue q on q.queue_id = s.sub_queue
          join pgq.consumer c on c.co_id = s.sub_consumer
          where q.queue_name = i_queue_name and c.co_name = i_consumer_name
          for update of s;
        exit when found;
        perform pgq_coop.register_subconsumer(i_queue_name, i_consumer_name, i_subconsumer_name);
      end loop;
      for attempt in 1..2 loop
        select s.sub_queue, s.sub_consumer, s.sub_batch into sub
          from pgq.subscription s
          join pgq.consumer c on c.co_id = s.sub_consumer
          where s.sub_queue = main.sub_queue and c.co_name = i_consumer_name || '.' || i_subconsumer_name;
        exit when found;
        perform pgq_coop.register_subconsumer(i_queue_name, i_consumer_name, i_subconsumer_name);
      end loop;

      if sub.sub_batch is null and i_dead_interval is not null then
        select s.sub_consumer, s.sub_batch, s.sub_last_tick, s.sub_next_tick into dead
          from pgq.subscription s
          where s.sub_queue = sub.sub_queue and s.sub_id = main.sub_id and s.sub_consumer <> main.sub_consumer
            and s.sub_batch is not null and s.sub_active < now() - i_dead_interval
          order by s.sub_active
          limit 1
          for update of s;
        if found then
          update pgq.subscription set sub_batch = null, sub_last_tick = null, sub_next_tick = null
            where sub_queue = sub.sub_queue and sub_consumer = dead.sub_consumer;
          update pgq.subscription
            set sub_batch = dead.sub_batch, sub_last_tick = dead.sub_last_tick,
                sub_next_tick = dead.sub_next_tick, sub_active = now()
            where sub_queue = sub.sub_queue and sub_consumer = sub.sub_consumer;
          sub.sub_batch := dead.sub_batch;
        end if;
      end if;

      if sub.sub_batch is null then
        select * into next from pgq.next_batch_custom(i_queue_name, i_consumer_name, i_min_lag, i_min_count, i_min_interval);
        if next.batch_id is null then
          update pgq.subscription set sub_active = now()
            where sub_queue = sub.sub_queue and sub_consumer = sub.sub_consumer;
          return;
        end if;
        -- The batch moves from the main consumer, whose position moves past it, to the subconsumer.
        update pgq.subscription
          set sub_batch = null, sub_last_tick = next.cur_tick_id, sub_next_tick = null, sub_active = now()
          where sub_queue = main.sub_queue and sub_consumer = main.sub_consumer;
        update pgq.subscription
          set sub_batch = next.batch_id, sub_last_tick = next.prev_tick_id, sub_next_tick = next.cur_tick_id,
              sub_active = now()
          where sub_queue = sub.sub_queue and sub_consumer = sub.sub_consumer;
        sub.sub_batch := next.batch_id;
      end if;

      select s.sub_batch, t2.tick_id, t1.tick_id, t2.tick_time, t1.tick_time, t2.tick_event_seq, t1.tick_event_seq
        into batch_id, cur_tick_id, prev_tick_id, cur_tick_time, prev_tick_time, cur_tick_event_seq, prev_tick_event_seq
        from pgq.subscription s
        join pgq.tick t1 on t1.tick_queue = s.sub_queue and t1.tick_id = s.sub_last_tick
        join pgq.tick t2 on t2.tick_queue = s.sub_queue and t2.tick_id = s.sub_next_tick
        where s.sub_queue = sub.sub_queue and s.sub_consumer = sub.sub_consumer;
      return;
    end
    $$`,
  `create function pgq_coop.next_batch_custom(
      i_queue_name text, i_consumer_name text, i_subconsumer_name text,
      i_min_lag interval, i_min_count int4, i_min_interval interval,
      ${NEXT_BATCH_COLUMNS})
    language sql as $$
      select * from pgq_coop.next_batch_custom(i_queue_name, i_consumer_name, i_subconsumer_name,
        i_min_lag, i_min_count, i_min_interval, null)
    $$`,
  `create function pgq_coop.next_batch_info(
      i_queue_name text, i_consumer_name text, i_subconsumer_name text, i_dead_interval interval,
      ${NEXT_BATCH_COLUMNS})
    language sql as $$
      select * from pgq_coop.next_batch_custom(i_queue_name, i_consumer_name, i_subconsumer_name,
        null, null, null, i_dead_interval)
    $$`,
  `create function pgq_coop.next_batch_info(
      i_queue_name text, i_consumer_name text, i_subconsumer_name text,
      ${NEXT_BATCH_COLUMNS})
    language sql as $$
      select * from pgq_coop.next_batch_custom(i_queue_name, i_consumer_name, i_subconsumer_name,
        null, null, null, null)
    $$`,
  `create function pgq_coop.next_batch(
      i_queue_name text, i_consumer_name text, i_subconsumer_name text, i_dead_interval interval)
    returns bigint language sql as $$
      select batch_id from pgq_coop.next_batch_custom(i_queue_name, i_consumer_name, i_subconsumer_name,
        null, null, null, i_dead_interval)
    $$`,
  `create function pgq_coop.next_batch(i_queue_name text, i_consumer_name text, i_subconsumer_name text)
    returns bigint language sql as $$
      select batch_id from pgq_coop.next_batch_custom(i_queue_name, i_consumer_name, i_subconsumer_name,
        null, null, null, null)
    $$`,
  // A subconsumer holds no ticks between batches, so it never holds back pgq's table rotation.
  `create function pgq_coop.finish_batch(i_batch_id bigint)
    returns integer language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
    begin
      update pgq.subscription
        set sub_batch = null, sub_last_tick = null, sub_next_tick = null, sub_active = now()
        where sub_batch = i_batch_id;
      if not found then
        raise warning 'pgq_coop.finish_batch: batch % not found', i_batch_id;
        return 0;
      end if;
      return 1;
    end
    $$`,
  `create function pgq_coop.heartbeat(
      i_queue_name text, i_consumer_name text, i_subconsumer_name text, i_batch_id bigint)
    returns integer language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
    begin
      update pgq.subscription s set sub_active = now()
        from pgq.queue q, pgq.consumer c
        where q.queue_id = s.sub_queue and c.co_id = s.sub_consumer and s.sub_batch = i_batch_id
          and q.queue_name = i_queue_name and c.co_name = i_consumer_name || '.' || i_subconsumer_name;
      if not found then
        return 0;
      end if;
      return 1;
    end
    $$`,
  // As pgq's own batch functions: not for every role, only for consumers (pgq_reader, which pgq creates).
  `revoke all on all functions in schema pgq_coop from public`,
  `grant usage on schema pgq_coop to pgq_reader`,
  `grant execute on all functions in schema pgq_coop to pgq_reader`
]

/**
 * Where the API comes from in a database.
 *
 * @since 0.2.0
 * @category models
 */
export type Provider = InstallableApi.Provider<"pgq_coop">

const decodeInt = findOne(Schema.Struct({ r: Schema.Number }))("pgq_coop")
const decodeNextBatch = findOneOption(NextBatch)

/**
 * Batch conditions as pgq's `next_batch_custom` takes them, and how long a
 * subconsumer's batch may go without a sign of life before another takes
 * it over.
 *
 * @since 0.2.0
 * @category models
 */
export interface CoopBatchOptions {
  readonly minLag?: Duration.Input | undefined
  readonly minCount?: number | undefined
  readonly minInterval?: Duration.Input | undefined
  readonly deadInterval?: Duration.Input | undefined
}

const interval = (input: Duration.Input | undefined): string | null =>
  input === undefined ? null : `${Duration.toMillis(Duration.fromInputUnsafe(input))} milliseconds`

/**
 * The API on the queue's database, run in the caller's transaction where
 * there is one.
 *
 * @since 0.2.0
 * @category models
 */
export interface PgqCoop {
  readonly provider: Effect.Effect<Provider, PgqError>
  /** Creates effect-pgq's implementation where neither exists; returns the provider afterwards. All or nothing. */
  readonly install: Effect.Effect<Provider, PgqError>
  /** True when the subconsumer is new. */
  readonly registerSubconsumer: (queue: string, consumer: string, subconsumer: string) => Effect.Effect<boolean, PgqError>
  /**
   * Refuses while the subconsumer holds a batch unless `closeBatch`, which
   * sends the batch's events to retry; returns the batches closed.
   */
  readonly unregisterSubconsumer: (
    queue: string,
    consumer: string,
    subconsumer: string,
    options?: { readonly closeBatch?: boolean }
  ) => Effect.Effect<number, PgqError>
  /** The subconsumer's batch: the one it holds, one taken over, or the next. */
  readonly nextBatch: (
    queue: string,
    consumer: string,
    subconsumer: string,
    options?: CoopBatchOptions
  ) => Effect.Effect<Option.Option<NextBatch>, PgqError>
  readonly finishBatch: (batchId: BatchId) => Effect.Effect<boolean, PgqError>
  /** Marks the subconsumer alive while it holds the batch; false when it no longer does (taken over, or finished). */
  readonly heartbeat: (
    queue: string,
    consumer: string,
    subconsumer: string,
    batchId: BatchId
  ) => Effect.Effect<boolean, PgqError>
}

/**
 * The API on the database of `sql`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (sql: SqlClient.SqlClient): PgqCoop => {
  const run = makeSqlRunner(sql)

  const { install, provider } = InstallableApi.make(sql, {
    extension: "pgq_coop",
    lockKey: INSTALL_LOCK,
    statements: INSTALL
  })

  const int = (context: ErrorContext, statement: Effect.Effect<ReadonlyArray<unknown>, SqlError>) =>
    run(context, statement).pipe(Effect.flatMap(decodeInt), Effect.map((row) => row.r))

  return {
    provider,
    install,
    registerSubconsumer: (queue, consumer, subconsumer) =>
      int(
        { operation: "pgq_coop.register_subconsumer", queue, consumer },
        sql`select pgq_coop.register_subconsumer(${queue}, ${consumer}, ${subconsumer}) as r`
      ).pipe(Effect.map((n) => n === 1)),
    unregisterSubconsumer: (queue, consumer, subconsumer, options) =>
      int(
        { operation: "pgq_coop.unregister_subconsumer", queue, consumer },
        sql`select pgq_coop.unregister_subconsumer(${queue}, ${consumer}, ${subconsumer}, ${
          options?.closeBatch === true ? 1 : 0
        }) as r`
      ),
    nextBatch: (queue, consumer, subconsumer, options) =>
      run(
        { operation: "pgq_coop.next_batch_custom", queue, consumer },
        sql`select batch_id as "batchId", cur_tick_id as "curTickId", prev_tick_id as "prevTickId",
            cur_tick_time as "curTickTime", prev_tick_time as "prevTickTime",
            cur_tick_event_seq as "curTickEventSeq", prev_tick_event_seq as "prevTickEventSeq"
          from pgq_coop.next_batch_custom(${queue}, ${consumer}, ${subconsumer},
            ${interval(options?.minLag)}::interval, ${options?.minCount ?? null}::int4,
            ${interval(options?.minInterval)}::interval, ${interval(options?.deadInterval)}::interval)
          where batch_id is not null`
      ).pipe(Effect.flatMap(decodeNextBatch)),
    finishBatch: (batchId) =>
      int({ operation: "pgq_coop.finish_batch" }, sql`select pgq_coop.finish_batch(${batchId}) as r`).pipe(
        Effect.map((n) => n === 1)
      ),
    heartbeat: (queue, consumer, subconsumer, batchId) =>
      int(
        { operation: "pgq_coop.heartbeat", queue, consumer, batchId },
        sql`select pgq_coop.heartbeat(${queue}, ${consumer}, ${subconsumer}, ${batchId}) as r`
      ).pipe(
        Effect.map((n) => n === 1)
      )
  }
}
