/**
 * The web console on its own HTTP server, as `effect-pgq console` runs it:
 * loopback (127.0.0.1) by default, on port 7788 unless told otherwise.
 *
 * ```ts
 * import { Console, Effect, Redacted } from "effect"
 * import { ConsoleServer } from "effect-pgq"
 *
 * // With PgqServices.layer and a PgClient provided:
 * const program = Effect.gen(function*() {
 *   const running = yield* ConsoleServer.serve({ port: 7788 })
 *   yield* Console.log(`open ${running.url}`)
 *   yield* Console.log(`token: ${Redacted.value(running.handler.token)}`)
 *   return yield* Effect.never
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.2.0
 */
import { Data, Effect, type Scope } from "effect"
import type { SqlClient } from "effect/sql"
import * as Http from "node:http"
import type { EventStatus } from "../api/EventStatus.ts"
import type { FailedEvents } from "../api/FailedEvents.ts"
import type { Pgq } from "../api/Pgq.ts"
import * as ConsoleHandler from "./ConsoleHandler.ts"
import { type ConsoleTokenError, isLoopback, makeToken } from "./Security.ts"

/**
 * The port `effect-pgq console` listens on by default.
 *
 * @since 0.2.0
 * @category constants
 */
export const DEFAULT_PORT = 7788

/**
 * @since 0.2.0
 * @category models
 */
export interface ServeOptions extends ConsoleHandler.ConsoleOptions {
  /**
   * Default 127.0.0.1. Another address exposes the console beyond this
   * machine: every page and read needs the token then, as actions do; put
   * TLS in front.
   */
  readonly host?: string | undefined
  /** Default 7788; 0 picks a free port. */
  readonly port?: number | undefined
}

/**
 * @since 0.2.0
 * @category models
 */
export interface RunningConsole {
  /** `host:port` it listens on (the real port when 0 was asked). */
  readonly address: string
  /** The address to open, with the token (see `ConsoleHandler.url`). */
  readonly url: string
  readonly handler: ConsoleHandler.ConsoleHandler
}

/**
 * The console could not listen (a port in use, an address not of this machine).
 *
 * @since 0.2.0
 * @category errors
 */
export class ConsoleListenError extends Data.TaggedError("ConsoleListenError")<{
  readonly address: string
  readonly reason: string
}> {
  override get message(): string {
    return `console on ${this.address}: ${this.reason}`
  }
}

/**
 * A `token` too short (`Security.MIN_TOKEN_LENGTH`).
 *
 * @since 0.2.0
 * @category errors
 */
export { ConsoleTokenError } from "./Security.ts"

const urlHost = (host: string) => host.includes(":") && !host.startsWith("[") ? `[${host}]` : host

/**
 * Serves the console until the scope closes; a `token` shorter than 16
 * characters is refused with `ConsoleTokenError`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const serve = (
  options: ServeOptions = {}
): Effect.Effect<
  RunningConsole,
  ConsoleListenError | ConsoleTokenError,
  Scope.Scope | Pgq | FailedEvents | EventStatus | SqlClient.SqlClient
> =>
  Effect.gen(function*() {
    const host = options.host ?? "127.0.0.1"
    const port = options.port ?? DEFAULT_PORT
    const token = yield* makeToken(options.token)
    const handler = yield* ConsoleHandler.make({ ...options, token, loopbackOnly: options.loopbackOnly ?? isLoopback(host) })
    // Logged with the caller's logger, as the handler logs.
    const context = yield* Effect.context<never>()
    const server = Http.createServer((request, response) => {
      const path = new URL(request.url ?? "/", "http://localhost").pathname
      if (handler.handles(path)) return handler.handle(request, response)
      response.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found\n")
    })
    const address = yield* Effect.acquireRelease(
      Effect.callback<string, ConsoleListenError>((resume) => {
        server.once("error", (error) =>
          resume(Effect.fail(new ConsoleListenError({ address: `${urlHost(host)}:${port}`, reason: error.message }))))
        server.listen(port, host, () => {
          server.on("error", (error) => Effect.runForkWith(context)(Effect.logError(`console: ${error.message}`)))
          const bound = server.address()
          resume(Effect.succeed(
            typeof bound === "string" || bound === null ? `${urlHost(host)}:${port}` : `${urlHost(host)}:${bound.port}`
          ))
        })
      }),
      () =>
        Effect.callback<void>((resume) => {
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )
    return { address, url: handler.url(`http://${address}`), handler }
  })
