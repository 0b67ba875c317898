/**
 * effect-pgq's own schema (`effect_pgq`), as numbered migrations. A migration
 * is never edited once released: changes go into a new one.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 * @category models
 */
export interface Migration {
  readonly version: number
  readonly name: string
  /** Statements run in order, in the installer's transaction. */
  readonly statements: ReadonlyArray<string>
}

/**
 * @since 0.1.0
 * @category migrations
 */
export const migrations: ReadonlyArray<Migration> = [
  {
    version: 1,
    name: "failed_events",
    statements: [
      // PgQ 3 has no failed-event store; this is effect-pgq's. One row per
      // (queue, consumer, event): a re-failed event replaces its earlier row.
      `create table effect_pgq.failed_event (
        queue_name text not null,
        consumer_name text not null,
        ev_id bigint not null,
        ev_time timestamptz not null,
        ev_txid bigint,
        ev_retry integer,
        ev_type text,
        ev_data text,
        ev_extra1 text,
        ev_extra2 text,
        ev_extra3 text,
        ev_extra4 text,
        failed_at timestamptz not null default now(),
        failed_reason text not null,
        primary key (queue_name, consumer_name, ev_id)
      )`,
      `create index failed_event_failed_at_idx on effect_pgq.failed_event (queue_name, consumer_name, failed_at)`
    ]
  },
  {
    version: 2,
    name: "job_tracker",
    statements: [
      // A job and its fixed set of components. `finished_*` records the one
      // time the job reached completed or failed, and the follow-up event
      // that fired then; it is written only by effect_pgq.job_settle().
      `create table effect_pgq.job (
        job_id bigint generated always as identity primary key,
        job_name text not null,
        component_count integer not null check (component_count > 0),
        follow_up_queue text,
        follow_up_type text,
        follow_up_data text,
        created_at timestamptz not null default now(),
        finished_status text check (finished_status in ('completed', 'failed')),
        finished_at timestamptz,
        follow_up_event_id bigint,
        follow_up_error text,
        open_ordinal integer not null default 1
      )`,
      `create index job_finished_at_idx on effect_pgq.job (finished_at) where finished_at is not null`,
      `create index job_created_at_idx on effect_pgq.job (created_at)`,
      `create table effect_pgq.job_component (
        job_id bigint not null references effect_pgq.job on delete cascade,
        component text not null,
        ordinal integer not null,
        primary key (job_id, component),
        unique (job_id, ordinal)
      )`,
      // Immutable status events. Order is seq (taken at insert), never the
      // clock: two events of one component in the same microsecond, or from
      // hosts whose clocks differ, are still ordered.
      `create table effect_pgq.job_event (
        seq bigint generated always as identity primary key,
        job_id bigint not null,
        component text not null,
        status text not null check (status in ('pending', 'in_progress', 'completed', 'failed')),
        message text not null default '',
        created_at timestamptz not null default clock_timestamp(),
        foreign key (job_id, component) references effect_pgq.job_component on delete cascade
      )`,
      // The newest event of each component is the first entry of its range.
      `create index job_event_newest_idx on effect_pgq.job_event (job_id, component, seq desc) include (status)`,
      // Whether one job has just finished, and if so its follow-up, exactly once.
      // Appends take no lock; only this check does, on the job's row, so two
      // checks of one job never overlap: the later one runs after the earlier
      // one's transaction committed, and its statements see that transaction's
      // events. Whichever transaction checks last therefore sees every
      // component's newest event (the job never stays unfinished), and the
      // finished_status test under the lock lets only one of them fire.
      //
      // The check is cheap while the job is open: one component whose newest
      // event is not completed proves it, and the job remembers where the
      // last one was found (open_ordinal), so most checks probe one
      // component. Only a transaction that appended a failed event counts
      // them all: a job can only turn failed through such an event.
      `create function effect_pgq.job_settle(p_job_id bigint, p_failed boolean) returns text
      language plpgsql as $$
      declare
        j effect_pgq.job%rowtype;
        n_completed integer;
        n_failed integer;
        open_at integer;
        outcome text;
        ev bigint;
        err text;
      begin
        -- A job that has finished needs no lock.
        perform 1 from effect_pgq.job where job_id = p_job_id and finished_status is null;
        if not found then return null; end if;
        select * into j from effect_pgq.job where job_id = p_job_id for no key update;
        if not found or j.finished_status is not null then return null; end if;
        if p_failed then
          select count(*) filter (where status = 'completed'), count(*) filter (where status = 'failed')
            into n_completed, n_failed
            from (select distinct on (component) status from effect_pgq.job_event
                  where job_id = p_job_id order by component, seq desc) newest;
          if n_failed > 0 then outcome := 'failed';
          elsif n_completed = j.component_count then outcome := 'completed';
          else return null;
          end if;
        else
          -- The first open component from where the last check found one, then from the start.
          select c.ordinal into open_at from effect_pgq.job_component c
            where c.job_id = p_job_id and c.ordinal >= j.open_ordinal
              and coalesce((select e.status from effect_pgq.job_event e
                            where e.job_id = p_job_id and e.component = c.component
                            order by e.seq desc limit 1), 'pending') <> 'completed'
            order by c.ordinal limit 1;
          if open_at is null then
            select c.ordinal into open_at from effect_pgq.job_component c
              where c.job_id = p_job_id and c.ordinal < j.open_ordinal
                and coalesce((select e.status from effect_pgq.job_event e
                              where e.job_id = p_job_id and e.component = c.component
                              order by e.seq desc limit 1), 'pending') <> 'completed'
              order by c.ordinal limit 1;
          end if;
          if open_at is not null then
            if open_at <> j.open_ordinal then
              update effect_pgq.job set open_ordinal = open_at where job_id = p_job_id;
            end if;
            return null;
          end if;
          outcome := 'completed';
        end if;
        if j.follow_up_queue is not null then
          -- A queue dropped since the job was created must not block the
          -- workers' commits: the failure is recorded on the job instead.
          begin
            ev := pgq.insert_event(j.follow_up_queue, j.follow_up_type, j.follow_up_data,
              p_job_id::text, outcome, j.job_name, null);
          exception when others then
            err := sqlerrm;
          end;
        end if;
        update effect_pgq.job
          set finished_status = outcome, finished_at = clock_timestamp(), follow_up_event_id = ev, follow_up_error = err
          where job_id = p_job_id;
        return outcome;
      end $$`,
      // Each INSERT adds the jobs it touched to a transaction-local list...
      `create function effect_pgq.job_event_touched() returns trigger
      language plpgsql as $$
      begin
        -- The check at commit must see what transactions that settled before it committed: under
        -- repeatable read or serializable its snapshot is older than the lock it waits for.
        if current_setting('transaction_isolation') <> 'read committed' then
          raise exception 'effect-pgq job status events need read committed transactions, not %',
            current_setting('transaction_isolation') using errcode = '0A000';
        end if;
        perform set_config('effect_pgq.jobs_touched',
          coalesce(current_setting('effect_pgq.jobs_touched', true), '') ||
            coalesce((select string_agg(distinct job_id::text, ',') from inserted), '') || ',',
          true);
        perform set_config('effect_pgq.jobs_failed',
          coalesce(current_setting('effect_pgq.jobs_failed', true), '') ||
            coalesce((select string_agg(distinct job_id::text, ',') from inserted where status = 'failed'), '') || ',',
          true);
        return null;
      end $$`,
      `create trigger job_event_touched after insert on effect_pgq.job_event
        referencing new table as inserted for each statement execute function effect_pgq.job_event_touched()`,
      // ...and at commit the first deferred firing settles them all, in job id
      // order (so two transactions never wait on each other's jobs in a
      // cycle), and empties the list: the other firings return at once. The
      // lock is held from there to the commit only, whatever the transaction
      // did before, and rows inserted by anyone (the CLI, psql, another
      // language) are settled the same way.
      `create function effect_pgq.job_settle_touched() returns trigger
      language plpgsql as $$
      declare
        touched text := current_setting('effect_pgq.jobs_touched', true);
        failed bigint[] := array(select x::bigint
          from unnest(string_to_array(coalesce(current_setting('effect_pgq.jobs_failed', true), ''), ',')) as x
          where x <> '');
        id bigint;
      begin
        if touched is null or trim(both ',' from touched) = '' then return null; end if;
        perform set_config('effect_pgq.jobs_touched', '', true);
        perform set_config('effect_pgq.jobs_failed', '', true);
        for id in
          select distinct x::bigint from unnest(string_to_array(trim(both ',' from touched), ',')) as x
          where x <> '' order by 1
        loop
          perform effect_pgq.job_settle(id, id = any(failed));
        end loop;
        return null;
      end $$`,
      `create constraint trigger job_event_settle after insert on effect_pgq.job_event
        deferrable initially deferred for each row execute function effect_pgq.job_settle_touched()`
    ]
  }
]
