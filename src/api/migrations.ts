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
  }
]
