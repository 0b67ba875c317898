import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Option, Schema } from "effect"
import { findAll, findOne, findOneOption } from "../../src/internal/rows.ts"

const Row = Schema.Struct({ r: Schema.Number })

describe("row decoding", () => {
  it.effect("findOneOption: no row is none, a row is some", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* findOneOption(Row)([]), Option.none())
      assert.deepStrictEqual(yield* findOneOption(Row)([{ r: 1 }, { r: 2 }]), Option.some({ r: 1 }))
    }))

  it.effect("findOne: a missing row is a defect that names the statement, never a placeholder", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* findOne(Row)("pgq.f()")([{ r: 1 }]), { r: 1 })
      const exit = yield* Effect.exit(findOne(Row)("pgq.f()")([]))
      assert.isTrue(Exit.hasDies(exit))
      const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      assert.isTrue(Cause.isNoSuchElementError(defect))
      assert.include(String((defect as Error).message), "pgq.f() returned no row")
    }))

  it.effect("a row that does not fit its schema is a defect", () =>
    Effect.gen(function*() {
      assert.isTrue(Exit.hasDies(yield* Effect.exit(findAll(Row)([{ r: "one" }]))))
      assert.isTrue(Exit.hasDies(yield* Effect.exit(findOneOption(Row)([{ r: null }]))))
    }))
})
