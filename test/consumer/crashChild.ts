/**
 * The crash harness's child: applies a queue's ready batches to the remote
 * table `applied` with the consumer kind it is told, then exits 0. The
 * harness kills it with SIGKILL at random moments and starts it again.
 *
 *   node crashChild.ts <kind: remote|event-remote|plain> <queue url> <remote url> <queue> <consumer>
 *
 * The plain consumer writes to the remote database outside its batch's
 * transaction (autocommit), as any handler with outside effects does.
 */
import { NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import type { PgqEvent } from "../../src/api/PgqEvent.ts"
import * as PgqServices from "../../src/api/Services.ts"
import * as Consumer from "../../src/consumer/Consumer.ts"
import * as EventRemoteConsumer from "../../src/consumer/EventRemoteConsumer.ts"
import * as RemoteConsumer from "../../src/consumer/RemoteConsumer.ts"

const [kind, queueUrl, remoteUrl, queue, consumer] = process.argv.slice(2) as [string, string, string, string, string]

const remote = PgClient.layer({ url: Redacted.make(remoteUrl), maxConnections: 2 })

/** A little work per event, so that kills land inside batches. */
const work = Effect.sleep("1 millis")

const insert = (sql: SqlClient.SqlClient, event: PgqEvent) =>
  Effect.asVoid(sql`insert into applied (ev_id) values (${event.id})`)

const onRemote = (event: PgqEvent) => Effect.andThen(work, Effect.flatMap(SqlClient.SqlClient, (sql) => insert(sql, event)))

const make = Effect.gen(function*() {
  switch (kind) {
    case "remote":
      return yield* RemoteConsumer.make({ queue, consumer, remote, onEvent: onRemote })
    case "event-remote":
      return yield* EventRemoteConsumer.make({ queue, consumer, remote, onEvent: onRemote })
    default: {
      const outside = Context.get(yield* Layer.build(remote), SqlClient.SqlClient)
      return yield* Consumer.make({ queue, consumer, onEvent: (event) => Effect.andThen(work, insert(outside, event)) })
    }
  }
})

// "started" tells the harness the consumer is about to take batches: its kills land in them, not in the start-up.
const drain = Effect.flatMap(make, (c) => Effect.andThen(Effect.sync(() => console.log("started")), c.processAvailable))

drain.pipe(
  Effect.scoped,
  Effect.provide(PgqServices.layer.pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(queueUrl) })))),
  Effect.andThen(Effect.sync(() => process.exit(0))),
  NodeRuntime.runMain
)
