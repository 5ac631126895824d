// SVG charts drawn in the browser: stacked daily bars with a percentage line, horizontal
// bars, and a step chart of prices over time. No library: each chart is a function of
// its data and the width of its box, redrawn when the window is resized. Colours are
// SVG presentation attributes (the page's CSP allows no inline styles).

const NS = "http://www.w3.org/2000/svg";
export const PALETTE = ["#2f5bea", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4",
  "#ec4899", "#84cc16", "#f97316", "#64748b", "#0ea5e9", "#a855f7"];

function el(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

function titled(node, text) { node.append(el("title", {}, text)); return node; }

/** Round tick values covering [lo, hi]: about `count` of them, at 1, 2 or 5 x 10^n. */
export function ticks(lo, hi, count = 5) {
  if (hi === lo) { hi = lo + 1; }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= raw);
  const out = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(10));
  if (out[out.length - 1] < hi) out.push(out[out.length - 1] + step);
  return out;
}

/** A legend below a chart: one swatch and name per series. */
export function legend(items) {
  const box = document.createElement("div");
  box.className = "legend";
  for (const { name, color, line } of items) {
    const span = document.createElement("span");
    const svg = el("svg", { width: 14, height: 12, "aria-hidden": "true" },
      line ? el("line", { x1: 0, y1: 6, x2: 14, y2: 6, stroke: color, "stroke-width": 2 })
           : el("rect", { width: 12, height: 12, rx: 2, fill: color }));
    span.append(svg, name);
    box.append(span);
  }
  return box;
}

/** Draw `draw(width)` into `box` now and again whenever the window is resized. */
export function responsive(box, draw) {
  if (!box.isConnected) { requestAnimationFrame(() => responsive(box, draw)); return; }
  const render = () => {
    const width = Math.max(box.clientWidth, 260);
    box.replaceChildren(draw(width));
  };
  render();
  let timer;
  const onResize = () => { clearTimeout(timer); timer = setTimeout(() => box.isConnected ? render() : window.removeEventListener("resize", onResize), 120); };
  window.addEventListener("resize", onResize);
}

/**
 * Stacked bars per x label, with an optional percentage line on a second axis.
 * spec: {labels: [..x], series: [{name, color, values}], line: {name, values (null =
 * gap)}, format: v => text, height}
 */
export function stackedBars(width, spec) {
  const { labels, series, line, format = String } = spec;
  const height = spec.height || 280;
  const pad = { l: 58, r: line ? 46 : 12, t: 12, b: 40 };
  const w = width - pad.l - pad.r, h = height - pad.t - pad.b;
  let lo = 0, hi = 0;
  labels.forEach((_, i) => {
    let pos = 0, neg = 0;
    for (const s of series) { const v = s.values[i] || 0; if (v >= 0) pos += v; else neg += v; }
    hi = Math.max(hi, pos); lo = Math.min(lo, neg);
  });
  const yt = ticks(lo, hi || 1);
  const y0 = yt[0], y1 = yt[yt.length - 1];
  const y = v => pad.t + h - (v - y0) / (y1 - y0) * h;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  for (const t of yt) {
    svg.append(el("line", { class: t === 0 ? "zero" : "grid-line", x1: pad.l, x2: pad.l + w, y1: y(t), y2: y(t) }),
      el("text", { x: pad.l - 6, y: y(t) + 4, "text-anchor": "end" }, format(t)));
  }
  const band = w / Math.max(labels.length, 1), bw = Math.max(Math.min(band * 0.72, 42), 1);
  const every = Math.ceil(labels.length / Math.max(Math.floor(w / 58), 1));
  labels.forEach((label, i) => {
    const x = pad.l + band * i + (band - bw) / 2;
    let pos = 0, neg = 0;
    for (const s of series) {
      const v = s.values[i] || 0;
      if (!v) continue;
      const from = v >= 0 ? pos : neg, to = from + v;
      if (v >= 0) pos = to; else neg = to;
      svg.append(titled(el("rect", { x, width: bw, y: Math.min(y(from), y(to)),
        height: Math.max(Math.abs(y(from) - y(to)), 0.5), fill: s.color, class: "bar" }),
        `${label} · ${s.name}: ${format(v)}`));
    }
    if (i % every === 0) {
      svg.append(el("text", { x: pad.l + band * i + band / 2, y: pad.t + h + 16, "text-anchor": "middle" }, label.slice(5)));
    }
  });
  if (line) {
    const vals = line.values.filter(v => v !== null);
    const pt = ticks(Math.min(0, ...vals), Math.max(100, ...vals), 4);
    const p0 = pt[0], p1 = pt[pt.length - 1];
    const py = v => pad.t + h - (v - p0) / (p1 - p0) * h;
    for (const t of pt) svg.append(el("text", { x: pad.l + w + 6, y: py(t) + 4 }, `${t}%`));
    const xs = line.values.map((_, i) => pad.l + band * i + band / 2);
    const d = line.values.map((v, i) => (v === null ? "" : `${i && line.values[i - 1] !== null ? "L" : "M"}${xs[i].toFixed(1)},${py(v).toFixed(1)}`)).join("");
    svg.append(el("path", { class: "pct-line", d }));  // above the bars
    line.values.forEach((v, i) => {
      if (v !== null) svg.append(titled(el("circle", { class: "pct-dot", cx: xs[i], cy: py(v), r: 2.5 }), `${labels[i]} · ${line.name}: ${v.toFixed(1)}%`));
    });
  }
  svg.append(el("text", { x: pad.l, y: height - 4 }, `${labels[0] || ""} – ${labels[labels.length - 1] || ""} (UTC days)`));
  return svg;
}

