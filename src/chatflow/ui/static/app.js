// ChatFlow UI: a hash-routed page over /api/. Every stored text reaches the DOM through
// textContent or an attribute set by setAttribute, never through innerHTML, so a prompt
// holding markup shows as text and runs nothing.
"use strict";

const CSRF = document.querySelector('meta[name="chatflow-csrf"]').content;
const ACTIONS_ON = document.querySelector('meta[name="chatflow-actions"]').content === "on";
const POLL_MS = 1000;
const PAGE_ROWS = 300;
const STATUS_ORDER = ["running", "paused", "created", "failed", "cancelled", "completed"];

let poller = null;
let renderToken = 0;
let graphUrl = null;

// -- DOM helpers ---------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "onclick") el.addEventListener("click", value);
    else if (key === "oninput") el.addEventListener("input", value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function link(route, text, cls) {
  return h("a", { href: "#" + route, class: cls }, text);
}

function pill(status) {
  return h("span", { class: "pill s-" + status }, status.replace(/_/g, " "));
}

function replaceMain(...children) {
  const main = document.getElementById("main");
  main.replaceChildren(...children.flat().filter(Boolean));
}

// -- formatting ----------------------------------------------------------------------

const TIME_FORMAT = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

function fmtTime(ts) {
  // One shared formatter: toLocaleString with options builds a new one per call (slow at 10,000 rows).
  return ts === null || ts === undefined ? "—" : TIME_FORMAT.format(new Date(ts * 1000));
}

function fmtAgo(ts) {
  if (!ts) return "—";
  const sec = Math.max(0, Date.now() / 1000 - ts);
  if (sec < 5) return "just now";
  if (sec < 60) return Math.floor(sec) + " s ago";
  if (sec < 3600) return Math.floor(sec / 60) + " min ago";
  if (sec < 86400) return Math.floor(sec / 3600) + " h ago";
  return Math.floor(sec / 86400) + " d ago";
}

function fmtDuration(sec) {
  if (sec === null || sec === undefined || !isFinite(sec)) return "—";
  if (sec < 1) return Math.round(sec * 1000) + " ms";
  if (sec < 60) return (sec < 10 ? sec.toFixed(1) : Math.round(sec)) + " s";
  if (sec < 3600) return Math.floor(sec / 60) + " min " + Math.round(sec % 60) + " s";
  if (sec < 86400) return Math.floor(sec / 3600) + " h " + Math.round((sec % 3600) / 60) + " min";
  return Math.floor(sec / 86400) + " d " + Math.round((sec % 86400) / 3600) + " h";
}

function when(ts) {
  return h("time", { title: fmtTime(ts), datetime: ts ? new Date(ts * 1000).toISOString() : null }, fmtAgo(ts));
}

function secs(iso) {
  // The API's times are ISO 8601 with offset (chatflow.views); the page computes in seconds.
  return iso ? Date.parse(iso) / 1000 : null;
}

function rollupModel(f) {
  const model = Object.assign({}, f, { updated_at: secs(f.updated_at) });
  for (const s of STATUS_ORDER) model[s + "_count"] = (f.counts && f.counts[s]) || 0;
  return model;
}

function instanceModel(view) {
  // chatflow.views.instance_view with its times in seconds; every figure is the server's.
  return Object.assign({}, view, {
    workflow_name: view.workflow, schema_version: view.workflow_version,
    created_at: secs(view.created_at), updated_at: secs(view.updated_at),
    timeline: view.timeline.map((row) => Object.assign({}, row, {
      started_at: secs(row.started_at), ended_at: secs(row.ended_at),
      end_at: secs(row.end_at), waiting_since: secs(row.waiting_since),
      files: row.files || [],
    })),
    summary: Object.assign({}, view.summary, {
      started_at: secs(view.summary.started_at), waiting_since: secs(view.summary.waiting_since),
    }),
  });
}

function shortHash(hex) {
  return hex ? hex.slice(0, 12) + "…" + hex.slice(-4) : "—";
}

function json(value) {
  return JSON.stringify(value, null, 2);
}

// -- API -------------------------------------------------------------------------------

async function api(path, options) {
  const init = Object.assign({ credentials: "same-origin", cache: "no-store" }, options || {});
  init.headers = Object.assign({ "X-ChatFlow-CSRF": CSRF }, init.headers || {});
  const response = await fetch("/api/" + path, init);
  if (response.status === 401) throw new Error("The access token is missing or expired: open the URL `chatflow ui` printed.");
  const type = response.headers.get("Content-Type") || "";
  const body = type.startsWith("application/json") ? await response.json() : await response.text();
  if (!response.ok) {
    const failure = new Error((body && body.error) || response.status + " " + response.statusText);
    failure.type = body && body.type;  // chatflow.errors class name, e.g. CorruptStateError
    throw failure;
  }
  return body;
}

function enc(id) {
  return encodeURIComponent(id);
}

// -- routing ---------------------------------------------------------------------------

function route() {
  if (poller) clearTimeout(poller);
  poller = null;
  const token = ++renderToken;
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  let page;
  if (parts[0] === "feature" && parts[1]) page = featurePage(parts[1], token);
  else if (parts[0] === "instance" && parts[1]) page = instancePage(parts[1], token);
  else page = overviewPage(token);
  page.catch((error) => showError(error, token));
}

function showError(error, token) {
  if (token !== renderToken) return;
  const title = error.type === "CorruptStateError" ? "This instance cannot be read" : "Something went wrong";
  replaceMain(h("div", { class: "card error-card", "data-error": error.type || "" }, h("h2", {}, title), h("p", {}, error.message)));
}

function crumbs(...items) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren();
  items.forEach((item, i) => {
    if (i) nav.append(h("span", { class: "sep", "aria-hidden": "true" }, "/"));
    nav.append(item);
  });
}

