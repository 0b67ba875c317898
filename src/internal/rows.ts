/**
 * Rows of effect-pgq's own statements, decoded with `Schema` in the style of
 * effect's `SqlSchema`: every row, the first row as an `Option`, or the one
 * row a statement always returns (`select f(...)`).
 *
 * The SQL is effect-pgq's own, so a row that does not fit its schema, or a
 * row that must be there and is not, is a bug: a defect that says which
 * statement, never a placeholder value.
 *
 * @since 0.1.0
 */
import { Cause, Effect, type Option, Schema } from "effect"

/**
 * Every row, decoded.
 *
 * @since 0.1.0
 * @category decoding
 */
export const findAll = <S extends Schema.Top>(Result: S) => {
  const decode = Schema.decodeUnknownEffect(Schema.Array(Result))
  return (rows: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<S["Type"]>, never, S["DecodingServices"]> =>
    Effect.orDie(decode(rows))
}

/**
 * The first row decoded, or none when there is none.
 *
 * @since 0.1.0
 * @category decoding
 */
export const findOneOption = <S extends Schema.Top>(Result: S) => {
  const decode = Schema.decodeUnknownEffect(Result)
  return (rows: ReadonlyArray<unknown>): Effect.Effect<Option.Option<S["Type"]>, never, S["DecodingServices"]> =>
    rows.length === 0 ? Effect.succeedNone : Effect.asSome(Effect.orDie(decode(rows[0])))
}

/**
 * The first row decoded, from a statement that always returns one, such as
 * `select pgq.version()`. The decoder is built once; `statement` names the
 * statement in the defect when no row came.
 *
 * @since 0.1.0
 * @category decoding
 */
export const findOne = <S extends Schema.Top>(Result: S) => {
  const decode = Schema.decodeUnknownEffect(Result)
  return (statement: string) =>
  (rows: ReadonlyArray<unknown>): Effect.Effect<S["Type"], never, S["DecodingServices"]> =>
    rows.length === 0
      ? Effect.die(new Cause.NoSuchElementError(`${statement} returned no row`))
      : Effect.orDie(decode(rows[0]))
}
