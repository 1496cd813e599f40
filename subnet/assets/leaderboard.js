// The leaderboard page's data and tables; inlined after leaderboard_charts.js by subnet.validator.leaderboard.page_html.
// Everything a miner controls (repo names, hotkeys, reasons) reaches the page only through
// textContent or validated URL parts, never parsed as markup.
const REFRESH_MS = 30000;
const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4f46e5", "#65a30d"];
const HUB = "https://huggingface.co/";
let selected = null;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function fmt(x, digits) { return (x === null || x === undefined || !isFinite(x)) ? "-" : Number(x).toFixed(digits); }
function pct(x) { return (x === null || x === undefined || !isFinite(x)) ? "-" : (100 * x).toFixed(3) + "%"; }
function short(s, n) { s = String(s || ""); return s.length > n ? s.slice(0, n) + "…" : s; }
function repoLink(model) {
  // "namespace/name@commit": link only what matches the Hub's repo-id alphabet.
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]{0,95})\/([A-Za-z0-9][A-Za-z0-9._-]{0,95})@([0-9a-f]{1,40})$/.exec(String(model || ""));
  if (!m) return el("span", short(model, 48));
  const a = el("a", short(model, 48));
  a.href = HUB + encodeURIComponent(m[1]) + "/" + encodeURIComponent(m[2]);
  a.rel = "noopener noreferrer"; a.target = "_blank";
  return a;
}
async function getJSON(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (!r.ok) throw new Error(path + " answered " + r.status);
  return r.json();
}
function renderScores(rows, block) {
  const body = document.querySelector("#scores tbody");
  body.replaceChildren();
  let holder = null;
  for (const r of rows) if (r.weight > 0 && (!holder || r.weight > holder.weight)) holder = r;
  for (const r of rows) {
    const tr = el("tr");
    tr.dataset.hotkey = r.hotkey;
    if (holder && r.hotkey === holder.hotkey) tr.className = "holder";
    const age = r.age_blocks === null || r.age_blocks === undefined ? "-" : r.age_blocks + " (" + (r.age_blocks / 7200).toFixed(1) + "d)";
    const loss = r.mean_loss === null || r.mean_loss === undefined ? "-" : fmt(r.mean_loss, 4) + " (" + fmt(r.ci_low, 4) + "…" + fmt(r.ci_high, 4) + ")";
    const cells = [
      [r.uid === null || r.uid === undefined ? "-" : r.uid, "num"], [short(r.hotkey, 12), ""], [null, ""],
      [age, "num"], [pct(r.advantage), "num"], [loss, "num"], [fmt(r.win_rate, 2), "num"], [fmt(r.weight, 4), "num"],
      [null, ""], [r.reason || "", "reason"],
    ];
    cells.forEach(([text, cls], i) => {
      const td = el("td", text, cls);
      if (i === 1) td.title = r.hotkey || "";
      if (i === 2) td.appendChild(repoLink(r.model));
      if (i === 8) td.appendChild(el("span", r.status || "", "badge " + String(r.status || "").replace(/[^a-z_]/g, "")));
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
  document.getElementById("block").textContent = block === null || block === undefined ? "" : "block " + block;
  return holder;
}

function renderEvidence(evidence, selected) {
  const body = document.querySelector("#evidence tbody");
  body.replaceChildren();
  for (const p of evidence.filter(e => !selected || e.competition === selected)) {
    const tr = el("tr");
    for (const side of ["earlier", "later"]) {
      const td = el("td", uidText(p[side + "_uid"]) + " " + (p[side + "_model"] || short(p[side], 12)));
      td.title = p[side] || "";
      tr.appendChild(td);
    }
    const interval = fmtPct(p.acc_low) + " … " + fmtPct(p.acc_high);
    [[p.rounds, "num"], [fmtPct(p.diff), "num"], [interval, "num"], [pct(p.eps), "num"],
     [p.later_wins ? "later wins" : "earlier keeps", ""]].forEach(([t, cls]) => tr.appendChild(el("td", t, cls)));
    body.appendChild(tr);
  }
  if (!body.children.length) { const tr = el("tr"); const td = el("td", "no pair evidence yet"); td.colSpan = 7; tr.appendChild(td); body.appendChild(tr); }
}
function fmtPct(x) { return (x === null || x === undefined || !isFinite(x)) ? "-" : (x > 0 ? "+" : "") + (100 * x).toFixed(3) + "%"; }

function renderRounds(rounds) {
  const body = document.querySelector("#rounds tbody");
  body.replaceChildren();
  for (const r of rounds) {
    const docs = (r.data || []).map(d => d.competition + ": " + (d.n_docs ?? "-")).join(", ");
    const dur = r.finished_at ? ((r.finished_at - r.started_at).toFixed(1) + " s") : "-";
    const weights = (r.weights || []).map(a => a.status + (a.message ? " (" + a.message + ")" : "")).join("; ") || "-";
    const failures = (r.failures || []).map(f => short(f.hotkey, 10) + ": " + f.reason).join("; ") || (r.error || "");
    const tr = el("tr");
    [[r.id, "num"], [r.block, "num"], [short(r.seed, 14), ""], [docs, ""], [dur, "num"], [r.status, ""], [weights, "reason"], [failures, "reason"]]
      .forEach(([text, cls]) => tr.appendChild(el("td", text, cls)));
    body.appendChild(tr);
  }
}

function ago(s) {
  s = Math.abs(s);
  return s < 90 ? Math.round(s) + " s" : s < 5400 ? Math.round(s / 60) + " min" : s < 172800 ? (s / 3600).toFixed(1) + " h" : (s / 86400).toFixed(1) + " d";
}
function setText(id, t, title) {
  const e = document.getElementById(id);
  e.textContent = t === null || t === undefined || t === "" ? "-" : String(t);
  if (title !== undefined) e.title = title;
}

// Who this validator is and what it does next (/status): the first thing an operator looks for.
function renderOperator(st) {
  if (!st) return;
  const id = st.identity || {}, served = st.served_by || {};
  const servedNote = (mine, theirs) => (mine && theirs && mine !== theirs) ? mine + " (served by " + theirs + ")" : (mine || theirs);
  setText("op-hotkey", id.hotkey || "not recorded (the validator records it when it starts)", id.hotkey || "");
  setText("op-uid", id.uid);
  setText("op-netuid", id.netuid === null || id.netuid === undefined ? null : id.netuid + (id.network ? " (" + id.network + ")" : ""));
  setText("op-version", servedNote(id.version, served.version));
  setText("op-commit", servedNote(id.commit, served.commit));
  const lw = st.last_weights;
  let weights = "none yet";
  if (lw && lw.status === "committed") weights = "committed at block " + lw.block + ", reveals at round " + lw.reveal_round + ", " + ago(lw.age_s) + " ago";
  else if (lw && lw.status === "success") weights = "block " + lw.block + ", " + ago(lw.age_s) + " ago";
  else if (lw) weights = lw.text + ", " + ago(lw.age_s) + " ago";
  setText("op-weights", weights);
  setText("op-next-weights", st.next_weights_block === null ? null : "not before block " + st.next_weights_block);
  const nr = st.next_round || {};
  let next = null;
  if (nr.in_progress !== null && nr.in_progress !== undefined) next = "round " + nr.in_progress + " in progress";
  else if (nr.in_s !== null && nr.in_s !== undefined) {
    const at = new Date(nr.at * 1000).toLocaleTimeString();
    next = nr.in_s > 0 ? "in " + ago(nr.in_s) + " (" + at + ")" : "due now (" + ago(nr.in_s) + " late)";
  }
  setText("op-next-round", next);
}

// /healthz answers 503 with its reasons when the validator is failing or degraded: shown, never fatal.
async function renderHealth() {
  const box = document.getElementById("health"), badge = document.getElementById("op-health");
  let h;
  try { h = await (await fetch("healthz", {cache: "no-store"})).json(); } catch (e) {
    badge.textContent = "unknown (/healthz: " + e.message + ")"; badge.className = "health-failing"; return;
  }
  const parts = (h.reasons || []).map(r => {
    if (r === "models_parked") return "models waiting for our own resources: " + Object.entries(h.models_parked || {}).map(([k, n]) => n + " " + k).join(", ");
    if (r === "weights_held") return "weights held: " + Object.entries(h.weights_held || {}).map(([c, why]) => c + " (" + why + ")").join("; ");
    if (r === "disk_below_floor") return "model cache disk below its floor: " + h.disk_free_bytes + " of " + h.disk_floor_bytes + " bytes free";
    if (r === "no_recent_round") return "no_recent_round (last round " + (h.last_round_age_s === null ? "never" : ago(h.last_round_age_s) + " ago") + ")";
    return r;
  });
  const status = h.status || (h.ok ? "ok" : "failing");
  badge.textContent = parts.length ? status + ": " + (h.reasons || []).join(", ") : status;
  badge.className = "health-" + String(status).replace(/[^a-z]/g, "");
  box.textContent = parts.length ? status + ": " + parts.join(" | ") : "";
  box.hidden = !parts.length;
}

async function refresh() {
  const started = performance.now();
  const status = document.getElementById("status");
  const health = renderHealth();  // on its own: shown even when the other endpoints fail
  const operator = getJSON("status").then(renderOperator, e => setText("op-hotkey", "unknown (/status: " + e.message + ")"));
  try {
    const scores = await getJSON("scores");
    const comps = [...new Set(scores.scores.map(r => r.competition).filter(c => c))].sort();
    const select = document.getElementById("competition");
    if (!comps.includes(selected)) selected = comps.length ? comps[0] : null;
    if ([...select.options].map(o => o.value).join() !== comps.join()) {
      select.replaceChildren(...comps.map(c => { const o = el("option", c); o.value = c; return o; }));
    }
    select.value = selected || "";
    const q = selected ? "?competition=" + encodeURIComponent(selected) : "";
    const [history, rounds, pairs] = await Promise.all([getJSON("history" + q), getJSON("rounds?limit=20"),
      selected ? getJSON("pairs" + q) : Promise.resolve({differences: []})]);
    // Unparsable commitments belong to no competition: they are listed under every one.
    const rows = scores.scores.filter(r => r.competition === selected || !r.competition);
    const holder = renderScores(rows, scores.current_block);
    renderHistory(history, holder);
    renderPairs(pairs, rows, history);
    renderEvidence(scores.evidence || [], selected);
    renderRounds(rounds.rounds);
    status.textContent = "";
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    status.textContent = "refresh failed: " + e.message;
  }
  await Promise.all([health, operator]);
  document.body.dataset.renderMs = String(Math.round(performance.now() - started));
  document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
}
document.getElementById("competition").addEventListener("change", e => { selected = e.target.value; refresh(); });
refresh();
setInterval(refresh, REFRESH_MS);