function every(ms, token, fn) {
  // The next poll is scheduled when this one ends, so a slow answer never piles up requests.
  const tick = async () => {
    if (token !== renderToken) return;
    try {
      await fn();
      setLive(true);
    } catch (error) {
      setLive(false, error.message);
    }
    if (token === renderToken) poller = setTimeout(tick, ms);
  };
  poller = setTimeout(tick, ms);
}

// The store's change feed (/api/events) now: read before the page loads what it shows, so
// a change made in between is never missed.
async function feedNow() {
  return (await api("events")).cursor;
}

// Follows the feed from `cursor`: one request per tick, whatever the page shows; `reload`
// runs only when something it shows (`filter`: &feature= or &instance=) changed.
function onChanges(token, cursor, filter, reload) {
  every(POLL_MS, token, async () => {
    let changed = false, feed;
    do {
      feed = await api("events?cursor=" + enc(cursor) + filter);
      cursor = feed.cursor;
      changed = changed || feed.changes.length > 0;
    } while (feed.more);
    if (changed && token === renderToken) await reload();
  });
}

function setLive(ok, why) {
  const live = document.getElementById("live");
  live.classList.toggle("off", !ok);
  live.textContent = ok ? "live" : "offline";
  live.title = ok ? "Updates arrive on their own" : "Cannot reach the server: " + why;
}

// -- overview --------------------------------------------------------------------------

async function overviewPage(token) {
  crumbs(h("span", {}, "Features"));
  const cursor = await feedNow();
  const first = await api("overview");  // chatflow.views.overview: the roll-ups and their totals
  if (token !== renderToken) return;
  const view = renderOverview(first.features.map(rollupModel), first.totals);
  replaceMain(view.root);
  requestAnimationFrame(() => performance.mark("chatflow:overview-drawn"));  // bench/bench_ui.py
  onChanges(token, cursor, "", async () => {
    const fresh = await api("overview");
    if (token !== renderToken) return;
    const next = renderOverview(fresh.features.map(rollupModel), fresh.totals, view.filter.value);
    replaceMain(next.root);
    Object.assign(view, next);
  });
}

