/**
 * What keeps the console's actions for the operator: a token sent in the
 * `Authorization` header by the page's script (a browser never adds it by
 * itself, unlike a cookie, so another site cannot make a visitor's browser
 * act), requests from another origin refused by `Origin` and
 * `Sec-Fetch-Site`, a `Host` check against DNS rebinding on a loopback
 * listener, and a Content-Security-Policy that runs no inline script. A
 * console reachable beyond this machine needs the token for reading too
 * (`checkRead`): its pages show failed events' payloads.
 *
 * @since 0.2.0
 */
import { Data, Effect, Redacted } from "effect"
import * as Crypto from "node:crypto"
import type * as Http from "node:http"

/**
 * The headers of every console response. `script-src 'self'` with no
 * `'unsafe-inline'`: markup that slipped into a page could not run.
 *
 * @since 0.2.0
 * @category constants
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'"
  ].join("; "),
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-resource-policy": "same-origin",
  "cache-control": "no-store"
}

/**
 * A fresh token: 24 random bytes, URL-safe.
 *
 * @since 0.2.0
 * @category constructors
 */
export const generateToken = (): Redacted.Redacted<string> =>
  Redacted.make(Crypto.randomBytes(24).toString("base64url"))

/**
 * The shortest token the console takes, as the daemon's config: a short one
 * could be guessed by trying.
 *
 * @since 0.2.0
 * @category constants
 */
export const MIN_TOKEN_LENGTH = 16

/**
 * A token given to the console is too short.
 *
 * @since 0.2.0
 * @category errors
 */
export class ConsoleTokenError extends Data.TaggedError("ConsoleTokenError")<{
  readonly length: number
}> {
  override get message(): string {
    return `the console's token must have at least ${MIN_TOKEN_LENGTH} characters, got ${this.length}`
  }
}

/**
 * The token to use: the one given, when long enough, else a fresh one.
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeToken = (
  given: string | Redacted.Redacted<string> | undefined
): Effect.Effect<Redacted.Redacted<string>, ConsoleTokenError> => {
  if (given === undefined) return Effect.sync(generateToken)
  const token = Redacted.isRedacted(given) ? given : Redacted.make(given)
  const length = Redacted.value(token).length
  return length >= MIN_TOKEN_LENGTH ? Effect.succeed(token) : Effect.fail(new ConsoleTokenError({ length }))
}

/** Compares in constant time: hashing first gives both sides one length. */
const sameToken = (given: string, expected: Redacted.Redacted<string>): boolean =>
  Crypto.timingSafeEqual(
    Crypto.createHash("sha256").update(given).digest(),
    Crypto.createHash("sha256").update(Redacted.value(expected)).digest()
  )

const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]", "::1"])

/**
 * Whether a listener's address is loopback only.
 *
 * @since 0.2.0
 * @category utils
 */
export const isLoopback = (host: string): boolean =>
  LOOPBACK_HOSTS.has(host) || host.startsWith("127.") || host === "0:0:0:0:0:0:0:1"

const hostnameOf = (hostHeader: string): string => {
  const bracketed = /^\[[^\]]*\]/.exec(hostHeader)
  if (bracketed !== null) return bracketed[0]
  return hostHeader.replace(/:\d*$/, "")
}

/**
 * A refused request: the status and one line saying why.
 *
 * @since 0.2.0
 * @category models
 */
export interface Refusal {
  readonly status: 400 | 401 | 403 | 415 | 421
  readonly reason: string
}

/**
 * On a loopback listener, the `Host` must be a loopback name: a page of
 * another site whose name was pointed at 127.0.0.1 (DNS rebinding) is
 * refused, even for reading.
 *
 * @since 0.2.0
 * @category checks
 */
export const checkHost = (request: Http.IncomingMessage, loopbackOnly: boolean): Refusal | undefined => {
  if (!loopbackOnly) return undefined
  const host = request.headers.host
  if (host === undefined || !isLoopback(hostnameOf(host.toLowerCase()))) {
    return { status: 421, reason: "this console answers only to a loopback host name (localhost, 127.0.0.1, [::1])" }
  }
  return undefined
}

const header = (request: Http.IncomingMessage, name: string): string | undefined => {
  const value = request.headers[name]
  return Array.isArray(value) ? value[0] : value
}

/** The token as `Authorization: Bearer <token>`; `needed` says for what, when it is missing. */
const checkBearer = (
  request: Http.IncomingMessage,
  token: Redacted.Redacted<string>,
  needed: string
): Refusal | undefined => {
  const authorization = header(request, "authorization")
  const given = authorization === undefined ? undefined : /^Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1]
  if (given === undefined) return { status: 401, reason: `${needed} needs the console's token (Authorization: Bearer <token>)` }
  return sameToken(given, token) ? undefined : { status: 401, reason: "wrong token" }
}

/**
 * The check of a read on a console reachable beyond this machine: the token
 * as `Authorization: Bearer <token>`, as for an action. Another site's page
 * cannot send that header here (it would need CORS, which the console never
 * grants), nor read what comes back.
 *
 * @since 0.2.0
 * @category checks
 */
export const checkRead = (request: Http.IncomingMessage, token: Redacted.Redacted<string>): Refusal | undefined =>
  checkBearer(request, token, "reading this console")

/**
 * The checks of an action (a POST that changes the database): same origin,
 * a JSON body, and the token as `Authorization: Bearer <token>`.
 *
 * @since 0.2.0
 * @category checks
 */
export const checkAction = (request: Http.IncomingMessage, token: Redacted.Redacted<string>): Refusal | undefined => {
  const site = header(request, "sec-fetch-site")
  if (site !== undefined && site !== "same-origin" && site !== "none") {
    return { status: 403, reason: `cross-site request refused (Sec-Fetch-Site: ${site})` }
  }
  const origin = header(request, "origin")
  const host = header(request, "host")
  if (origin !== undefined && (host === undefined || (origin !== `http://${host}` && origin !== `https://${host}`))) {
    return { status: 403, reason: "cross-origin request refused (Origin is not this console)" }
  }
  const refused = checkBearer(request, token, "this action")
  if (refused !== undefined) return refused
  const type = header(request, "content-type")
  if (type === undefined || type.split(";")[0]!.trim().toLowerCase() !== "application/json") {
    return { status: 415, reason: "send the action as application/json" }
  }
  return undefined
}
