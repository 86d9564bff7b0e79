"""python -m cotprobe.report RUN_DIR: one self-contained HTML report of a run directory.

The report is a single file that opens from disk with no server and no network (a Content
Security Policy forbids every fetch): CSS and JS are inline, figures/*.png are embedded as
base64 data URIs, and the records travel as one JSON blob in a <script type="application/json">
tag. It holds the manifest (model, profile, dataset, settings, versions), the tables of
metrics.json (trace level per confidence source, per cut, per ablation condition), the figures,
and a trace browser: filters (grade, confidence label, behaviour, text search), a list rendered
50 rows at a time, and on demand a detail view of one trace (prompt, steps with behaviour
highlights, confidence at every cut as an inline SVG chart, the forced answer at every cut, the
final answer, confidence and grade).

steps.jsonl, tags.jsonl, probes.jsonl and metrics.json are optional; traces.jsonl and
manifest.json are not. Everything taken from records is HTML-escaped here (Python side) or
inserted as text nodes (JS side); the JSON blob escapes <, > and & so no CoT can close its tag.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import re
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from .records import Probe, RecordError, Step, Tag, Trace, from_dict
from .store import open_existing

RecordT = TypeVar("RecordT")

# The behaviours of cotprobe.tags (kept here so the report does not import the tagger), with
# Okabe-Ito colours (colour-blind safe). Behaviours not listed get the fallback colours in order.
BEHAVIOUR_COLOURS = {
    "backtracking": "#D55E00",
    "alternative": "#0072B2",
    "verification": "#009E73",
    "hedging": "#E69F00",
    "conclusion": "#CC79A7",
}
FALLBACK_COLOURS = ("#56B4E9", "#8C6D31", "#999999", "#332288", "#882255")
PAGE_SIZE = 50
METRIC_COLUMNS = (("accuracy", "Accuracy"), ("ece", "ECE"), ("brier", "Brier"), ("auroc", "AUROC"),
                  ("mean_confidence", "Mean conf."))


# ------------------------------------------------------------------------------------ reading


def read_records(path: Path, cls: type[RecordT]) -> list[RecordT]:
    """Records of one JSONL file ([] if absent); a torn last line (a run still writing) is dropped."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    torn = lines.pop() if lines else ""  # "" when the file ends with a newline
    out = []
    for lineno, line in enumerate(lines, 1):
        if line.strip():
            out.append(_parse(line, cls, f"{path}:{lineno}"))
    if torn.strip():
        try:
            out.append(_parse(torn, cls, f"{path}:{len(lines) + 1}"))
        except RecordError:
            print(f"cotprobe: {path}: ignoring an incomplete last record (run still writing?)", file=sys.stderr)
    return out


def _parse(line: str, cls: type[RecordT], where: str) -> RecordT:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RecordError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise RecordError(f"{where}: expected a JSON object per line")
    return from_dict(cls, data, where)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))  # Python's json reads NaN/Infinity
    return data if isinstance(data, dict) else {}


# ------------------------------------------------------------------------------ trace data


def _utf16(text: str) -> Callable[[int], int]:
    """Map a code-point offset in text to the UTF-16 offset JavaScript strings use."""
    if all(ord(ch) <= 0xFFFF for ch in text):
        return lambda i: i
    cum = [0]
    for ch in text:
        cum.append(cum[-1] + (2 if ord(ch) > 0xFFFF else 1))
    return lambda i: cum[max(0, min(i, len(text)))]


def _num(x: float | None, digits: int = 4) -> float | None:
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return round(float(x), digits)


_SPECIAL = re.compile(r"<\|[^|<>]{1,40}\|>|<(?:/?s|bos|eos|start_of_turn|end_of_turn)>")


