// The dashboard: a token, then pages read from the JSON API with it. Every value shown
// comes from /api/v1 (projections, the registry, settings); every edit is the API's own
// command with the version it was read at (If-Match), and shows the API's errors.
import { PALETTE, hBars, legend, responsive, stackedBars, stepChart } from "./charts.js";

const API = "/api/v1";
const TOKEN = "ledger.dashboard.token";
const VERIFY = "ledger.dashboard.verify";
const READERS = ["platform_admin", "auditor"];
const state = { me: null, range: { days: 30 } };

// -- the API -------------------------------------------------------------------------------

class Problem extends Error {
  constructor(status, body) {
    super(body && body.detail ? body.detail : `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

async function api(path, { method = "GET", body, ifMatch } = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN) || ""}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (ifMatch !== undefined) headers["If-Match"] = `"${ifMatch}"`;
  const res = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
  if (res.status === 401 && path !== "/auth/me") { signOut("Your token was refused (401): sign in again."); }
  if (!res.ok) throw new Problem(res.status, data);
  return data;
}

const q = params => {
  const s = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ""));
  return s.toString() ? `?${s}` : "";
};
const enc = encodeURIComponent;

// -- DOM helpers (text only: nothing from the API is parsed as HTML) -----------------------

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) node.append(c);
  return node;
}

const num = v => (v === null || v === undefined || v === "" ? null : Number(v));
const fmtInt = v => (v === null || v === undefined ? "—" : Number(v).toLocaleString("en-US"));
function fmtUsd(v, digits) {
  const n = num(v);
  if (n === null) return "—";
  const d = digits ?? (Math.abs(n) < 1 && n !== 0 ? 4 : 2);
  return (n < 0 ? "-$" : "$") + Math.abs(n).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}
const fmtPct = v => (num(v) === null ? "—" : `${Number(v).toFixed(1)}%`);
const fmtTime = v => (v ? v.replace("T", " ").slice(0, 19) : "—");
const axisUsd = v => (Math.abs(v) >= 1000 ? `$${(v / 1000).toFixed(1)}k` : `$${+v.toFixed(2)}`);

function problemView(err) {
  const box = h("div", { class: "error", role: "alert" });
  if (!(err instanceof Problem)) { box.append(String(err.message || err)); return box; }
  box.append(`${err.status} ${err.body.title || ""}: ${err.body.detail || err.message}`);
  const errors = err.body.errors || [];
  if (errors.length) box.append(h("ul", { class: "errors" }, errors.map(e => h("li", {}, `${e.field}: ${e.message}`))));
  return box;
}

/** A table: columns [{key, label, num, fmt(value, row)}], with a class and a click per row. */
function table(columns, rows, { rowClass, onClick, empty = "Nothing yet." } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, columns.map(c => h("th", { class: c.num ? "num" : "" }, c.label)))),
    h("tbody", {}, rows.map(r => h("tr", {
      class: [rowClass ? rowClass(r) : "", onClick ? "clickable" : ""].join(" ").trim(),
      onclick: onClick ? () => onClick(r) : undefined,
    }, columns.map(c => {
      const v = c.fmt ? c.fmt(r[c.key], r) : r[c.key];
      return h("td", { class: c.num ? "num" : "" }, v === null || v === undefined ? "—" : v);
    }))))));
}

const card = (title, ...body) => h("section", { class: "card" }, title ? h("h2", {}, title) : null, ...body);
const kpi = (label, value, neg) => h("div", { class: "kpi" }, h("div", { class: "label" }, label), h("div", { class: `value${neg ? " neg" : ""}` }, value));
const pill = (text, kind) => h("span", { class: `pill ${kind || ""}` }, text);

/** Run `load()` and put what it returns in `box`; a failure shows the API's problem. */
async function fill(box, load) {
  box.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try { box.replaceChildren(...[].concat(await load())); } catch (err) { box.replaceChildren(problemView(err)); }
}

// -- time range ------------------------------------------------------------------------------

const isoDay = d => d.toISOString().slice(0, 10);
function rangeDays() {
  const r = state.range;
  const today = new Date(); today.setUTCHours(0, 0, 0, 0);
  const to = r.to ? new Date(`${r.to}T00:00:00Z`) : new Date(today.getTime() + 86400e3);
  const from = r.from ? new Date(`${r.from}T00:00:00Z`) : new Date(to.getTime() - r.days * 86400e3);
  const days = [];
  for (let t = from.getTime(); t < to.getTime(); t += 86400e3) days.push(isoDay(new Date(t)));
  return { from: isoDay(from), to: isoDay(to), days };
}

function rangeControl(onChange) {
  const { from, to } = rangeDays();
  const fromIn = h("input", { type: "date", value: from, name: "from" });
  const toIn = h("input", { type: "date", value: isoDay(new Date(new Date(`${to}T00:00:00Z`).getTime() - 86400e3)), name: "to" });
  const seg = h("div", { class: "seg", role: "group", "aria-label": "range" }, [7, 30, 90].map(d => h("button", {
    type: "button", class: !state.range.from && state.range.days === d ? "on" : "", "data-days": d,
    onclick: () => { state.range = { days: d }; onChange(); },
  }, `${d} days`)));
  const apply = h("button", { type: "button", class: "secondary", onclick: () => {
    if (!fromIn.value || !toIn.value || fromIn.value > toIn.value) return;
    const end = new Date(`${toIn.value}T00:00:00Z`).getTime() + 86400e3;
    state.range = { from: fromIn.value, to: isoDay(new Date(end)) };
    onChange();
  } }, "Apply");
  return h("div", { class: "toolbar" }, seg, h("label", {}, "From", fromIn), h("label", {}, "To (inclusive)", toIn), apply);
}

/** Report rows keyed by day → per series values aligned on `days`. */
function byDay(rows, days, dim, metric) {
  const names = [...new Set(rows.map(r => r[dim] || "(none)"))];
  const totals = Object.fromEntries(names.map(n => [n, 0]));
  for (const r of rows) totals[r[dim] || "(none)"] += Math.abs(num(r[metric]) || 0);
  names.sort((a, b) => totals[b] - totals[a]);
  const top = names.slice(0, 8), rest = names.slice(8);
  const series = [...top, ...(rest.length ? ["other"] : [])].map((name, i) => ({ name, color: PALETTE[i % PALETTE.length], values: days.map(() => 0) }));
  const index = Object.fromEntries(days.map((d, i) => [d, i]));
  for (const r of rows) {
    const name = r[dim] || "(none)";
    const s = series.find(x => x.name === (top.includes(name) ? name : "other"));
    if (r.day in index) s.values[index[r.day]] += num(r[metric]) || 0;
  }
  return series.filter(s => s.values.some(v => v !== 0));
}

// -- pages ------------------------------------------------------------------------------------

async function pageRevenue(page) {
  const { from, to, days } = rangeDays();
  const view = state.revenueView || { dim: "provider", metric: "revenue_usd" };
  const [daily, split, perModel, models, costs] = await Promise.all([
    api(`/reports/revenue${q({ from, to, group_by: "day" })}`),
    api(`/reports/revenue${q({ from, to, group_by: `day,${view.dim}` })}`),
    api(`/reports/revenue${q({ from, to, group_by: "model,provider" })}`),
    api("/models"),
    Promise.all(["text_generation", "image_generation"].map(op => api(`/credit-costs/${op}`).catch(() => null))),
  ]);
  const t = daily.total || {};
  const dayIndex = Object.fromEntries(daily.data.map(r => [r.day, r]));
  const margin = days.map(d => (dayIndex[d] && num(dayIndex[d].margin_pct) !== null ? num(dayIndex[d].margin_pct) : null));
  const series = byDay(split.data, days, view.dim, view.metric);
  const metricName = { revenue_usd: "Revenue", cost_usd: "Provider cost", margin_usd: "Margin" }[view.metric];
  const chartBox = h("div", { class: "chart", id: "revenue-chart" });
  const toggles = h("div", { class: "toolbar" },
    h("div", { class: "seg", role: "group", "aria-label": "metric" }, Object.entries({ revenue_usd: "Revenue", cost_usd: "Cost", margin_usd: "Margin" }).map(([k, label]) =>
      h("button", { type: "button", class: view.metric === k ? "on" : "", onclick: () => { state.revenueView = { ...view, metric: k }; route(); } }, label))),
    h("div", { class: "seg", role: "group", "aria-label": "stack" }, ["provider", "model"].map(d =>
      h("button", { type: "button", class: view.dim === d ? "on" : "", onclick: () => { state.revenueView = { ...view, dim: d }; route(); } }, `by ${d}`))));
  page.append(
    h("h1", {}, "Revenue, cost and margin"),
    rangeControl(route),
    h("div", { class: "kpis" },
      kpi("Revenue", fmtUsd(t.revenue_usd, 2)), kpi("Provider cost", fmtUsd(t.cost_usd, 2)),
      kpi("Margin", fmtUsd(t.margin_usd, 2), num(t.margin_usd) < 0), kpi("Margin %", fmtPct(t.margin_pct)),
      kpi("Markup %", fmtPct(t.markup_pct)), kpi("Credits used", fmtInt(t.credits_used)), kpi("Charges", fmtInt(t.charges))),
    h("div", { class: "grid" },
      h("section", { class: "card wide" }, h("h2", {}, `${metricName} per day by ${view.dim}, with margin %`), toggles, chartBox,
        legend([...series, { name: "margin % (right axis)", color: "#111827", line: true }]))));
  if (daily.data.length) {
    responsive(chartBox, w => stackedBars(w, { labels: days, series, format: axisUsd, line: { name: "margin %", values: margin } }));
  } else chartBox.replaceChildren(h("p", { class: "empty" }, "No charges in this range."));

  const listPrice = Object.fromEntries(costs.filter(Boolean).map(c => [c.operation, c]));
  const registry = Object.fromEntries(models.data.map(m => [m.model_id, m]));
  const rows = perModel.data.filter(r => r.model).map(r => ({ ...r, list_markup: listMarkup(registry[r.model], listPrice) }))
    .sort((a, b) => num(b.revenue_usd) - num(a.revenue_usd));
  page.querySelector(".grid").append(h("section", { class: "card wide" }, h("h2", {}, "Markup per model"), h("p", { class: "muted" },
    "Realized over the range (revenue over provider cost) and at list prices: the credits an operation is charged at the credit price, over the model's registry price (text: 1M tokens, half input and half output). The seed's DALL-E 3 example: 5 credits × $0.02 over $0.040 = 150 %."),
  table([
    { key: "model", label: "Model" }, { key: "provider", label: "Provider" },
    { key: "credits_used", label: "Credits", num: true, fmt: fmtInt },
    { key: "revenue_usd", label: "Revenue", num: true, fmt: v => fmtUsd(v, 2) },
    { key: "cost_usd", label: "Cost", num: true, fmt: v => fmtUsd(v, 2) },
    { key: "margin_pct", label: "Margin %", num: true, fmt: fmtPct },
    { key: "markup_pct", label: "Markup %", num: true, fmt: fmtPct },
    { key: "list_markup", label: "List markup %", num: true, fmt: v => (v === null ? "—" : fmtPct(v)) },
  ], rows, { rowClass: r => (num(r.margin_usd) < 0 ? "bad" : ""), empty: "No charges in this range." })));
}

/** The markup the registry's price and the cost config give, in percent (null if unknown). */
function listMarkup(model, costs) {
  if (!model) return null;
  if (model.model_type === "image" && num(model.cost_per_image) && costs.image_generation) {
    const c = costs.image_generation;
    return (c.credits_per_unit * num(c.price_per_credit_usd) / num(model.cost_per_image) - 1) * 100;
  }
  if (model.model_type === "text" && num(model.input_token_rate) !== null && costs.text_generation) {
    const c = costs.text_generation;
    const perMillion = 1e6 / c.tokens_per_credit * num(c.price_per_credit_usd);
    const blended = (num(model.input_token_rate) + num(model.output_token_rate)) / 2;
    return blended ? (perMillion / blended - 1) * 100 : null;
  }
  return null;
}

async function pageAccounts(page) {
  const { from, to } = rangeDays();
  const threshold = state.nearZero ?? 100;
  const [spend, balances, near] = await Promise.all([
    api(`/reports/revenue${q({ from, to, group_by: "account" })}`),
    api(`/balances${q({ order: "held", direction: "desc", limit: 200 })}`),
    api(`/balances${q({ order: "available", direction: "asc", below: threshold, limit: 50 })}`),
  ]);
  const top = spend.data.filter(r => r.account).sort((a, b) => b.credits_used - a.credits_used).slice(0, 12);
  const chartBox = h("div", { class: "chart", id: "top-accounts" });
  const accountLink = id => h("a", { href: `#/account/${enc(id)}/overview` }, id);
  const thresholdIn = h("input", { type: "number", min: 1, value: threshold, name: "below" });
  page.append(h("h1", {}, "Accounts"), rangeControl(route), h("div", { class: "grid" },
    card("Top accounts by credits used", chartBox),
    card("Accounts near zero",
      h("div", { class: "toolbar" }, h("label", {}, "Available below", thresholdIn),
        h("button", { type: "button", class: "secondary", onclick: () => { state.nearZero = Number(thresholdIn.value) || 100; route(); } }, "Show")),
      table([
        { key: "account_id", label: "Account", fmt: accountLink },
        { key: "available", label: "Available", num: true, fmt: fmtInt },
        { key: "reserved", label: "Held", num: true, fmt: fmtInt },
        { key: "used", label: "Used (lifetime)", num: true, fmt: fmtInt },
        { key: "updated_at", label: "Last change", fmt: fmtTime },
      ], near.data, { rowClass: r => (r.available <= 0 ? "bad" : "warn"), empty: "No account is below the threshold." })),
    h("section", { class: "card wide" }, h("h2", {}, "Balances"), table([
      { key: "account_id", label: "Account", fmt: accountLink },
      { key: "balance", label: "Balance", num: true, fmt: fmtInt },
      { key: "reserved", label: "Held", num: true, fmt: fmtInt },
      { key: "available", label: "Available", num: true, fmt: fmtInt },
      { key: "purchased", label: "Purchased", num: true, fmt: fmtInt },
      { key: "granted", label: "Granted", num: true, fmt: fmtInt },
      { key: "used", label: "Used", num: true, fmt: fmtInt },
      { key: "refunded", label: "Refunded", num: true, fmt: fmtInt },
      { key: "expired", label: "Expired", num: true, fmt: fmtInt },
      { key: "purchased_usd", label: "Paid", num: true, fmt: v => fmtUsd(v, 2) },
    ], balances.data, { rowClass: r => (r.available <= 0 ? "bad" : r.reserved > 0 ? "warn" : "") }))));
  if (top.length) {
    responsive(chartBox, w => hBars(w, top.map(r => ({ label: r.account, value: r.credits_used, note: `${r.account}: ${fmtInt(r.credits_used)} credits, ${fmtUsd(r.revenue_usd, 2)} revenue` })), { format: fmtInt }));
  } else chartBox.replaceChildren(h("p", { class: "empty" }, "No usage in this range."));
}

async function pageCalls(page) {
  const [calls, usage] = await Promise.all([api("/calls?limit=50"), api("/usage?limit=50")]);
  page.append(h("h1", {}, "Provider calls"), h("div", { class: "grid" },
    h("section", { class: "card wide" }, h("h2", {}, "Metered calls (/ai/text, /ai/images), newest first"), table([
      { key: "time", label: "Time (UTC)", fmt: fmtTime },
      { key: "status", label: "Status", fmt: v => pill(v, v === "succeeded" ? "ok" : v === "requested" ? "" : "bad") },
      { key: "account_id", label: "Account" }, { key: "provider", label: "Provider" }, { key: "model_id", label: "Model" },
      { key: "latency_ms", label: "Latency", num: true, fmt: v => (v === null ? "—" : `${fmtInt(v)} ms`) },
      { key: "credits", label: "Credits", num: true, fmt: fmtInt },
      { key: "cost_usd", label: "Cost", num: true, fmt: v => fmtUsd(v, 6) },
      { key: "error_kind", label: "Failure", fmt: (v, r) => (v ? `${v} (HTTP ${r.http_status}): ${r.detail || ""}` : r.reason || "") },
    ], calls.data, { rowClass: r => (r.status === "failed" || r.status === "abandoned" ? "bad" : ""), empty: "No metered provider call yet: calls made through /ai/text and /ai/images appear here." })),
    h("section", { class: "card wide" }, h("h2", {}, "Recent charges (the usage log)"), table([
      { key: "time", label: "Time (UTC)", fmt: fmtTime },
      { key: "kind", label: "Kind", fmt: v => pill(v, v === "refund" ? "bad" : "ok") },
      { key: "account", label: "Account" }, { key: "operation", label: "Operation" },
      { key: "provider", label: "Provider" }, { key: "model", label: "Model" },
      { key: "credits_used", label: "Credits", num: true, fmt: fmtInt },
      { key: "revenue_usd", label: "Revenue", num: true, fmt: v => fmtUsd(v, 4) },
      { key: "cost_usd", label: "Cost", num: true, fmt: v => fmtUsd(v, 6) },
      { key: "input_tokens", label: "Tokens in/out", num: true, fmt: (v, r) => (v === null ? (r.images ? `${r.images} image(s)` : "—") : `${fmtInt(v)} / ${fmtInt(r.output_tokens)}`) },
    ], usage.data, { rowClass: r => (r.kind === "refund" ? "bad" : "") }))));
}

// -- models (AI settings) ------------------------------------------------------------------------

const PRICE_FIELDS = ["input_token_rate", "output_token_rate", "cost_per_image"];

async function pageModels(page, modelId) {
  const models = await api("/models");
  const admin = state.me.role === "platform_admin";
  const detail = h("div", { id: "model-detail", class: "grid wide" });
  page.append(h("h1", {}, "AI settings: model registry"), h("div", { class: "grid" },
    h("section", { class: "card wide" }, h("p", { class: "muted" }, admin ? "Select a model to change its prices (from a time you choose), limits or flags, and to see its price history." : "Select a model to see its price history. Platform admins can edit."),
      table([
        { key: "model_id", label: "Model" }, { key: "display_name", label: "Name" },
        { key: "model_type", label: "Type" }, { key: "provider", label: "Provider" },
        { key: "input_token_rate", label: "In $/1M", num: true, fmt: v => fmtUsd(v, 2) },
        { key: "output_token_rate", label: "Out $/1M", num: true, fmt: v => fmtUsd(v, 2) },
        { key: "cost_per_image", label: "$/image", num: true, fmt: v => fmtUsd(v, 3) },
        { key: "is_default", label: "Default", fmt: v => (v ? pill("default", "ok") : "") },
        { key: "is_active", label: "Status", fmt: (v, r) => (v ? (r.is_deprecated ? pill("deprecated", "bad") : "active") : pill("inactive")) },
        { key: "scheduled_prices", label: "Scheduled", fmt: v => (v && v.length ? `${v.length} change(s)` : "") },
      ], models.data, { onClick: r => { location.hash = `#/models/${enc(r.model_id)}`; }, rowClass: r => (r.model_id === modelId ? "selected" : "") })),
    detail));
  if (modelId) await fill(detail, () => modelDetail(modelId, admin));
}

async function modelDetail(modelId, admin) {
  const [model, history] = await Promise.all([api(`/models/${enc(modelId)}`), api(`/models/${enc(modelId)}/history`)]);
  const fields = PRICE_FIELDS.filter(f => (model.model_type === "image" ? f === "cost_per_image" : f !== "cost_per_image"));
  const points = Object.fromEntries(fields.map(f => [f, []]));
  for (const row of history.data) {
    const c = row.changes;
    if (!c.prices || !c.effective_at) continue;
    for (const f of fields) if (num(c.prices[f]) !== null) points[f].push({ at: new Date(c.effective_at), value: num(c.prices[f]) });
  }
  for (const f of fields) points[f].sort((a, b) => a.at - b.at);
  const labels = { input_token_rate: "input $/1M tokens", output_token_rate: "output $/1M tokens", cost_per_image: "$ per image" };
  const series = fields.filter(f => points[f].length).map((f, i) => ({ name: labels[f], color: PALETTE[i], points: points[f] }));
  const chartBox = h("div", { class: "chart", id: "price-chart" });
  const out = [
    h("section", { class: "card" }, h("h2", {}, `Price history: ${model.display_name || model.model_id}`), chartBox,
      legend(series), table([
        { key: "version", label: "v", num: true }, { key: "event", label: "Change" }, { key: "time", label: "Recorded (UTC)", fmt: fmtTime },
        { key: "actor_role", label: "By", fmt: (v, r) => `${r.actor_id} (${v})` },
        { key: "changes", label: "What", fmt: v => summarize(v) },
      ], history.data.slice().reverse())),
    h("section", { class: "card" }, h("h2", {}, admin ? "Edit" : "Details"), modelForm(model, admin)),
  ];
  if (series.length) responsive(chartBox, w => stepChart(w, series, { format: v => `$${+v.toFixed(4)}` }));
  else chartBox.replaceChildren(h("p", { class: "empty" }, "No prices recorded."));
  return out;
}

function summarize(changes) {
  const parts = [];
  for (const [k, v] of Object.entries(changes || {})) {
    if (k === "spec" || v === null) continue;
    if (k === "prices") parts.push(Object.entries(v).filter(([, p]) => p !== null).map(([n, p]) => `${n}=${p}`).join(", "));
    else parts.push(`${k}=${typeof v === "object" ? JSON.stringify(v) : v}`);
  }
  return parts.join("; ").slice(0, 160);
}

function modelForm(model, admin) {
  const prices = model.model_type === "image" ? ["cost_per_image"] : ["input_token_rate", "output_token_rate"];
  const limits = model.model_type === "image" ? [] : ["max_input_tokens", "max_output_tokens"];
  const input = (name, value, attrs = {}) => h("input", { name, value: value ?? "", disabled: !admin, ...attrs });
  const check = (name, value) => h("label", { class: "inline" }, h("input", { type: "checkbox", name, checked: !!value, disabled: !admin }), name.replaceAll("_", " "));
  const soon = new Date(Date.now() + 3600e3).toISOString().slice(0, 16);
  const message = h("div");
  const form = h("form", { class: "settings", id: "model-form" },
    h("label", {}, "Display name", input("display_name", model.display_name)),
    prices.map(p => h("label", {}, `${p.replaceAll("_", " ")} (USD)`, input(p, model[p], { inputmode: "decimal" }))),
    h("label", {}, "Prices effective from (UTC; empty = now)", input("effective_at", "", { type: "datetime-local", placeholder: soon })),
    limits.map(p => h("label", {}, p.replaceAll("_", " "), input(p, model[p], { type: "number", min: 1 }))),
    h("label", {}, "Sort order", input("sort_order", model.sort_order, { type: "number" })),
    h("label", {}, "Deprecation date", input("deprecation_date", model.deprecation_date, { type: "date" })),
    check("is_active", model.is_active), check("is_default", model.is_default),
    ["supports_json_mode", "supports_vision", "supports_tools"].map(f => check(f, model[f])),
    h("label", { class: "wide" }, "Notes", h("textarea", { name: "notes", rows: 2, disabled: !admin }, model.notes || "")),
    h("div", { class: "actions" }, admin ? h("button", { type: "submit" }, "Save changes") : null,
      h("span", { class: "muted" }, `version ${model.version} · updated ${fmtTime(model.updated_at)}`)),
    message);
  const flags = ["is_active", "is_default", "supports_json_mode", "supports_vision", "supports_tools"];
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    const body = {};
    const data = new FormData(form);
    for (const [k, v] of data.entries()) {
      if (flags.includes(k)) continue;  // a checked box is "on" here: read below
      if (k === "effective_at") { if (v) body.effective_at = new Date(`${v}:00Z`).toISOString(); continue; }
      const before = model[k] ?? "";
      if (String(v) === String(before)) continue;
      body[k] = ["max_input_tokens", "max_output_tokens", "sort_order"].includes(k) ? (v === "" ? null : Number(v)) : (v === "" ? null : v);
    }
    for (const f of flags) {
      const on = form.elements[f].checked;
      if (on !== !!model[f]) body[f] = on;
    }
    if (!Object.keys(body).length) { message.replaceChildren(h("p", { class: "muted" }, "Nothing changed.")); return; }
    try {
      const saved = await api(`/models/${enc(model.model_id)}`, { method: "PATCH", body, ifMatch: model.version });
      message.replaceChildren(h("p", { class: "notice", role: "status" }, `Saved: version ${saved.version}.`));
      setTimeout(route, 600);
    } catch (err) { message.replaceChildren(problemView(err)); }
  });
  return form;
}

