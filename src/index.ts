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
/** @since 0.1.0 */
export { EventStatus, ConsumerEventStatus, EventState } from "./api/EventStatus.ts"
/** @since 0.1.0 */
export { FailedEvent, FailedEvents, type FailedEventTarget, type ListOptions } from "./api/FailedEvents.ts"
/** @since 0.2.0 */
export * as PgqExt from "./api/PgqExt.ts"
/** @since 0.2.0 */
export * as PgqCoop from "./api/PgqCoop.ts"
/** @since 0.1.0 */
export { type OpenBatch } from "./api/Pgq.ts"
/** @since 0.1.0 */
export {
  type BatchContext,
  type BatchHandler,
  type EventHandler,
  type Handler,
  HandlerContractViolation
} from "./consumer/Handler.ts"
/** @since 0.1.0 */
export { BatchStats } from "./consumer/BatchStats.ts"
/** @since 0.2.0 */
export { ConsumerEvent } from "./consumer/ConsumerEvent.ts"
/** @since 0.1.0 */
export { type Isolation, type ProcessorSettings, SwallowedSqlError } from "./consumer/BatchProcessor.ts"
/** @since 0.1.0 */
export * as Consumer from "./consumer/Consumer.ts"
/** @since 0.1.0 */
export * as Dispatch from "./consumer/Dispatch.ts"
/** @since 0.1.0 */
export * as EventResult from "./consumer/EventResult.ts"
/** @since 0.1.0 */
export * as FailurePolicy from "./consumer/FailurePolicy.ts"
/** @since 0.1.0 */
export * as InteractiveConsumer from "./consumer/InteractiveConsumer.ts"
/** @since 0.2.0 */
export * as RemoteConsumer from "./consumer/RemoteConsumer.ts"
/** @since 0.2.0 */
export * as EventRemoteConsumer from "./consumer/EventRemoteConsumer.ts"
/** @since 0.2.0 */
export * as CoopConsumer from "./consumer/CoopConsumer.ts"
/** @since 0.1.0 */
export * as Semconv from "./telemetry/Semconv.ts"
/** @since 0.1.0 */
export * as PgqServices from "./api/Services.ts"
/** @since 0.2.0 */
export * as DaemonConfig from "./daemon/DaemonConfig.ts"
/** @since 0.2.0 */
export { type ConsumerState, type ConsumerStatus, Supervisor } from "./daemon/Supervisor.ts"
/** @since 0.2.0 */
export * as Ticker from "./daemon/Ticker.ts"
/** @since 0.2.0 */
export * as QueueSettings from "./daemon/QueueSettings.ts"
/** @since 0.2.0 */
export {
  DaemonLogger,
  type DaemonLoggerOptions,
  LogFileError,
  LogFormat,
  LogLevelName
} from "./daemon/Logger.ts"
/** @since 0.2.0 */
export { type DaemonStatus } from "./daemon/ControlServer.ts"
/** @since 0.2.0 */
export * as TraceContext from "./telemetry/TraceContext.ts"
/** @since 0.2.0 */
export * as TelemetrySettings from "./telemetry/TelemetrySettings.ts"
/** @since 0.2.0 */
export * as Metrics from "./telemetry/Metrics.ts"
/** @since 0.2.0 */
export * as LagMetrics from "./telemetry/LagMetrics.ts"
/** @since 0.2.0 */
export * as PrometheusText from "./telemetry/PrometheusText.ts"
/** @since 0.2.0 */
export * as OtlpExport from "./telemetry/OtlpExport.ts"
/** @since 0.2.0 */
export {
  type ComponentState,
  ComponentStatus,
  type Finished,
  FinishedStatus,
  FollowUp,
  Job,
  JobId,
  type JobState,
  JobStatus,
  type NewJob,
  type StatusCounts,
  StatusEvent,
  type StatusUpdate
} from "./tracker/Job.ts"
/** @since 0.2.0 */
export { type CleanOptions, type JobListOptions, Tracker } from "./tracker/Tracker.ts"
/** @since 0.2.0 */
export { JobNotFound, type TrackerError, UnknownComponent } from "./tracker/TrackerError.ts"
/** @since 0.2.0 */
export * as MemoryTracker from "./tracker/MemoryTracker.ts"
/** @since 0.2.0 */
export * as Tracked from "./tracker/Tracked.ts"
/** @since 0.2.0 */
export * as ConsoleHandler from "./console/ConsoleHandler.ts"
/** @since 0.2.0 */
export * as ConsoleServer from "./console/ConsoleServer.ts"
/** @since 0.2.0 */
export * as LagHistory from "./console/LagHistory.ts"