def question_text(prompt: str) -> str:
    """The question inside a prompt: the text after 'Question:' if present, else its last line."""
    m = re.search(r"Question:\s*(.+?)\s*(?:<\||<end_of_turn>|\n\n|$)", prompt, re.S)
    if m:
        return m.group(1).strip()
    lines = [ln.strip() for ln in _SPECIAL.sub("\n", prompt).splitlines()]
    lines = [ln for ln in lines if ln and ln not in ("user", "assistant", "system", "model")]
    return lines[-1][:300] if lines else ""


def _confidence(conf) -> dict[str, Any]:
    return {"st": conf.sampled_text, "sl": conf.sampled_label, "sv": _num(conf.sampled_value),
            "l": conf.scored_label, "v": _num(conf.scored_value), "e": _num(conf.expected_value)}


def trace_data(traces: list[Trace], steps: list[Step], tags: list[Tag], probes: list[Probe]) -> list[dict]:
    """Compact per-trace dicts for the browser (offsets converted to UTF-16 for JS)."""
    steps_by: dict[str, list[Step]] = defaultdict(list)
    for s in steps:
        steps_by[s.question_id].append(s)
    tags_by: dict[str, list[Tag]] = defaultdict(list)
    for t in tags:
        tags_by[t.question_id].append(t)
    probes_by: dict[str, list[Probe]] = defaultdict(list)
    for p in probes:
        probes_by[p.question_id].append(p)
    out = []
    for tr in traces:
        qid = tr.question_id
        cot_u16 = _utf16(tr.cot)
        trace_steps = sorted(steps_by.get(qid, []), key=lambda s: s.index)
        step_rows, step_text = [], {}
        for s in trace_steps:
            step_text[s.index] = s.text
            if tr.cot[s.start:s.end] == s.text:
                step_rows.append([s.index, cot_u16(s.start), cot_u16(s.end)])
            else:  # offsets disagree with the CoT: carry the text itself
                step_rows.append([s.index, -1, -1, s.text])
        tag_rows, present = [], []
        for t in sorted(tags_by.get(qid, []), key=lambda t: (t.step_index, t.start, t.end)):
            text = step_text.get(t.step_index)
            if text is None:
                continue
            u16 = _utf16(text)
            start, end = max(0, min(t.start, len(text))), max(0, min(t.end, len(text)))
            tag_rows.append([t.step_index, t.behaviour, u16(start), u16(max(start, end)), t.cue])
            if t.behaviour not in present:
                present.append(t.behaviour)
        cuts, ablations = [], []
        for p in probes_by.get(qid, []):
            if p.condition == "cut":
                cuts.append({"f": _num(p.fraction_requested), "fr": _num(p.fraction_realised),
                             "si": p.step_index, "ti": p.token_index, "a": p.answer,
                             "ok": p.correct, **_confidence(p.confidence)})
            else:
                ablations.append({"cond": p.condition, "a": p.answer, "ok": p.correct, "err": p.error,
                                  "rm": [r[:300] for r in p.removed[:20]], "nrm": len(p.removed),
                                  **_confidence(p.confidence)})
        cuts.sort(key=lambda c: (c["fr"] if c["fr"] is not None else 0, c["f"] or 0))
        out.append({
            "id": qid, "m": tr.model, "q": question_text(tr.prompt), "p": tr.prompt, "cot": tr.cot,
            "a": tr.answer, "ok": tr.correct, "gr": tr.grader, "te": tr.thinking_ended,
            "pt": tr.prompt_tokens, "ct": len(tr.cot_token_ids), "sty": tr.style,
            "c": _confidence(tr.confidence), "steps": step_rows, "tags": tag_rows,
            "bh": [b for b in BEHAVIOUR_COLOURS if b in present] + [b for b in present if b not in BEHAVIOUR_COLOURS],
            "cuts": cuts, "abl": ablations,
        })
    return out


def _behaviour_colours(names: Iterable[str]) -> dict[str, str]:
    colours = dict(BEHAVIOUR_COLOURS)
    extra = iter(FALLBACK_COLOURS * 10)
    for name in names:
        if name not in colours:
            colours[name] = next(extra)
    return colours


