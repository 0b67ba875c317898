/**
 * The console's pages, rendered on the server. Every value from the database
 * goes through `Html`'s escaping; the sections marked `data-live` are the
 * ones the script swaps in when it refreshes the page.
 *
 * @since 0.2.0
 */
import { DateTime } from "effect"
import type { ConsumerEventStatus } from "../api/EventStatus.ts"
import type { FailedEvent } from "../api/FailedEvents.ts"
import { empty, html, type Html, render } from "./Html.ts"
import * as LagChart from "./LagChart.ts"
import type { ConsumerView, Overview } from "./Overview.ts"

/**
 * What every page needs to know about the console that serves it.
 *
 * @since 0.2.0
 * @category models
 */
export interface PageContext {
  /** Where the console is mounted (`/console`). */
  readonly base: string
  readonly readOnly: boolean
  /** Whether reading needs the token too (a console reachable beyond this machine). Default false. */
  readonly readsNeedToken?: boolean | undefined
  readonly refreshMillis: number
  /** Whether a daemon in this process runs consumers (the state column). */
  readonly daemon: boolean
  /** Whether the jobs page exists. */
  readonly jobs: boolean
}

/**
 * A job of the tracker as the console lists it.
 *
 * @since 0.2.0
 * @category models
 */
export interface JobRow {
  readonly id: string
  readonly name: string
  readonly components: number
  /** `pending`, `in_progress`, `completed` or `failed`. */
  readonly status: string
  /** ISO 8601. */
  readonly createdAt: string
  readonly finishedAt: string | null
}

/**
 * Seconds as people read them: `0.4 s`, `12 min 3 s`, `2 h 5 min`; `-` when unknown.
 *
 * @since 0.2.0
 * @category formatting
 */