// -- system: projections and verification --------------------------------------------------------

async function pageSystem(page) {
  const status = await api("/projections/status");
  const last = JSON.parse(localStorage.getItem(VERIFY) || "null");
  const verifyBox = h("div", { id: "verify" }, last ? verifyView(last) : h("p", { class: "muted" }, "Not verified from this browser yet."));
  const run = h("button", { type: "button", onclick: async () => {
    run.disabled = true;
    await fill(verifyBox, async () => {
      const result = { ...(await api("/audit/verify?limit=50")), at: new Date().toISOString() };
      localStorage.setItem(VERIFY, JSON.stringify(result));
      return verifyView(result);
    });
    run.disabled = false;
  } }, "Verify now");
  page.append(h("h1", {}, "Projections and verification"), h("div", { class: "grid" },
    card("Projection status", h("p", {}, `Log head ${fmtInt(status.head)} · runner in this process: `, pill(status.runner, status.runner === "running" ? "ok" : "")),
      status.last_error ? h("p", { class: "error" }, `Last error: ${status.last_error}`) : null,
      table([
        { key: "name", label: "View" }, { key: "position", label: "Position", num: true, fmt: fmtInt },
        { key: "lag", label: "Lag (events)", num: true, fmt: v => (v ? pill(fmtInt(v), "bad") : pill("0", "ok")) },
      ], status.projections, { rowClass: r => (r.lag > 0 ? "warn" : "") })),
    card("Verification", h("p", { class: "muted" }, "Replays the log apart from the views and compares every row, each account's balance and the usage and revenue totals (GET /audit/verify)."),
      h("div", { class: "toolbar" }, run), verifyBox)));
}

