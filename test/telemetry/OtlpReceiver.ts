/**
 * An OTLP/HTTP receiver in the test process: it accepts JSON bodies on
 * `/v1/traces` and `/v1/metrics` and keeps what it received, flattened.
 */
import { Effect } from "effect"
import * as Http from "node:http"

export interface AnyValue {
  readonly stringValue?: string
  readonly intValue?: string | number
  readonly doubleValue?: number
  readonly boolValue?: boolean
}
export interface KeyValue {
  readonly key: string
  readonly value: AnyValue
}
export interface OtlpSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string | undefined
  readonly name: string
  readonly kind: number
  readonly attributes: ReadonlyArray<KeyValue>
  readonly links: ReadonlyArray<{ readonly traceId: string; readonly spanId: string }>
  readonly status: { readonly code: number; readonly message?: string }
}
export interface DataPoint {
  readonly attributes: ReadonlyArray<KeyValue>
  readonly asDouble?: number
  readonly asInt?: string | number
  readonly count?: string | number
  readonly sum?: number
}
export interface OtlpMetric {
  readonly name: string
  readonly unit?: string
  readonly sum?: { readonly dataPoints: ReadonlyArray<DataPoint>; readonly isMonotonic?: boolean }
  readonly gauge?: { readonly dataPoints: ReadonlyArray<DataPoint> }
  readonly histogram?: { readonly dataPoints: ReadonlyArray<DataPoint> }
}

/** OTLP span kinds. */
export const SPAN_KIND = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 } as const
/** OTLP status codes. */
export const STATUS = { unset: 0, ok: 1, error: 2 } as const

export interface Receiver {
  /** Base URL, like `http://127.0.0.1:4318`. */
  readonly url: string
  readonly spans: () => ReadonlyArray<OtlpSpan>
  /** Every metric data batch received, oldest first. */
  readonly metrics: () => ReadonlyArray<OtlpMetric>
  readonly requests: () => number
}

interface TracesBody {
  readonly resourceSpans?: ReadonlyArray<{ readonly scopeSpans?: ReadonlyArray<{ readonly spans?: ReadonlyArray<OtlpSpan> }> }>
}
interface MetricsBody {
  readonly resourceMetrics?: ReadonlyArray<
    { readonly scopeMetrics?: ReadonlyArray<{ readonly metrics?: ReadonlyArray<OtlpMetric> }> }
  >
}

/** A receiver listening on a free loopback port until the scope closes. */
export const make = Effect.acquireRelease(
  Effect.callback<{ readonly receiver: Receiver; readonly server: Http.Server }>((resume) => {
    const spans: Array<OtlpSpan> = []
    const metrics: Array<OtlpMetric> = []
    let requests = 0
    const server = Http.createServer((request, response) => {
      const chunks: Array<Buffer> = []
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      request.on("end", () => {
        requests++
        const text = Buffer.concat(chunks).toString("utf8")
        const body: unknown = text === "" ? {} : JSON.parse(text)
        if (request.url === "/v1/traces") {
          for (const rs of (body as TracesBody).resourceSpans ?? []) {
            for (const ss of rs.scopeSpans ?? []) spans.push(...(ss.spans ?? []))
          }
        } else if (request.url === "/v1/metrics") {
          for (const rm of (body as MetricsBody).resourceMetrics ?? []) {
            for (const sm of rm.scopeMetrics ?? []) metrics.push(...(sm.metrics ?? []))
          }
        }
        response.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      resume(Effect.succeed({
        server,
        receiver: {
          url: `http://127.0.0.1:${port}`,
          spans: () => spans,
          metrics: () => metrics,
          requests: () => requests
        }
      }))
    })
  }),
  ({ server }) => Effect.callback<void>((resume) => {
    server.close(() => resume(Effect.void))
    server.closeAllConnections()
  })
).pipe(Effect.map(({ receiver }) => receiver))

export const attribute = (attributes: ReadonlyArray<KeyValue>, key: string): string | number | boolean | undefined => {
  const value = attributes.find((kv) => kv.key === key)?.value
  if (value === undefined) return undefined
  if (value.stringValue !== undefined) return value.stringValue
  if (value.intValue !== undefined) return Number(value.intValue)
  if (value.doubleValue !== undefined) return value.doubleValue
  return value.boolValue
}

/** The newest data point of `name` whose attributes include `match`. */
export const latestPoint = (
  metrics: ReadonlyArray<OtlpMetric>,
  name: string,
  match: Record<string, string>
): DataPoint | undefined => {
  let found: DataPoint | undefined = undefined
  for (const metric of metrics) {
    if (metric.name !== name) continue
    const points = metric.sum?.dataPoints ?? metric.gauge?.dataPoints ?? metric.histogram?.dataPoints ?? []
    for (const point of points) {
      if (Object.entries(match).every(([key, value]) => attribute(point.attributes, key) === value)) found = point
    }
  }
  return found
}

export const valueOf = (point: DataPoint | undefined): number | undefined =>
  point === undefined ? undefined : point.asDouble ?? (point.asInt === undefined ? undefined : Number(point.asInt))