def _scale_labels(manifest: dict[str, Any]) -> list[str]:
    for stage in manifest.get("stages", {}).values():
        scale = (stage.get("settings") or {}).get("scale")
        if isinstance(scale, dict) and isinstance(scale.get("labels"), list):
            return [str(x) for x in scale["labels"]]
    return []


def json_for_script(data: Any) -> str:
    """JSON safe to place inside <script type="application/json"> (no '<', '>' or '&' literal)."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _clean(obj: Any) -> Any:
    """NaN/inf -> None, recursively (JSON.parse rejects NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


# ------------------------------------------------------------------------------- HTML pieces

esc = html.escape


def fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, float):
        return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"
    return esc(str(x))


def ci_cell(row: dict[str, Any], key: str) -> str:
    if key not in row:
        return "<td>—</td>"
    low, high = row.get(key + "_low"), row.get(key + "_high")
    interval = (f' <span class="ci">[{fmt(low)}, {fmt(high)}]</span>'
                if low is not None and high is not None else "")
    return f'<td class="num">{fmt(row[key])}{interval}</td>'


def _metric_header(first: list[str]) -> str:
    cols = first + ["n", "unparsed"] + [label for _, label in METRIC_COLUMNS] + ["note"]
    return "<thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in cols) + "</tr></thead>"


def _metric_cells(row: dict[str, Any]) -> str:
    cells = f'<td class="num">{fmt(row.get("n", row.get("n_total")))}</td><td class="num">{fmt(row.get("n_unparsed"))}</td>'
    if "accuracy" not in row:
        return cells + f'<td colspan="{len(METRIC_COLUMNS)}" class="muted">no parsed confidences</td><td></td>'
    return cells + "".join(ci_cell(row, key) for key, _ in METRIC_COLUMNS) + f'<td class="muted">{esc(str(row.get("note", "")))}</td>'


def traces_section(sec: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th scope=row>{esc(src)}</th>{_metric_cells(row)}</tr>"
                   for src, row in (sec.get("sources") or {}).items())
    ended = ", ".join(f"{esc(str(k))}: {fmt(v)}" for k, v in (sec.get("thinking_ended") or {}).items())
    return (f"<h3>Final answers, per confidence source</h3><p class=muted>{fmt(sec.get('n'))} traces; "
            f"thinking ended: {ended or '—'}. Intervals: 95% question-clustered bootstrap.</p>"
            f'<div class="scroll"><table class="metrics">{_metric_header(["source"])}<tbody>{rows}</tbody></table></div>')


def cuts_section(sec: dict[str, Any], title: str) -> str:
    rows = "".join(
        f'<tr><th scope=row>{fmt(r.get("level"), 2)}</th><td class="num">{fmt(r.get("fraction_realised"), 2)}</td>'
        f"{_metric_cells(r)}</tr>" for r in sec.get("levels", []))
    out = (f"<h3>{esc(title)}</h3><p class=muted>Confidence source: {esc(str(sec.get('source', '?')))}. "
           "Level: requested fraction of the CoT; realised: mean fraction actually kept.</p>"
           f'<div class="scroll"><table class="metrics">{_metric_header(["cut", "realised"])}<tbody>{rows}</tbody></table></div>')
    trends = sec.get("trends") or {}
    if trends:
        body = ""
        for name, t in trends.items():
            c, o = t.get("clustered") or {}, t.get("ols_per_level")
            ols = (f'{fmt(o.get("slope"))} <span class="ci">p={fmt(o.get("p_value"))}</span>' if o else "—")
            body += (f"<tr><th scope=row>{esc(name)}</th><td class=num>{fmt(c.get('slope'))} "
                     f"<span class=ci>[{fmt(c.get('low'))}, {fmt(c.get('high'))}]</span></td>"
                     f"<td class=num>{fmt(c.get('p_value'))}</td><td class=num>{ols}</td></tr>")
        out += ("<h4>Trend along the CoT (slope per unit of CoT realised)</h4><div class=scroll><table class=metrics>"
                "<thead><tr><th>metric</th><th>slope [95% CI], question-clustered</th><th>p</th>"
                f"<th>per-level OLS slope</th></tr></thead><tbody>{body}</tbody></table></div>")
    traj = sec.get("trajectories") or {}
    if traj.get("n"):
        out += (f"<p class=muted>Confidence trajectories over {fmt(traj['n'])} traces: mean change "
                f"{fmt(traj.get('mean_change'))}, mean |largest jump| {fmt(traj.get('mean_abs_largest_jump'))}, "
                f"mean direction changes {fmt(traj.get('mean_direction_changes'), 2)}.</p>")
    return out


