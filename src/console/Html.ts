/**
 * HTML built from templates whose interpolations are escaped: a value from
 * the database can only ever become text on the page, never markup. Markup
 * reaches a page only as `Html` made by this module:
 * `` html`<td>${payload}</td>` `` with the payload `<script>alert(1)</script>`
 * renders `<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>`.
 *
 * @since 0.2.0
 */

const HtmlTypeId: unique symbol = Symbol.for("effect-pgq/console/Html")

/**
 * A fragment of markup that is safe to put on a page as it is.
 *
 * @since 0.2.0
 * @category models
 */
export interface Html {
  readonly [HtmlTypeId]: typeof HtmlTypeId
  readonly markup: string
}

/**
 * What a template may interpolate: markup made here, or values shown as text
 * (`null` and `undefined` show nothing; arrays are joined).
 *
 * @since 0.2.0
 * @category models
 */
export type Interpolation = Html | string | number | bigint | boolean | null | undefined | ReadonlyArray<Interpolation>

const make = (markup: string): Html => ({ [HtmlTypeId]: HtmlTypeId, markup })

/**
 * @since 0.2.0
 * @category guards
 */
export const isHtml = (value: unknown): value is Html =>
  typeof value === "object" && value !== null && HtmlTypeId in value

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" }

/**
 * Text as markup that shows it: `&`, `<`, `>` and both quotes escaped, so it
 * is safe in element content and in quoted attribute values alike.
 *
 * @since 0.2.0
 * @category escaping
 */
export const escape = (text: string): string => text.replace(/[&<>"']/g, (c) => ESCAPES[c]!)

const toMarkup = (value: Interpolation): string => {
  if (value === null || value === undefined || value === false) return ""
  if (isHtml(value)) return value.markup
  if (Array.isArray(value)) return value.map(toMarkup).join("")
  return escape(String(value))
}

/**
 * The template tag: the literal parts are markup, every interpolation is text
 * unless it is `Html` already.
 *
 * @since 0.2.0
 * @category constructors
 */
export const html = (strings: TemplateStringsArray, ...values: ReadonlyArray<Interpolation>): Html =>
  make(strings.reduce((out, literal, i) => out + literal + (i < values.length ? toMarkup(values[i]!) : ""), ""))

/**
 * Markup written by this program (never from the database), taken as it is.
 *
 * @since 0.2.0
 * @category constructors
 */
export const trusted = (markup: string): Html => make(markup)

/**
 * @since 0.2.0
 * @category constructors
 */
export const empty: Html = make("")

/**
 * @since 0.2.0
 * @category rendering
 */
export const render = (fragment: Html): string => fragment.markup
