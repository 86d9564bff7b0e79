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
import contextlib
import base64
import html
import json
import math
import re
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from string import Template
from typing import Any, Callable, Iterable, TypeVar

from . import store
from .records import Probe, Step, Tag, Trace
from .resources import data_path
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
    """Records of one JSONL file by the rule every stage shares (`store.read_records`: [] if
    absent, a torn last line of a run still writing and duplicates skipped with a note)."""
    return store.read_records(path, cls)


def _read_json(path: Path) -> dict[str, Any]:
    """manifest.json (checked, errors name it) or metrics.json (derived: an unreadable one is
    reported on stderr and shown as absent; python -m cotprobe.metrics rebuilds it)."""
    if path.name == "manifest.json":
        return store.read_manifest(path.parent)
    from .summary import read_metrics

    return read_metrics(path.parent)  # Python's json reads NaN/Infinity


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
    return _asset("page.html").substitute(
        title=esc(title),
        subtitle=f"{esc(shown)} traces · accuracy of final answers {esc(acc)} · {esc(files)} · generated {esc(generated)}",
        css=_asset("style.css").template, js=_asset("script.js").template,
        manifest=manifest_html(manifest, run_dir), metrics=metrics_html(metrics), figures=figures_html(run_dir),
        data=json_for_script(_clean(data)))


def _asset(name: str) -> Template:
    """The report's page (a ``string.Template``), style sheet or script: package data in _data/report/."""
    return Template(data_path(f"report/{name}").read_text(encoding="utf-8"))


def write_report(run_dir: str | Path, out: str | Path | None = None, max_traces: int | None = None) -> Path:
    text = build_report(run_dir, max_traces)
    out = Path(out) if out else Path(run_dir) / "report.html"
    if out.exists() and out.is_dir():
        raise ValueError(f"--out {out}: is a directory; name the report file")
    out.parent.mkdir(parents=True, exist_ok=True)
    inside = out.resolve().parent == Path(run_dir).resolve()
    with store.RunDir(run_dir) if inside else contextlib.nullcontext():  # not while a stage writes
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


if __name__ == "__main__":
    from .cli import run_main

    sys.exit(run_main(main))