def conditions_section(sec: dict[str, Any], title: str) -> str:
    ref = str(sec.get("reference", "full"))
    diff_key = "diff_vs_" + ref
    conds = sec.get("conditions") or {}
    rows = ""
    for cond, r in conds.items():
        diff = r.get(diff_key) or {}
        dcells = ""
        for key, _ in METRIC_COLUMNS[:4]:
            d = diff.get(key)
            dcells += (f"<td class=num>{fmt(d.get('estimate'))} <span class=ci>[{fmt(d.get('low'))}, "
                       f"{fmt(d.get('high'))}] p={fmt(d.get('p_value'))}</span></td>" if isinstance(d, dict)
                       else "<td class=muted>—</td>")
        rows += (f"<tr><th scope=row>{esc(str(cond))}</th>{_metric_cells(r)}<td class=num>{fmt(r.get('n_failed'))}</td>"
                 f"<td class=num>{fmt(diff.get('n'))}</td>{dcells}</tr>")
    head = (_metric_header(["condition"])[:-len("</tr></thead>")] + "<th>failed</th><th>paired n</th>"
            + "".join(f"<th>Δ {esc(label)} vs {esc(ref)}</th>" for _, label in METRIC_COLUMNS[:4]) + "</tr></thead>")
    return (f"<h3>{esc(title)}</h3><p class=muted>Confidence source: {esc(str(sec.get('source', '?')))}; "
            f"differences are paired (same questions) against condition “{esc(ref)}”.</p>"
            f'<div class="scroll"><table class="metrics">{head}<tbody>{rows}</tbody></table></div>')


def metrics_html(metrics: dict[str, Any]) -> str:
    if not metrics:
        return "<p class=muted>No metrics.json in this run directory.</p>"
    parts = []
    for key, sec in metrics.items():
        if not isinstance(sec, dict):
            continue
        if "sources" in sec:
            parts.append(traces_section(sec))
        elif "levels" in sec:
            parts.append(cuts_section(sec, "Calibration against CoT progress" + ("" if key == "truncate" else f" ({key})")))
        elif "conditions" in sec:
            parts.append(conditions_section(sec, "Ablations" + ("" if key == "ablate" else f" ({key})")))
        else:
            parts.append(f"<details><summary>{esc(key)}</summary><pre>{esc(json.dumps(sec, indent=1, default=str))}</pre></details>")
    if "traces" not in metrics:
        parts.insert(0, "<p class=muted>No trace-level section in metrics.json (written by "
                        "<code>python -m cotprobe.generate</code>).</p>")
    return "\n".join(parts)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= 90 and "\n" not in text:
        return f"<code>{esc(text)}</code>"
    head = text.split("\n", 1)[0][:70]
    return f"<details><summary><code>{esc(head)}…</code></summary><pre>{esc(text if isinstance(value, str) else json.dumps(value, indent=1, ensure_ascii=False, default=str))}</pre></details>"


