/* HeliosProxy dashboard: polls /api/overview every 2 s and renders it.
 * Every value goes into the page as text (textContent), never as markup:
 * statement texts, names and errors come from clients and servers. The
 * server's Content-Security-Policy allows this file, the stylesheet and
 * fetches to this origin only. Read-only: nothing here changes the proxy. */
"use strict";

const PERIOD_MS = 2000;
const STALE_MS = 6000; /* three missed polls: the numbers shown are old */
const TIMEOUT_MS = 4000;

let lastOk = 0;      /* Date.now() of the last good answer */
let lastError = "";
let polls = 0;       /* good answers rendered, for tests and the curious */

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function num(v) {
  if (v === null || v === undefined) return "–";
  return typeof v === "number" ? v.toLocaleString("en-US") : String(v);
}

function secs(v) {
  if (v === null || v === undefined) return "–";
  if (v < 0.001) return (v * 1e6).toFixed(0) + " µs";
  if (v < 1) return (v * 1000).toFixed(v < 0.01 ? 2 : 1) + " ms";
  if (v < 120) return v.toFixed(2) + " s";
  return (v / 60).toFixed(1) + " min";
}

function pct(v) {
  return v === null || v === undefined ? "–" : (v * 100).toFixed(1) + " %";
}

function ago(v) {
  return v === null || v === undefined ? "now" : secs(v) + " ago";
}

/* A table cell; kind: "num", "sql", or a status class. */
function cell(text, kind) {
  return el("td", text, kind || "");
}

function fill(tableId, rows, width, emptyText) {
  const body = document.querySelector("#" + tableId + " tbody");
  const frag = document.createDocumentFragment();
  for (const cells of rows) {
    const tr = el("tr");
    for (const c of cells) tr.appendChild(c);
    frag.appendChild(tr);
  }
  if (!rows.length) {
    const tr = el("tr");
    const td = el("td", emptyText, "empty");
    td.colSpan = width;
    tr.appendChild(td);
    frag.appendChild(tr);
  }
  body.replaceChildren(frag);
}

function card(key, value, sub, id) {
  const c = el("div", null, "card");
  if (id) c.id = id;
  c.appendChild(el("div", key, "k"));
  c.appendChild(el("div", value, "v"));
  if (sub) c.appendChild(el("div", sub, "s"));
  return c;
}