function verifyView(r) {
  return h("div", {},
    h("p", {}, r.ok ? pill("ok", "ok") : pill(`${r.count} difference(s)`, "bad"),
      ` ${fmtInt(r.events)} events replayed in ${r.seconds}s · verified ${fmtTime(r.at)} UTC`),
    r.differences && r.differences.length ? table([
      { key: "view", label: "View" }, { key: "key", label: "Row" }, { key: "field", label: "Field" },
      { key: "expected", label: "Log gives" }, { key: "found", label: "View holds" },
    ], r.differences) : null);
}

// -- integration (global settings) ---------------------------------------------------------------

const TEXT_PROVIDERS = ["openai", "anthropic", "google"];
const IMAGE_SERVICES = ["dalle", "runware", "bria"];
const CHOICES = {
  default_text_provider: ["openai", "anthropic", "google"], default_image_service: ["openai", "runware", "bria"],
  image_quality: ["standard", "hd"],
  image_style: ["photorealistic", "illustration", "digital_art", "cinematic", "anime", "3d_render", "watercolor", "oil_painting", "sketch", "minimalist", "vivid", "natural"],
};

async function pageIntegration(page) {
  const [settings, models] = await Promise.all([api("/system/settings/global"), api("/models?active=true")]);
  const admin = state.me.role === "platform_admin";
  const modelsOf = (provider, type) => models.data.filter(m => m.provider === provider && m.model_type === type).map(m => m.model_id);
  const message = h("div");
  const field = (name, label, control) => h("label", {}, label || name.replaceAll("_", " "), control);
  const select = (name, options) => h("select", { name, disabled: !admin }, options.map(o => h("option", { value: o ?? "", selected: (settings[name] ?? "") === (o ?? "") }, o ?? "(none)")));
  const text = (name, attrs = {}) => h("input", { name, value: settings[name] ?? "", disabled: !admin, ...attrs });
  const key = name => h("div", {}, field(name, `${name.replaceAll("_", " ")} (write-only)`, h("input", {
    name, type: "password", autocomplete: "new-password", disabled: !admin,
    placeholder: settings[name] ? `set: ${settings[name]}` : "not set" })),
  admin && settings[name] ? h("label", { class: "inline" }, h("input", { type: "checkbox", name: `clear:${name}` }), "remove this key") : null);
  const group = (title, ...children) => h("fieldset", {}, h("legend", {}, title), ...children);
  const form = h("form", { class: "settings", id: "integration-form" },
    group("Defaults", field("default_text_provider", null, select("default_text_provider", CHOICES.default_text_provider)),
      field("default_image_service", null, select("default_image_service", CHOICES.default_image_service)),
      field("image_quality", null, select("image_quality", CHOICES.image_quality)),
      field("image_style", null, select("image_style", CHOICES.image_style)),
      field("max_in_article_images", null, text("max_in_article_images", { type: "number", min: 0, max: 20 })),
      field("desktop_image_size", null, text("desktop_image_size"))),
    TEXT_PROVIDERS.map(p => group(p, key(`${p}_api_key`),
      field(`${p}_model`, "model", select(`${p}_model`, [null, ...modelsOf(p, "text")])),
      field(`${p}_temperature`, "temperature", text(`${p}_temperature`, { type: "number", step: "0.1", min: 0, max: 2 })),
      field(`${p}_max_tokens`, "max tokens", text(`${p}_max_tokens`, { type: "number", min: 1 })))),
    IMAGE_SERVICES.map(p => group(p, key(`${p}_api_key`),
      field(`${p}_model`, "model", select(`${p}_model`, [null, ...modelsOf(p === "dalle" ? "openai" : p, "image")])),
      p === "dalle" ? field("dalle_image_size", "image size", text("dalle_image_size")) : null)),
    h("div", { class: "actions" }, admin ? h("button", { type: "submit" }, "Save") : h("span", { class: "muted" }, "Read-only: platform admins edit."),
      h("span", { class: "muted" }, `version ${settings.version} · updated ${fmtTime(settings.updated_at)}`)),
    message);
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    const body = {};
    for (const el of form.querySelectorAll("input[name], select[name]")) {
      const name = el.name;
      if (name.startsWith("clear:")) { if (el.checked) body[name.slice(6)] = null; continue; }
      if (name.endsWith("_api_key")) { if (el.value) body[name] = el.value; continue; }
      const before = settings[name] ?? "";
      if (String(el.value) === String(before)) continue;
      body[name] = el.value === "" ? null : el.type === "number" ? Number(el.value) : el.value;
    }
    if (!Object.keys(body).length) { message.replaceChildren(h("p", { class: "muted" }, "Nothing changed.")); return; }
    try {
      const saved = await api("/system/settings/global", { method: "PUT", body, ifMatch: settings.version });
      message.replaceChildren(h("p", { class: "notice", role: "status" }, `Saved: version ${saved.version}.`));
      setTimeout(route, 600);
    } catch (err) { message.replaceChildren(problemView(err)); }
  });
  page.append(h("h1", {}, "Integration"), card(null, h("p", { class: "muted" },
    "Platform-wide API keys and defaults (GlobalIntegrationSettings). Keys are write-only: they are sealed before they are recorded and only their masked form comes back. Accounts override models and parameters, never keys."), form));
}

