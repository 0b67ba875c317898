/**
 * The span exporter behind `OtlpExport`: a tracer whose spans are encoded to
 * OTLP protobuf as they end, straight from the span into a buffer that
 * becomes the request's body, and sent through Effect's OTLP batch exporter
 * (`OtlpExporter.make`: its retries, its pause after failures, its final
 * flush). Exports are started here, one at a time: every `exportInterval`,
 * and once a batch is full and the code that filled it has yielded.
 *
 * Effect's own `OtlpTracer` turns every ended span into OTLP/JSON objects and
 * serialises a batch with `JSON.stringify` (or a protobuf encoder that
 * allocates per field) inside the `end` that filled it; with a span per
 * event, that was most of a consumer's time. Encoded spans die young (no
 * batch of them waits in the old generation), and a body is half the bytes.
 * With `http/json`, spans are kept and serialised as Effect's tracer does.
 *
 * @internal
 */
import { Cause, Config, type Context, Duration, Effect, type Exit, FiberSet, Formatter, Layer, Option, Schema, Semaphore, Tracer, Version } from "effect"
import { type HttpClient, HttpBody } from "effect/http"
import { OtlpExporter, OtlpResource } from "effect/observability"
import * as SharedAttributes from "./SharedAttributes.ts"
import * as SpanRecorder from "./SpanRecorder.ts"

/** The OTLP/HTTP encodings: protobuf (the OpenTelemetry default) or JSON. */
export type Protocol = "http/protobuf" | "http/json"

export interface Options {
  readonly url: string
  readonly resource: { readonly serviceName?: string | undefined }
  readonly protocol: Protocol
  readonly headers?: Record<string, string> | undefined
  readonly compression?: "gzip" | "none" | undefined
  readonly exportInterval?: Duration.Input | undefined
  readonly maxBatchSize?: number | undefined
  readonly shutdownTimeout?: Duration.Input | undefined
}

/**
 * A tracer exporting every sampled span when it ends; `Tracer.Tracer` for
 * the layer's users, with the `Flusher` it registers with.
 */
export const layer = (options: Options): Layer.Layer<OtlpExporter.Flusher, never, HttpClient.HttpClient> =>
  Layer.effect(Tracer.Tracer, make(options)).pipe(Layer.provideMerge(OtlpExporter.layerFlusher))

const make = Effect.fnUntraced(function*(options: Options) {
  const resource = yield* OtlpResource.fromConfig(options.resource)
  const scope = { name: "effect", version: Version.getCurrentVersion() }
  const encoder = options.protocol === "http/json" ? undefined : protobufEncoder(resource, scope)
  const jsonBody = jsonEncoder(resource, scope)
  // The exporter registers its export with a Flusher of this tracer's own: every export is
  // started here, so that its end is known (a protobuf body is sent from the encoder's buffer,
  // which is written to again only once no export is under way).
  let runExport: Effect.Effect<void> = Effect.void
  const own = OtlpExporter.Flusher.of({
    flush: Effect.suspend(() => runExport),
    register: (run) => Effect.sync(() => { runExport = run })
  })
  const exporter = yield* OtlpExporter.make({
    label: "OtlpTracer",
    url: options.url,
    headers: options.headers,
    compression: options.compression,
    // Never: the interval is kept below.
    exportInterval: Duration.infinity,
    // Full batches are sent from `push` below, not inside the `end` that filled them.
    maxBatchSize: "disabled",
    body: (spans: Array<ExportedSpan | typeof ENCODED>) =>
      [encoder === undefined ? jsonBody(spans as Array<ExportedSpan>) : encoder.body(), Effect.void] as const,
    shutdownTimeout: options.shutdownTimeout ?? Duration.seconds(3)
  }).pipe(Effect.provideService(OtlpExporter.Flusher, own))
  // Spans per request: a span per event makes many, and each request costs as much as encoding
  // hundreds of spans (a body of 4096 is about 1.3 MB).
  const maxBatchSize = options.maxBatchSize ?? 4096
  // Spans kept while the exporter cannot keep up (an export under way) or refuses (it failed and
  // pauses), before they are dropped. Any number are kept until the first export is asked for.
  const keptAtMost = Math.max(4 * maxBatchSize, 16_000)
  // One export at a time: a body's buffer is written to again once its request is over, and
  // while a collector is slow, spans wait here (up to `keptAtMost`) rather than in requests.
  const lock = yield* Semaphore.make(1)
  let exporting = false
  let refused = false
  /** One export of what is encoded, if anything. */
  const exportNow = lock.withPermit(Effect.suspend(() => {
    queued = false
    pending = 0
    if (encoder === undefined) return runExport
    const count = encoder.count()
    if (count === 0) return Effect.void
    // The exporter sends only when it holds something: one marker for all the encoded spans.
    exporter.push(ENCODED)
    const taken = encoder.bodies()
    exporting = true
    return Effect.ensuring(
      runExport,
      Effect.sync(() => {
        exporting = false
        // No body was asked for: the exporter pauses after a failure, and drops what it is given.
        refused = encoder.bodies() === taken
        encoder.sent()
      })
    )
  }))
  yield* (yield* OtlpExporter.Flusher).register(exportNow)
  const exports = yield* FiberSet.make()
  const runFork = yield* FiberSet.runtime(exports)()
  let queued = false
  let closed = false
  /** Starts an export unless one is waiting to start already. */
  const request = (): void => {
    if (closed || queued) return
    queued = true
    runFork(exportNow)
  }
  yield* Effect.sleep(options.exportInterval ?? Duration.seconds(5)).pipe(
    Effect.andThen(Effect.sync(request)),
    Effect.forever,
    Effect.forkScoped
  )
  let pending = 0
  let scheduled = false
  // Runs before the exporter's final flush (finalizers run last first): exports under way end
  // first, and what is encoded is marked for it.
  yield* Effect.addFinalizer(() =>
    Effect.andThen(
      FiberSet.awaitEmpty(exports).pipe(
        Effect.interruptible,
        Effect.timeoutOption(options.shutdownTimeout ?? Duration.seconds(3))
      ),
      Effect.sync(() => {
        closed = true
        if (encoder !== undefined && encoder.count() > 0) exporter.push(ENCODED)
      })
    )
  )
  /**
   * A full batch is sent once the code that ended its last span has yielded
   * (a consumer waiting for its next query, say), not inside it.
   */
  const sendFull = () => {
    scheduled = false
    request()
  }
  const counted = (): void => {
    if (++pending >= maxBatchSize && !scheduled) {
      scheduled = true
      setImmediate(sendFull)
    }
  }
  const room = (encoder: ProtobufEncoder): void => {
    if (encoder.count() >= keptAtMost && (exporting || refused)) encoder.drop()
  }
  const push = (span: ExportedSpan): void => {
    if (!span.sampled) return
    if (encoder === undefined) exporter.push(span)
    else {
      room(encoder)
      encoder.add(span)
    }
    counted()
  }
  const tracer = Tracer.make({ span: (spanOptions) => new ExportedSpan(spanOptions, push) })
  if (encoder === undefined) return tracer
  const record: SpanRecorder.Record = (span) => {
    room(encoder)
    encoder.record(span)
    counted()
  }
  return Object.assign(tracer, { [SpanRecorder.TypeId]: record })
})

