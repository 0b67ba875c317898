/**
 * Type-checks the TypeScript examples in the documentation, so that they
 * cannot rot: every fenced ```ts (or ```typescript) block of README.md,
 * otel/README.md and the JSDoc comments (`/** ... *\/`, leading ` * `
 * stripped) of every .ts file under src/ is written to `.docs-check/`
 * (git-ignored) as a module of its own and checked in one TypeScript
 * program, configured by tsconfig.docs.json: the project's strict options,
 * with the specifiers "effect-pgq" and "effect-pgq/testing" mapped to
 * src/index.ts and src/testing/index.ts, so examples import the package as
 * a user does.
 *
 * Conventions for examples:
 * - A block is a complete module: it imports what it uses and declares what
 *   it leaves out (`declare const sendMail: (to: string) => Effect.Effect<void>`).
 *   Unused declarations are allowed (an example may only show a shape).
 * - ```ts skip-check opts a block out (a fragment that cannot stand alone);
 *   use it sparingly. Blocks in other languages (sh, mermaid, ...) are skipped.
 *
 * Errors are reported at their line in the Markdown or source file.
 *
 *   node scripts/check-docs.ts             README.md, otel/README.md and src/
 *   node scripts/check-docs.ts FILE...     only these (.md or .ts) files
 *
 * Exits with 1 when a block does not type-check.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import ts from "typescript"

const root = Path.resolve(import.meta.dirname, "..")
const outDir = Path.join(root, ".docs-check")
const configFile = Path.join(root, "tsconfig.docs.json")

/** One line of a documentation file, after comment markers are stripped. */
interface DocLine {
  readonly text: string
  /** 1-based line in the documentation file. */
  readonly line: number
  /** Characters stripped from the start of the line (` * ` in JSDoc). */
  readonly column: number
}

interface Block {
  readonly source: string
  readonly lines: ReadonlyArray<DocLine>
  /** Line of the opening fence. */
  readonly line: number
}

interface Extracted {
  readonly blocks: Array<Block>
  readonly skipped: Array<{ readonly source: string; readonly line: number }>
  readonly problems: Array<string>
}

const CHECKED_LANGUAGES = new Set(["ts", "typescript"])
const FENCE = /^\s*(`{3,}|~{3,})\s*([^\s`]*)(.*)$/

/** Finds fenced blocks in lines of Markdown (README or the text of a JSDoc comment). */
const extractFences = (source: string, lines: ReadonlyArray<DocLine>, into: Extracted): void => {
  let open: { fence: string; language: string; meta: string; line: number; body: Array<DocLine> } | undefined
  for (const docLine of lines) {
    const match = FENCE.exec(docLine.text)
    if (open === undefined) {
      if (match !== null) {
        open = {
          fence: match[1]!,
          language: match[2]!.toLowerCase(),
          meta: match[3]!.trim(),
          line: docLine.line,
          body: []
        }
      }
      continue
    }
    const closes = match !== null && match[2] === "" && match[3]!.trim() === "" &&
      match[1]![0] === open.fence[0] && match[1]!.length >= open.fence.length
    if (!closes) {
      open.body.push(docLine)
      continue
    }
    if (CHECKED_LANGUAGES.has(open.language)) {
      if (open.meta.split(/\s+/).includes("skip-check")) into.skipped.push({ source, line: open.line })
      else into.blocks.push({ source, lines: open.body, line: open.line })
    }
    open = undefined
  }
  if (open !== undefined) into.problems.push(`${source}:${open.line}: code fence is never closed`)
}

const markdownLines = (text: string): Array<DocLine> =>
  text.split("\n").map((line, i) => ({ text: line.replace(/\r$/, ""), line: i + 1, column: 0 }))

/**
 * The JSDoc comments of a TypeScript file, found through its syntax tree
 * (a `/**` inside a string or a template is not a comment).
 */
const jsDocComments = (fileName: string, text: string): Array<ts.CommentRange> => {
  const sourceFile = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS)
  const found = new Map<number, ts.CommentRange>()
  const collect = (ranges: ReadonlyArray<ts.CommentRange> | undefined) => {
    for (const range of ranges ?? []) {
      if (range.kind === ts.SyntaxKind.MultiLineCommentTrivia && text.startsWith("/**", range.pos)) {
        found.set(range.pos, range)
      }
    }
  }
  const visit = (node: ts.Node): void => {
    collect(ts.getLeadingCommentRanges(text, node.pos))
    collect(ts.getTrailingCommentRanges(text, node.end))
    ts.forEachChild(node, visit)
  }
  visit(sourceFile)
  collect(ts.getLeadingCommentRanges(text, sourceFile.endOfFileToken.pos))
  return [...found.values()].sort((a, b) => a.pos - b.pos)
}