// -- one account: usage analytics and content settings ------------------------------------------

const ACCOUNT_TABS = { overview: "Overview", credits: "Credits", activity: "Activity", content: "Content", images: "Images", publishing: "Publishing" };

async function pageAccount(page, accountId, tab = "overview") {
  const own = state.me.account_id;
  if (own && accountId !== own) { location.hash = `#/account/${enc(own)}/${tab}`; return; }
  if (!accountId) {
    const list = await api("/balances?order=account&limit=1000");
    page.append(h("h1", {}, "Account"), card("Choose an account", table([
      { key: "account_id", label: "Account", fmt: v => h("a", { href: `#/account/${enc(v)}/overview` }, v) },
      { key: "available", label: "Available", num: true, fmt: fmtInt }, { key: "used", label: "Used", num: true, fmt: fmtInt },
    ], list.data)));
    return;
  }
  const body = h("div", { id: "account-tab" });
  page.append(h("h1", {}, `Account ${accountId}`), h("nav", { class: "tabs", "aria-label": "account" },
    Object.entries(ACCOUNT_TABS).map(([k, label]) => h("a", { href: `#/account/${enc(accountId)}/${k}`, class: k === tab ? "on" : "" }, label))), body);
  const loaders = { overview: accountOverview, credits: accountCredits, activity: accountActivity, content: accountContent, images: accountImages, publishing: accountPublishing };
  await fill(body, () => (loaders[tab] || accountOverview)(accountId));
}