def manifest_html(manifest: dict[str, Any], run_dir: Path) -> str:
    stages = manifest.get("stages") or {}
    first = next(iter(stages.values()), {}) if stages else {}
    gen = (stages.get("generate") or first).get("settings") or {}
    profile = gen.get("profile")
    scale = gen.get("scale")
    key_rows = [
        ("Run directory", f"<code>{esc(str(run_dir))}</code>"),
        ("Model", esc(str(gen.get("model", "—")))),
        ("Profile", esc(profile.get("name", "?") if isinstance(profile, dict) else str(profile or "—"))
         + (f' <span class=muted>({esc(profile.get("description", ""))})</span>' if isinstance(profile, dict) else "")),
        ("Dataset", esc(str(gen.get("dataset", "—"))) + (f" <span class=muted>limit {esc(str(gen['limit']))}</span>" if "limit" in gen else "")),
        ("Scale", esc(scale.get("name", "?") if isinstance(scale, dict) else str(scale or "—"))),
    ]
    body = "".join(f"<tr><th scope=row>{k}</th><td>{v}</td></tr>" for k, v in key_rows)
    stage_rows = ""
    for name, st in stages.items():
        settings = st.get("settings") or {}
        cells = " ".join(f'<span class="kv"><b>{esc(str(k))}</b>={_short(v)}</span>' for k, v in settings.items())
        stage_rows += (f"<tr><th scope=row>{esc(str(name))}</th><td>{esc(str(st.get('started', '')))}</td>"
                       f"<td class=settings>{cells}</td><td>{_short(st.get('command', ''))}</td></tr>")
    versions: dict[str, dict[str, str]] = defaultdict(dict)
    for name, st in stages.items():
        for pkg, ver in (st.get("versions") or {}).items():
            versions[pkg][name] = str(ver)
    vers = ""
    for pkg, by_stage in versions.items():
        distinct = sorted(set(by_stage.values()))
        value = esc(distinct[0]) if len(distinct) == 1 else " / ".join(f"{esc(v)} ({esc(s)})" for s, v in by_stage.items())
        vers += f'<span class="kv"><b>{esc(pkg)}</b> {value}</span> '
    other = {k: v for k, v in manifest.items() if k != "stages"}
    return (f'<table class="kvtable"><tbody>{body}<tr><th scope=row>Versions</th><td>{vers or "—"}</td></tr></tbody></table>'
            + (f'<h3>Stages</h3><div class=scroll><table class="stages"><thead><tr><th>stage</th><th>started</th>'
               f"<th>settings</th><th>command</th></tr></thead><tbody>{stage_rows}</tbody></table></div>" if stages else
               "<p class=muted>The manifest records no stages.</p>")
            + (f"<details><summary>Other manifest fields</summary><pre>{esc(json.dumps(other, indent=1, default=str))}</pre></details>" if other else ""))


def figures_html(run_dir: Path) -> str:
    pngs = sorted((run_dir / "figures").glob("*.png")) if (run_dir / "figures").is_dir() else []
    if not pngs:
        return "<p class=muted>No figures (figures/*.png) in this run directory.</p>"
    out = []
    for png in pngs:
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        out.append(f'<figure><img src="data:image/png;base64,{data}" alt="{esc(png.stem)}" loading="lazy">'
                   f"<figcaption>{esc(png.name)}</figcaption></figure>")
    return "\n".join(out)


# ------------------------------------------------------------------------------------ build


