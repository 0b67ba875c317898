/**
 * The names effect-pgq accepts for queues and consumers. Every service checks
 * them with these rules before any SQL runs (through `src/internal/validateName.ts`),
 * so a bad name is a typed `InvalidName`, never a half-made object.
 *
 * pgq itself stores names as `text`; effect-pgq only refuses what cannot be
 * meant: empty names, surrounding blanks, control characters, and names over
 * 255 characters. Quotes, semicolons and any Unicode are fine: names always
 * travel as bind parameters.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 * @category constants
 */
export const MAX_NAME_LENGTH = 255

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/

/**
 * Why a name is refused, or `undefined` when it is fine.
 *
 * @since 0.1.0
 * @category validation
 */
export const nameProblem = (name: string): string | undefined => {
  if (name.length === 0) return "must not be empty"
  if ([...name].length > MAX_NAME_LENGTH) return `must be at most ${MAX_NAME_LENGTH} characters`
  if (name.trim() !== name) return "must not start or end with whitespace"
  if (CONTROL.test(name)) return "must not contain control characters"
  return undefined
}