function renderOverview(features, totals, filterText) {
  // chatflow.views.overview_totals: the server sums; the page only shows.
  const n = totals.counts;
  const stats = h("div", { class: "stats" },
    stat("Features", totals.features), stat("Instances", totals.instances),
    stat("Active", totals.active, "running"), stat("Waiting", n.paused, "paused"),
    stat("Failed", n.failed, "failed"), stat("Completed", n.completed, "completed"),
    n.cancelled ? stat("Cancelled", n.cancelled, "cancelled") : null);
  const filter = h("input", {
    type: "search", class: "filter", placeholder: "Filter features, statuses or instance ids…",
    "aria-label": "Filter features", value: filterText || "",
  });
  // Rows are drawn a page at a time (newest activity first); the filter searches all.
  const items = features.map((f) => ({ f, text: featureText(f) }));
  const tbody = h("tbody");
  const empty = h("p", { class: "muted empty", hidden: true }, "No feature matches the filter.");
  const more = h("div", { class: "more" });
  let limit = PAGE_ROWS;
  const draw = () => {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    const matches = words.length ? items.filter((item) => words.every((w) => item.text.includes(w))) : items;
    tbody.replaceChildren(...matches.slice(0, limit).map((item) => featureRow(item.f)));
    empty.hidden = matches.length !== 0;
    more.replaceChildren();
    if (matches.length > limit) {
      more.append(h("span", { class: "muted" }, `Showing ${limit.toLocaleString()} of ${matches.length.toLocaleString()} features, newest activity first.`),
        h("button", { type: "button", onclick: () => { limit += PAGE_ROWS * 4; draw(); } }, "Show more"));
    }
  };
  filter.addEventListener("input", () => { limit = PAGE_ROWS; draw(); });
  const table = h("table", { class: "grid features" },
    h("thead", {}, h("tr", {},
      h("th", {}, "Feature"), h("th", {}, "Status"), h("th", { class: "wide" }, "Instances by status"),
      h("th", { class: "num" }, "Total"), h("th", {}, "Latest instance"), h("th", {}, "Last activity"))),
    tbody);
  draw();
  const body = features.length
    ? [h("div", { class: "toolbar" }, filter), h("div", { class: "card flush" }, table, empty, more)]
    : [h("div", { class: "card empty-state" }, h("h2", {}, "No workflow instances yet"),
        h("p", {}, "Start one from your tool or run "), h("code", {}, "chatflow demo"))];
  return { root: h("section", { id: "overview" }, h("h1", {}, "Features"), stats, body), filter };
}

function stat(label, value, status) {
  return h("div", { class: "stat" + (status ? " s-" + status : ""), "data-stat": label.toLowerCase() },
    h("span", { class: "stat-v" }, String(value)), h("span", { class: "stat-l" }, label));
}

function featureRow(f) {
  const bar = h("div", { class: "stack", title: STATUS_ORDER.map((s) => `${s}: ${f[s + "_count"] || 0}`).join(", ") });
  const counts = h("div", { class: "counts" });
  for (const s of STATUS_ORDER) {
    const n = f[s + "_count"] || 0;
    if (!n) continue;
    const seg = h("span", { class: "seg s-" + s });
    seg.style.flexGrow = String(n);
    bar.append(seg);
    counts.append(h("span", { class: "count s-" + s }, `${n} ${s}`));
  }
  const route = "/feature/" + enc(f.feature_id);
  const latest = f.shown_instance_id;  // chatflow.views: the active instance, else the latest
  const el = h("tr", { "data-feature": f.feature_id },
    h("td", {}, link(route, f.feature_id, "strong")),
    h("td", {}, pill(f.status)),
    h("td", { class: "wide" }, bar, counts),
    h("td", { class: "num" }, String(f.total_instances)),
    h("td", {}, latest ? link("/instance/" + enc(latest), latest, "mono") : "—"),
    h("td", {}, when(f.updated_at)));
  el.addEventListener("click", (event) => {
    if (!event.target.closest("a")) location.hash = "#" + route;
  });
  return el;
}

function featureText(f) {
  const latest = f.shown_instance_id || "";
  return [f.feature_id, f.status, latest, ...STATUS_ORDER.filter((s) => f[s + "_count"])].join(" ").toLowerCase();
}

// -- feature page ------------------------------------------------------------------------

async function featurePage(featureId, token) {
  crumbs(link("/", "Features"), h("span", {}, featureId));
  const load = () => Promise.all([api("features/" + enc(featureId)), api("instances?feature=" + enc(featureId) + "&limit=" + PAGE_ROWS)]);
  const cursor = await feedNow();
  const [rollup, rows] = await load();
  if (token !== renderToken) return;
  replaceMain(renderFeature(rollupModel(rollup), rows));
  onChanges(token, cursor, "&feature=" + enc(featureId), async () => {
    const fresh = await load();
    if (token === renderToken) replaceMain(renderFeature(rollupModel(fresh[0]), fresh[1]));
  });
}