/** The account's usage rows in the selected range (at most 5,000, newest first). */
async function usageRows(accountId, from, to) {
  const rows = [];
  let before;
  do {
    const pageRows = await api(`/usage${q({ account_id: accountId, from, to, before, limit: 1000 })}`);
    rows.push(...pageRows.data);
    before = pageRows.next_before;
  } while (before && rows.length < 5000);
  return rows;
}

async function accountOverview(accountId) {
  const { from, to, days } = rangeDays();
  const [balance, rows] = await Promise.all([api(`/accounts/${enc(accountId)}/credits/balance`), usageRows(accountId, from, to)]);
  const series = byDay(rows.map(r => ({ ...r, day: r.time.slice(0, 10) })), days, "operation", "credits_used");
  const chartBox = h("div", { class: "chart", id: "account-chart" });
  const out = [rangeControl(route),
    h("div", { class: "kpis" }, kpi("Balance", fmtInt(balance.balance)), kpi("Held", fmtInt(balance.reserved)),
      kpi("Available", fmtInt(balance.available), balance.available <= 0), kpi("Used (lifetime)", fmtInt(balance.used)),
      kpi("Purchased (lifetime)", fmtInt(balance.purchased)), kpi("Credits used in range", fmtInt(rows.reduce((s, r) => s + r.credits_used, 0)))),
    card("Credits used per day by operation", chartBox, legend(series))];
  if (rows.length) responsive(chartBox, w => stackedBars(w, { labels: days, series, format: v => fmtInt(v) }));
  else chartBox.replaceChildren(h("p", { class: "empty" }, "No usage in this range."));
  return out;
}