/** The lines of a JSDoc comment without `/**`, `*\/` and the leading ` * `. */
const commentLines = (text: string, range: ts.CommentRange): Array<DocLine> => {
  const firstLine = text.slice(0, range.pos).split("\n").length
  const raw = text.slice(range.pos, range.end).split("\n")
  return raw.map((line, i) => {
    let body = line.replace(/\r$/, "")
    let column = 0
    if (i === 0) {
      const start = body.indexOf("/**") + 3
      column = start
      body = body.slice(start)
    } else {
      // A `*` that does not close the comment, and one space after it.
      const marker = /^\s*\*(?!\/) ?/.exec(body)
      column = marker?.[0].length ?? 0
      body = body.slice(column)
    }
    if (i === raw.length - 1) body = body.replace(/\s*\*\/$/, "")
    return { text: body, line: firstLine + i, column }
  })
}

const relative = (file: string) => Path.relative(root, file).split(Path.sep).join("/")

const defaultSources = (): Array<string> => [
  Path.join(root, "README.md"),
  Path.join(root, "otel", "README.md"),
  ...Fs.readdirSync(Path.join(root, "src"), { recursive: true, encoding: "utf8" })
    .filter((file) => file.endsWith(".ts"))
    .sort()
    .map((file) => Path.join(root, "src", file))
]

const extract = (files: ReadonlyArray<string>): Extracted => {
  const extracted: Extracted = { blocks: [], skipped: [], problems: [] }
  for (const file of files) {
    const text = Fs.readFileSync(file, "utf8")
    const source = relative(file)
    if (file.endsWith(".md")) {
      extractFences(source, markdownLines(text), extracted)
    } else {
      for (const comment of jsDocComments(file, text)) extractFences(source, commentLines(text, comment), extracted)
    }
  }
  return extracted
}

/** `src/testing/DevDatabase.ts` line 12 becomes `src_testing_DevDatabase.ts_12.ts`. */
const moduleName = (block: Block) => `${block.source.replace(/[^A-Za-z0-9.]+/g, "_")}_${block.line}.ts`

/** Writes each block as a module; the trailing `export {}` makes even a block without imports one. */
const writeModules = (blocks: ReadonlyArray<Block>): Map<string, Block> => {
  Fs.rmSync(outDir, { recursive: true, force: true })
  Fs.mkdirSync(outDir, { recursive: true })
  Fs.writeFileSync(Path.join(outDir, "README.md"), "Generated by scripts/check-docs.ts; do not edit.\n")
  const modules = new Map<string, Block>()
  for (const block of blocks) {
    const file = Path.join(outDir, moduleName(block))
    Fs.writeFileSync(file, `${block.lines.map((l) => l.text).join("\n")}\nexport {}\n`)
    modules.set(Path.resolve(file), block)
  }
  return modules
}

const formatHost: ts.FormatDiagnosticsHost = {
  getCanonicalFileName: (fileName) => fileName,
  getCurrentDirectory: () => root,
  getNewLine: () => "\n"
}

/** A diagnostic in a generated module, reported at the block's line in its documentation file. */
const describe = (diagnostic: ts.Diagnostic, modules: ReadonlyMap<string, Block>): string => {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n")
  const file = diagnostic.file
  if (file === undefined || diagnostic.start === undefined) {
    return ts.formatDiagnostic(diagnostic, formatHost).trimEnd()
  }
  const block = modules.get(Path.resolve(file.fileName))
  const position = file.getLineAndCharacterOfPosition(diagnostic.start)
  const docLine = block?.lines[position.line]
  if (block === undefined || docLine === undefined) {
    return `${relative(file.fileName)}:${position.line + 1}:${position.character + 1} - error TS${diagnostic.code}: ${message}`
  }
  const column = docLine.column + position.character + 1
  return `${block.source}:${docLine.line}:${column} - error TS${diagnostic.code}: ${message}\n    ${docLine.text.trim()}`
}

const main = (): number => {
  const args = process.argv.slice(2)
  const files = args.length > 0 ? args.map((file) => Path.resolve(file)) : defaultSources()
  const { blocks, problems, skipped } = extract(files)
  const modules = writeModules(blocks)

  const parsed = ts.getParsedCommandLineOfConfigFile(configFile, undefined, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => problems.push(ts.formatDiagnostic(diagnostic, formatHost))
  })
  if (parsed === undefined) {
    for (const problem of problems) console.error(problem)
    return 1
  }
  const program = ts.createProgram({ rootNames: [...modules.keys()], options: parsed.options })
  const diagnostics = [
    ...parsed.errors.filter((d) => d.code !== 18003), // "no inputs": there may be no blocks
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    // Only the examples: the sources they import are checked by `tsc -p tsconfig.json`.
    ...program.getSourceFiles()
      .filter((file) => modules.has(Path.resolve(file.fileName)))
      .flatMap((file) => [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)])
  ]
  for (const diagnostic of diagnostics) problems.push(describe(diagnostic, modules))

  const sources = new Set(blocks.map((block) => block.source)).size
  const skippedNote = skipped.length === 0
    ? ""
    : `; skipped: ${skipped.map((block) => `${block.source}:${block.line}`).join(", ")}`
  if (problems.length > 0) {
    for (const problem of problems) console.error(problem)
    console.error(`check-docs: ${problems.length} error(s) in ${blocks.length} example(s)${skippedNote}`)
    return 1
  }
  console.log(`check-docs: ${blocks.length} example(s) from ${sources} file(s) type-check${skippedNote}`)
  return 0
}

process.exitCode = main()