/** What the exporter holds for a span already encoded. */
const ENCODED = { encoded: true } as const

/**
 * The tracer's span: what it was given and was told, kept as is until it
 * ends and is encoded (its ids are drawn on first use).
 */
class ExportedSpan implements Tracer.Span, SharedAttributes.Taker {
  readonly _tag = "Span"
  readonly name: string
  readonly parent: Option.Option<Tracer.AnySpan>
  readonly annotations: Context.Context<never>
  readonly links: Array<Tracer.SpanLink>
  readonly kind: Tracer.SpanKind
  readonly sampled: boolean
  status: Tracer.SpanStatus
  private readonly exportSpan: (span: ExportedSpan) => void
  private ownTraceId: string | undefined = undefined
  private ownSpanId: string | undefined = undefined
  /** Keys and values in turn, in the order first set: cheaper to keep (and to encode) than a Map per span. */
  readonly flat: Array<unknown> = []
  /**
   * Attributes set before `flat`'s, kept as given (the same array for many
   * spans, so the writer encodes it once); copied into `flat` if one of its
   * keys is set again.
   */
  shared: ReadonlyArray<unknown> | undefined = undefined
  ownEvents: Array<readonly [name: string, startTime: bigint, attributes: Record<string, unknown> | undefined]> | undefined =
    undefined