function render(o) {
  const t = o.totals || {};
  const cfg = o.config || {};
  const dps = o.dataplanes || [];
  const roleName = { "control-plane": "helios-cp", embedded: "HeliosProxy + control plane", dataplane: "HeliosProxy" };
  document.getElementById("title").textContent =
    (roleName[o.role] || "HeliosProxy") + " " + (o.version || "");
  document.title = (roleName[o.role] || "HeliosProxy") + " dashboard";

  const acked = (cfg.acked || []).length, total = acked + (cfg.not_acked || []).length;
  const cards = [
    card("Data planes", num(t.dataplanes), dps.filter((d) => d.connected).length + " connected", "c-dataplanes"),
    card("Clients", num(t.clients), num(t.clients_active) + " active · " + num(t.clients_waiting) +
         " waiting · " + num(t.clients_idle) + " idle", "c-clients"),
    card("Servers", num((t.servers_active || 0) + (t.servers_idle || 0)),
         num(t.servers_active) + " active · " + num(t.servers_idle) + " idle", "c-servers"),
    card("Pools", num(t.pools), null, "c-pools"),
    card("Cache hit ratio", pct(t.cache_hit_ratio), null, "c-cache"),
    card("Rate-limit throttles", num(t.throttled), num(t.rejected) + " rejected", "c-throttled"),
    card("Spliced sessions", num(t.spliced_sessions), null, "c-splice"),
    card("Config generation", num(cfg.generation),
         cfg.has_config === false ? "no configuration" :
         acked + " of " + total + " acknowledged" +
         ((cfg.not_acked || []).length ? "; waiting: " + cfg.not_acked.join(", ") : ""), "c-config"),
  ];
  if (o.control_plane && o.control_plane.connected !== null) {
    cards.push(card("Control plane", o.control_plane.connected ? "connected" : "unreachable",
                    "last contact " + ago(o.control_plane.last_contact_secs), "c-cp"));
  }
  document.getElementById("cards").replaceChildren(...cards);

  const dpRows = [], poolRows = [], nodeRows = [], qRows = [], rateRows = [];
  for (const d of dps) {
    const c = d.clients || {};
    dpRows.push([
      cell(d.id),
      cell(d.connected ? "yes" : "no", d.connected ? "good" : "bad"),
      cell(num(d.generation), "num"),
      cell(d.acked ? "yes" : "no" + (d.last_error ? ": " + d.last_error : ""), d.acked ? "good" : "meh"),
      cell(ago(d.last_seen_secs)),
      cell(num(c.total), "num"), cell(num(c.active), "num"), cell(num(c.waiting), "num"),
      cell(num(c.idle), "num"),
      cell(num(d.splice ? d.splice.active : null), "num"),
      cell(pct(d.cache && d.cache.enabled ? d.cache.hit_ratio : null), "num"),
      cell(num(d.rate_limit ? d.rate_limit.throttled : null), "num"),
    ]);
    for (const p of d.pools || []) {
      poolRows.push([
        cell(d.id), cell(p.database), cell(p.user), cell(p.node), cell(p.mode + (p.paused ? " (paused)" : "")),
        cell(num(p.cl_active), "num"), cell(num(p.cl_waiting), p.cl_waiting ? "num meh" : "num"),
        cell(num(p.sv_active), "num"), cell(num(p.sv_idle), "num"), cell(num(p.max_size), "num"),
        cell(secs(p.wait_p99_secs), "num"), cell(secs(p.maxwait_secs), "num"),
        cell(num(p.wait_timeouts), p.wait_timeouts ? "num bad" : "num"),
        cell(num(p.query_count), "num"),
      ]);
    }
    for (const n of d.nodes || []) nodeRows.push(nodeCells(d.id, n));
    for (const q of d.top_queries || []) {
      qRows.push([
        cell(d.id), cell(q.query, "sql"), cell(q.database), cell(num(q.calls), "num"),
        cell(secs(q.total_secs), "num"), cell(secs(q.mean_secs), "num"),
        cell(secs(q.p99_secs), "num"), cell(num(q.errors), q.errors ? "num bad" : "num"),
      ]);
    }
    for (const b of (d.rate_limit && d.rate_limit.buckets) || []) {
      rateRows.push([
        cell(d.id), cell(b.name), cell(num(b.rate), "num"), cell(num(b.allowed), "num"),
        cell(num(b.throttled), b.throttled ? "num meh" : "num"),
        cell(num(b.rejected), b.rejected ? "num bad" : "num"),
      ]);
    }
  }
  /* the control plane's own probes of the nodes (no breaker: that is each
   * data plane's) */
  if (o.role === "control-plane")
    for (const n of o.nodes || []) nodeRows.unshift(nodeCells("helios-cp", n));
  fill("dataplanes", dpRows, 12, "no data plane has reported yet");
  fill("pools", poolRows, 14, "no pool yet: pools open with the first client of a database and user");
  fill("nodes", nodeRows, 8, "no node");
  fill("queries", qRows, 8, "no statement statistics (analytics.enabled = true and analytics.metrics_top > 0 collect them)");
  fill("rates", rateRows, 6, "no rate limit configured");
}

function nodeCells(seenBy, n) {
  const lag = n.lag_ms === null || n.lag_ms === undefined ? "–" : num(n.lag_ms) + " ms";
  const br = n.breaker || "–";
  return [
    cell(seenBy), cell(n.name), cell(n.host + ":" + n.port), cell(n.role),
    cell(n.healthy ? (n.draining ? "draining" : "healthy") : "down", n.healthy ? (n.draining ? "meh" : "good") : "bad"),
    cell(lag, "num"),
    cell(br, br === "open" ? "bad" : br === "half-open" ? "meh" : ""),
    cell(n.error || ""),
  ];
}

function showState() {
  const badge = document.getElementById("state");
  const age = Date.now() - lastOk;
  let state, text;
  if (!lastOk) {
    state = lastError ? "down" : "wait";
    text = lastError ? "unreachable" : "loading";
  } else if (age > STALE_MS) {
    state = lastError ? "down" : "stale";
    text = (lastError ? "unreachable" : "stale") + ": data " + Math.round(age / 1000) + " s old";
  } else {
    state = "live";
    text = lastError ? "live (last poll failed)" : "live";
  }
  badge.className = "badge " + state;
  badge.textContent = text;
  document.body.classList.toggle("stale", state === "stale" || state === "down");
  document.body.dataset.state = state;
  document.body.dataset.polls = String(polls);
  document.getElementById("updated").textContent =
    (lastOk ? "updated " + new Date(lastOk).toLocaleTimeString() : "") +
    (lastError ? (lastOk ? " · " : "") + "last poll failed: " + lastError : "");
}

async function poll() {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
  try {
    const r = await fetch("api/overview", { cache: "no-store", signal: ctl.signal });
    if (!r.ok) throw new Error("HTTP " + r.status);
    const o = await r.json();
    render(o);
    polls++;
    lastOk = Date.now();
    lastError = "";
  } catch (e) {
    lastError = e && e.name === "AbortError" ? "timed out" : String((e && e.message) || e);
  } finally {
    clearTimeout(timer);
    showState();
    setTimeout(poll, PERIOD_MS);
  }
}

setInterval(showState, 1000); /* the age ticks even while a poll hangs */
poll();
