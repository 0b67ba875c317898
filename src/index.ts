/**
 * effect-pgq: PostgreSQL PgQ queues and consumers as Effect programs.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * from "./api/BatchInfo.ts"
/** @since 0.1.0 */
export * from "./api/ConsumerInfo.ts"
/** @since 0.1.0 */
export * from "./api/Ids.ts"
/** @since 0.1.0 */
export { Installer, type InstallStatus } from "./api/Installer.ts"
/** @since 0.1.0 */
export { MAX_NAME_LENGTH, nameProblem } from "./api/Names.ts"
/** @since 0.1.0 */
export {
  type BatchConditions,
  type CursorOptions,
  MaintOperation,
  type NewEvent,
  Pgq,
  type QueueSetting
} from "./api/Pgq.ts"
/** @since 0.1.0 */
export * from "./api/PgqError.ts"
/** @since 0.1.0 */
export * from "./api/PgqEvent.ts"
/** @since 0.1.0 */
export { type BulkOptions, Producer } from "./api/Producer.ts"
/** @since 0.1.0 */
export * from "./api/QueueInfo.ts"
