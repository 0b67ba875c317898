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
import { type CliFailure, usage } from "./admin/CliFailure.ts"

const variables = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"] as const

/** The first endpoint variable set, with its value. */
const endpoint = Effect.gen(function*() {
  for (const name of variables) {
    const value = yield* Config.option(Config.String(name)).pipe(Effect.orElseSucceed(() => Option.none<string>()))
    if (Option.isSome(value) && value.value.trim() !== "") return Option.some({ name, value: value.value.trim() })
  }
  return Option.none<{ readonly name: string; readonly value: string }>()
})

/**
 * Runs `effect` under `OtlpExport.layer` (spans only: a command's counters
 * would start from zero at every run) when an OTLP endpoint is set.
 *
 * @since 0.2.0
 * @category tracing
 */
export const withOtlpFromEnv = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | CliFailure, R> =>
  Effect.flatMap(endpoint, (found): Effect.Effect<A, E | CliFailure, R> => {
    if (Option.isNone(found)) return effect
    const { name, value } = found.value
    // Checked here: a malformed URL would otherwise end the command with a defect.
    if (!URL.canParse(value)) return Effect.fail(usage(`${name} is not a URL: ${value}`))
    return Effect.provide(effect, OtlpExport.layer({ metrics: false }))
  })