function renderFeature(rollup, rows) {
  const phases = Object.entries(rollup.phases || {});
  const strip = phases.length
    ? h("div", { class: "phase-strip", "aria-label": "Phases of the active instance" },
        h("span", { class: "muted" }, rollup.active_instance_id ? "Active instance:" : "Latest instance:"),
        phases.map(([name, status]) => h("span", { class: "chip s-" + status, title: status.replace(/_/g, " ") }, name)))
    : null;
  const table = h("table", { class: "grid" },
    h("thead", {}, h("tr", {}, h("th", {}, "Instance"), h("th", {}, "Workflow"), h("th", {}, "Status"),
      h("th", {}, "Phase"), h("th", {}, "Progress"), h("th", {}, "Started"), h("th", {}, "Updated"))),
    h("tbody", {}, rows.map((r) => {
      if (r.status === "unreadable") return unreadableRow(r);
      const route = "/instance/" + enc(r.instance_id);
      const tr = h("tr", {},
        h("td", {}, link(route, r.instance_id, "mono strong")),
        h("td", {}, `${r.workflow}@${r.workflow_version}`),
        h("td", {}, pill(r.status)),
        h("td", {}, r.wait ? [r.current_phase, h("span", { class: "muted" }, " · " + waitText(r.wait))] : r.current_phase),
        h("td", {}, progressBar(r.progress)),
        h("td", {}, when(secs(r.created_at))),
        h("td", {}, when(secs(r.updated_at))));
      tr.addEventListener("click", (event) => { if (!event.target.closest("a")) location.hash = "#" + route; });
      return tr;
    })));
  return h("section", { id: "feature" },
    h("div", { class: "title-row" }, h("h1", {}, rollup.feature_id), pill(rollup.status)),
    h("div", { class: "stats" },
      stat("Instances", rollup.total_instances), stat("Running", rollup.running_count, "running"),
      stat("Waiting", rollup.paused_count, "paused"), stat("Failed", rollup.failed_count, "failed"),
      stat("Completed", rollup.completed_count, "completed")),
    strip,
    spendCard(rollup.usage, []),
    h("div", { class: "card flush" }, table,
      rows.length < rollup.total_instances
        ? h("div", { class: "more" }, h("span", { class: "muted" }, `Showing the newest ${rows.length} of ${rollup.total_instances.toLocaleString()} instances.`))
        : null));
}

function unreadableRow(r) {
  // chatflow.views.unreadable_row: a damaged instance, named with why it cannot be read.
  return h("tr", { class: "unreadable", "data-instance": r.instance_id },
    h("td", {}, h("span", { class: "mono strong" }, r.instance_id)),
    h("td", { colspan: 6 }, pill(r.status), h("span", { class: "muted" }, " " + r.problem)));
}

function progressBar(value) {
  const pct = Math.round((value || 0) * 100);
  const fill = h("span", { class: "fill" });
  fill.style.width = pct + "%";
  return h("span", { class: "progress", title: pct + "%" }, h("span", { class: "track" }, fill), h("span", { class: "pct" }, pct + "%"));
}

// -- instance page -----------------------------------------------------------------------

async function instancePage(iid, token) {
  crumbs(link("/", "Features"), h("span", { class: "mono" }, iid));
  const load = async () => {
    const [view, history, artifacts, verify] = await Promise.all([
      api("instances/" + enc(iid)), api("instances/" + enc(iid) + "/history"),
      api("instances/" + enc(iid) + "/artifacts"), api("instances/" + enc(iid) + "/verify"),
    ]);
    const svg = await api("instances/" + enc(iid) + "/graph.svg");
    const events = history.map((e) => Object.assign({}, e, { at: secs(e.at) }));
    return { state: instanceModel(view), history: events, artifacts, verify, svg };
  };
  const cursor = await feedNow();
  const data = await load();
  if (token !== renderToken) return;
  crumbs(link("/", "Features"), link("/feature/" + enc(data.state.feature_id), data.state.feature_id),
    h("span", { class: "mono" }, iid));
  renderInstance(data);
  onChanges(token, cursor, "&instance=" + enc(iid), async () => {
    const fresh = await load();
    if (token === renderToken) renderInstance(fresh);
  });
}

