(function () {
"use strict";
const DATA = JSON.parse(document.getElementById("cotprobe-data").textContent);
const T = DATA.traces, PAGE = DATA.page || 50, COL = DATA.behaviours || {};
const SVGNS = "http://www.w3.org/2000/svg";
const state = { grade: "all", conf: "", beh: "", q: "", sort: "file", shown: PAGE, sel: -1 };
let matches = [];

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (const k of kids.flat(Infinity)) if (k != null && k !== false) el.append(k instanceof Node ? k : String(k));
  return el;
}
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVGNS, tag);
  setAttrs(el, attrs);
  for (const k of kids.flat(Infinity)) if (k != null && k !== false) el.append(k instanceof Node ? k : String(k));
  return el;
}
function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "class") el.setAttribute("class", v);
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}
const f2 = (x) => (x == null ? "—" : Number(x).toFixed(2));
function gradeBadge(ok, short) {
  if (ok === true) return h("span", { class: "badge ok" + (short ? " short" : ""), title: "correct" }, short ? "✓" : "✓ correct");
  if (ok === false) return h("span", { class: "badge bad" + (short ? " short" : ""), title: "incorrect" }, short ? "✗" : "✗ wrong");
  return h("span", { class: "badge na" + (short ? " short" : ""), title: "not graded" }, short ? "?" : "? n/a");
}
function colour(b) { return COL[b] || "#999999"; }
function tint(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}
function bdot(b) { return h("span", { class: "bdot", style: `background:${colour(b)}`, title: b }, b.charAt(0).toUpperCase()); }

// ------------------------------------------------------------------ filters
function hay(t) {
  if (t._h === undefined) t._h = (t.id + "\n" + t.q + "\n" + t.a + "\n" + t.cot).toLowerCase();
  return t._h;
}
function confOf(t) { return t.c.e != null ? t.c.e : (t.c.v != null ? t.c.v : -1); }
function applyFilters() {
  const q = state.q.trim().toLowerCase();
  // state.conf: "" (any), "<source>:<label>" or "<source>|unparsed" (label null)
  const cm = /^(scored|sampled)([:|])([\s\S]*)$/.exec(state.conf);
  const src = cm ? cm[1] : "", lab = cm && cm[2] === ":" ? cm[3] : null;
  matches = [];
  for (let i = 0; i < T.length; i++) {
    const t = T[i];
    if (state.grade === "correct" && t.ok !== true) continue;
    if (state.grade === "incorrect" && t.ok !== false) continue;
    if (state.grade === "ungraded" && t.ok != null) continue;
    if (src) { const v = src === "scored" ? t.c.l : t.c.sl; if ((v == null ? null : v) !== lab) continue; }
    if (state.beh) {
      if (state.beh === "|none") { if (t.bh.length) continue; }
      else if (!t.bh.includes(state.beh)) continue;
    }
    if (q && !hay(t).includes(q)) continue;
    matches.push(i);
  }
  if (state.sort === "conf-asc") matches.sort((a, b) => confOf(T[a]) - confOf(T[b]) || a - b);
  else if (state.sort === "conf-desc") matches.sort((a, b) => confOf(T[b]) - confOf(T[a]) || a - b);
  else if (state.sort === "id") matches.sort((a, b) => (T[a].id < T[b].id ? -1 : T[a].id > T[b].id ? 1 : a - b));
  state.shown = PAGE;
  const body = document.querySelector("#trace-list tbody");
  body.textContent = "";
  renderRows(0);
}
function row(i) {
  const t = T[i];
  const tr = h("tr", { class: "trace-row" + (i === state.sel ? " selected" : ""), tabindex: 0, "data-index": i,
                       onclick: () => select(i),
                       onkeydown: (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); select(i); } } },
    h("td", { title: t.q }, t.q || "(no question text)", h("span", { class: "qid mono" }, t.id)),
    h("td", { title: t.a }, t.a),
    h("td", { class: "num", title: `scored: ${t.c.l ?? "—"}; sampled: ${t.c.sl ?? "unparsed"}` }, f2(t.c.e)),
    h("td", null, gradeBadge(t.ok, true)),
    h("td", null, t.bh.map(bdot)));
  return tr;
}
function renderRows(from) {
  const body = document.querySelector("#trace-list tbody");
  const frag = document.createDocumentFragment();
  const to = Math.min(state.shown, matches.length);
  for (let k = from; k < to; k++) frag.append(row(matches[k]));
  body.append(frag);
  const mc = document.getElementById("match-count");
  mc.textContent = String(matches.length);
  mc.dataset.count = String(matches.length);
  const more = document.getElementById("more");
  const left = matches.length - to;
  more.hidden = left <= 0;
  more.textContent = `Show ${Math.min(PAGE, left)} more (${left} not shown)`;
  document.getElementById("shown-count").textContent =
    `(showing ${to}${DATA.n_all > T.length ? `; report holds ${T.length} of ${DATA.n_all} traces` : ""})`;
}
function setupFilters() {
  const conf = document.getElementById("f-conf");
  const labels = (key) => {  // scale order first, then any other label; null (unparsed) last
    const seen = new Set(T.map((t) => (t.c[key] == null ? null : t.c[key])));
    const out = (DATA.labels || []).filter((l) => seen.has(l));
    for (const l of [...seen].filter((l) => l != null).sort()) if (!out.includes(l)) out.push(l);
    if (seen.has(null)) out.push(null);
    return out;
  };
  for (const [src, key, name] of [["scored", "l", "Scored label (most probable)"], ["sampled", "sl", "Sampled label (written)"]]) {
    const g = h("optgroup", { label: name });
    for (const l of labels(key)) {
      const n = T.filter((t) => (t.c[key] == null ? null : t.c[key]) === l).length;
      g.append(h("option", { value: l == null ? `${src}|unparsed` : `${src}:${l}` }, `${src}: ${l == null ? "(unparsed)" : l} (${n})`));
    }
    if (g.children.length) conf.append(g);
  }
  const beh = document.getElementById("f-beh");
  if (!DATA.has.tags) { beh.disabled = true; beh.title = "no tags.jsonl in this run"; beh.options[0].textContent = "no tags.jsonl"; }
  else {
    for (const b of DATA.present) beh.append(h("option", { value: b }, `${b} (${T.filter((t) => t.bh.includes(b)).length})`));
    beh.append(h("option", { value: "|none" }, `none tagged (${T.filter((t) => !t.bh.length).length})`));
  }
  document.querySelectorAll('#f-grade input').forEach((el) => el.addEventListener("change", () => { state.grade = el.value; applyFilters(); }));
  conf.addEventListener("change", () => { state.conf = conf.value; applyFilters(); });
  beh.addEventListener("change", () => { state.beh = beh.value; applyFilters(); });
  const sort = document.getElementById("f-sort");
  sort.addEventListener("change", () => { state.sort = sort.value; applyFilters(); });
  const q = document.getElementById("f-q");
  let timer = 0;
  q.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => { state.q = q.value; applyFilters(); }, 150); });
  document.getElementById("more").addEventListener("click", () => { const from = Math.min(state.shown, matches.length); state.shown += PAGE; renderRows(from); });
}