export const duration = (s: number | null): string => {
  if (s === null) return "-"
  if (s < 10) return `${s.toFixed(1)} s`
  if (s < 60) return `${Math.round(s)} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`
  return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`
}

const link = (context: PageContext, path: string, params: Record<string, string>): string =>
  `${context.base}${path}?${new URLSearchParams(params).toString()}`

const layout = (context: PageContext, title: string, content: Html, locked = false): string =>
  `<!doctype html>\n${
    render(html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · effect-pgq console</title>
<link rel="stylesheet" href="${context.base}/assets/console.css">
<script src="${context.base}/assets/console.js" defer></script>
</head>
<body data-base="${context.base}" data-refresh="${context.refreshMillis}" data-read-only="${String(context.readOnly)}" data-reads-need-token="${
      String(context.readsNeedToken === true)
    }" data-locked="${String(locked)}">
<header>
<h1>effect-pgq console</h1>
<nav><a href="${context.base}/">Overview</a><a href="${context.base}/event">Event lookup</a>${
      context.jobs ? html`<a href="${context.base}/jobs">Jobs</a>` : empty
    }</nav>
<span id="live-status" class="live">${context.readOnly ? "Read-only · " : ""}Refreshes every ${+(context.refreshMillis / 1000).toFixed(1)} s</span>
</header>
<main>
<div id="flash" class="flash" role="status" aria-live="polite"></div>
${content}
${context.readOnly && context.readsNeedToken !== true ? empty : tokenForm(context)}
</main>
</body>
</html>
`)
  }`

const tokenForm = (context: PageContext): Html =>
  html`<section id="token">
<h2>Token</h2>
<form id="token-form" class="inline">
<label for="token-input">${
    context.readsNeedToken !== true
      ? "Actions need"
      : context.readOnly
      ? "Reading this console needs"
      : "Reading this console and its actions need"
  } the token printed when the console started:</label>
<input id="token-input" type="password" autocomplete="off" size="36">
<button type="submit">Use token</button>
<button type="button" id="token-forget" hidden>Forget token</button>
</form>
<p id="token-state" class="muted"></p>
</section>`

const stateBadge = (state: string | null): Html => state === null ? html`-` : html`<span class="state ${state}">${state}</span>`

const consumerRow = (context: PageContext, c: ConsumerView): Html => {
  const page = link(context, "/consumer", { queue: c.queue, consumer: c.consumer })
  return html`<tr data-queue="${c.queue}" data-consumer="${c.consumer}">
<td>${c.queue}</td>
<td><a href="${page}">${c.consumer}</a></td>
<td class="num lag">${duration(c.lagSeconds)}</td>
<td class="num">${duration(c.lastSeenSeconds)}</td>
<td class="num pending">${c.pendingEvents ?? "-"}</td>
<td class="num failed">${
    c.failedEvents === null
      ? "-"
      : c.failedEvents === 0
      ? html`0`
      : html`<a class="bad" href="${page}">${c.failedEvents}</a>`
  }</td>
<td>${c.inBatch ? "yes" : "no"}</td>
${context.daemon ? html`<td>${stateBadge(c.state)}</td>` : empty}
</tr>`
}

/**
 * The front page: queues, consumers, the lag chart.
 *
 * @since 0.2.0
 * @category pages
 */
export const overviewPage = (
  context: PageContext,
  overview: Overview,
  chart: { readonly windowMillis: number; readonly intervalMillis: number }
): string =>
  layout(
    context,
    "Overview",
    html`${
      overview.error === null
        ? empty
        : html`<section id="db-error" data-live><p class="bad">The database did not answer: ${overview.error}</p></section>`
    }
<section id="queues" data-live>
<h2>Queues</h2>
${
      overview.queues.length === 0
        ? html`<p class="empty">No queues.</p>`
        : html`<table>
<thead><tr><th>Queue</th><th class="num">Events/s</th><th class="num">Ticker lag</th><th class="num">New events</th><th>Ticker</th></tr></thead>
<tbody>${
          overview.queues.map((q) =>
            html`<tr data-queue="${q.name}"><td>${q.name}</td><td class="num">${
              q.eventsPerSecond === null ? "-" : q.eventsPerSecond.toFixed(1)
            }</td><td class="num">${duration(q.tickerLagSeconds)}</td><td class="num">${q.newEvents}</td><td>${
              q.tickerPaused ? html`<span class="bad">paused</span>` : "running"
            }</td></tr>`
          )
        }</tbody>
</table>`
    }
</section>
<section id="consumers" data-live>
<h2>Consumers</h2>
${
      overview.consumers.length === 0
        ? html`<p class="empty">No consumers.</p>`
        : html`<table>
<thead><tr><th>Queue</th><th>Consumer</th><th class="num">Lag</th><th class="num">Last seen</th><th class="num">Pending</th><th class="num">Failed</th><th>In batch</th>${
          context.daemon ? html`<th>State</th>` : empty
        }</tr></thead>
<tbody>${overview.consumers.map((c) => consumerRow(context, c))}</tbody>
</table>`
    }
</section>
<section id="lag" data-live>
<h2>Lag, up to the last ${Math.round(chart.windowMillis / 60_000)} minutes</h2>
${LagChart.render({ samples: overview.lag, now: overview.at, ...chart })}
</section>`
  )

const actionButton = (
  action: "retry" | "delete",
  queue: string,
  consumer: string,
  target: string,
  label: string
): Html =>
  html`<button type="button" class="${action === "delete" ? "danger" : ""}" data-action="${action}" data-queue="${queue}" data-consumer="${consumer}" data-target="${target}">${label}</button>`

/** `2026-11-23 18:47:21`, in UTC as the chart. */
const time = (t: DateTime.DateTime): string => DateTime.formatIso(t).slice(0, 19).replace("T", " ")

/**
 * A consumer and its failed events, with their payloads.
 *
 * @since 0.2.0
 * @category pages
 */
export const consumerPage = (
  context: PageContext,
  page: {
    readonly queue: string
    readonly consumer: string
    readonly view: ConsumerView | undefined
    readonly failed: ReadonlyArray<FailedEvent>
    readonly nextAfter: string | undefined
    readonly error: string | null
  }
): string => {
  const { consumer, queue } = page
  const actions = !context.readOnly && page.failed.length > 0
  return layout(
    context,
    `${queue} / ${consumer}`,
    html`<section id="consumer" data-live>
<h2>Consumer ${consumer} on queue ${queue}</h2>
${page.error === null ? empty : html`<p class="bad">${page.error}</p>`}
${
      page.view === undefined ? empty : html`<table>
<thead><tr><th class="num">Lag</th><th class="num">Last seen</th><th class="num">Pending</th><th class="num">Failed</th><th>In batch</th>${
        context.daemon ? html`<th>State</th>` : empty
      }</tr></thead>
<tbody><tr><td class="num lag">${duration(page.view.lagSeconds)}</td><td class="num">${
        duration(page.view.lastSeenSeconds)
      }</td><td class="num">${page.view.pendingEvents ?? "-"}</td><td class="num">${
        page.view.failedEvents ?? "-"
      }</td><td>${page.view.inBatch ? "yes" : "no"}</td>${
        context.daemon ? html`<td>${stateBadge(page.view.state)}</td>` : empty
      }</tr></tbody>
</table>`
    }
</section>
<section id="failed" data-live>
<h2>Failed events</h2>
${
      actions
        ? html`<div class="actions">${actionButton("retry", queue, consumer, "all", "Retry all")}${
          actionButton("delete", queue, consumer, "all", "Delete all")
        }</div>`
        : empty
    }
${
      page.failed.length === 0
        ? html`<p class="empty">No failed events.</p>`
        : html`<table>
<thead><tr><th class="num">Event</th><th>Failed at (UTC)</th><th>Reason</th><th>Type</th><th>Payload</th><th class="num">Retries</th>${
          actions ? html`<th></th>` : empty
        }</tr></thead>
<tbody>${
          page.failed.map((f) => {
            const id = f.event.id.toString()
            const extras = [f.event.extra1, f.event.extra2, f.event.extra3, f.event.extra4]
            return html`<tr data-event="${id}">
<td class="num"><a href="${link(context, "/event", { queue, id })}">${id}</a></td>
<td class="time">${time(f.failedAt)}</td>
<td>${f.reason}</td>
<td>${f.event.type}</td>
<td><pre class="payload">${f.event.data ?? ""}</pre>${
              extras.some((e) => e !== null)
                ? html`<details><summary>extra fields</summary><pre>${
                  extras.map((e, i) => `extra${i + 1}: ${e ?? "null"}`).join("\n")
                }</pre></details>`
                : empty
            }</td>
<td class="num">${f.event.retry ?? 0}</td>
${
              actions
                ? html`<td class="row-actions">${actionButton("retry", queue, consumer, id, "Retry")}${
                  actionButton("delete", queue, consumer, id, "Delete")
                }</td>`
                : empty
            }
</tr>`
          })
        }</tbody>
</table>`
    }
${
      page.nextAfter === undefined
        ? empty
        : html`<p><a href="${link(context, "/consumer", { queue, consumer, after: page.nextAfter })}">Next page</a></p>`
    }
</section>`
  )
}

/**
 * Event lookup: an event's state for every consumer of its queue.
 *
 * @since 0.2.0
 * @category pages
 */
export const eventPage = (
  context: PageContext,
  page: {
    readonly queues: ReadonlyArray<string>
    readonly queue: string | undefined
    readonly id: string | undefined
    readonly statuses: ReadonlyArray<ConsumerEventStatus> | undefined
    readonly error: string | null
  }
): string =>
  layout(
    context,
    "Event lookup",
    html`<section id="lookup">
<h2>Event lookup</h2>
<form class="inline" method="get" action="${context.base}/event">
<label for="lookup-queue">Queue</label>
<select id="lookup-queue" name="queue">${
      (page.queue !== undefined && !page.queues.includes(page.queue) ? [page.queue, ...page.queues] : page.queues).map((
        q
      ) => html`<option value="${q}"${q === page.queue ? html` selected` : empty}>${q}</option>`)
    }</select>
<label for="lookup-id">Event id</label>
<input id="lookup-id" name="id" inputmode="numeric" pattern="[0-9]+" required value="${page.id ?? ""}">
<button type="submit">Look up</button>
</form>
</section>
${
      page.queue === undefined || page.id === undefined ? empty : html`<section id="event" data-live>
<h2>Event ${page.id} on queue ${page.queue}</h2>
${page.error === null ? empty : html`<p class="bad">${page.error}</p>`}
${
        page.statuses === undefined
          ? empty
          : page.statuses.length === 0
          ? html`<p class="empty">The queue has no consumers.</p>`
          : html`<table>
<thead><tr><th>Consumer</th><th>State</th><th class="num">Retries</th></tr></thead>
<tbody>${
            page.statuses.map((s) =>
              html`<tr data-consumer="${s.consumer}"><td><a href="${
                link(context, "/consumer", { queue: page.queue ?? "", consumer: s.consumer })
              }">${s.consumer}</a></td><td>${stateBadge(s.state)}</td><td class="num">${s.retry ?? "-"}</td></tr>`
            )
          }</tbody>
</table>`
      }
</section>`
    }`
  )

/**
 * The tracker's jobs, newest first.
 *
 * @since 0.2.0
 * @category pages
 */
export const jobsPage = (
  context: PageContext,
  page: { readonly jobs: ReadonlyArray<JobRow>; readonly error: string | null }
): string =>
  layout(
    context,
    "Jobs",
    html`<section id="jobs" data-live>
