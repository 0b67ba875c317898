/**
 * Batch, event and tick tracking on a remote database, through the SQL API of
 * Skytools' `pgq_ext`: what makes a remote consumer exactly once. The work
 * applied to the remote database and the record that its batch is done
 * commit in one remote transaction, so a batch delivered again after a crash
 * is recognised and not applied twice.
 *
 * When the real `pgq_ext` extension is installed, it is used. Otherwise
 * `install` creates effect-pgq's implementation of the same API in the same
 * schema, tables and function names, so Skytools' Python `RemoteConsumer`
 * and `SerialConsumer` work against it unchanged:
 *
 * | function | returns |
 * |---|---|
 * | `is_batch_done(consumer, [subconsumer,] batch_id)` | the batch is the last one recorded |
 * | `set_batch_done(consumer, [subconsumer,] batch_id)` | true when recorded now, false when it already was |
 * | `is_event_done(consumer, [subconsumer,] batch_id, event_id)` | the event is recorded for that batch |
 * | `set_event_done(consumer, [subconsumer,] batch_id, event_id)` | true when recorded now; a new batch id forgets the previous batch's events |
 * | `get_last_tick(consumer, [subconsumer])` | the last tick recorded, or null |
 * | `set_last_tick(consumer, [subconsumer,] tick_id)` | 1; a null tick forgets it |
 *
 * `set_batch_done` and `set_event_done` are safe under concurrency: of two
 * transactions recording the same batch (or event), exactly one gets true,
 * the other waits for it and gets false.
 *
 * @since 0.2.0
 */
