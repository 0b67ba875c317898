/**
 * A local OTLP/HTTP receiver for the benchmarks: it reads each request's
 * body, counts its bytes and answers 200, so the exporter's whole cost
 * (serialising, sending) is in the measurement, and little of the receiver's.
 */
import { Effect } from "effect"
import * as Http from "node:http"

export interface OtlpSink {
  readonly url: string
  /** Bytes of span data received so far. */
  readonly traceBytes: () => number
}

export const make = Effect.acquireRelease(
  Effect.callback<{ readonly sink: OtlpSink; readonly server: Http.Server }>((resume) => {
    let traceBytes = 0
    const server = Http.createServer((request, response) => {
      const traces = request.url === "/v1/traces"
      request.on("data", (chunk: Buffer) => {
        if (traces) traceBytes += chunk.length
      })
      request.on("end", () => {
        response.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      resume(Effect.succeed({ server, sink: { url: `http://127.0.0.1:${port}`, traceBytes: () => traceBytes } }))
    })
  }),
  ({ server }) =>
    Effect.callback<void>((resume) => {
      server.close(() => resume(Effect.void))
      server.closeAllConnections()
    })
).pipe(Effect.map(({ sink }) => sink))
