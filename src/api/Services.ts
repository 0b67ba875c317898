/**
 * Every effect-pgq database service in one layer, on a `SqlClient`.
 *
 * @since 0.1.0
 */
import { Layer } from "effect"
import type { SqlClient } from "effect/sql"
import { EventStatus } from "./EventStatus.ts"
import { FailedEvents } from "./FailedEvents.ts"
import { Installer } from "./Installer.ts"
import { Pgq } from "./Pgq.ts"
import { Producer } from "./Producer.ts"

/**
 * @since 0.1.0
 * @category models
 */
export type Services = Pgq | Producer | FailedEvents | EventStatus | Installer

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Services, never, SqlClient.SqlClient> = Layer.mergeAll(
  Producer.layer,
  FailedEvents.layer,
  EventStatus.layer,
  Installer.layer
).pipe(Layer.provideMerge(Pgq.layer))