  constructor(options: Parameters<Tracer.Tracer["span"]>[0], exportSpan: (span: ExportedSpan) => void) {
    this.name = options.name
    this.parent = options.parent
    this.annotations = options.annotations
    this.links = options.links
    this.kind = options.kind
    this.sampled = options.sampled
    this.exportSpan = exportSpan
    this.status = { _tag: "Started", startTime: options.startTime }
  }
  /** The trace id's 16 bytes: drawn for a root, else the parent's; encoded as they are, made hex only if asked. */
  private traceBytes: Uint8Array | undefined = undefined
  traceIdBytes(): Uint8Array {
    if (this.traceBytes !== undefined) return this.traceBytes
    const parent = this.parent
    return this.traceBytes = parent._tag === "None" ? randomTraceId() : traceIdBytesOf(parent.value)
  }
  get traceId(): string {
    if (this.ownTraceId !== undefined) return this.ownTraceId
    // A parent from elsewhere keeps its own spelling of the id.
    const parent = this.parent
    return this.ownTraceId = parent._tag === "Some" && !(parent.value instanceof ExportedSpan)
      ? parent.value.traceId
      : Buffer.from(this.traceIdBytes()).toString("hex")
  }
  /** The span id's two halves, drawn on first use; encoded as they are, made hex only if asked. */
  idHigh = 0
  idLow = 0
  drawId(): void {
    while (this.idHigh === 0 && this.idLow === 0) {
      this.idHigh = randomUint32()
      this.idLow = randomUint32()
    }
  }
  get spanId(): string {
    if (this.ownSpanId === undefined) {
      this.drawId()
      this.ownSpanId = this.idHigh.toString(16).padStart(8, "0") + this.idLow.toString(16).padStart(8, "0")
    }
    return this.ownSpanId
  }
  /** A copy: spans are read this way rarely, and written to through `attribute` only. */
  get attributes(): ReadonlyMap<string, unknown> {
    const map = new Map<string, unknown>()
    const shared = this.shared
    if (shared !== undefined) for (let i = 0; i < shared.length; i += 2) map.set(shared[i] as string, shared[i + 1])
    for (let i = 0; i < this.flat.length; i += 2) map.set(this.flat[i] as string, this.flat[i + 1])
    return map
  }
  end(endTime: bigint, exit: Exit.Exit<unknown, unknown>): void {
    if (this.status._tag === "Ended") return
    this.status = { _tag: "Ended", startTime: this.status.startTime, endTime, exit }
    this.exportSpan(this)
  }
  [SharedAttributes.TypeId](shared: ReadonlyArray<unknown>): void {
    if (this.status._tag === "Ended") return
    if (this.shared === undefined && this.flat.length === 0) {
      this.shared = shared
      return
    }
    for (let i = 0; i < shared.length; i += 2) this.attribute(shared[i] as string, shared[i + 1])
  }
  attribute(key: string, value: unknown): void {
    if (this.status._tag === "Ended") return
    const shared = this.shared
    if (shared !== undefined) {
      for (let i = 0; i < shared.length; i += 2) {
        if (shared[i] === key) {
          this.shared = undefined
          this.flat.unshift(...shared)
          break
        }
      }
    }
    const flat = this.flat
    for (let i = 0; i < flat.length; i += 2) {
      if (flat[i] === key) {
        flat[i + 1] = value
        return
      }
    }
    flat.push(key, value)
  }
  event(name: string, startTime: bigint, attributes?: Record<string, unknown>): void {
    if (this.status._tag === "Ended") return
    ;(this.ownEvents ??= []).push([name, startTime, attributes])
  }
  addLinks(links: ReadonlyArray<Tracer.SpanLink>): void {
    if (this.status._tag === "Ended") return
    for (const link of links) this.links.push(link)
  }
}

/** Half a span id (ids are drawn with `Math.random`, as Effect's tracers draw them). */
const randomUint32 = (): number => (Math.random() * 0x100000000) >>> 0

/** A random trace id (never all zeros, which means none). */
const randomTraceId = (): Uint8Array => {
  const bytes = new Uint8Array(16)
  let any = 0
  while (any === 0) {
    for (let i = 0; i < 16; i++) any |= bytes[i] = (Math.random() * 256) | 0
  }
  return bytes
}

/** A span's trace id as bytes: kept by this tracer's spans, from hex (left-padded with zeros) for others. */
const traceIdBytesOf = (span: Tracer.AnySpan): Uint8Array => {
  if (span instanceof ExportedSpan) return span.traceIdBytes()
  const bytes = new Uint8Array(16)
  decodeHex(span.traceId, 16, bytes, 0)
  return bytes
}

/** `size` bytes from hex into `into` at `at`, left-padded with zeros, as Effect's tracer pads trace ids. */
const decodeHex = (hex: string, size: number, into: Uint8Array, at: number): void => {
  const offset = size * 2 - hex.length
  for (let i = 0; i < size; i++) {
    const hi = 2 * i - offset
    into[at + i] = (nibble(hex, hi) << 4) | nibble(hex, hi + 1)
  }
}

const SPAN_KIND: Record<Tracer.SpanKind, number> = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 }
const STATUS_UNSET = 0
const STATUS_OK = 1
const STATUS_ERROR = 2

/** How a span ended, the way Effect's `OtlpTracer` reports it. */
interface Outcome {
  readonly code: number
  readonly message: string | undefined
  readonly interrupted: boolean
  readonly errors: ReadonlyArray<Error>
}

const SUCCEEDED: Outcome = { code: STATUS_OK, message: undefined, interrupted: false, errors: [] }

const outcomeOf = (exit: Exit.Exit<unknown, unknown>): Outcome => {
  if (exit._tag === "Success") return SUCCEEDED
  if (Cause.hasInterruptsOnly(exit.cause)) return { code: STATUS_UNSET, message: undefined, interrupted: true, errors: [] }
  const errors = Cause.prettyErrors(exit.cause, { includeCauseInStack: true })
  return errors.length > 0
    ? { code: STATUS_ERROR, message: errors[0]!.message, interrupted: false, errors }
    : SUCCEEDED
}

/** The `exception` event's attributes for one error. */
const exceptionAttributes = (error: Error): Record<string, unknown> => ({
  "exception.type": error.name,
  "exception.message": error.message,
  "exception.stacktrace": error.stack ?? "No stack trace available"
})

const ended = (span: ExportedSpan) => span.status as Extract<Tracer.SpanStatus, { readonly _tag: "Ended" }>

// ---------------------------------------------------------------------------
// protobuf (opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest)

const VARINT = 0
const FIXED64 = 1
const BYTES = 2