def build_report(run_dir: str | Path, max_traces: int | None = None) -> str:
    """The complete HTML text of the report of one run directory."""
    run_dir = open_existing(run_dir)
    manifest = _read_json(run_dir / "manifest.json")
    metrics = _read_json(run_dir / "metrics.json")
    traces = read_records(run_dir / "traces.jsonl", Trace)
    n_all = len(traces)
    if max_traces is not None:
        traces = traces[:max_traces]
    steps = read_records(run_dir / "steps.jsonl", Step)
    tags = read_records(run_dir / "tags.jsonl", Tag)
    probes = read_records(run_dir / "probes.jsonl", Probe)
    rows = trace_data(traces, steps, tags, probes)
    found = {t.behaviour for t in tags}
    behaviours = [b for b in BEHAVIOUR_COLOURS if b in found] + sorted(found - set(BEHAVIOUR_COLOURS))
    gen = ((manifest.get("stages") or {}).get("generate") or {}).get("settings") or {}
    data = {
        "traces": rows,
        "n_all": n_all,
        "has": {"steps": bool(steps), "tags": (run_dir / "tags.jsonl").exists(), "probes": bool(probes)},
        "behaviours": _behaviour_colours(behaviours),
        "present": behaviours,
        "labels": _scale_labels(manifest),
        "page": PAGE_SIZE,
    }
    graded = [t for t in traces if t.correct is not None]
    acc = f"{sum(t.correct for t in graded) / len(graded):.1%}" if graded else "—"
    title = f"cotprobe report: {gen.get('model', run_dir.name)} on {gen.get('dataset', '?')}"
    shown = f"{len(rows)} of {n_all}" if len(rows) < n_all else f"{n_all}"
    files = ", ".join(f"{name}{'' if (run_dir / name).exists() else ' (absent)'}"
                      for name in ("steps.jsonl", "tags.jsonl", "probes.jsonl", "metrics.json"))
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return (TEMPLATE
            .replace("%%TITLE%%", esc(title))
            .replace("%%SUBTITLE%%", f"{esc(shown)} traces · accuracy of final answers {esc(acc)} · "
                                     f"{esc(files)} · generated {esc(generated)}")
            .replace("%%CSS%%", CSS)
            .replace("%%MANIFEST%%", manifest_html(manifest, run_dir))
            .replace("%%METRICS%%", metrics_html(metrics))
            .replace("%%FIGURES%%", figures_html(run_dir))
            .replace("%%JS%%", JS)
            .replace("%%DATA%%", json_for_script(_clean(data))))


