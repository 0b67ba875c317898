/**
 * Shared by the tracker's PostgreSQL suites: the tracker with every
 * effect-pgq service on the test database (schema installed), and a queue
 * whose events are read back to count follow-ups.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Option, Redacted } from "effect"
import { Installer } from "../../src/api/Installer.ts"
import { Pgq } from "../../src/api/Pgq.ts"
import type { PgqEvent } from "../../src/api/PgqEvent.ts"
import * as PgqServices from "../../src/api/Services.ts"
import { Tracker } from "../../src/tracker/Tracker.ts"
import * as TestDb from "../TestDb.ts"

/** `Tracker` and the other services on the test database (a pool of `maxConnections`), after the installer ran. */
export const pgLayer = (maxConnections = 8) =>
  Layer.effectDiscard(Effect.gen(function*() {
    yield* (yield* Installer).install
  })).pipe(
    Layer.provideMerge(Tracker.layer),
    Layer.provideMerge(PgqServices.layer),
    Layer.provideMerge(PgClient.layer({ url: Redacted.make(TestDb.url), maxConnections })),
    Layer.orDie
  )

/** Every event of the queue that its consumer has not read yet (ticks first). */
export const drain = (queue: string, consumer: string) =>
  Effect.gen(function*() {
    const pgq = yield* Pgq
    yield* TestDb.tick(queue)
    const events: Array<PgqEvent> = []
    while (true) {
      const batch = yield* pgq.nextBatch(queue, consumer)
      if (Option.isNone(batch)) return events
      events.push(...(yield* pgq.getBatchEvents(batch.value)))
      yield* pgq.finishBatch(batch.value)
    }
  })