<h2>Jobs</h2>
${page.error === null ? empty : html`<p class="bad">${page.error}</p>`}
${
      page.jobs.length === 0 ? html`<p class="empty">No jobs.</p>` : html`<table>
<thead><tr><th class="num">Job</th><th>Name</th><th class="num">Components</th><th>Status</th><th>Created</th><th>Finished</th></tr></thead>
<tbody>${
        page.jobs.map((j) =>
          html`<tr data-job="${j.id}"><td class="num">${j.id}</td><td>${j.name}</td><td class="num">${j.components}</td><td>${
            stateBadge(j.status)
          }</td><td>${j.createdAt}</td><td>${j.finishedAt ?? "-"}</td></tr>`
        )
      }</tbody>
</table>`
    }
</section>`
  )

/**
 * A page asked for without the token on a console whose reading needs it:
 * no data, only the token field; the script loads the page again with the
 * token it has, or once one is entered.
 *
 * @since 0.2.0
 * @category pages
 */
export const lockedPage = (context: PageContext): string =>
  layout(
    context,
    "Token needed",
    html`<section id="locked"><h2>Token needed</h2>
<p>This console is reachable beyond this machine: reading it needs the token printed when it started.</p></section>`,
    true
  )

/**
 * A page for a path the console does not have.
 *
 * @since 0.2.0
 * @category pages
 */
export const notFoundPage = (context: PageContext, what: string): string =>
  layout(context, "Not found", html`<section><h2>Not found</h2><p>${what}</p></section>`)
