/**
 * Ids typed by an operator (pgq's event ids, the tracker's job ids) are int8:
 * one parser for the CLI and the console, so a number PostgreSQL would
 * refuse is refused here, with the caller's message, before any query.
 *
 * @since 0.2.0
 */
import { Option } from "effect"

/**
 * The largest int8.
 *
 * @since 0.2.0
 * @category constants
 */
export const INT8_MAX = 9_223_372_036_854_775_807n

/** Only digits: no sign, no spaces, no `0x` or `1e3` that `BigInt` would take. */
const DIGITS = /^[0-9]{1,19}$/

/**
 * The id in `text` (0 to `INT8_MAX`, decimal digits only), or none.
 *
 * @since 0.2.0
 * @category parsing
 */
export const parseInt8Id = (text: string): Option.Option<bigint> => {
  if (!DIGITS.test(text)) return Option.none()
  const id = BigInt(text)
  return id <= INT8_MAX ? Option.some(id) : Option.none()
}

/**
 * Whether `text` is an id `parseInt8Id` accepts.
 *
 * @since 0.2.0
 * @category parsing
 */
export const isInt8Id = (text: string): boolean => Option.isSome(parseInt8Id(text))