function renderInstance(data) {
  const state = data.state;
  lastState = state;
  const scroll = window.scrollY;
  if (graphUrl) URL.revokeObjectURL(graphUrl);
  graphUrl = URL.createObjectURL(new Blob([data.svg], { type: "image/svg+xml" }));
  const header = h("div", { class: "title-row" },
    h("h1", { class: "mono" }, state.instance_id), pill(state.status),
    h("span", { class: "muted" }, `${state.workflow_name}@${state.schema_version}`));
  const facts = h("dl", { class: "facts" },
    fact("Feature", link("/feature/" + enc(state.feature_id), state.feature_id)),
    fact("Current phase", state.current_phase),
    fact("Next", state.next_phase || (state.finished ? "—" : "end")),
    fact("Progress", progressBar(state.progress)),
    fact("Started", h("span", { title: fmtTime(state.created_at) }, fmtTime(state.created_at))),
    fact("Updated", when(state.updated_at)),
    state.wait ? fact("Waiting", waitText(state.wait), state.wait.overdue ? "overdue" : "") : null,
    state.parent ? fact("Forked from", link("/instance/" + enc(state.parent.instance_id), state.parent.instance_id, "mono"), "fact-id") : null,
    fact("Version", String(state.version)));
  replaceMain(h("section", { id: "instance" },
    header,
    state.workflow_title ? h("p", { class: "muted subtitle" }, state.workflow_title) : null,
    facts,
    banners(data),
    ACTIONS_ON ? actionBar(state) : null,
    spendCard(state.usage, state.budgets),
    h("div", { class: "split" },
      h("div", { class: "card graph-card" }, h("h2", {}, "Workflow"),
        graphImage(graphUrl, state.workflow_name),
        legend()),
      h("div", { class: "card" }, h("h2", {}, "Timeline"), timeline(state, data.history))),
    h("div", { class: "card" }, h("h2", {}, `Prompts and responses (${data.artifacts.length})`), artifactList(data.artifacts)),
    h("div", { class: "card" }, h("h2", {}, `Events (${data.history.length})`), h("div", { class: "scroll" }, eventLog(data.history))),
    h("div", { class: "split even" },
      h("div", { class: "card" }, h("h2", {}, "Variables"), h("pre", { class: "json" }, json(state.variables))),
      h("div", { class: "card" }, h("h2", {}, "Meta"), h("pre", { class: "json" }, json(state.meta))))));
  window.scrollTo(0, scroll);
}

function graphImage(url, name) {
  const img = h("img", { alt: "Workflow graph of " + name + " with the path taken", class: "graph" });
  img.addEventListener("load", () => { img.dataset.loaded = "yes"; });
  img.src = url;
  return img;
}

function fact(label, value, cls) {
  return h("div", { class: cls }, h("dt", {}, label), h("dd", {}, value));
}

function legend() {
  return h("div", { class: "legend" },
    ["done", "current", "waiting", "failed"].map((k) => h("span", { class: "key k-" + k }, k)),
    h("span", { class: "key k-taken" }, "path taken"));
}

function banners(data) {
  const out = [];
  const pause = data.state.pause;
  if (data.state.status === "paused" && pause) {
    const what = pause.kind === "approval"
      ? `Waiting for approval to enter “${data.state.current_phase}”`
      : pause.kind === "budget" ? `Over budget in “${data.state.current_phase}”`
      : `Paused in “${data.state.current_phase}”`;
    const why = pause.reason;
    out.push(h("div", { class: "banner b-paused", role: "status" }, h("strong", {}, what), why ? h("span", {}, " — " + why) : null));
  }
  if (data.state.status === "failed") {
    const error = data.state.failure;
    out.push(h("div", { class: "banner b-failed", role: "status" }, h("strong", {}, "Failed"), error ? h("span", {}, " — " + error) : null));
  }
  const open = data.state.open_gates || [];
  if (open.length && !data.state.finished) {
    out.push(h("div", { class: "banner b-paused", role: "status", "data-gate": "open" },
      h("strong", {}, `Before leaving “${data.state.current_phase}”`),
      h("span", {}, " — needs " + open.map((item) => item.text || item.kind).join("; "))));
  }
  const verify = data.verify;
  if (verify.available) {
    const ok = verify.ok === true;
    out.push(h("div", { class: "banner " + (ok ? "b-ok" : "b-failed"), "data-verify": ok ? "ok" : "bad" },
      h("strong", {}, ok ? "History verified" : "History does not verify"),
      h("span", {}, ok ? " — every event is chained to the one before it, artifacts match" : " — " + verify.problem)));
  } else {
    out.push(h("div", { class: "banner b-muted", "data-verify": "unavailable" },
      h("strong", {}, "History verification unavailable"),
      h("span", {}, " — this ChatFlow has no hash-chained log; artifact checksums are still checked below")));
  }
  return out;
}

// -- timeline ----------------------------------------------------------------------------

function waited(row, now) {
  // chatflow.views: waits closed (waited_s), plus the one still open since waiting_since.
  return row.waited_s + (row.waiting_since !== null ? now - row.waiting_since : 0);
}