/** Horizontal bars, largest first: [{label, value, note}] */
export function hBars(width, rows, { format = String, color = PALETTE[0] } = {}) {
  const rowH = 24, labelW = Math.min(170, width * 0.38), valueW = 70;
  const height = rows.length * rowH + 8;
  const max = Math.max(...rows.map(r => r.value), 1);
  const w = width - labelW - valueW - 8;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  rows.forEach((r, i) => {
    const top = 4 + i * rowH;
    svg.append(
      el("text", { x: labelW - 6, y: top + 15, "text-anchor": "end" }, r.label),
      titled(el("rect", { x: labelW, y: top + 3, height: rowH - 8, width: Math.max(r.value / max * w, 1), rx: 2, fill: color, class: "bar" }), r.note || `${r.label}: ${format(r.value)}`),
      el("text", { x: labelW + Math.max(r.value / max * w, 1) + 5, y: top + 15 }, format(r.value)));
  });
  return svg;
}

/**
 * Prices over time as steps: each series holds [{at: Date, value}] in time order; a value
 * holds until the next one. Points after `now` are scheduled and drawn dashed.
 */
export function stepChart(width, series, { now = new Date(), format = String, height = 220 } = {}) {
  const pad = { l: 66, r: 14, t: 12, b: 36 };
  const w = width - pad.l - pad.r, h = height - pad.t - pad.b;
  const points = series.flatMap(s => s.points);
  const times = points.map(p => p.at.getTime());
  const t0 = Math.min(...times, now.getTime()), lastChange = Math.max(...times, now.getTime());
  const t1 = lastChange + Math.max((lastChange - t0) * 0.15, 86400e3);
  const values = points.map(p => p.value);
  const yt = ticks(0, Math.max(...values, 0) * 1.1 || 1, 4);
  const y1 = yt[yt.length - 1];
  const x = t => pad.l + (t - t0) / (t1 - t0) * w;
  const y = v => pad.t + h - v / y1 * h;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  for (const t of yt) {
    svg.append(el("line", { class: "grid-line", x1: pad.l, x2: pad.l + w, y1: y(t), y2: y(t) }),
      el("text", { x: pad.l - 6, y: y(t) + 4, "text-anchor": "end" }, format(t)));
  }
  const day = d => new Date(d).toISOString().slice(0, 10);
  svg.append(el("text", { x: pad.l, y: height - 6 }, day(t0)), el("text", { x: pad.l + w, y: height - 6, "text-anchor": "end" }, day(t1)));
  svg.append(el("line", { class: "now", x1: x(now.getTime()), x2: x(now.getTime()), y1: pad.t, y2: pad.t + h }),
    el("text", { x: x(now.getTime()) + 4, y: pad.t + 10 }, "now"));
  for (const s of series) {
    const pts = s.points;
    pts.forEach((p, i) => {
      const end = i + 1 < pts.length ? pts[i + 1].at.getTime() : t1;
      const start = p.at.getTime();
      const future = start > now.getTime();
      const path = `M${x(start)},${y(p.value)}H${x(end)}` + (i + 1 < pts.length ? `V${y(pts[i + 1].value)}` : "");
      svg.append(el("path", { d: path, class: `step${future ? " future" : ""}`, stroke: s.color }));
      svg.append(titled(el("circle", { cx: x(start), cy: y(p.value), r: 3.5, fill: s.color }),
        `${s.name}: ${format(p.value)} from ${p.at.toISOString().replace("T", " ").slice(0, 16)} UTC${future ? " (scheduled)" : ""}`));
    });
  }
  return svg;
}
