/**
 * The console's script and style sheet, served from its own origin (the
 * Content-Security-Policy allows no inline script or style, and nothing from
 * elsewhere: the console works offline).
 *
 * The script is small: it keeps the page fresh by fetching it again and
 * swapping in its live sections (the server escaped every value in them),
 * reads the token from the URL's fragment (never sent to a server) or from
 * the token field into the tab's session storage, and sends actions with the
 * token in the `Authorization` header. On a console whose reading needs the
 * token, it fetches the pages with that header too: a page opened without it
 * comes locked (no data), and the script swaps in the page it fetched. What
 * it writes itself goes in with `textContent`.
 *
 * @since 0.2.0
 */

/**
 * `assets/console.js`.
 *
 * @since 0.2.0
 * @category assets
 */
export const script = String.raw`"use strict";
(() => {
  const body = document.body;
  const base = body.dataset.base || "";
  const refreshMs = Number(body.dataset.refresh) || 5000;
  const readsNeedToken = body.dataset.readsNeedToken === "true";
  const KEY = "effect-pgq-console-token";
  const byId = (id) => document.getElementById(id);

  const fragment = new URLSearchParams(location.hash.slice(1));
  const fromUrl = fragment.get("token");
  if (fromUrl) {
    sessionStorage.setItem(KEY, fromUrl);
    history.replaceState(null, "", location.pathname + location.search);
  }
  const token = () => sessionStorage.getItem(KEY);
  const authorization = () => (token() ? { authorization: "Bearer " + token() } : {});
  const locked = () => body.dataset.locked === "true";

  const showToken = () => {
    const state = byId("token-state");
    if (state) {
      state.textContent = token()
        ? (readsNeedToken ? "Token set." : "Token set: actions enabled.")
        : "No token: enter the token printed at start to " + (readsNeedToken ? "see this console." : "retry or delete.");
    }
    const forget = byId("token-forget");
    if (forget) forget.hidden = !token();
  };

  const forgetToken = () => {
    sessionStorage.removeItem(KEY);
    showToken();
  };

  const say = (text, kind) => {
    const flash = byId("flash");
    if (!flash) return;
    flash.textContent = text;
    flash.className = "flash " + kind;
  };

  // On the document, not the form: a locked page's content, the form with it, is replaced.
  document.addEventListener("submit", (event) => {
    if (!(event.target instanceof Element) || event.target.id !== "token-form") return;
    event.preventDefault();
    const input = byId("token-input");
    const value = input.value.trim();
    if (value) sessionStorage.setItem(KEY, value);
    input.value = "";
    showToken();
    if (locked()) refresh();
  });

  let busy = false;
  const refresh = async () => {
    if (busy || (locked() && !token())) return;
    busy = true;
    const live = byId("live-status");
    try {
      const wasLocked = locked();
      const response = await fetch(location.pathname + location.search, {
        cache: "no-store",
        credentials: "omit",
        headers: { accept: "text/html", ...authorization() }
      });
      if (response.status === 401 && readsNeedToken) {
        forgetToken();
        throw new Error("the token was refused");
      }
      if (!response.ok && !wasLocked) throw new Error("HTTP " + response.status);
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      if (wasLocked) {
        const main = fresh.querySelector("main");
        if (main) document.querySelector("main")?.replaceWith(document.importNode(main, true));
        document.title = fresh.title;
        body.dataset.locked = "false";
        showToken();
      } else {
        for (const section of fresh.querySelectorAll("[data-live]")) {
          const current = byId(section.id);
          if (current) current.replaceWith(document.importNode(section, true));
        }
      }
      if (live) {
        live.textContent = "Updated " + new Date().toLocaleTimeString();
        live.className = "live ok";
      }
    } catch (error) {
      if (live) {
        live.textContent = "Not updated: " + (error instanceof Error ? error.message : String(error));
        live.className = "live error";
      }
    } finally {
      busy = false;
    }
  };

  const act = async (button) => {
    const { action, queue, consumer, target } = button.dataset;
    if (!token()) {
      say("Enter the console's token first: it was printed when the console started.", "error");
      byId("token-input")?.focus();
      return;
    }
    const what = target === "all" ? "every failed event" : "failed event " + target;
    if (action === "delete" && !confirm("Delete " + what + " of consumer " + consumer + " for good?")) return;
    button.disabled = true;
    try {
      const response = await fetch(base + "/api/" + action, {
        method: "POST",
        credentials: "omit",
        cache: "no-store",
        headers: { "content-type": "application/json", authorization: "Bearer " + token() },
        body: JSON.stringify({ queue, consumer, target })
      });
      const result = await response.json().catch(() => ({}));
      if (response.ok) {
        say(String(result.message), "ok");
      } else {
        say(String(result.error || "HTTP " + response.status), "error");
        if (response.status === 401) forgetToken();
      }
    } catch (error) {
      say("The console did not answer: " + (error instanceof Error ? error.message : String(error)), "error");
    } finally {
      button.disabled = false;
      await refresh();
    }
  };

  document.addEventListener("click", (event) => {
    if (!(event.target instanceof Element)) return;
    if (event.target.closest("#token-forget")) return forgetToken();
    const button = event.target.closest("button[data-action]");
    if (button) {
      event.preventDefault();
      act(button);
    }
  });

  showToken();
  if (locked()) refresh();
  setInterval(refresh, refreshMs);
})();
`