function timeline(state, history) {
  const rows = state.timeline;  // chatflow.views: one row per visit, with its visit number and events
  if (!rows.length) return h("p", { class: "muted" }, "No phase entered yet.");
  const now = Date.now() / 1000;  // one clock per drawing, so no bar outgrows the axis
  const untilNow = (ts) => (ts === null ? now : ts);  // null: still going on
  const sum = state.summary;
  const start = sum.started_at;
  const end = Math.max(...rows.map((r) => untilNow(r.end_at)), start + 0.001);
  const span = end - start;
  const summary = h("div", { class: "chips" },
    chip("Elapsed", fmtDuration(span)),
    chip("Visits", String(sum.visits)),
    chip("Retries", String(sum.retries), sum.retries ? "warn" : ""),
    chip("Failures", String(sum.failures), sum.failures ? "bad" : ""),
    chip("Approvals", String(sum.approvals)),
    chip("Pauses", String(sum.pauses)),
    chip("Waiting", fmtDuration(waited(sum, now))));
  const list = h("ol", { class: "tl" }, rows.map((r) => {
    const rowEnd = untilNow(r.end_at);
    const events = r.events.map((i) => history[i]).filter(Boolean);  // positions in the event log
    const left = ((r.started_at - start) / span) * 100;
    const width = Math.max(((rowEnd - r.started_at) / span) * 100, 0.6);
    const bar = h("span", { class: "bar s-" + r.status });
    bar.style.left = left + "%";
    bar.style.width = width + "%";
    const marks = events.map((e) => {
      const m = h("span", { class: "mark m-" + e.kind, title: eventText(e) + " · " + fmtTime(e.at) });
      m.style.left = (((e.at - start) / span) * 100) + "%";
      return m;
    });
    const notes = events.map((e) => h("span", { class: "note m-" + e.kind }, eventText(e)));
    const wait = waited(r, now);
    return h("li", { class: "tl-row", "data-phase": r.phase, "data-status": r.status },
      h("div", { class: "tl-head" },
        h("span", { class: "tl-phase" }, r.phase),
        r.visit > 1 ? h("span", { class: "visit" }, "visit " + r.visit) : null,
        pill(r.status),
        h("span", { class: "spacer" }),
        h("span", { class: "dur", title: fmtTime(r.started_at) + " → " + (r.ended_at ? fmtTime(r.ended_at) : "now") },
          fmtDuration(rowEnd - r.started_at) + (r.end_at === null ? " so far" : "")),
        wait ? h("span", { class: "waited" }, "waited " + fmtDuration(wait)) : null),
      h("div", { class: "track-row" }, bar, marks),
      notes.length ? h("div", { class: "notes" }, notes) : null,
      r.files.length ? h("div", { class: "files muted" }, "files touched: ", r.files.map((f) =>
        h("code", { title: f.sha256 ? "sha256 " + f.sha256 : "no such file now" }, f.path + " " + shortHash(f.sha256) + " "))) : null,
      r.actor ? h("div", { class: "by muted" }, `${r.status} by ${r.actor}`) : null,
      r.commits_text ? h("div", { class: "commits muted" }, "git " + r.commits_text) : null);
  }));
  return h("div", {}, summary, list);
}

function chip(label, value, kind) {
  return h("span", { class: "chip2" + (kind ? " " + kind : "") }, h("span", { class: "chip-l" }, label), h("span", { class: "chip-v" }, value));
}

const EVENT_LABEL = {
  started: "started", phase_entered: "entered", phase_completed: "completed",
  approval_requested: "approval requested", paused: "paused", resumed: "resumed",
  rejected: "rejected", failed: "failed", retried: "retried", cancelled: "cancelled",
  jumped: "jumped", completed: "workflow completed", forked: "forked",
  task_recorded: "prompt and response recorded", files_touched: "files touched",
};

function eventText(e) {
  const d = e.data || {};
  let text = EVENT_LABEL[e.kind] || e.kind;
  if (e.approval && e.kind === "resumed") text = "approved by " + (d.approved_by || e.actor);
  else if (e.kind === "approval_overridden") text = "approval overridden by " + (e.actor || "someone");
  else if (e.kind === "approved") text = "approved by " + (d.by || e.actor);
  else if (e.kind === "rejected") text = "rejected by " + (d.rejected_by || e.actor || "someone") + (d.to ? " → " + d.to : "");
  else if (e.kind === "failed" && d.error) text = "failed: " + d.error;
  else if (e.kind === "retried") text = "retry " + d.retry + (d.note ? ": " + d.note : "");
  else if (e.kind === "approval_requested" && d.reasons) text = "approval requested (" + d.reasons.join("; ") + ")";
  else if (e.kind === "paused" && d.reason) text = "paused: " + d.reason;
  else if (e.kind === "jumped") text = "jumped to " + d.to + (d.reason ? ": " + d.reason : "");
  else if (e.kind === "phase_completed" && d.next) text = "completed → " + d.next;
  else if (e.kind === "cancelled" && d.reason) text = "cancelled: " + d.reason;
  else if (e.kind === "forked") text = "forked into " + d.child;
  else if (e.kind === "started" && d.forked_from) text = "forked from " + d.forked_from;
  if (d.note && e.kind !== "retried") text += " — “" + d.note + "”";
  return text;
}

