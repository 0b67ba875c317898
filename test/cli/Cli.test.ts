import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Command } from "effect/cli"
import { Installer } from "../../src/api/Installer.ts"
import { migrations } from "../../src/api/migrations.ts"
import { root } from "../../src/cli/Cli.ts"
import * as TestDb from "../TestDb.ts"

const cli = (args: ReadonlyArray<string>) =>
  Command.runWith(root, { version: "test" })(args).pipe(Effect.provide(NodeServices.layer))

describe("effect-pgq CLI", () => {
  it.effect("install brings the database to the newest migration, and is idempotent", () =>
    Effect.gen(function*() {
      yield* cli(["install", "--db", TestDb.url])
      yield* cli(["install", "--db", TestDb.url])
      const status = yield* Effect.provide(
        Effect.gen(function*() {
          return yield* (yield* Installer).status
        }),
        Installer.layer.pipe(Layer.provide(TestDb.clientLayer(TestDb.url)))
      )
      assert.strictEqual(status.schemaVersion, migrations.at(-1)!.version)
    }))

  it.effect("an unreachable database is a typed error", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(cli(["status", "--db", "postgres://postgres@127.0.0.1:1/none"]))
      assert.strictEqual(error._tag, "PgqSqlError")
    }))
})
