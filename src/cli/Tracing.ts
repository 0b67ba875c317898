/**
 * The standard OpenTelemetry variables, for the commands that produce
 * events: with `OTEL_EXPORTER_OTLP_ENDPOINT` (or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, a command's spans (`send
 * <queue>`) go out over OTLP/HTTP through `OtlpExport`, which reads the other
 * `OTEL_*` variables (`OTEL_SERVICE_NAME`, headers, protocol), and are sent
 * before the command exits; each event carries its `send` span's
 * `traceparent`, so its consumers' spans link to it. Unset, the command runs
 * as it always does.
 *
 * @since 0.2.0
 */
import { Config, Effect, Option } from "effect"
import * as OtlpExport from "../telemetry/OtlpExport.ts"

const endpoint = Config.String("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").pipe(
  Config.orElse(() => Config.String("OTEL_EXPORTER_OTLP_ENDPOINT")),
  Config.option
)

/**
 * Runs `effect` under `OtlpExport.layer` (spans only: a command's counters
 * would start from zero at every run) when an OTLP endpoint is set.
 *
 * @since 0.2.0
 * @category tracing
 */
export const withOtlpFromEnv = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(
    Effect.orElseSucceed(endpoint, () => Option.none<string>()),
    (url) =>
      Option.isSome(url) && url.value.trim() !== ""
        ? Effect.provide(effect, OtlpExport.layer({ metrics: false }))
        : effect
  )