async function accountCredits(accountId) {
  const tx = await api(`/accounts/${enc(accountId)}/credits/transactions?limit=200`);
  return card("Credit history (newest first)", table([
    { key: "time", label: "Time (UTC)", fmt: fmtTime }, { key: "type", label: "Type" },
    { key: "credits", label: "Credits", num: true, fmt: fmtInt },
    { key: "balance_delta", label: "Balance Δ", num: true, fmt: v => (v > 0 ? `+${fmtInt(v)}` : fmtInt(v)) },
    { key: "reserved_delta", label: "Held Δ", num: true, fmt: v => (v ? fmtInt(v) : "") },
    { key: "operation", label: "Operation" }, { key: "model_id", label: "Model" },
    { key: "reason", label: "Reason / payment", fmt: (v, r) => v || r.payment_ref || "" },
  ], tx.data, { rowClass: r => (r.type === "expiry" || r.type === "refund" ? "warn" : "") }));
}

async function accountActivity(accountId) {
  const usage = await api(`/usage${q({ account_id: accountId, limit: 100 })}`);
  return card("Activity: the latest charges and refunds", table([
    { key: "time", label: "Time (UTC)", fmt: fmtTime }, { key: "kind", label: "Kind" },
    { key: "operation", label: "Operation" }, { key: "model", label: "Model" },
    { key: "credits_used", label: "Credits", num: true, fmt: fmtInt },
    { key: "input_tokens", label: "Tokens in/out", num: true, fmt: (v, r) => (v === null ? (r.images ? `${r.images} image(s)` : "—") : `${fmtInt(v)} / ${fmtInt(r.output_tokens)}`) },
  ], usage.data, { rowClass: r => (r.kind === "refund" ? "bad" : "") }));
}