function eventLog(history) {
  if (!history.length) return h("p", { class: "muted" }, "No events.");
  return h("table", { class: "grid events" },
    h("thead", {}, h("tr", {}, h("th", {}, "When"), h("th", {}, "Event"), h("th", {}, "Phase"), h("th", {}, "Who"))),
    h("tbody", {}, [...history].reverse().map((e) => h("tr", { class: "ev-" + e.kind },
      h("td", { class: "nowrap" }, h("span", { title: fmtTime(e.at) }, fmtTime(e.at))),
      h("td", {}, h("span", { class: "evk m-" + e.kind }), eventText(e)),
      h("td", {}, e.phase || "—"),
      h("td", {}, e.actor || "—")))));
}

// -- artifacts ---------------------------------------------------------------------------

function artifactList(artifacts) {
  if (!artifacts.length) return h("p", { class: "muted" }, "No prompt or response recorded yet.");
  const newest = artifacts[artifacts.length - 1];
  return h("div", { class: "artifacts" }, [...artifacts].reverse().map((a) => {
    const open = a === newest || !a.verified;
    return h("details", { class: "artifact", open: open, "data-task": a.task },
      h("summary", {},
        h("span", { class: "tl-phase" }, a.phase), a.visit > 1 ? h("span", { class: "visit" }, "visit " + a.visit) : null,
        a.status ? pill(a.status) : null,
        h("span", { class: "spacer" }),
        h("span", { class: "muted" }, fmtTime(secs(a.ended_at || a.started_at))),
        verifiedBadge(a.verified)),
      h("div", { class: "pair" },
        textPane("Prompt", a.prompt, a.prompt_sha256, a.prompt_verified),
        textPane("AI response", a.response, a.response_sha256, a.response_verified)));
  }));
}

function verifiedBadge(ok) {
  return h("span", { class: "verified " + (ok ? "ok" : "bad") }, ok ? "✓ checksums verified" : "✗ checksum mismatch");
}

function textPane(title, text, recorded, ok) {
  return h("div", { class: "pane" },
    h("div", { class: "pane-head" }, h("strong", {}, title),
      h("span", { class: "spacer" }),
      h("span", { class: "sha " + (ok ? "ok" : "bad"), title: "SHA-256 recorded: " + (recorded || "none") },
        (ok ? "✓ " : "✗ ") + "sha256 " + shortHash(recorded))),
    ok ? null : h("div", { class: "mismatch" }, "The stored text no longer matches the SHA-256 recorded with it."),
    h("pre", { class: "text" }, text === null || text === undefined ? "(missing)" : text));
}

// -- actions -----------------------------------------------------------------------------

const ACTION_INFO = {
  approve: { label: "Approve", help: "Let the instance enter the phase waiting for approval.", primary: true },
  reject: { label: "Reject", help: "Refuse the approval and send the work back.", danger: true },
  resume: { label: "Resume", help: "Continue the paused instance." },
  pause: { label: "Pause", help: "Stop work on the current phase until resumed." },
  retry: { label: "Retry phase", help: "Start the current phase over as a new visit." },
  cancel: { label: "Cancel instance", help: "Abandon the instance for good.", danger: true },
};

function actionBar(state) {
  const names = state.actions || []; // chatflow.views.available_actions decides
  if (!names.length) return null;
  return h("div", { class: "actions", role: "toolbar", "aria-label": "Actions" },
    h("span", { class: "muted" }, "Actions"),
    names.map((name) => {
      const info = ACTION_INFO[name];
      return h("button", {
        type: "button", "data-action": name,
        class: info.primary ? "primary" : info.danger ? "danger" : "",
        onclick: () => openAction(state.instance_id, name),
      }, info.label);
    }));
}