def write_report(run_dir: str | Path, out: str | Path | None = None, max_traces: int | None = None) -> Path:
    text = build_report(run_dir, max_traces)
    out = Path(out) if out else Path(run_dir) / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(text.encode("utf-8", errors="replace"))
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cotprobe.report",
        description="Write one self-contained HTML report (manifest, metrics, figures, trace browser) "
                    "of a run directory; it opens from disk with no server or network.")
    parser.add_argument("run_dir", help="run directory (holds manifest.json and traces.jsonl)")
    parser.add_argument("--out", help="output file (default RUN_DIR/report.html)")
    parser.add_argument("--max-traces", type=int, default=None,
                        help="embed only the first N traces (default: all)")
    args = parser.parse_args(argv)
    if args.max_traces is not None and args.max_traces < 0:
        raise ValueError("--max-traces must be >= 0")
    out = write_report(args.run_dir, args.out, args.max_traces)
    print(f"report: {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


# ------------------------------------------------------------------------ page template

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>%%TITLE%%</title>
<style>%%CSS%%</style>
</head>
<body>
<header class="top">
<h1>%%TITLE%%</h1>
<p class="muted">%%SUBTITLE%%</p>
<nav><a href="#run">Run</a> <a href="#metrics">Metrics</a> <a href="#figures">Figures</a> <a href="#traces">Traces</a></nav>
</header>
<main>
<section id="run"><h2>Run</h2>%%MANIFEST%%</section>
<section id="metrics"><h2>Metrics</h2>%%METRICS%%</section>
<section id="figures"><h2>Figures</h2><div class="figures">%%FIGURES%%</div></section>
<section id="traces"><h2>Traces</h2>
<noscript><p>The trace browser needs JavaScript.</p></noscript>
<form id="filters" class="filters" onsubmit="return false">
  <fieldset class="seg" id="f-grade"><legend>Grade</legend>
    <label><input type="radio" name="grade" value="all" checked> All</label>
    <label><input type="radio" name="grade" value="correct"> Correct only</label>
    <label><input type="radio" name="grade" value="incorrect"> Incorrect only</label>
    <label><input type="radio" name="grade" value="ungraded"> Ungraded</label>
  </fieldset>
  <label class="field">Confidence label <select id="f-conf"><option value="">any</option></select></label>
  <label class="field">Behaviour <select id="f-beh"><option value="">any</option></select></label>
  <label class="field">Sort <select id="f-sort">
    <option value="file">run order</option><option value="conf-asc">confidence ↑</option>
    <option value="conf-desc">confidence ↓</option><option value="id">question id</option></select></label>
  <label class="field grow">Search <input id="f-q" type="search" placeholder="question, answer or CoT text" autocomplete="off"></label>
</form>
<p class="muted"><span id="match-count" data-count="0">0</span> matching traces <span id="shown-count"></span></p>
<div class="browser">
  <div class="list-pane">
    <table id="trace-list" class="tlist"><thead><tr><th>question</th><th>answer</th><th>conf.</th><th>grade</th><th>behaviours</th></tr></thead><tbody></tbody></table>
    <button type="button" id="more" class="more" hidden>Show more</button>
  </div>
  <aside id="detail" class="detail" aria-live="polite"><p class="muted">Select a trace to see its steps, the confidence at each cut and its answers.</p></aside>
</div>
</section>
</main>
<script type="application/json" id="cotprobe-data">%%DATA%%</script>
<script>%%JS%%</script>
</body>
</html>
"""

CSS = """
:root { --fg:#1b1f24; --muted:#57606a; --line:#d0d7de; --panel:#f6f8fa; --accent:#0072B2;
  --ok:#0072B2; --bad:#D55E00; --na:#8c959f; --sel:#ddf4ff; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; color:var(--fg); background:#fff; }
header.top { padding:14px 24px 8px; border-bottom:1px solid var(--line); background:var(--panel); }
h1 { font-size:20px; margin:0 0 4px; } h2 { font-size:17px; margin:28px 0 10px; border-bottom:1px solid var(--line); padding-bottom:4px; }
h3 { font-size:15px; margin:18px 0 6px; } h4 { font-size:14px; margin:12px 0 6px; }
nav a { margin-right:14px; color:var(--accent); text-decoration:none; } nav a:hover { text-decoration:underline; }
main { padding:0 24px 40px; }
.muted { color:var(--muted); } .ci { color:var(--muted); font-size:12px; white-space:nowrap; }
code, pre, .mono { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace; font-size:12.5px; }
pre { white-space:pre-wrap; word-break:break-word; background:var(--panel); padding:8px; border-radius:6px; margin:4px 0; }
table { border-collapse:collapse; } th, td { padding:4px 8px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
thead th { background:var(--panel); font-weight:600; position:sticky; top:0; }
td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
.scroll { overflow-x:auto; }
.kvtable th { width:130px; color:var(--muted); font-weight:500; }
.kv { display:inline-block; margin:0 12px 2px 0; } .kv b { font-weight:600; }
.settings details, .stages details { display:inline-block; }
.figures { display:flex; flex-wrap:wrap; gap:16px; } figure { margin:0; max-width:100%; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:6px; }
figcaption { color:var(--muted); font-size:12px; }
.filters { display:flex; flex-wrap:wrap; gap:10px 18px; align-items:flex-end; background:var(--panel);
  border:1px solid var(--line); border-radius:8px; padding:8px 12px; }
.filters fieldset { border:0; margin:0; padding:0; } .filters legend, .field { font-size:12px; color:var(--muted); }
.field { display:flex; flex-direction:column; gap:2px; } .field.grow { flex:1 1 220px; }
.seg label { display:inline-block; border:1px solid var(--line); background:#fff; padding:3px 9px; margin-right:-1px; cursor:pointer; font-size:13px; color:var(--fg); }
.seg label:first-of-type { border-radius:6px 0 0 6px; } .seg label:last-of-type { border-radius:0 6px 6px 0; }
.seg input { position:absolute; opacity:0; width:1px; height:1px; }
.seg label:has(input:checked) { background:var(--accent); color:#fff; border-color:var(--accent); }
.seg label:has(input:focus-visible) { outline:2px solid var(--accent); outline-offset:1px; }
select, input[type=search] { font:inherit; padding:3px 6px; border:1px solid var(--line); border-radius:6px; background:#fff; }
.browser { display:grid; grid-template-columns:minmax(0,1fr) minmax(0,1.15fr); gap:16px; align-items:start; }
@media (max-width:1000px) { .browser { grid-template-columns:1fr; } }
.tlist { width:100%; table-layout:fixed; } .tlist th:nth-child(1) { width:42%; } .tlist th:nth-child(2) { width:20%; }
.tlist th:nth-child(3) { width:9%; } .tlist th:nth-child(4) { width:10%; }
.badge.short { padding:0 5px; }
.trace-row { cursor:pointer; } .trace-row:hover { background:#f3f6f9; } .trace-row.selected { background:var(--sel); }
.trace-row:focus { outline:2px solid var(--accent); outline-offset:-2px; }
.trace-row td { overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
.trace-row .qid { display:block; color:var(--muted); font-size:11.5px; }
.more { margin:10px 0; font:inherit; padding:5px 14px; border:1px solid var(--line); border-radius:6px; background:var(--panel); cursor:pointer; }
.badge { display:inline-block; padding:0 7px; border-radius:10px; font-size:12px; font-weight:600; white-space:nowrap; border:1px solid; }
.badge.ok { color:var(--ok); border-color:var(--ok); } .badge.bad { color:var(--bad); border-color:var(--bad); }
.badge.na { color:var(--na); border-color:var(--na); }
.bdot { display:inline-block; min-width:16px; height:16px; line-height:16px; text-align:center; border-radius:3px; color:#fff;
  font-size:10.5px; font-weight:700; margin-right:2px; }
.detail { position:sticky; top:8px; max-height:calc(100vh - 16px); overflow:auto; border:1px solid var(--line);
  border-radius:8px; padding:10px 14px; background:#fff; }
.detail h3 { margin-top:4px; } .detail h4 { border-top:1px solid var(--line); padding-top:8px; margin-top:14px; }
.facts { display:grid; grid-template-columns:max-content 1fr; gap:2px 12px; margin:6px 0; }
.facts dt { color:var(--muted); } .facts dd { margin:0; word-break:break-word; }
.legend { display:flex; flex-wrap:wrap; gap:4px 12px; font-size:12px; margin:4px 0 8px; }
.legend span.sw { display:inline-block; width:14px; height:10px; vertical-align:-1px; margin-right:4px; border-radius:2px; }
.steps { counter-reset:none; }
.step { display:grid; grid-template-columns:34px 1fr; gap:6px; padding:4px 0; border-bottom:1px dashed #e4e8ec; }
.step .n { color:var(--muted); text-align:right; font-size:12px; padding-top:1px; font-variant-numeric:tabular-nums; }
.step .t { white-space:pre-wrap; word-break:break-word; }
mark.b { background:var(--bg); border-bottom:2px solid var(--c); border-radius:2px; padding:0 1px; color:inherit; }
.cutmark { font-size:12px; color:var(--muted); border-left:3px solid var(--accent); background:#f1f8fd; margin:3px 0 3px 34px;
  padding:2px 8px; border-radius:0 4px 4px 0; }
svg.chart { max-width:100%; height:auto; font:11px system-ui,sans-serif; }
svg.chart .grid { stroke:#e4e8ec; } svg.chart .axis { stroke:#8c959f; } svg.chart text { fill:#57606a; }
.cuts td, .cuts th { font-size:12.5px; } .cuts { width:100%; } .cuts td.ans { max-width:160px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
"""

JS = r"""
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
"""


if __name__ == "__main__":
    from .cli import run_main

    sys.exit(run_main(main))
