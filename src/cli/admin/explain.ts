/**
 * Turns a failure into the one line the command line prints: what failed,
 * on which object, and what to do about it. Database failures are read by
 * SQLSTATE (or by the socket's error code when no server answered), so a
 * wrong password, a missing database or a port that is not PostgreSQL each
 * get their own advice.
 *
 * @since 0.2.0
 */
import { Predicate } from "effect"
import { isPgqError, type PgqError, type PgqSqlError } from "../../api/PgqError.ts"
import { CliFailure } from "./CliFailure.ts"
import { quote } from "./Output.ts"

/**
 * @since 0.2.0
 * @category models
 */
export interface Explained {
  readonly message: string
  readonly exitCode: number
}

/** Failures of the daemon commands a user fixes by reading them. */
const DAEMON_ERRORS: ReadonlySet<unknown> = new Set([
  "DaemonConfigError",
  "DaemonAlreadyRunning",
  "DaemonNotRunning",
  "DaemonControlError",
  "PidfileError",
  "ControlEndpointError",
  "LogFileError"
])

/** `code` properties along an error's `cause` chain: SQLSTATEs and socket codes (ECONNREFUSED). */
const codesOf = (error: unknown): ReadonlyArray<string> => {
  const codes: Array<string> = []
  let current: unknown = error
  for (let depth = 0; depth < 6 && Predicate.isObject(current); depth++) {
    if (Predicate.hasProperty(current, "code") && Predicate.isString(current.code)) codes.push(current.code)
    if (Predicate.hasProperty(current, "reason") && Predicate.isObject(current.reason)) {
      current = current.reason
    } else {
      current = Predicate.hasProperty(current, "cause") ? current.cause : undefined
    }
  }
  return codes
}

const CONNECTION_HELP = "check --db, $PGQ_DATABASE_URL or PGHOST/PGPORT"

/** A failure to reach or log in to the server, or a privilege the role lacks. */
const explainSql = (error: PgqSqlError): string => {
  const detail = error.detail
  const codes = codesOf(error.cause)
  switch (error.sqlState) {
    case "42501":
      if (/create extension/i.test(detail) || /extension "?pgq/i.test(detail)) {
        return "creating the pgq extension needs a superuser; ask one to run CREATE EXTENSION pgq in this database, then run effect-pgq install again"
      }
      if (/for database/i.test(detail)) {
        return `${detail}; installing effect-pgq's schema needs the CREATE privilege on the database (GRANT CREATE ON DATABASE … TO <role>) or a superuser`
      }
      return `${detail}; connect as a role with that privilege (the object's owner or a superuser)`
    case "28P01":
      return `${detail}; check the password in --db, $PGQ_DATABASE_URL or $PGPASSWORD`
    case "28000":
      return `${detail}; check the user name, or ask the server's administrator to allow this login (pg_hba.conf)`
    case "3D000":
      return `${detail}; check the database name in --db or $PGQ_DATABASE_URL (or create it with createdb)`
    case "57P03":
      return `${detail}; the server is starting up or shutting down, try again shortly`
    case "53300":
      return `${detail}; the server has no free connection, try again later`
    case "25006":
      return `${detail}; connect to the primary server, not a read-only standby`
  }
  if (error.sqlState !== undefined) return `${error.operation}: ${detail} (SQLSTATE ${error.sqlState})`
  if (codes.includes("ECONNREFUSED")) {
    return `cannot connect to PostgreSQL: ${detail.replace(/^connect /, "")}; is the server running on that host and port? ${CONNECTION_HELP}`
  }
  if (codes.includes("ENOTFOUND") || codes.includes("EAI_AGAIN")) {
    return `cannot connect to PostgreSQL: unknown host (${detail}); ${CONNECTION_HELP}`
  }
  if (codes.includes("EHOSTUNREACH") || codes.includes("ENETUNREACH") || codes.includes("ETIMEDOUT")) {
    return `cannot connect to PostgreSQL: ${detail}; ${CONNECTION_HELP}`
  }
  if (codes.includes("ENOENT") && /\.s\.PGSQL/.test(detail)) {
    return `cannot connect to PostgreSQL: no server socket at that path (${detail}); ${CONNECTION_HELP}`
  }
  if (/timed out/i.test(detail)) {
    return `cannot connect to PostgreSQL: no answer in time (${detail}); is the host and port right? ${CONNECTION_HELP}`
  }
  if (/exceeds maxMessageSize|unexpected (message|byte|response)|protocol|invalid (message|response)/i.test(detail)) {
    return `the server does not speak PostgreSQL's protocol (${detail}); is the port right? ${CONNECTION_HELP}`
  }
  if (/SSL|TLS/i.test(detail)) return `cannot connect to PostgreSQL: ${detail}; check sslmode in the URL`
  if (/connection|socket|ECONNRESET|EPIPE/i.test(detail) || codes.includes("ECONNRESET")) {
    return `lost the connection to PostgreSQL: ${detail}; ${CONNECTION_HELP}`
  }
  return `${error.operation}: ${detail}`
}

const explainPgq = (error: PgqError): string => {
  switch (error._tag) {
    case "PgqNotInstalled":
      return /effect_pgq/.test(error.detail)
        ? "effect-pgq's schema is not installed in this database; run effect-pgq install"
        : "the pgq extension is not installed in this database; run effect-pgq install"
    case "QueueNotFound":
      return `queue ${quote(error.queue)} does not exist; effect-pgq status lists the queues, effect-pgq create-queue creates one`
    case "ConsumerNotRegistered":
      return `consumer ${quote(error.consumer)} is not registered on queue ${
        quote(error.queue)
      }; effect-pgq status lists the consumers, effect-pgq register adds one`
    case "FailedEventNotFound":
      return `no failed event ${error.eventId} for consumer ${quote(error.consumer)} on queue ${
        quote(error.queue)
      }; effect-pgq failed lists them`
    case "QueueHasConsumers":
      return `queue ${
        quote(error.queue)
      } still has registered consumers; unregister them first, or drop it with --force (their positions are lost)`
    case "InvalidName":
      return error.message
    case "InvalidArgument":
      return `invalid ${error.argument}: ${error.reason}`
    case "PgqSqlError":
      return explainSql(error)
    case "BatchNotFound":
    case "EventNotFound":
      return error.message
  }
}

/**
 * The line and exit code for a failure, or `undefined` for one nobody
 * anticipated (the caller then says so and offers `--debug`).
 *
 * @since 0.2.0
 * @category explaining
 */
export const explain = (error: unknown): Explained | undefined => {
  if (error instanceof CliFailure) return { message: error.message, exitCode: error.exitCode }
  if (isPgqError(error)) return { message: explainPgq(error), exitCode: 1 }
  if (
    Predicate.hasProperty(error, "_tag") && DAEMON_ERRORS.has(error._tag) && Predicate.hasProperty(error, "message") &&
    Predicate.isString(error.message)
  ) {
    return { message: error.message, exitCode: 1 }
  }
  return undefined
}