/** An append-only protobuf writer over one buffer that grows and is reused. */
class Writer {
  buf: Uint8Array
  view: DataView
  pos = 0
  constructor(size = 1 << 16) {
    this.buf = new Uint8Array(size)
    this.view = new DataView(this.buf.buffer)
  }

  /** Writes into `buf` from now on. */
  use(buf: Uint8Array): void {
    this.buf = buf
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.pos + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.pos))
    this.use(next)
  }
  /** A non-negative integer below 2^53. */
  varint(n: number): void {
    this.ensure(8)
    while (n > 127) {
      this.buf[this.pos++] = (n % 128) | 128
      n = Math.floor(n / 128)
    }
    this.buf[this.pos++] = n
  }
  /** Any int64, two's complement for negatives. */
  varint64(n: bigint): void {
    let u = BigInt.asUintN(64, n)
    this.ensure(10)
    while (u > 127n) {
      this.buf[this.pos++] = Number(u & 127n) | 128
      u >>= 7n
    }
    this.buf[this.pos++] = Number(u)
  }
  tag(field: number, wire: number): void {
    this.ensure(1)
    this.buf[this.pos++] = (field << 3) | wire
  }
  fixed64(field: number, n: bigint): void {
    this.tag(field, FIXED64)
    this.ensure(8)
    // Wraps modulo 2^64 by itself.
    this.view.setBigUint64(this.pos, n, true)
    this.pos += 8
  }
  double(field: number, n: number): void {
    this.tag(field, FIXED64)
    this.ensure(8)
    this.view.setFloat64(this.pos, n, true)
    this.pos += 8
  }
  string(field: number, s: string): void {
    this.tag(field, BYTES)
    const length = s.length
    if (length < 128) {
      this.ensure(length + 1)
      const start = this.pos + 1
      let i = 0
      for (; i < length; i++) {
        const c = s.charCodeAt(i)
        if (c > 127) break
        this.buf[start + i] = c
      }
      if (i === length) {
        this.buf[this.pos] = length
        this.pos = start + length
        return
      }
    }
    // Encoded in place, after room for the longest length; moved back if the length is shorter.
    const most = length * 3
    const room = varintSize(most)
    // (`varint` below asks for 8 bytes: none may be grown into a new buffer without these.)
    this.ensure(room + most + 8)
    const start = this.pos + room
    const written = textEncoder.encodeInto(s, this.buf.subarray(start, start + most)).written
    const size = varintSize(written)
    if (size < room) this.buf.copyWithin(this.pos + size, start, start + written)
    this.varint(written)
    this.pos += written
  }
  /** `bytes` from hex, left-padded with zeros to `size` bytes, as Effect's tracer pads trace ids. */
  hex(field: number, hex: string, size: number): void {
    this.tag(field, BYTES)
    this.ensure(size + 1)
    this.buf[this.pos++] = size
    decodeHex(hex, size, this.buf, this.pos)
    this.pos += size
  }
  raw(bytes: Uint8Array): void {
    const length = bytes.length
    this.ensure(length)
    if (length > 64) this.buf.set(bytes, this.pos)
    else for (let i = 0; i < length; i++) this.buf[this.pos + i] = bytes[i]!
    this.pos += length
  }
  /**
   * A span's attribute (field 9), the `index`th it sets. The key's encoding
   * is kept at each index, and the whole attribute's while its value stays
   * the same, as an event's type does from span to span; not for an index
   * whose values keep changing (an event's id).
   */
  attribute(index: number, key: string, value: unknown): void {
    let cached = this.attributes[index]
    if (cached === undefined || cached.key !== key) {
      cached = { key, keyBytes: encodedKey(key), value: undefined, bytes: undefined, hits: 0, misses: 0 }
      this.attributes[index] = cached
    } else if (cached.value === value && cached.bytes !== undefined) {
      cached.hits++
      return this.raw(cached.bytes)
    }
    if (typeof value === "string" && this.shortAscii(cached.keyBytes, value)) {
      cached.misses++
      return
    }
    const start = this.pos
    const kv = this.open(9)
    this.raw(cached.keyBytes)
    const any = this.open(2)
    writeAnyValue(this, value)
    this.close(any)
    this.close(kv)
    cached.misses++
    if (typeof value === "object" || (cached.misses > 16 && cached.misses > cached.hits)) return
    cached.value = value
    cached.bytes = this.pos - start < 128 ? this.buf.slice(start, this.pos) : undefined
  }
  /**
   * A KeyValue (field 9) whose value is a short ASCII string (an event's id),
   * its lengths known before it is written; false, writing nothing, for any
   * other string.
   */
  private shortAscii(keyBytes: Uint8Array, value: string): boolean {
    const length = value.length
    const kvLength = keyBytes.length + 4 + length
    if (kvLength > 127) return false
    this.ensure(kvLength + 2)
    const buf = this.buf
    let at = this.pos + 2 + keyBytes.length + 4
    for (let i = 0; i < length; i++) {
      const c = value.charCodeAt(i)
      if (c > 127) return false
      buf[at++] = c
    }
    at = this.pos
    buf[at++] = (9 << 3) | BYTES
    buf[at++] = kvLength
    for (let i = 0; i < keyBytes.length; i++) buf[at++] = keyBytes[i]!
    buf[at++] = (2 << 3) | BYTES
    buf[at++] = length + 2
    buf[at++] = (1 << 3) | BYTES
    buf[at++] = length
    this.pos = at + length
    return true
  }
  private readonly attributes: Array<
    {
      readonly key: string
      readonly keyBytes: Uint8Array
      value: unknown
      bytes: Uint8Array | undefined
      hits: number
      misses: number
    } | undefined
  > = []
  /** Attributes many spans share (the same array each time): encoded once, then copied. */
  shared(shared: ReadonlyArray<unknown>): void {
    if (shared === this.lastShared && this.sharedBytes !== undefined) return this.raw(this.sharedBytes)
    const start = this.pos
    for (let i = 0; i < shared.length; i += 2) writeKeyValue(this, 9, shared[i] as string, shared[i + 1])
    this.lastShared = shared
    this.sharedBytes = this.buf.slice(start, this.pos)
  }
  private lastShared: ReadonlyArray<unknown> | undefined = undefined
  private sharedBytes: Uint8Array | undefined = undefined
  /**
   * A span's trace id, parent span id, name and kind (fields 1, 4, 5, 6: a
   * decoder takes fields in any order), copied from the last span's while
   * its parent, name and kind are the same, as they are for the events of
   * one batch. A root span's trace id is `traceId`.
   */
  header(parent: Tracer.AnySpan | undefined, name: string, kind: Tracer.SpanKind, root?: ExportedSpan): void {
    const last = this.lastHeader
    if (parent !== undefined && last !== undefined && last.parent === parent && last.name === name && last.kind === kind) {
      return this.raw(last.bytes)
    }
    const start = this.pos
    const traceId = parent === undefined ? root!.traceIdBytes() : traceIdBytesOf(parent)
    this.tag(1, BYTES)
    this.ensure(17)
    this.buf[this.pos++] = 16
    this.raw(traceId)
    if (parent instanceof ExportedSpan) {
      parent.drawId()
      this.spanId(4, parent.idHigh, parent.idLow)
    } else if (parent !== undefined) this.hex(4, parent.spanId, 8)
    this.string(5, name)
    this.tag(6, VARINT)
    this.varint(SPAN_KIND[kind] ?? 0)
    this.lastHeader = parent === undefined ? undefined : { parent, name, kind, bytes: this.buf.slice(start, this.pos) }
  }
  private lastHeader:
    | {
      readonly parent: Tracer.AnySpan
      readonly name: string
      readonly kind: Tracer.SpanKind
      readonly bytes: Uint8Array
    }
    | undefined = undefined
  /** A span id from its two halves. */
  spanId(field: number, high: number, low: number): void {
    this.tag(field, BYTES)
    this.ensure(9)
    this.buf[this.pos++] = 8
    this.view.setUint32(this.pos, high, false)
    this.view.setUint32(this.pos + 4, low, false)
    this.pos += 8
  }
  /**
   * Opens a length-delimited field; `close`, told the same `reserved`,
   * writes its length. One byte is reserved, most messages need no more; a
   * span's two, as spans mostly take 128 bytes to 16 KiB (a length of
   * another size moves the message).
   */
  open(field: number, reserved: 1 | 2 = 1): number {
    this.tag(field, BYTES)
    this.ensure(reserved)
    const mark = this.pos
    this.pos += reserved
    return mark
  }
  close(mark: number, reserved: 1 | 2 = 1): void {
    const length = this.pos - mark - reserved
    if (length < 128 && reserved === 1) {
      this.buf[mark] = length
      return
    }
    if (length >= 128 && length < 16384 && reserved === 2) {
      this.buf[mark] = (length & 127) | 128
      this.buf[mark + 1] = length >>> 7
      return
    }
    let size = 1
    for (let n = length; n > 127; n = Math.floor(n / 128)) size++
    if (size > reserved) this.ensure(size - reserved)
    this.buf.copyWithin(mark + size, mark + reserved, this.pos)
    this.pos += size - reserved
    const end = this.pos
    this.pos = mark
    this.varint(length)
    this.pos = end
  }
}

