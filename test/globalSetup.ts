/**
 * Starts one throwaway PostgreSQL cluster for the whole test run (unless
 * PGQ_DATABASE_URL points at a database) and stops it at the end.
 */
import { NodeServices } from "@effect/platform-node"
import { Effect, Exit, Scope } from "effect"
import type { TestProject } from "vitest/node"
import * as ThrowawayPostgres from "../src/testing/ThrowawayPostgres.ts"

declare module "vitest" {
  export interface ProvidedContext {
    /** A database with the pgq extension. */
    readonly pgqDatabaseUrl: string
    /** A database without it, or "" when the tests run against PGQ_DATABASE_URL. */
    readonly plainDatabaseUrl: string
  }
}

export default async function setup(project: TestProject) {
  const configured = process.env["PGQ_DATABASE_URL"]
  if (configured !== undefined && configured !== "") {
    project.provide("pgqDatabaseUrl", configured)
    project.provide("plainDatabaseUrl", process.env["PGQ_PLAIN_DATABASE_URL"] ?? "")
    return
  }
  const scope = Scope.makeUnsafe()
  const urls = await Effect.runPromise(
    Effect.gen(function*() {
      const cluster = yield* ThrowawayPostgres.start()
      return {
        pgq: yield* cluster.createDatabase("effect_pgq_test"),
        plain: yield* cluster.createDatabase("effect_pgq_plain", { pgq: false })
      }
    }).pipe(Scope.provide(scope), Effect.provide(NodeServices.layer))
  )
  project.provide("pgqDatabaseUrl", urls.pgq)
  project.provide("plainDatabaseUrl", urls.plain)
  return () => Effect.runPromise(Scope.close(scope, Exit.void))
}