import { Effect, Schema } from "effect"
import type { SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import { findOne } from "../internal/rows.ts"
import * as InstallableApi from "../internal/installableApi.ts"
import { makeSqlRunner } from "../internal/sqlRunner.ts"
import { type BatchId, type EventId, TickId } from "./Ids.ts"
import type { PgqError } from "./PgqError.ts"

/** One int8 key ("pgq_ext" in ASCII): concurrent installers wait for each other. */
const INSTALL_LOCK = 0x7067715f657874n

/**
 * The schema, tables and functions, for a database without `pgq_ext`.
 * Function bodies name their tables with the schema, so they work whatever
 * the caller's search_path.
 */
const INSTALL: ReadonlyArray<string> = [
  `create schema pgq_ext`,
  `create table pgq_ext.completed_tick (
    consumer_id text not null,
    subconsumer_id text not null,
    last_tick_id bigint not null,
    primary key (consumer_id, subconsumer_id)
  )`,
  `create table pgq_ext.completed_batch (
    consumer_id text not null,
    subconsumer_id text not null,
    last_batch_id bigint not null,
    primary key (consumer_id, subconsumer_id)
  )`,
  `create table pgq_ext.completed_event (
    consumer_id text not null,
    subconsumer_id text not null,
    batch_id bigint not null,
    event_id bigint not null,
    primary key (consumer_id, subconsumer_id, batch_id, event_id)
  )`,
  `create table pgq_ext.partial_batch (
    consumer_id text not null,
    subconsumer_id text not null,
    cur_batch_id bigint not null,
    primary key (consumer_id, subconsumer_id)
  )`,
  `create function pgq_ext.version() returns text language sql immutable as $$ select '3.4' $$`,
  `create function pgq_ext.is_batch_done(a_consumer text, a_subconsumer text, a_batch_id bigint)
    returns boolean language sql stable as $$
      select exists (
        select 1 from pgq_ext.completed_batch
        where consumer_id = a_consumer and subconsumer_id = a_subconsumer and last_batch_id = a_batch_id
      )
    $$`,
  `create function pgq_ext.is_batch_done(a_consumer text, a_batch_id bigint)
    returns boolean language sql stable as $$ select pgq_ext.is_batch_done(a_consumer, '', a_batch_id) $$`,
  // The update's condition is evaluated again on the newest row once a
  // concurrent recorder commits, so only one of them sees a row change.
  `create function pgq_ext.set_batch_done(a_consumer text, a_subconsumer text, a_batch_id bigint)
    returns boolean language plpgsql as $$
    declare
      changed integer;
    begin
      insert into pgq_ext.completed_batch (consumer_id, subconsumer_id, last_batch_id)
      values (a_consumer, a_subconsumer, a_batch_id)
      on conflict (consumer_id, subconsumer_id) do update set last_batch_id = excluded.last_batch_id
        where pgq_ext.completed_batch.last_batch_id <> excluded.last_batch_id;
      get diagnostics changed = row_count;
      return changed > 0;
    end
    $$`,
  `create function pgq_ext.set_batch_done(a_consumer text, a_batch_id bigint)
    returns boolean language sql as $$ select pgq_ext.set_batch_done(a_consumer, '', a_batch_id) $$`,
  `create function pgq_ext.is_event_done(a_consumer text, a_subconsumer text, a_batch_id bigint, a_event_id bigint)
    returns boolean language sql stable as $$
      select exists (
        select 1 from pgq_ext.partial_batch p
        join pgq_ext.completed_event e
          on e.consumer_id = p.consumer_id and e.subconsumer_id = p.subconsumer_id and e.batch_id = p.cur_batch_id
        where p.consumer_id = a_consumer and p.subconsumer_id = a_subconsumer
          and p.cur_batch_id = a_batch_id and e.event_id = a_event_id
      )
    $$`,
  `create function pgq_ext.is_event_done(a_consumer text, a_batch_id bigint, a_event_id bigint)
    returns boolean language sql stable as $$ select pgq_ext.is_event_done(a_consumer, '', a_batch_id, a_event_id) $$`,
  // Only the current batch's events are kept: a new batch id forgets the old ones.
  `create function pgq_ext.set_event_done(a_consumer text, a_subconsumer text, a_batch_id bigint, a_event_id bigint)
    returns boolean language plpgsql as $$
    declare
      current_batch bigint;
      inserted integer;
    begin
      insert into pgq_ext.partial_batch (consumer_id, subconsumer_id, cur_batch_id)
      values (a_consumer, a_subconsumer, a_batch_id)
      on conflict (consumer_id, subconsumer_id) do nothing;
      select cur_batch_id into current_batch from pgq_ext.partial_batch
        where consumer_id = a_consumer and subconsumer_id = a_subconsumer
        for update;
      if current_batch <> a_batch_id then
        delete from pgq_ext.completed_event where consumer_id = a_consumer and subconsumer_id = a_subconsumer;
        update pgq_ext.partial_batch set cur_batch_id = a_batch_id
          where consumer_id = a_consumer and subconsumer_id = a_subconsumer;
      end if;
      insert into pgq_ext.completed_event (consumer_id, subconsumer_id, batch_id, event_id)
      values (a_consumer, a_subconsumer, a_batch_id, a_event_id)
      on conflict do nothing;
      get diagnostics inserted = row_count;
      return inserted > 0;
    end
    $$`,
  `create function pgq_ext.set_event_done(a_consumer text, a_batch_id bigint, a_event_id bigint)
    returns boolean language sql as $$ select pgq_ext.set_event_done(a_consumer, '', a_batch_id, a_event_id) $$`,
  `create function pgq_ext.get_last_tick(a_consumer text, a_subconsumer text)
    returns bigint language sql stable as $$
      select last_tick_id from pgq_ext.completed_tick where consumer_id = a_consumer and subconsumer_id = a_subconsumer
    $$`,
  `create function pgq_ext.get_last_tick(a_consumer text)
    returns bigint language sql stable as $$ select pgq_ext.get_last_tick(a_consumer, '') $$`,
  `create function pgq_ext.set_last_tick(a_consumer text, a_subconsumer text, a_tick_id bigint)
    returns integer language plpgsql as $$
    begin
      if a_tick_id is null then
        delete from pgq_ext.completed_tick where consumer_id = a_consumer and subconsumer_id = a_subconsumer;
      else
        insert into pgq_ext.completed_tick (consumer_id, subconsumer_id, last_tick_id)
        values (a_consumer, a_subconsumer, a_tick_id)
        on conflict (consumer_id, subconsumer_id) do update set last_tick_id = excluded.last_tick_id;
      end if;
      return 1;
    end
    $$`,
  `create function pgq_ext.set_last_tick(a_consumer text, a_tick_id bigint)
    returns integer language sql as $$ select pgq_ext.set_last_tick(a_consumer, '', a_tick_id) $$`
]

/**
 * Where the API comes from in a database.
 *
 * @since 0.2.0
 * @category models
 */
export type Provider = InstallableApi.Provider<"pgq_ext">

const decodeBoolean = findOne(Schema.Struct({ r: Schema.Boolean }))("pgq_ext")
const decodeTick = findOne(Schema.Struct({ r: Schema.NullOr(TickId) }))("pgq_ext.get_last_tick()")

/**
 * The API on one database (the remote one), run in the caller's transaction
 * where there is one. `subconsumer` defaults to `""`, as pgq_ext's
 * two-argument forms have it.
 *
 * @since 0.2.0
 * @category models
 */
export interface PgqExt {
  /** Whether the real extension, effect-pgq's implementation, or nothing provides the API. */
  readonly provider: Effect.Effect<Provider, PgqError>
  /**
   * Creates effect-pgq's implementation where neither exists; returns the
   * provider afterwards. One transaction: all or nothing.
   */
  readonly install: Effect.Effect<Provider, PgqError>
  readonly isBatchDone: (consumer: string, batchId: BatchId, subconsumer?: string) => Effect.Effect<boolean, PgqError>
  readonly setBatchDone: (consumer: string, batchId: BatchId, subconsumer?: string) => Effect.Effect<boolean, PgqError>
  readonly isEventDone: (
    consumer: string,
    batchId: BatchId,
    eventId: EventId,
    subconsumer?: string
  ) => Effect.Effect<boolean, PgqError>
  readonly setEventDone: (
    consumer: string,
    batchId: BatchId,
    eventId: EventId,
    subconsumer?: string
  ) => Effect.Effect<boolean, PgqError>
  readonly getLastTick: (consumer: string, subconsumer?: string) => Effect.Effect<TickId | null, PgqError>
  readonly setLastTick: (consumer: string, tickId: TickId | null, subconsumer?: string) => Effect.Effect<void, PgqError>
}

/**
 * The API on the database of `sql`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (sql: SqlClient.SqlClient): PgqExt => {
  const run = makeSqlRunner(sql)

  const { install, provider } = InstallableApi.make(sql, {
    extension: "pgq_ext",
    lockKey: INSTALL_LOCK,
    statements: INSTALL
  })

  const bool = (operation: string, statement: Effect.Effect<ReadonlyArray<unknown>, SqlError>) =>
    run({ operation }, statement).pipe(Effect.flatMap(decodeBoolean), Effect.map((row) => row.r))

  return {
    provider,
    install,
    isBatchDone: (consumer, batchId, subconsumer = "") =>
      bool("pgq_ext.is_batch_done", sql`select pgq_ext.is_batch_done(${consumer}, ${subconsumer}, ${batchId}) as r`),
    setBatchDone: (consumer, batchId, subconsumer = "") =>
      bool("pgq_ext.set_batch_done", sql`select pgq_ext.set_batch_done(${consumer}, ${subconsumer}, ${batchId}) as r`),
    isEventDone: (consumer, batchId, eventId, subconsumer = "") =>
      bool(
        "pgq_ext.is_event_done",
        sql`select pgq_ext.is_event_done(${consumer}, ${subconsumer}, ${batchId}, ${eventId}) as r`
      ),
    setEventDone: (consumer, batchId, eventId, subconsumer = "") =>
      bool(
        "pgq_ext.set_event_done",
        sql`select pgq_ext.set_event_done(${consumer}, ${subconsumer}, ${batchId}, ${eventId}) as r`
      ),
    getLastTick: (consumer, subconsumer = "") =>
      run(
        { operation: "pgq_ext.get_last_tick" },
        sql`select pgq_ext.get_last_tick(${consumer}, ${subconsumer}) as r`
      ).pipe(Effect.flatMap(decodeTick), Effect.map((row) => row.r)),
    setLastTick: (consumer, tickId, subconsumer = "") =>
      run(
        { operation: "pgq_ext.set_last_tick" },
        sql`select pgq_ext.set_last_tick(${consumer}, ${subconsumer}, ${tickId}::int8)`
      ).pipe(Effect.asVoid)
  }
}