const canEditAccount = () => ["platform_admin", "account_admin"].includes(state.me.role);
const siteId = () => state.site || "main";

function siteControl() {
  const input = h("input", { name: "site", value: siteId() });
  return h("div", { class: "toolbar" }, h("label", {}, "Site", input),
    h("button", { type: "button", class: "secondary", onclick: () => { state.site = input.value.trim() || "main"; route(); } }, "Open"));
}

/** Nested objects as [dotted name, leaf value] pairs (lists are leaves). */
function flatten(value, prefix = "") {
  return Object.entries(value || {}).flatMap(([k, v]) => (v && typeof v === "object" && !Array.isArray(v)
    ? flatten(v, `${prefix}${k}.`) : [[`${prefix}${k}`, v]]));
}

/** An account or site settings document as a form: its fields as the effective view gives
 * them (with defaults and where each value comes from), the names it shares with the
 * global level (`inherited`) and whatever the document itself sets; saved as the fields
 * changed plus those the document already set. */
async function documentForm(accountId, { title, path, prefix, inherited = [] }) {
  const [eff, doc] = await Promise.all([
    api(`/system/settings/effective${q({ account_id: accountId, site_id: siteId() })}`),
    api(`${path}${q({ account_id: accountId })}`).catch(err => { if (err.status === 404) return { value: {}, version: 0 }; throw err; }),
  ]);
  const fields = new Map();
  for (const [k, v] of Object.entries(eff.values)) if (k.startsWith(prefix)) fields.set(k.slice(prefix.length), [v.value, v.source]);
  for (const k of inherited) if (eff.values[k]) fields.set(k, [eff.values[k].value, eff.values[k].source]);
  for (const [k, v] of flatten(doc.value)) if (!fields.has(k)) fields.set(k, [v, { level: "set here" }]);
  return settingsForm(title, [...fields].map(([k, [v, src]]) => [k, v, src]), doc,
    value => api(`${path}${q({ account_id: accountId })}`, { method: "PUT", body: { value }, ifMatch: doc.version }));
}

function settingsForm(title, fields, doc, save) {
  const editable = canEditAccount();
  const message = h("div");
  const controls = fields.map(([name, value, source]) => {
    const label = `${name.replaceAll("_", " ").replaceAll(".", " › ")}${source && source.level && source.level !== "default" ? ` (${source.level})` : ""}`;
    if (typeof value === "boolean") return h("label", { class: "inline" }, h("input", { type: "checkbox", name, checked: value, disabled: !editable, "data-kind": "bool" }), label);
    if (Array.isArray(value)) return h("label", {}, `${label} (comma-separated)`, h("input", { name, value: value.join(", "), disabled: !editable, "data-kind": "list" }));
    if (typeof value === "number") return h("label", {}, label, h("input", { name, type: "number", step: "any", value, disabled: !editable, "data-kind": "number" }));
    return h("label", {}, label, h("input", { name, value: value ?? "", disabled: !editable, "data-kind": "text" }));
  });
  const form = h("form", { class: "settings" }, controls,
    h("div", { class: "actions" }, editable ? h("button", { type: "submit" }, "Save") : h("span", { class: "muted" }, "Read-only for this role."),
      h("span", { class: "muted" }, doc.version ? `version ${doc.version}` : "not set for this account yet: defaults shown")), message);
  const original = Object.fromEntries(fields.map(([n, v]) => [n, v]));
  const read = el => ({ bool: () => el.checked, number: () => (el.value === "" ? null : Number(el.value)),
    list: () => el.value.split(",").map(s => s.trim()).filter(Boolean), text: () => (el.value === "" ? null : el.value) })[el.dataset.kind]();
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    const value = structuredClone(doc.value || {});
    let changed = false;
    for (const el of form.querySelectorAll("[data-kind]")) {
      const v = read(el);
      if (JSON.stringify(v) === JSON.stringify(original[el.name])) continue;
      changed = true;
      const path = el.name.split(".");
      let node = value;
      for (const p of path.slice(0, -1)) node = node[p] = node[p] || {};
      node[path[path.length - 1]] = v;
    }
    if (!changed) { message.replaceChildren(h("p", { class: "muted" }, "Nothing changed.")); return; }
    try {
      const saved = await save(value);
      message.replaceChildren(h("p", { class: "notice", role: "status" }, `Saved: version ${saved.version}.`));
      setTimeout(route, 600);
    } catch (err) { message.replaceChildren(problemView(err)); }
  });
  return card(title, form);
}