/**
 * `assets/console.css`.
 *
 * @since 0.2.0
 * @category assets
 */
export const style = `:root { color-scheme: light; --fg: #1d232b; --muted: #5d6875; --line: #d9dee4; --bg: #f6f7f9; --card: #fff; --accent: #2457a6; --bad: #b42318; --good: #1b7f3b; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: 1rem; align-items: baseline; padding: .8rem 1.5rem; background: #1d2b3f; color: #fff; }
header h1 { font-size: 1.1rem; margin: 0; }
header nav a { color: #cfe0ff; margin-right: 1rem; text-decoration: none; }
header nav a:hover { text-decoration: underline; }
header .live { margin-left: auto; font-size: .85rem; color: #cfd6df; }
header .live.error { color: #ffb4a8; }
main { padding: 1rem 1.5rem 2rem; max-width: 1200px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem 1rem; margin-bottom: 1rem; }
h2 { font-size: 1rem; margin: 0 0 .6rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: .85rem; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
a { color: var(--accent); }
pre { margin: 0; white-space: pre-wrap; word-break: break-all; max-height: 12rem; overflow: auto; font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; background: #f1f3f6; padding: .3rem .4rem; border-radius: 4px; }
.empty, .muted { color: var(--muted); }
.bad { color: var(--bad); font-weight: 600; }
.good { color: var(--good); }
.state { display: inline-block; padding: 0 .45rem; border-radius: 9px; background: #e8ecf1; font-size: .8rem; }
.state.running, .state.idle, .state.done { background: #dcf3e3; }
.state.backoff, .state.stopped, .state.failed { background: #fde2df; }
.state.retry, .state.processing, .state.pending { background: #fff1cc; }
button { font: inherit; padding: .2rem .7rem; border: 1px solid #9aa7b6; border-radius: 4px; background: #fff; cursor: pointer; }
button:hover { background: #eef3fb; }
button.danger { border-color: #d9a29b; color: var(--bad); }
button:disabled { opacity: .5; cursor: wait; }
.actions { display: flex; gap: .5rem; margin-bottom: .6rem; }
td.row-actions, td.time { white-space: nowrap; }
td.row-actions button + button { margin-left: .4rem; }
.flash { padding: .5rem .8rem; border-radius: 4px; margin-bottom: 1rem; }
.flash:empty { display: none; }
.flash.ok { background: #dcf3e3; }
.flash.error { background: #fde2df; }
form.inline { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
input, select { font: inherit; padding: .2rem .4rem; border: 1px solid #9aa7b6; border-radius: 4px; }
.lag-chart { width: 100%; max-width: 720px; height: auto; display: block; }
.lag-chart .grid { stroke: #e3e7ec; stroke-width: 1; }
.lag-chart .axis-line { stroke: #9aa7b6; stroke-width: 1; }
.lag-chart .axis { fill: var(--muted); font-size: 10px; }
.lag-chart polyline { stroke-width: 2; }
.legend { list-style: none; display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; padding: 0; margin: .4rem 0 0; font-size: .85rem; }
.swatch { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px; margin-right: .35rem; vertical-align: -1px; }
.series-0 { stroke: #2457a6; background: #2457a6; fill: #2457a6; }
.series-1 { stroke: #d1495b; background: #d1495b; fill: #d1495b; }
.series-2 { stroke: #2a9d8f; background: #2a9d8f; fill: #2a9d8f; }
.series-3 { stroke: #e9a03b; background: #e9a03b; fill: #e9a03b; }
.series-4 { stroke: #7b4fb3; background: #7b4fb3; fill: #7b4fb3; }
.series-5 { stroke: #5c8001; background: #5c8001; fill: #5c8001; }
.series-6 { stroke: #8d6e63; background: #8d6e63; fill: #8d6e63; }
.series-7 { stroke: #3d5a80; background: #3d5a80; fill: #3d5a80; }
polyline.series-0, polyline.series-1, polyline.series-2, polyline.series-3, polyline.series-4, polyline.series-5, polyline.series-6, polyline.series-7 { fill: none; }
`