function openAction(iid, name) {
  const dialog = document.getElementById("act");
  const info = ACTION_INFO[name];
  document.getElementById("act-title").textContent = info.label;
  document.getElementById("act-help").textContent = info.help;
  document.getElementById("act-note-label").firstChild.textContent = name === "pause" || name === "cancel" ? "Reason " : "Note ";
  const actor = document.getElementById("act-actor");
  actor.value = localStorage.getItem("chatflow-actor") || "";
  document.getElementById("act-note").value = "";
  document.getElementById("act-error").textContent = "";
  const go = document.getElementById("act-go");
  go.textContent = info.label;
  go.className = info.danger ? "danger" : "primary";
  dialog.dataset.iid = iid;
  dialog.dataset.action = name;
  // Approving a budget pause allows more: the server's pause says so (views.instance_view).
  const budget = name === "approve" && ((lastState || {}).pause || {}).kind === "budget";
  dialog.dataset.extend = budget ? "yes" : "";
  if (budget) document.getElementById("act-note-label").firstChild.textContent = "Allow more (e.g. cost_usd=5 tokens=10000) ";
  dialog.showModal();
  (actor.value ? document.getElementById("act-note") : actor).focus();
}

async function submitAction(event) {
  event.preventDefault();
  const dialog = document.getElementById("act");
  const actor = document.getElementById("act-actor").value.trim();
  const note = document.getElementById("act-note").value.trim();
  const error = document.getElementById("act-error");
  if (!actor) { error.textContent = "Say who you are: your name is recorded with the action."; return; }
  localStorage.setItem("chatflow-actor", actor);
  try {
    await api("instances/" + enc(dialog.dataset.iid) + "/" + dialog.dataset.action, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(dialog.dataset.extend ? { actor, extend: amounts(note) } : { actor, note: note || null }),
    });
    dialog.close();
    route();
  } catch (failure) {
    error.textContent = failure.message;
  }
}

// -- start -------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  const mode = document.getElementById("mode");
  mode.textContent = ACTIONS_ON ? "actions on" : "read-only";
  mode.classList.add(ACTIONS_ON ? "on" : "ro");
  mode.title = ACTIONS_ON ? "Approve, reject, pause, resume, retry and cancel are enabled" : "Start with --allow-actions to act on instances";
  document.getElementById("act-form").addEventListener("submit", submitAction);
  document.getElementById("act-cancel").addEventListener("click", () => document.getElementById("act").close());
  window.addEventListener("hashchange", route);
  route();
});

// -- spend (chatflow.views.usage_view / budget_view / feature_usage) ---------------------

let lastState = null;

function waitText(wait) {
  // chatflow.views.wait_view: what it waits for, how long, and how overdue.
  const text = `${wait.of} for ${fmtDuration(wait.waited_s)}`;
  return wait.overdue ? text + ` — overdue by ${fmtDuration(wait.overdue_s)}` : text + ` (due ${fmtTime(secs(wait.due_at))})`;
}

function amounts(text) {
  // "cost_usd=5 tokens=1000" -> {cost_usd: 5, tokens: 1000}; the server checks the names.
  const out = {};
  for (const pair of text.split(/[\s,]+/).filter(Boolean)) {
    const [key, value] = pair.split("=");
    out[key] = value !== undefined && value !== "" && !isNaN(Number(value)) ? Number(value) : value;
  }
  return out;
}

function spendCard(usage, budgets) {
  const phases = Object.entries((usage && usage.phases) || {});
  if (!phases.length && !(budgets || []).length) return null;
  const cost = (t) => t["chatflow.cost_usd"] || 0;
  const most = Math.max(...phases.map(([, t]) => cost(t)), 0) || 1;
  const bar = (share) => progressBar(Math.min(share, 1));
  const total = usage && usage.total;
  return h("div", { class: "card", id: "spend" },
    h("h2", {}, total ? `Spend: $${cost(total).toFixed(4)} · ${total["chatflow.tokens"].toLocaleString()} tokens` : "Spend"),
    phases.length ? h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, h("th", {}, "Phase"), h("th", {}, "Cost"), h("th", {}, "Tokens"), h("th", {}, ""))),
      h("tbody", {}, phases.map(([name, t]) => h("tr", { "data-phase": name },
        h("td", {}, name), h("td", {}, "$" + cost(t).toFixed(4)), h("td", {}, t["chatflow.tokens"].toLocaleString()),
        h("td", {}, bar(cost(t) / most)))))) : null,
    (budgets || []).length ? h("table", { class: "grid", id: "budgets" },
      h("thead", {}, h("tr", {}, h("th", {}, "Budget"), h("th", {}, "Used"), h("th", {}, ""))),
      h("tbody", {}, budgets.map((b) => h("tr", {},
        h("td", {}, `${b.scope} ${b.key}`), h("td", {}, b.shown), h("td", {}, bar(b.share)))))) : null);
}