const textEncoder = new TextEncoder()

const keys = new Writer(256)

/** An attribute's key (field 1 of a KeyValue), encoded. */
const encodedKey = (key: string): Uint8Array => {
  keys.pos = 0
  keys.string(1, key)
  return keys.buf.slice(0, keys.pos)
}

/** The bytes of `n` as a varint. */
const varintSize = (n: number): number => {
  let size = 1
  for (; n > 127; n = Math.floor(n / 128)) size++
  return size
}

const nibble = (hex: string, i: number): number => {
  if (i < 0) return 0
  const c = hex.charCodeAt(i)
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 97 && c <= 102) return c - 87
  if (c >= 65 && c <= 70) return c - 55
  return 0
}

const INT64_BOUND = 2 ** 63

/** An `AnyValue`, with the types Effect's `OtlpResource.unknownToAttributeValue` gives. */
const writeAnyValue = (w: Writer, value: unknown): void => {
  switch (typeof value) {
    case "string":
      return w.string(1, value)
    case "boolean":
      w.tag(2, VARINT)
      return w.varint(value ? 1 : 0)
    case "number":
      if (Number.isInteger(value) && value >= -INT64_BOUND && value < INT64_BOUND) {
        w.tag(3, VARINT)
        return value >= 0 && value <= Number.MAX_SAFE_INTEGER ? w.varint(value) : w.varint64(BigInt(value))
      }
      return w.double(4, value)
    case "bigint":
      if (BigInt.asIntN(64, value) !== value) return w.string(1, String(value))
      w.tag(3, VARINT)
      return w.varint64(value)
  }
  if (Array.isArray(value)) {
    const array = w.open(5)
    for (const item of value) {
      const any = w.open(1)
      writeAnyValue(w, item)
      w.close(any)
    }
    return w.close(array)
  }
  w.string(1, Formatter.format(value))
}

