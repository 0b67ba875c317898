/**
 * `effect-pgq insert`: one event from flags, or many from JSON lines (a file,
 * or stdin) through the bulk producer. Every line is checked before anything
 * is inserted, and the events go in one transaction: a bad line names its
 * number and nothing of the input is inserted.
 *
 * A line is `{"type": "...", "data": ..., "extra1": "..."}`: `type` is
 * required; `data` is kept as is when it is a string and written as JSON
 * text otherwise; `extra1` to `extra4` are optional strings.
 *
 * With `OTEL_EXPORTER_OTLP_ENDPOINT` set, the `send` span goes out over OTLP
 * and the events carry its traceparent (`Tracing`).
 *
 * @since 0.2.0
 */
import { Console, Effect, FileSystem, Option, Result, Schema, Stdio, Stream } from "effect"
import { Command, Flag } from "effect/cli"
import type { NewEvent } from "../../api/Pgq.ts"
import { Producer } from "../../api/Producer.ts"
import { queue } from "../flags.ts"
import { withOtlpFromEnv } from "../Tracing.ts"
import { failure, usage } from "./CliFailure.ts"
import { withDatabase } from "./Connection.ts"
import { quote } from "./Output.ts"

const Extra = Schema.optional(Schema.NullOr(Schema.String))

/**
 * One line of the input.
 *
 * @since 0.2.0
 * @category models
 */
export const EventLine = Schema.Struct({
  type: Schema.String,
  data: Schema.optional(Schema.Unknown),
  extra1: Extra,
  extra2: Extra,
  extra3: Extra,
  extra4: Extra
})

const decodeLine = Schema.decodeUnknownResult(Schema.fromJsonString(EventLine))

/**
 * The events of JSON-lines text (blank lines skipped), or the first bad
 * line's number and what is wrong with it.
 *
 * @since 0.2.0
 * @category parsing
 */
export const parseLines = (text: string): Result.Result<ReadonlyArray<NewEvent>, string> => {
  const events: Array<NewEvent> = []
  const lines = text.split("\n")
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim()
    if (line === "") continue
    const decoded = decodeLine(line)
    if (Result.isFailure(decoded)) {
      return Result.fail(`line ${i + 1}: ${decoded.failure.message.replace(/\s*\n\s*/g, "; ")}`)
    }
    const { data, ...rest } = decoded.success
    events.push({
      ...rest,
      data: data === undefined || data === null ? null : typeof data === "string" ? data : JSON.stringify(data)
    })
  }
  return Result.succeed(events)
}

const extra = (n: 1 | 2 | 3 | 4) =>
  Flag.String(`extra${n}`).pipe(Flag.withDescription(`The event's extra${n} field`), Flag.optional)

/**
 * @since 0.2.0
 * @category commands
 */
export const insert = Command.make(
  "insert",
  {
    queue,
    type: Flag.String("type").pipe(Flag.withAlias("t"), Flag.withDescription("Insert one event of this type"), Flag.optional),
    data: Flag.String("data").pipe(Flag.withAlias("d"), Flag.withDescription("The one event's data"), Flag.optional),
    extra1: extra(1),
    extra2: extra(2),
    extra3: extra(3),
    extra4: extra(4),
    file: Flag.String("file").pipe(
      Flag.withAlias("f"),
      Flag.withMetavar("path"),
      Flag.withDescription("Insert the events of a JSON-lines file (- for stdin)"),
      Flag.optional
    )
  },
  (input) =>
    withOtlpFromEnv(withDatabase(
      Effect.gen(function*() {
        const producer = yield* Producer
        const { file, queue, type } = input
        if (Option.isSome(type)) {
          if (Option.isSome(file)) return yield* usage("insert: give either --type (one event) or --file, not both")
          const id = yield* producer.send(queue, {
            type: type.value,
            data: Option.getOrNull(input.data),
            extra1: Option.getOrNull(input.extra1),
            extra2: Option.getOrNull(input.extra2),
            extra3: Option.getOrNull(input.extra3),
            extra4: Option.getOrNull(input.extra4)
          })
          return yield* Console.log(`inserted event ${id} into queue ${quote(queue)}`)
        }
        const singleOnly = [input.data, input.extra1, input.extra2, input.extra3, input.extra4].some(Option.isSome)
        if (singleOnly) return yield* usage("insert: --data and --extra1..4 describe one event and need --type")
        const stdio = yield* Stdio.Stdio
        const source = Option.getOrElse(file, () => "-")
        if (source === "-" && Option.isNone(file) && (yield* stdio.stdinIsTerminal)) {
          return yield* usage("insert: give --type for one event, or JSON lines with --file or on stdin")
        }
        const text = source === "-"
          ? yield* stdio.stdin.pipe(Stream.decodeText(), Stream.mkString, Effect.mapError((e) => failure(`cannot read stdin: ${e.message}`)))
          : yield* (yield* FileSystem.FileSystem).readFileString(source).pipe(
            Effect.mapError((e) => failure(`cannot read ${source}: ${e.message}`))
          )
        const where = source === "-" ? "stdin" : source
        const parsed = parseLines(text)
        if (Result.isFailure(parsed)) return yield* failure(`${where}, ${parsed.failure}; nothing was inserted`)
        if (parsed.success.length === 0) return yield* Console.log(`no events in ${where}; nothing inserted`)
        const n = yield* producer.sendMany(queue, parsed.success)
        yield* Console.log(`inserted ${n} event${n === 1 ? "" : "s"} into queue ${quote(queue)}`)
      })
    ))
).pipe(
  Command.withDescription("Insert one event (--type, --data, --extra1..4) or many as JSON lines from --file or stdin"),
  Command.withExamples([
    { command: "effect-pgq insert -q orders --type order.placed --data '{\"id\":7}'", description: "One event" },
    { command: "effect-pgq insert -q orders --file events.jsonl", description: "Many, one JSON object a line, all or none" },
    { command: "printf '{\"type\":\"ping\"}\\n' | effect-pgq insert -q orders", description: "From stdin" },
    {
      command: "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 effect-pgq insert -q orders --type order.placed",
      description: "Traced: the send span to an OpenTelemetry collector, its traceparent in ev_extra4"
    }
  ])
)
