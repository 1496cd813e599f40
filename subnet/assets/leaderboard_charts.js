// The leaderboard's two charts, drawn on canvas; inlined into the page by subnet.validator.leaderboard.page_html.
// Every text drawn is also listed on the canvas's data-labels, so a reader (or a test) can check axes and rows.
function setupCanvas(canvas, height) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 800;
  canvas.style.height = height + "px";
  canvas.width = Math.round(w * ratio); canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, height);
  ctx.font = "11px system-ui, sans-serif";
  ctx.drawn = [];  // every text drawn, published on data-labels: what a reader (or a test) can check
  return [ctx, w, height];
}
function text(ctx, t, x, y, align) {
  ctx.textAlign = align || "left";
  ctx.fillText(String(t), x, y);
  ctx.textAlign = "left";
  ctx.drawn.push(String(t));
}
function vtext(ctx, t, x, y) {  // rotated a quarter turn: a y axis title
  ctx.save(); ctx.translate(x, y); ctx.rotate(-Math.PI / 2); text(ctx, t, 0, 0, "center"); ctx.restore();
}
function publish(canvas, ctx) { canvas.dataset.labels = JSON.stringify(ctx.drawn); }
function niceRange(lo, hi) {
  if (!isFinite(lo) || !isFinite(hi)) return [0, 1];
  if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
  const pad = (hi - lo) * 0.06;
  return [lo - pad, hi + pad];
}
function niceTicks(lo, hi, n) {
  // Steps of 1, 2 or 5 x 10^k, about n of them inside [lo, hi].
  const raw = (hi - lo) / Math.max(1, n), mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return [out, step];
}
function decimals(step) { return Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9))); }
function uidText(uid) { return "uid " + (uid === null || uid === undefined ? "-" : uid); }
function copyText(s) { return s.copy_of ? "copy of " + (s.copy_of_uid !== null && s.copy_of_uid !== undefined ? "uid " + s.copy_of_uid : short(s.copy_of, 8)) : ""; }

function renderHistory(history, holder) {
  const canvas = document.getElementById("history");
  const [ctx, w, h] = setupCanvas(canvas, 360);
  const legend = document.getElementById("legend");
  legend.replaceChildren();
  const series = history.series.filter(s => s.points.length > 0);
  if (!series.length) { ctx.fillStyle = "#6b7280"; text(ctx, "no scored rounds yet", 10, 20); publish(canvas, ctx); return; }
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const s of series) for (const p of s.points) {
    x0 = Math.min(x0, p[1]); x1 = Math.max(x1, p[1]); y0 = Math.min(y0, p[3]); y1 = Math.max(y1, p[4]);
  }
  [y0, y1] = niceRange(y0, y1);
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  const xpad = (x1 - x0) * 0.02;  // the first and last rounds clear of the axes (and the copy's nudge)
  x0 -= xpad; x1 += xpad;
  const L = 70, R = 16, T = 10, B = 44;
  const X = b => L + (b - x0) / (x1 - x0) * (w - L - R);
  const Y = v => T + (1 - (v - y0) / (y1 - y0)) * (h - T - B);
  ctx.strokeStyle = "#e5e7eb"; ctx.fillStyle = "#6b7280"; ctx.lineWidth = 1;
  const [yticks, ystep] = niceTicks(y0, y1, 7);
  for (const v of yticks) {
    const y = Y(v);
    ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(w - R, y); ctx.stroke();
    text(ctx, v.toFixed(decimals(ystep)), L - 6, y + 4, "right");
  }
  const [xticks] = niceTicks(x0, x1, Math.max(2, Math.floor((w - L - R) / 110)));
  for (const b of xticks) {
    const x = X(b);
    ctx.beginPath(); ctx.moveTo(x, T); ctx.lineTo(x, h - B); ctx.stroke();
    text(ctx, String(Math.round(b)), x, h - B + 15, "center");
  }
  ctx.fillStyle = "#1d2330";
  text(ctx, "block of the round", L + (w - L - R) / 2, h - 6, "center");
  vtext(ctx, "loss per token (nats)", 14, T + (h - T - B) / 2);
  // Highlight the best few by their newest loss; the rest are drawn thin and grey.
  // On equal losses a copy ranks after the model it copied (the original keeps the first colour).
  const ranked = series.slice().sort((a, b) => a.points[a.points.length - 1][2] - b.points[b.points.length - 1][2]
    || Boolean(a.copy_of) - Boolean(b.copy_of));
  const colour = new Map();
  ranked.slice(0, PALETTE.length).forEach((s, i) => colour.set(s.id, PALETTE[i]));
  const isHolder = s => holder && s.hotkey === holder.hotkey && !s.copy_of && s.model === holder.model;
  // Drawn worst first, then the weight holder, then copies: a copy is thin, dashed, with hollow markers
  // and nudged right, so it shows on and beside the model it copied instead of exactly under it.
  const layer = s => s.copy_of ? 2 : isHolder(s) ? 1 : 0;
  const order = ranked.slice().reverse().sort((a, b) => layer(a) - layer(b));
  for (const s of order) drawSeries(ctx, s, colour.get(s.id), isHolder(s), X, Y, s.copy_of ? 6 : 0);
  publish(canvas, ctx);
  for (const s of ranked.slice(0, 40)) legend.appendChild(legendItem(s, colour.get(s.id), isHolder(s)));
  if (ranked.length > 40) legend.appendChild(el("li", "… and " + (ranked.length - 40) + " more (grey)"));
}

