/**
 * An OTLP/HTTP receiver in the test process: it accepts JSON bodies on
 * `/v1/traces` and `/v1/metrics`, and protobuf bodies on `/v1/traces`, and
 * keeps what it received, flattened (spans in their JSON form either way).
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
  /** Nanoseconds since the epoch, in decimal. */
  readonly startTimeUnixNano: string
  readonly endTimeUnixNano: string
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
  /** The most requests under way at once. */
  readonly mostAtOnce: () => number
}

interface TracesBody {
  readonly resourceSpans?: ReadonlyArray<{ readonly scopeSpans?: ReadonlyArray<{ readonly spans?: ReadonlyArray<OtlpSpan> }> }>
}
interface MetricsBody {
  readonly resourceMetrics?: ReadonlyArray<
    { readonly scopeMetrics?: ReadonlyArray<{ readonly metrics?: ReadonlyArray<OtlpMetric> }> }
  >
}

/**
 * A receiver listening on a free loopback port until the scope closes; one
 * that starts reading each request only `readAfterMs` after it arrives makes
 * its senders keep their bodies that long.
 */
export const makeWith = (options: { readonly readAfterMs?: number | undefined }) => Effect.acquireRelease(
  Effect.callback<{ readonly receiver: Receiver; readonly server: Http.Server }>((resume) => {
    const spans: Array<OtlpSpan> = []
    const metrics: Array<OtlpMetric> = []
    let requests = 0
    let underWay = 0
    let mostAtOnce = 0
    const server = Http.createServer((request, response) => {
      mostAtOnce = Math.max(mostAtOnce, ++underWay)
      response.on("finish", () => underWay--)
      const chunks: Array<Buffer> = []
      if (options.readAfterMs !== undefined) {
        request.pause()
        setTimeout(() => request.resume(), options.readAfterMs)
      }
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      request.on("end", () => {
        requests++
        const bytes = Buffer.concat(chunks)
        if (request.url === "/v1/traces" && request.headers["content-type"] === "application/x-protobuf") {
          spans.push(...decodeTraces(bytes))
          response.writeHead(200, { "content-type": "application/x-protobuf" }).end()
          return
        }
        const text = bytes.toString("utf8")
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
          requests: () => requests,
          mostAtOnce: () => mostAtOnce
        }
      }))
    })
  }),
  ({ server }) => Effect.callback<void>((resume) => {
    server.close(() => resume(Effect.void))
    server.closeAllConnections()
  })
).pipe(Effect.map(({ receiver }) => receiver))

/** A receiver listening on a free loopback port until the scope closes. */
export const make = makeWith({})

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

/** The fields of a protobuf message: field number, then a varint (as bigint), fixed64 (as bigint) or bytes. */
const fields = function*(bytes: Uint8Array): Generator<readonly [number, bigint | Uint8Array]> {
  let pos = 0
  const varint = (): bigint => {
    let result = 0n
    let shift = 0n
    while (true) {
      const byte = bytes[pos++]!
      result |= BigInt(byte & 127) << shift
      if (byte < 128) return result
      shift += 7n
    }
  }
  while (pos < bytes.length) {
    const tag = Number(varint())
    const wire = tag & 7
    if (wire === 0) yield [tag >> 3, varint()]
    else if (wire === 1) {
      yield [tag >> 3, Buffer.from(bytes.subarray(pos, pos + 8)).readBigUInt64LE()]
      pos += 8
    } else if (wire === 2) {
      const length = Number(varint())
      yield [tag >> 3, bytes.subarray(pos, pos + length)]
      pos += length
    } else if (wire === 5) {
      pos += 4
    } else throw new Error(`unexpected wire type ${wire}`)
  }
}

const asBytes = (value: bigint | Uint8Array): Uint8Array => {
  if (typeof value === "bigint") throw new Error("expected a length-delimited field")
  return value
}
const text = (value: bigint | Uint8Array) => Buffer.from(asBytes(value)).toString("utf8")
const hex = (value: bigint | Uint8Array) => Buffer.from(asBytes(value)).toString("hex")

const decodeAnyValue = (bytes: Uint8Array): AnyValue => {
  for (const [field, value] of fields(bytes)) {
    if (field === 1) return { stringValue: text(value) }
    if (field === 2) return { boolValue: value === 1n }
    if (field === 3) return { intValue: String(BigInt.asIntN(64, value as bigint)) }
    if (field === 4) return { doubleValue: Buffer.from(asBytes(value)).readDoubleLE() }
  }
  return {}
}

const decodeKeyValue = (bytes: Uint8Array): KeyValue => {
  let key = ""
  let value: AnyValue = {}
  for (const [field, v] of fields(bytes)) {
    if (field === 1) key = text(v)
    else if (field === 2) value = decodeAnyValue(asBytes(v))
  }
  return { key, value }
}

const decodeSpan = (bytes: Uint8Array): OtlpSpan => {
  let traceId = ""
  let spanId = ""
  let parentSpanId: string | undefined
  let name = ""
  let kind = 0
  let startTimeUnixNano = ""
  let endTimeUnixNano = ""
  const attributes: Array<KeyValue> = []
  const links: Array<{ traceId: string; spanId: string }> = []
  let status: { code: number; message?: string } = { code: 0 }
  for (const [field, value] of fields(bytes)) {
    if (field === 1) traceId = hex(value)
    else if (field === 2) spanId = hex(value)
    else if (field === 4) parentSpanId = hex(value)
    else if (field === 5) name = text(value)
    else if (field === 6) kind = Number(value)
    else if (field === 7) startTimeUnixNano = String(value)
    else if (field === 8) endTimeUnixNano = String(value)
    else if (field === 9) attributes.push(decodeKeyValue(asBytes(value)))
    else if (field === 13) {
      const link = { traceId: "", spanId: "" }
      for (const [f, v] of fields(asBytes(value))) {
        if (f === 1) link.traceId = hex(v)
        else if (f === 2) link.spanId = hex(v)
      }
      links.push(link)
    } else if (field === 15) {
      status = { code: 0 }
      for (const [f, v] of fields(asBytes(value))) {
        if (f === 2) status = { ...status, message: text(v) }
        else if (f === 3) status = { ...status, code: Number(v) }
      }
    }
  }
  return { traceId, spanId, parentSpanId, name, kind, startTimeUnixNano, endTimeUnixNano, attributes, links, status }
}

/** The spans of an `ExportTraceServiceRequest`. */
const decodeTraces = (bytes: Uint8Array): Array<OtlpSpan> => {
  const spans: Array<OtlpSpan> = []
  for (const [resourceField, resourceSpans] of fields(bytes)) {
    if (resourceField !== 1) continue
    for (const [scopeField, scopeSpans] of fields(asBytes(resourceSpans))) {
      if (scopeField !== 2) continue
      for (const [spanField, span] of fields(asBytes(scopeSpans))) {
        if (spanField === 2) spans.push(decodeSpan(asBytes(span)))
      }
    }
  }
  return spans
}