const writeKeyValue = (w: Writer, field: number, key: string, value: unknown): void => {
  const kv = w.open(field)
  w.string(1, key)
  const any = w.open(2)
  writeAnyValue(w, value)
  w.close(any)
  w.close(kv)
}

const writeRecord = (w: Writer, field: number, record: Readonly<Record<string, unknown>> | undefined): void => {
  if (record === undefined) return
  for (const key in record) writeKeyValue(w, field, key, record[key])
}

const writeSpan = (w: Writer, span: ExportedSpan): void => {
  const status = ended(span)
  const outcome = outcomeOf(status.exit)
  const mark = w.open(2, 2)
  const parent = span.parent._tag === "Some" ? span.parent.value : undefined
  w.header(parent, span.name, span.kind, span)
  span.drawId()
  w.spanId(2, span.idHigh, span.idLow)
  w.fixed64(7, status.startTime)
  w.fixed64(8, status.endTime)
  if (span.shared !== undefined) w.shared(span.shared)
  const flat = span.flat
  for (let i = 0; i < flat.length; i += 2) w.attribute(i >> 1, flat[i] as string, flat[i + 1])
  if (outcome.interrupted) writeKeyValue(w, 9, "effect.fiber.interrupted", true)
  if (span.ownEvents !== undefined) {
    for (const [name, time, attributes] of span.ownEvents) writeEvent(w, name, time, attributes)
  }
  for (const error of outcome.errors) writeEvent(w, "exception", status.endTime, exceptionAttributes(error))
  for (const link of span.links) writeLink(w, link.span, link.attributes)
  if (outcome === SUCCEEDED) {
    w.raw(STATUS_OK_BYTES)
    return w.close(mark, 2)
  }
  const s = w.open(15)
  if (outcome.message !== undefined) w.string(2, outcome.message)
  if (outcome.code !== STATUS_UNSET) {
    w.tag(3, VARINT)
    w.varint(outcome.code)
  }
  w.close(s)
  w.close(mark, 2)
}

/** A span recorded whole once it ended: as `writeSpan` writes a span that succeeded. */
const writeEndedSpan = (w: Writer, span: SpanRecorder.EndedSpan): void => {
  const mark = w.open(2, 2)
  w.header(span.parent, span.name, span.kind)
  let high = 0
  let low = 0
  while (high === 0 && low === 0) {
    high = randomUint32()
    low = randomUint32()
  }
  w.spanId(2, high, low)
  w.fixed64(7, span.startTime)
  w.fixed64(8, span.endTime)
  w.shared(span.shared)
  const attributes = span.attributes
  for (let i = 0; i < attributes.length; i += 2) w.attribute(i >> 1, attributes[i] as string, attributes[i + 1])
  if (span.link !== undefined) writeLink(w, span.link, undefined)
  w.raw(STATUS_OK_BYTES)
  w.close(mark, 2)
}

const writeLink = (w: Writer, span: Tracer.AnySpan, attributes: Readonly<Record<string, unknown>> | undefined) => {
  const l = w.open(13)
  w.hex(1, span.traceId, 16)
  w.hex(2, span.spanId, 8)
  writeRecord(w, 4, attributes)
  w.close(l)
}

/** `status` (field 15) with code OK. */
const STATUS_OK_BYTES = new Uint8Array([(15 << 3) | BYTES, 2, (3 << 3) | VARINT, STATUS_OK])

const writeEvent = (w: Writer, name: string, time: bigint, attributes: Readonly<Record<string, unknown>> | undefined) => {
  const e = w.open(11)
  w.fixed64(1, time)
  w.string(2, name)
  writeRecord(w, 3, attributes)
  w.close(e)
}

interface Resource {
  readonly attributes: ReadonlyArray<{ readonly key: string; readonly value: unknown }>
}
interface Scope {
  readonly name: string
  readonly version: string
}

/**
 * The encoder of protobuf bodies; the resource and scope are encoded once.
 * Spans are encoded as they end, so that they die young instead of waiting
 * for their batch, into a buffer that becomes the body as it is: room for
 * the envelope is kept at its start. A buffer sent is written to again only
 * once no export is under way; until then spans go to another.
 */