function drawSeries(ctx, s, c, holder, X, Y, dx) {
  c = c || "#cbd5e1";
  ctx.strokeStyle = c; ctx.fillStyle = c;
  ctx.globalAlpha = c === "#cbd5e1" ? 0.15 : 0.3;
  ctx.beginPath();
  for (const p of s.points) { const x = X(p[1]) + dx; ctx.moveTo(x, Y(p[3])); ctx.lineTo(x, Y(p[4])); }
  ctx.stroke();
  ctx.globalAlpha = 1;
  ctx.lineWidth = holder ? 3 : (c === "#cbd5e1" ? 0.75 : 1.5);
  ctx.setLineDash(s.copy_of ? [6, 4] : []);
  ctx.beginPath();
  s.points.forEach((p, i) => { const x = X(p[1]) + dx, y = Y(p[2]); if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
  ctx.stroke();
  ctx.setLineDash([]); ctx.lineWidth = 1.5;
  if (s.copy_of || s.points.length === 1) {
    for (const p of s.points) {
      ctx.beginPath(); ctx.arc(X(p[1]) + dx, Y(p[2]), 3.5, 0, 7);
      if (s.copy_of) { ctx.fillStyle = "#fff"; ctx.fill(); ctx.stroke(); ctx.fillStyle = c; } else ctx.fill();
    }
  }
  if (holder) {
    const p = s.points[s.points.length - 1];
    ctx.font = "16px system-ui, sans-serif"; ctx.fillText("★", X(p[1]) - 6, Y(p[2]) - 6); ctx.font = "11px system-ui, sans-serif";
  }
  ctx.lineWidth = 1;
}

function legendItem(s, c, holder) {
  const li = el("li");
  li.dataset.series = s.id;
  const sw = el("span", null, "swatch");
  sw.style.background = c || "#cbd5e1";
  if (s.copy_of) sw.style.background = "repeating-linear-gradient(90deg," + (c || "#cbd5e1") + " 0 4px, transparent 4px 7px)";
  li.appendChild(sw);
  li.appendChild(el("span", (holder ? "★ " : "") + uidText(s.uid) + " " + short(s.model || s.hotkey, 30)));
  if (s.copy_of) li.appendChild(el("span", copyText(s), "badge copy"));
  li.title = s.hotkey;
  return li;
}

function renderPairs(pairs, rows, history) {
  const canvas = document.getElementById("pairs");
  const diffs = (pairs.differences || []).filter(d => d.diff !== null);
  const ROW = 28, top = diffs.length > 8, T = top ? 24 : 8, B = 46;  // a long chart repeats its ticks on top
  const [ctx, w, h] = setupCanvas(canvas, Math.max(90, Math.min(T + B + ROW * diffs.length, 4000)));
  const byHotkey = new Map(rows.map(r => [r.hotkey, r]));
  const copies = new Map(history.series.filter(s => s.copy_of).map(s => [s.hotkey, s]));
  const caption = document.getElementById("pairs-caption");
  if (!pairs.leader || !diffs.length) { caption.textContent = "no paired differences yet"; publish(canvas, ctx); return; }
  const leader = byHotkey.get(pairs.leader);
  caption.textContent = "leader: " + uidText(leader && leader.uid) + " " + ((leader && leader.model) || short(pairs.leader, 12)) + ", round " + pairs.round_id;
  let lo = 0, hi = 0;
  for (const d of diffs) { lo = Math.min(lo, d.ci_low ?? d.diff); hi = Math.max(hi, d.ci_high ?? d.diff); }
  [lo, hi] = niceRange(lo, hi);
  const L = 300, R = 170;
  const X = v => L + (v - lo) / (hi - lo) * (w - L - R);
  const [ticks, step] = niceTicks(lo, hi, Math.max(2, Math.floor((w - L - R) / 90)));
  ctx.fillStyle = "#f8fafc";  // zebra rows first: the grid and the zero line stay on top
  diffs.forEach((d, i) => { if (i % 2) ctx.fillRect(0, T + ROW * i, w, ROW); });
  ctx.strokeStyle = "#e5e7eb"; ctx.fillStyle = "#6b7280";
  for (const v of ticks) {
    ctx.beginPath(); ctx.moveTo(X(v), T); ctx.lineTo(X(v), h - B); ctx.stroke();
    text(ctx, (v > 0 ? "+" : "") + v.toFixed(decimals(step)), X(v), h - B + 15, "center");
    if (top) text(ctx, (v > 0 ? "+" : "") + v.toFixed(decimals(step)), X(v), T - 8, "center");
  }
  ctx.strokeStyle = "#374151"; ctx.beginPath(); ctx.moveTo(X(0), T); ctx.lineTo(X(0), h - B); ctx.stroke();
  ctx.fillStyle = "#1d2330";
  text(ctx, "L(model) − L(leader), nats per token  (left of 0: better than the leader)", L + (w - L - R) / 2, h - 8, "center");
  diffs.forEach((d, i) => pairRow(ctx, d, T + ROW * (i + 0.5), byHotkey.get(d.hotkey), copies.get(d.hotkey), X, w));
  publish(canvas, ctx);
}

function pairRow(ctx, d, y, r, copy, X, w) {
  const better = d.ci_high !== null && d.ci_high < 0, worse = d.ci_low !== null && d.ci_low > 0;
  ctx.fillStyle = "#1d2330";
  const name = uidText(r && r.uid) + " " + short((r && r.model) || d.hotkey, 30) + (copy ? " · " + copyText(copy) : "");
  text(ctx, name, 6, y + 4);
  ctx.strokeStyle = ctx.fillStyle = better ? "#15803d" : worse ? "#b91c1c" : "#6b7280";
  ctx.lineWidth = 2;
  ctx.beginPath(); ctx.moveTo(X(d.ci_low ?? d.diff), y); ctx.lineTo(X(d.ci_high ?? d.diff), y); ctx.stroke();
  for (const v of [d.ci_low, d.ci_high]) if (v !== null) { ctx.beginPath(); ctx.moveTo(X(v), y - 5); ctx.lineTo(X(v), y + 5); ctx.stroke(); }
  ctx.lineWidth = 1;
  ctx.beginPath(); ctx.arc(X(d.diff), y, 4, 0, 7);
  if (copy) { ctx.fillStyle = "#fff"; ctx.fill(); ctx.stroke(); } else ctx.fill();
  ctx.fillStyle = "#374151";
  text(ctx, fmtSigned(d.diff) + " [" + fmtSigned(d.ci_low) + ", " + fmtSigned(d.ci_high) + "]", w - 6, y + 4, "right");
}
function fmtSigned(x) {
  if (x === null || x === undefined || !isFinite(x)) return "-";
  return Math.abs(x) < 5e-5 ? "0.0000" : (x > 0 ? "+" : "") + Number(x).toFixed(4);  // never "-0.0000"
}