// ------------------------------------------------------------------ detail
function chart(t) {
  const W = 520, H = 220, L = 42, R = 14, TP = 12, B = 40, pw = W - L - R, ph = H - TP - B;
  const X = (f) => L + Math.max(0, Math.min(1, f)) * pw, Y = (v) => TP + (1 - Math.max(0, Math.min(1, v))) * ph;
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
    "aria-label": "confidence at each cut against the fraction of the chain of thought realised" });
  for (const g of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(s("line", { class: "grid", x1: L, x2: L + pw, y1: Y(g), y2: Y(g) }));
    svg.append(s("line", { class: "grid", x1: X(g), x2: X(g), y1: TP, y2: TP + ph }));
    svg.append(s("text", { x: L - 6, y: Y(g) + 4, "text-anchor": "end" }, g.toFixed(2)));
    svg.append(s("text", { x: X(g), y: TP + ph + 15, "text-anchor": "middle" }, g.toFixed(2)));
  }
  svg.append(s("line", { class: "axis", x1: L, x2: L, y1: TP, y2: TP + ph }));
  svg.append(s("line", { class: "axis", x1: L, x2: L + pw, y1: TP + ph, y2: TP + ph }));
  svg.append(s("text", { x: L + pw / 2, y: H - 4, "text-anchor": "middle" }, "fraction of CoT realised"));
  svg.append(s("text", { x: 11, y: TP + ph / 2, "text-anchor": "middle", transform: `rotate(-90 11 ${TP + ph / 2})` }, "confidence"));
  const pts = t.cuts.filter((c) => c.fr != null);
  const line = (key) => pts.filter((c) => c[key] != null).map((c, k) => `${k ? "L" : "M"}${X(c.fr).toFixed(1)},${Y(c[key]).toFixed(1)}`).join("");
  const sv = line("v");
  if (sv) svg.append(s("path", { d: sv, fill: "none", stroke: "#8c959f", "stroke-width": 1.5, "stroke-dasharray": "4 3", class: "scored-line" }));
  const ev = line("e");
  if (ev) svg.append(s("path", { d: ev, fill: "none", stroke: "#1b1f24", "stroke-width": 1.5, class: "expected-line" }));
  for (const c of pts) {
    const v = c.e != null ? c.e : c.v;
    if (v == null) continue;
    const x = X(c.fr), y = Y(v);
    const tip = s("title", null, `cut ${f2(c.f)} (realised ${f2(c.fr)}), ${c.si} steps: answer “${c.a}”, ` +
      `expected ${f2(c.e)}, scored ${c.l ?? "—"}, ${c.ok === true ? "correct" : c.ok === false ? "incorrect" : "ungraded"}`);
    let m;
    if (c.ok === true) m = s("circle", { cx: x, cy: y, r: 5, fill: "#0072B2", stroke: "#fff", "stroke-width": 1, class: "mk ok" }, tip);
    else if (c.ok === false) m = s("path", { d: `M${x - 4.5},${y - 4.5}L${x + 4.5},${y + 4.5}M${x - 4.5},${y + 4.5}L${x + 4.5},${y - 4.5}`,
      stroke: "#D55E00", "stroke-width": 2.5, class: "mk bad" }, tip);
    else m = s("circle", { cx: x, cy: y, r: 4.5, fill: "#fff", stroke: "#8c959f", "stroke-width": 1.5, class: "mk na" }, tip);
    svg.append(m);
  }
  if (t.c.e != null) {
    const x = X(1), y = Y(t.c.e);
    svg.append(s("path", { d: `M${x},${y - 6}L${x + 6},${y}L${x},${y + 6}L${x - 6},${y}Z`, fill: "none", stroke: "#1b1f24", "stroke-width": 1.3, class: "final" },
      s("title", null, `final answer: expected confidence ${f2(t.c.e)}`)));
  }
  return svg;
}
function chartLegend() {
  return h("div", { class: "legend" },
    h("span", null, h("span", { class: "sw", style: "background:#0072B2;border-radius:50%;width:10px" }), "forced answer correct"),
    h("span", null, h("b", { style: "color:#D55E00" }, "✗ "), "incorrect"),
    h("span", null, h("span", { class: "sw", style: "border:1.5px solid #8c959f;border-radius:50%;width:10px" }), "ungraded"),
    h("span", null, "— expected confidence"), h("span", { style: "color:#8c959f" }, "- - value of most probable label"),
    h("span", null, "◇ final answer"));
}
function highlighted(text, tags) {
  // tags: [[step, behaviour, start, end, cue]], offsets inside text
  const frag = document.createDocumentFragment();
  if (!tags.length) { frag.append(text); return frag; }
  const cuts = new Set([0, text.length]);
  for (const g of tags) { cuts.add(g[2]); cuts.add(g[3]); }
  const pts = [...cuts].sort((a, b) => a - b);
  for (let k = 0; k + 1 < pts.length; k++) {
    const a = pts[k], b = pts[k + 1];
    if (a === b) continue;
    const piece = text.slice(a, b);
    const on = tags.filter((g) => g[2] <= a && g[3] >= b && g[2] < g[3]);
    if (!on.length) { frag.append(piece); continue; }
    const c = colour(on[0][1]);
    frag.append(h("mark", { class: "b", "data-behaviour": on[0][1], style: `--c:${c};--bg:${tint(c, 0.2)}`,
      title: on.map((g) => `${g[1]} (cue: ${g[4]})`).join("; ") }, piece));
  }
  return frag;
}
function stepsView(t) {
  const box = h("div", { class: "steps" });
  if (!t.steps.length) {
    box.append(h("p", { class: "muted" }, DATA.has.steps ? "No steps for this trace." : "No steps.jsonl in this run: the chain of thought as one block."),
      h("pre", { class: "cot" }, t.cot || "(empty chain of thought)"));
    return box;
  }
  const tagsBy = {};
  for (const g of t.tags) (tagsBy[g[0]] = tagsBy[g[0]] || []).push(g);
  const cutsBy = {};
  for (const c of t.cuts) (cutsBy[c.si] = cutsBy[c.si] || []).push(c);
  const cutMark = (k) => {
    const cs = cutsBy[k];
    if (!cs) return null;
    return h("div", { class: "cutmark" }, `✂ cut after ${k} step${k === 1 ? "" : "s"} (requested ${cs.map((c) => f2(c.f)).join(", ")}): `,
      cs.map((c, j) => [j ? "; " : "", `“${c.a}” · conf ${f2(c.e)} · `, c.ok === true ? "✓" : c.ok === false ? "✗" : "?"]));
  };
  box.append(cutMark(0) || "");
  t.steps.forEach((st, k) => {
    const text = st.length > 3 ? st[3] : t.cot.slice(st[1], st[2]);
    box.append(h("div", { class: "step", "data-step": st[0] }, h("span", { class: "n" }, String(st[0])),
      h("div", { class: "t" }, highlighted(text, tagsBy[st[0]] || []))));
    const m = cutMark(k + 1);
    if (m) box.append(m);
  });
  return box;
}
function behaviourLegend(t) {
  const counts = {};
  for (const g of t.tags) counts[g[1]] = (counts[g[1]] || 0) + 1;
  const names = Object.keys(COL).filter((b) => DATA.present.includes(b));
  if (!DATA.has.tags) return h("p", { class: "muted" }, "No tags.jsonl in this run: no behaviour highlights.");
  return h("div", { class: "legend" }, names.map((b) => h("span", null,
    h("span", { class: "sw", style: `background:${tint(colour(b), 0.25)};border-bottom:2px solid ${colour(b)}` }), `${b} (${counts[b] || 0})`)));
}
function confText(c) {
  return [`expected ${f2(c.e)} · most probable label “${c.l ?? "—"}” (${f2(c.v)}) · written: `,
          c.sl != null ? `“${c.sl}” (${f2(c.sv)})` : h("span", { class: "muted" }, `unparsed (“${c.st}”)`)];
}
function cutsTable(t) {
  if (!t.cuts.length) return h("p", { class: "muted" }, DATA.has.probes ? "No cut probes for this trace." : "No probes.jsonl in this run.");
  return h("div", { class: "scroll" }, h("table", { class: "cuts" },
    h("thead", null, h("tr", null, ["cut", "realised", "steps", "tokens", "forced answer", "expected", "scored label", "written label", "grade"].map((x) => h("th", null, x)))),
    h("tbody", null, t.cuts.map((c) => h("tr", null, h("td", { class: "num" }, f2(c.f)), h("td", { class: "num" }, f2(c.fr)),
      h("td", { class: "num" }, String(c.si)), h("td", { class: "num" }, String(c.ti)), h("td", { class: "ans", title: c.a }, c.a),
      h("td", { class: "num" }, f2(c.e)), h("td", null, c.l ?? "—"), h("td", null, c.sl ?? "unparsed"), h("td", null, gradeBadge(c.ok)))))));
}
function ablTable(t) {
  if (!t.abl.length) return null;
  return [h("h4", null, "Ablations"), h("div", { class: "scroll" }, h("table", { class: "cuts" },
    h("thead", null, h("tr", null, ["condition", "answer", "expected", "scored label", "grade", "removed"].map((x) => h("th", null, x)))),
    h("tbody", null, t.abl.map((c) => h("tr", null, h("td", null, c.cond), h("td", { class: "ans", title: c.a }, c.err ? h("span", { class: "muted" }, "error: " + c.err) : c.a),
      h("td", { class: "num" }, f2(c.e)), h("td", null, c.l ?? "—"), h("td", null, gradeBadge(c.ok)),
      h("td", { title: c.rm.join("\n") }, c.nrm ? `${c.nrm}: ${c.rm[0].slice(0, 60)}${c.nrm > 1 || c.rm[0].length > 60 ? "…" : ""}` : "—"))))))];
}
function select(i) {
  state.sel = i;
  document.querySelectorAll(".trace-row.selected").forEach((r) => r.classList.remove("selected"));
  const r = document.querySelector(`.trace-row[data-index="${i}"]`);
  if (r) r.classList.add("selected");
  const t = T[i];
  const d = document.getElementById("detail");
  d.textContent = "";
  d.append(h("div", { class: "detail-body", "data-trace": t.id },
    h("h3", null, t.id, " ", gradeBadge(t.ok)),
    h("p", { class: "question" }, h("b", null, "Question: "), t.q || "—"),
    h("details", null, h("summary", null, "Full prompt"), h("pre", null, t.p)),
    h("dl", { class: "facts" },
      h("dt", null, "Final answer"), h("dd", { class: "final-answer" }, t.a || "—"),
      h("dt", null, "Confidence"), h("dd", null, confText(t.c)),
      h("dt", null, "Grade"), h("dd", null, gradeBadge(t.ok), " ", h("span", { class: "muted" }, t.gr || "")),
      h("dt", null, "Model"), h("dd", null, `${t.m}${t.sty ? " · style " + t.sty : ""}`),
      h("dt", null, "Tokens"), h("dd", null, `prompt ${t.pt} · CoT ${t.ct} · thinking ended: ${t.te}`)),
    h("h4", null, "Confidence along the chain of thought"),
    t.cuts.length ? [chart(t), chartLegend()] : null,
    cutsTable(t),
    ablTable(t),
    h("h4", null, `Steps (${t.steps.length})`),
    behaviourLegend(t),
    stepsView(t)));
  d.scrollTop = 0;
  history.replaceState(null, "", "#trace=" + i);
}

setupFilters();
applyFilters();
const m = /^#trace=(\d+)$/.exec(location.hash);
if (m && T[+m[1]]) select(+m[1]);
document.body.dataset.ready = "1";
window.cotprobeReadyAt = performance.now();
})();