const protobufEncoder = (resource: OtlpResource.Resource, scope: Scope) => {
  const w = new Writer()
  const r = w.open(1)
  for (const { key, value } of (resource as Resource).attributes) {
    // The resource's values are in OTLP's JSON form already.
    const kv = w.open(1)
    w.string(1, key)
    const any = w.open(2)
    writeOtlpValue(w, value as OtlpAnyValue)
    w.close(any)
    w.close(kv)
  }
  w.close(r)
  const resourceBytes = w.buf.slice(0, w.pos)
  w.pos = 0
  const s = w.open(1)
  w.string(1, scope.name)
  w.string(2, scope.version)
  w.close(s)
  const scopeBytes = w.buf.slice(0, w.pos)
  // The envelope: two tags and two lengths (five bytes at most each) around these.
  const envelope = resourceBytes.length + scopeBytes.length + 12
  const spans = new Writer()
  spans.pos = envelope
  let count = 0
  let bodies = 0
  // The buffer of the request under way, if any, and one to fill next.
  let sending: Uint8Array | undefined = undefined
  let spare: Uint8Array | undefined = undefined
  return {
    count: (): number => count,
    /** Bodies made so far. */
    bodies: (): number => bodies,
    /** Drops what is encoded. */
    drop: (): void => {
      spans.pos = envelope
      count = 0
    },
    add: (span: ExportedSpan): void => {
      count++
      writeSpan(spans, span)
    },
    record: (span: SpanRecorder.EndedSpan): void => {
      count++
      writeEndedSpan(spans, span)
    },
    /** The request of the last body is over: its buffer can be written to again. */
    sent: (): void => {
      if (sending !== undefined) spare = sending
      sending = undefined
    },
    body: (): HttpBody.HttpBody => {
      // The envelope's tags and lengths, written right before the spans.
      const length = spans.pos - envelope
      const scopeSpans = scopeBytes.length + length
      const resourceSpans = resourceBytes.length + 1 + varintSize(scopeSpans) + scopeSpans
      const start = envelope - (1 + varintSize(resourceSpans) + resourceBytes.length + 1 + varintSize(scopeSpans) +
        scopeBytes.length)
      const end = spans.pos
      spans.pos = start
      spans.tag(1, BYTES)
      spans.varint(resourceSpans)
      spans.raw(resourceBytes)
      spans.tag(2, BYTES)
      spans.varint(scopeSpans)
      spans.raw(scopeBytes)
      const body = spans.buf.subarray(start, end)
      // The exporter's final flush may come while a request is under way: that buffer is left alone.
      if (sending === undefined) sending = spans.buf
      spans.use(spare ?? new Uint8Array(spans.buf.length))
      spare = undefined
      spans.pos = envelope
      count = 0
      bodies++
      return HttpBody.uint8Array(body, "application/x-protobuf")
    }
  }
}

type ProtobufEncoder = ReturnType<typeof protobufEncoder>

interface OtlpAnyValue {
  readonly stringValue?: string
  readonly boolValue?: boolean
  readonly intValue?: number | string
  readonly doubleValue?: number
  readonly arrayValue?: { readonly values: ReadonlyArray<OtlpAnyValue> }
}

/** A resource attribute's value, already in OTLP's JSON form. */
const writeOtlpValue = (w: Writer, value: OtlpAnyValue): void => {
  if (value.stringValue !== undefined) return w.string(1, value.stringValue)
  if (value.boolValue !== undefined) return writeAnyValue(w, value.boolValue)
  if (value.intValue !== undefined) {
    w.tag(3, VARINT)
    return w.varint64(BigInt(value.intValue))
  }
  if (value.doubleValue !== undefined) return w.double(4, value.doubleValue)
  if (value.arrayValue !== undefined) {
    const array = w.open(5)
    for (const item of value.arrayValue.values) {
      const any = w.open(1)
      writeOtlpValue(w, item)
      w.close(any)
    }
    w.close(array)
  }
}

// ---------------------------------------------------------------------------
// JSON, the objects Effect's `OtlpTracer` makes

const jsonEncoder = (resource: OtlpResource.Resource, scope: Scope) => (spans: ReadonlyArray<ExportedSpan>): HttpBody.HttpBody => {
  const data = { resourceSpans: [{ resource, scopeSpans: [{ scope, spans: spans.map(jsonSpan) }] }] }
  const json = JSON.stringify(data)
  // OTLP/JSON writes NaN and Infinity as strings; JSON.stringify writes null.
  return HttpBody.text(json.includes("null") ? JSON.stringify(data, nonFiniteToString) : json, "application/json")
}

const nonFiniteToString = (_key: string, value: unknown) =>
  typeof value === "number" && !Number.isFinite(value) ? String(value) : value

const jsonAttributes = (entries: Iterable<readonly [string, unknown]>) => {
  const attributes: Array<{ key: string; value: unknown }> = []
  for (const [key, value] of entries) attributes.push({ key, value: OtlpResource.unknownToAttributeValue(value) })
  return attributes
}