const accountDoc = (accountId, key) => documentForm(accountId, { title: key.replaceAll("_", " "), path: `/system/settings/account/${key}`, prefix: `${key}.` });
// site tab -> the fields it shares with the global settings (the effective view merges them there)
const SITE_INHERITS = {
  "content-generation": ["default_text_provider"],
  "image-settings": ["default_image_service", "image_quality", "image_style", "max_in_article_images", "desktop_image_size"],
};
const siteDoc = (accountId, tab) => documentForm(accountId, { title: `site ${siteId()}: ${tab}`, path: `/system/settings/sites/${enc(siteId())}/${tab}`, prefix: `site.${tab}.`, inherited: SITE_INHERITS[tab] });

async function accountContent(accountId) {
  return [siteControl(), h("div", { class: "grid" }, ...(await Promise.all([
    accountDoc(accountId, "writer_automation"), accountDoc(accountId, "planner_automation"), siteDoc(accountId, "content-generation")])))];
}

async function accountImages(accountId) {
  const overrides = await Promise.all(IMAGE_SERVICES.map(async type => {
    const doc = await api(`/system/settings/integrations/${type}${q({ account_id: accountId })}`);
    const fields = Object.entries(doc.effective).map(([k, v]) => [k, v.value, v.source]);
    const put = config => api(`/system/settings/integrations/${type}${q({ account_id: accountId })}`, { method: "PUT", body: config, ifMatch: doc.version });
    return settingsForm(`${type} overrides (models and parameters; API keys stay global)`, fields, { value: doc.config, version: doc.version }, put);
  }));
  return [siteControl(), h("div", { class: "grid" }, await siteDoc(accountId, "image-settings"), ...overrides)];
}

async function accountPublishing(accountId) {
  return [siteControl(), h("div", { class: "grid" }, await siteDoc(accountId, "publishing"), await siteDoc(accountId, "general"))];
}

// -- shell ---------------------------------------------------------------------------------------

const PAGES = {
  revenue: { title: "Revenue", roles: READERS, render: pageRevenue },
  accounts: { title: "Accounts", roles: READERS, render: pageAccounts },
  calls: { title: "Provider calls", roles: READERS, render: pageCalls },
  models: { title: "AI settings", roles: READERS, render: pageModels },
  integration: { title: "Integration", roles: READERS, render: pageIntegration },
  account: { title: "Account", roles: [...READERS, "account_admin"], render: pageAccount },
  system: { title: "Projections", roles: READERS, render: pageSystem },
};

function home() { return state.me.account_id ? `#/account/${enc(state.me.account_id)}/overview` : "#/revenue"; }

async function route() {
  const page = document.getElementById("page");
  if (!state.me) return;
  const [name, ...args] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const entry = PAGES[name];
  if (!entry || !entry.roles.includes(state.me.role)) { location.hash = home(); return; }
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === name);
  const fresh = h("div", { id: "page", "data-page": name });
  page.replaceWith(fresh);
  try { await entry.render(fresh, ...args); } catch (err) { fresh.append(problemView(err)); }
  fresh.dataset.ready = "true";
}

function signOut(reason) {
  sessionStorage.removeItem(TOKEN);
  state.me = null;
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  document.getElementById("page").replaceChildren();
  document.getElementById("sign-in").hidden = false;
  document.getElementById("sign-in-error").textContent = reason || "";
}

async function start() {
  if (!sessionStorage.getItem(TOKEN)) { signOut(); return; }
  try {
    state.me = await api("/auth/me");
  } catch (err) {
    signOut(err.status === 401 ? "This token is unknown, revoked or expired." : `Sign-in failed: ${err.message}`);
    return;
  }
  if (!Object.values(PAGES).some(p => p.roles.includes(state.me.role))) {
    signOut(`A ${state.me.role} token cannot use the dashboard: use an auditor, platform admin or account admin token.`);
    return;
  }
  document.getElementById("sign-in").hidden = true;
  const nav = document.getElementById("nav");
  nav.replaceChildren(...Object.entries(PAGES).filter(([, p]) => p.roles.includes(state.me.role)).map(([k, p]) =>
    h("a", { href: k === "account" && state.me.account_id ? home() : `#/${k}`, "data-page": k }, p.title)));
  nav.hidden = false;
  document.getElementById("who").hidden = false;
  document.getElementById("who-role").textContent = `${state.me.role}${state.me.account_id ? ` · ${state.me.account_id}` : ""}`;
  if (!location.hash || location.hash === "#/") location.hash = home();
  await route();
}

document.getElementById("sign-in-form").addEventListener("submit", ev => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN, document.getElementById("token").value.trim());
  document.getElementById("token").value = "";
  start();
});
document.getElementById("sign-out").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);
start();
