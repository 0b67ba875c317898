/**
 * The interactive consumer: drain the batches that are ready and return,
 * for callers that own the loop (a cron job, a request handler, a test).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import * as Consumer from "./Consumer.ts"

/**
 * Processes every ready batch of the queue for this consumer, then returns
 * the totals. Stops early at a batch a handler aborted.
 *
 * @since 0.1.0
 * @category constructors
 */
export const processAvailable = <E, R>(options: Consumer.ConsumerOptions<E, R>) =>
  Effect.scoped(
    Effect.flatMap(Consumer.make({ ...options, wakeChannel: false }), (consumer) => consumer.processAvailable)
  ).pipe(Effect.withSpan("InteractiveConsumer.processAvailable"))