const jsonSpan = (span: ExportedSpan) => {
  const status = ended(span)
  const outcome = outcomeOf(status.exit)
  const attributes = jsonAttributes(span.attributes)
  if (outcome.interrupted) attributes.push({ key: "effect.fiber.interrupted", value: { boolValue: true } })
  const jsonEvent = (name: string, time: bigint, record: Readonly<Record<string, unknown>> | undefined) => ({
    name,
    timeUnixNano: String(time),
    attributes: record === undefined ? [] : jsonAttributes(Object.entries(record)),
    droppedAttributesCount: 0
  })
  const events = (span.ownEvents ?? []).map(([name, time, record]) => jsonEvent(name, time, record))
  for (const error of outcome.errors) events.push(jsonEvent("exception", status.endTime, exceptionAttributes(error)))
  return {
    traceId: span.traceId.padStart(32, "0"),
    spanId: span.spanId,
    parentSpanId: span.parent._tag === "Some" ? span.parent.value.spanId : undefined,
    name: span.name,
    kind: SPAN_KIND[span.kind],
    startTimeUnixNano: String(status.startTime),
    endTimeUnixNano: String(status.endTime),
    attributes,
    droppedAttributesCount: 0,
    events,
    droppedEventsCount: 0,
    status: outcome.message === undefined ? { code: outcome.code } : { code: outcome.code, message: outcome.message },
    links: span.links.map((link) => ({
      traceId: link.span.traceId.padStart(32, "0"),
      spanId: link.span.spanId,
      attributes: jsonAttributes(Object.entries(link.attributes)),
      droppedAttributesCount: 0
    })),
    droppedLinksCount: 0
  }
}

// ---------------------------------------------------------------------------
// configuration from the standard variables, as Effect's `OtlpTracer.layerFromConfig` reads them

const headersRecord = (name: string) => Config.Record(Schema.String, Schema.StringFromUriComponent, name)
const exporterList = (name: string) =>
  Config.Array(Schema.String, name).pipe(
    Config.map((names) => names.map((n) => n.toLowerCase().trim()).filter((n) => n !== "")),
    Config.withDefault<ReadonlyArray<string>>([])
  )

/**
 * The layer the `OTEL_*` variables describe; without an endpoint, or with
 * `OTEL_SDK_DISABLED`, only a `Flusher` with nothing to flush.
 */
export const layerFromConfig = (options: {
  readonly resource: Options["resource"]
  readonly protocol?: Protocol | undefined
}): Layer.Layer<OtlpExporter.Flusher, never, HttpClient.HttpClient> =>
  Layer.unwrap(Effect.gen(function*() {
    const env = yield* Config.all({
      disabled: Config.Boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false)),
      endpoint: Config.URL("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").pipe(
        Config.orElse(() =>
          Config.URL("OTEL_EXPORTER_OTLP_ENDPOINT").pipe(Config.map((url) => {
            url.pathname += `${url.pathname.endsWith("/") ? "" : "/"}v1/traces`
            return url
          }))
        ),
        Config.option
      ),
      exporters: exporterList("OTEL_TRACES_EXPORTER"),
      headers: headersRecord("OTEL_EXPORTER_OTLP_TRACES_HEADERS").pipe(
        Config.orElse(() => headersRecord("OTEL_EXPORTER_OTLP_HEADERS")),
        Config.option
      ),
      protocol: Config.Literals(["http/protobuf", "http/json"], "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").pipe(
        Config.orElse(() => Config.Literals(["http/protobuf", "http/json"], "OTEL_EXPORTER_OTLP_PROTOCOL")),
        Config.option
      ),
      compression: Config.Literals(["gzip", "none"], "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION").pipe(
        Config.orElse(() => Config.Literals(["gzip", "none"], "OTEL_EXPORTER_OTLP_COMPRESSION")),
        Config.withDefault("none" as const)
      ),
      timeout: Config.Int("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT").pipe(
        Config.orElse(() => Config.Int("OTEL_EXPORTER_OTLP_TIMEOUT")),
        Config.orElse(() => Config.Int("OTEL_BSP_EXPORT_TIMEOUT")),
        Config.option
      ),
      scheduleDelay: Config.option(Config.Int("OTEL_BSP_SCHEDULE_DELAY")),
      maxBatchSize: Config.option(Config.Int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"))
    })
    if (env.disabled || Option.isNone(env.endpoint) || !env.exporters.includes("otlp")) return OtlpExporter.layerFlusher
    return layer({
      url: env.endpoint.value.toString(),
      resource: options.resource,
      protocol: options.protocol ?? Option.getOrElse(env.protocol, () => "http/protobuf" as const),
      headers: Option.getOrUndefined(env.headers),
      compression: env.compression,
      exportInterval: Option.getOrUndefined(Option.map(env.scheduleDelay, Duration.millis)),
      maxBatchSize: Option.getOrUndefined(env.maxBatchSize),
      shutdownTimeout: Option.getOrUndefined(Option.map(env.timeout, Duration.millis))
    })
  }).pipe(Effect.orDie))
