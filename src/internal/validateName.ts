/**
 * The one place where queue and consumer names are checked before SQL runs,
 * so a bad name is a typed `InvalidName`, never a half-made object. The rules
 * themselves are public: `nameProblem` in `src/api/Names.ts`.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { nameProblem } from "../api/Names.ts"
import { InvalidName } from "../api/PgqError.ts"

/**
 * Fails with `InvalidName` when `name` is refused.
 *
 * @since 0.1.0
 * @category validation
 */
export const validateName = (kind: "queue" | "consumer", name: string): Effect.Effect<void, InvalidName> => {
  const reason = nameProblem(name)
  return reason === undefined ? Effect.void : Effect.fail(new InvalidName({ kind, name, reason }))
}

/**
 * @since 0.1.0
 * @category validation
 */
export const validateQueue = (queue: string): Effect.Effect<void, InvalidName> => validateName("queue", queue)

/**
 * The queue's name first, then the consumer's: the error names the first bad one.
 *
 * @since 0.1.0
 * @category validation
 */
export const validateQueueConsumer = (queue: string, consumer: string): Effect.Effect<void, InvalidName> =>
  Effect.andThen(validateName("queue", queue), validateName("consumer", consumer))
