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

All markup lives in package data (`_data/report/`): the page (`page.html`), its style and script,
and the pieces of the tables (`fragments.html`), filled here with `string.Template`. Every text
value is HTML-escaped when a piece is filled (`fill`); only pieces already filled go in as they
are. The JSON blob escapes <, > and & so no CoT can close its tag; the script inserts records as
text nodes.

steps.jsonl, tags.jsonl, probes.jsonl and metrics.json are optional; traces.jsonl and
manifest.json are not. Records are read by `cotprobe.store.read_records` (the rule every stage
shares), metrics.json (typed in `cotprobe.metrics.sections`) by `cotprobe.summary.read_metrics`
(an unreadable one is shown as absent).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import html
import json
import math
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

from . import store
from .cli import entry_point, non_negative_int
from .colours import behaviour_colours, in_order
from .metrics import COMPARED, METRICS
from .metrics.sections import (ConditionSection, CutSection, Metrics, PairedDiff, TableRow, TraceSection, Trajectories,
                               Trend, diff, has_interval, interval)
from .records import Probe, Step, Tag, Trace
from .resources import data_path
from .store import open_existing, read_manifest
from .summary import read_metrics

PAGE_SIZE = 50
COLUMNS = tuple(METRICS)  # metric columns of every table: the four compared ones and mean confidence


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
    m = re.search(r"Question:\s*(.+?)\s*(?:<\||<end_of_turn>|\n\n|$)", prompt, re.DOTALL)
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
            "bh": in_order(present),
            "cuts": cuts, "abl": ablations,
        })
    return out


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


# ----------------------------------------------------------------------- filling the pieces


class Html(str):
    """Markup filled from the report's pieces: inserted into another piece as it is."""


def _substitute(template: Template, fields: dict[str, Any]) -> Html:
    return Html(template.substitute({k: v if isinstance(v, Html) else html.escape(str(v))
                                     for k, v in fields.items()}))


@cache
def _pieces() -> dict[str, Template]:
    """The named pieces of _data/report/fragments.html (see the comment at its top)."""
    text = data_path("report/fragments.html").read_text(encoding="utf-8")
    parts = re.split(r"^<!-- piece: (\w+) -->\n", text, flags=re.MULTILINE)
    return {name: Template(body.rstrip("\n")) for name, body in zip(parts[1::2], parts[2::2])}


def fill(piece: str, /, **fields: Any) -> Html:
    """The named piece with its fields filled: text is HTML-escaped, Html goes in as it is."""
    return _substitute(_pieces()[piece], fields)


def join(pieces: Iterable[Html], sep: str = "") -> Html:
    return Html(html.escape(sep).join(pieces))


NOTHING = Html("")


def fmt(x: Any, digits: int = 3) -> str:
    """A value as table text: a dash for None, n/a for NaN, floats to `digits` places."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, float):
        return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"
    return str(x)


# ------------------------------------------------------------------------------ metric tables


def ci_cell(row: TableRow, key: str) -> Html:
    if not has_interval(row, key):
        return fill("absent")
    value, low, high = interval(row, key)
    if low is None or high is None:
        return fill("num", text=fmt(value))
    return fill("num_ci", value=fmt(value), low=fmt(low), high=fmt(high))


def _metric_header(first: list[str], extra: Iterable[str] = ()) -> Html:
    cols = first + ["n", "unparsed"] + [METRICS[key].label for key in COLUMNS] + ["note", *extra]
    return fill("thead", cells=join(fill("th", text=c) for c in cols))


def _metric_cells(row: TableRow) -> Html:
    cells = [fill("num", text=fmt(row.get("n", row.get("n_total")))), fill("num", text=fmt(row.get("n_unparsed")))]
    if not has_interval(row, "accuracy"):
        return join(cells + [fill("no_parsed", span=len(COLUMNS))])
    return join(cells + [ci_cell(row, key) for key in COLUMNS] + [fill("muted", text=row.get("note", ""))])


def traces_section(sec: TraceSection) -> Html:
    rows = join(fill("row", name=src, cells=_metric_cells(row)) for src, row in (sec.get("sources") or {}).items())
    ended = ", ".join(f"{k}: {fmt(v)}" for k, v in (sec.get("thinking_ended") or {}).items())
    return fill("traces_section", n=fmt(sec.get("n")), ended=ended or "—",
                table=fill("metrics_table", head=_metric_header(["source"]), rows=rows))


def _trends(trends: dict[str, Trend]) -> Html:
    rows = []
    for name, t in trends.items():
        c, o = t.get("clustered") or {}, t.get("ols_per_level")
        ols = fill("ols", slope=fmt(o.get("slope")), p=fmt(o.get("p_value"))) if o else "—"
        rows.append(fill("trend_row", name=name, slope=fmt(c.get("slope")), low=fmt(c.get("low")),
                         high=fmt(c.get("high")), p=fmt(c.get("p_value")), ols=ols))
    return fill("trends", rows=join(rows)) if rows else NOTHING


def _trajectories(traj: Trajectories) -> Html:
    if not traj.get("n"):
        return NOTHING
    return fill("trajectories", n=fmt(traj["n"]), change=fmt(traj.get("mean_change")),
                jump=fmt(traj.get("mean_abs_largest_jump")), flips=fmt(traj.get("mean_direction_changes"), 2))


def cuts_section(sec: CutSection, title: str) -> Html:
    rows = join(fill("cut_row", level=fmt(r.get("level"), 2), realised=fmt(r.get("fraction_realised"), 2),
                     cells=_metric_cells(r)) for r in sec.get("levels", []))
    return fill("cuts_section", title=title, source=sec.get("source", "?"),
                table=fill("metrics_table", head=_metric_header(["cut", "realised"]), rows=rows),
                trends=_trends(sec.get("trends") or {}), trajectories=_trajectories(sec.get("trajectories") or {}))


def _diff_cells(paired: PairedDiff) -> Html:
    cells = []
    for key in COMPARED:
        d = paired.get(key)
        cells.append(fill("diff", estimate=fmt(d.get("estimate")), low=fmt(d.get("low")), high=fmt(d.get("high")),
                          p=fmt(d.get("p_value"))) if isinstance(d, dict) else fill("no_diff"))
    return join(cells)


def conditions_section(sec: ConditionSection, title: str) -> Html:
    ref = str(sec.get("reference", "full"))
    rows = []
    for cond, r in (sec.get("conditions") or {}).items():
        paired = diff(r, ref) or {}
        rows.append(fill("condition_row", name=cond, cells=_metric_cells(r), failed=fmt(r.get("n_failed")),
                         paired=fmt(paired.get("n")), diffs=_diff_cells(paired)))
    head = _metric_header(["condition"], ["failed", "paired n", *(f"Δ {METRICS[k].label} vs {ref}" for k in COMPARED)])
    return fill("conditions_section", title=title, source=sec.get("source", "?"), reference=ref,
                table=fill("metrics_table", head=head, rows=join(rows)))


def metrics_html(metrics: Metrics) -> Html:
    """The sections of metrics.json: the traces, truncate and ablate sections as tables, the others as JSON."""
    if not metrics:
        return fill("no_metrics")
    parts = [] if "traces" in metrics else [fill("no_trace_section")]
    for key, sec in metrics.items():
        if not isinstance(sec, dict):
            continue
        if key == "traces":
            parts.append(traces_section(sec))
        elif key == "truncate":
            parts.append(cuts_section(sec, "Calibration against CoT progress"))
        elif key == "ablate":
            parts.append(conditions_section(sec, "Ablations"))
        else:
            parts.append(fill("other_section", name=key, json=json.dumps(sec, indent=1, default=str)))
    return join(parts, "\n")


# ------------------------------------------------------------------------ manifest, figures


def _short(value: Any) -> Html:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= 90 and "\n" not in text:
        return fill("code", text=text)
    full = text if isinstance(value, str) else json.dumps(value, indent=1, ensure_ascii=False, default=str)
    return fill("long_value", head=text.split("\n", 1)[0][:70], text=full)


def _key_rows(gen: dict[str, Any], run_dir: Path) -> list[tuple[str, str | Html]]:
    """The headline rows of the run table: directory, model, profile, dataset, scale."""
    profile, scale = gen.get("profile"), gen.get("scale")
    name = profile.get("name", "?") if isinstance(profile, dict) else str(profile or "—")
    dataset = str(gen.get("dataset", "—"))
    return [
        ("Run directory", fill("code", text=run_dir)),
        ("Model", str(gen.get("model", "—"))),
        ("Profile", fill("with_note", text=name, note=f"({profile.get('description', '')})")
         if isinstance(profile, dict) else name),
        ("Dataset", fill("with_note", text=dataset, note=f"limit {gen['limit']}") if "limit" in gen else dataset),
        ("Scale", scale.get("name", "?") if isinstance(scale, dict) else str(scale or "—")),
    ]


def _versions(stages: dict[str, Any]) -> Html:
    """Package versions of the stages: one value, or each stage's where they differ."""
    versions: dict[str, dict[str, str]] = defaultdict(dict)
    for name, st in stages.items():
        for pkg, ver in (st.get("versions") or {}).items():
            versions[pkg][name] = str(ver)
    spans = []
    for pkg, by_stage in versions.items():
        distinct = sorted(set(by_stage.values()))
        value = distinct[0] if len(distinct) == 1 else " / ".join(f"{v} ({s})" for s, v in by_stage.items())
        spans.append(fill("version", name=pkg, value=value))
    return join(spans, " ")


def _stage_rows(stages: dict[str, Any]) -> Html:
    return join(fill("stage_row", name=name, started=st.get("started", ""), command=_short(st.get("command", "")),
                     settings=join((fill("setting", name=k, value=_short(v))
                                    for k, v in (st.get("settings") or {}).items()), " "))
                for name, st in stages.items())


def manifest_html(manifest: dict[str, Any], run_dir: Path) -> Html:
    stages = manifest.get("stages") or {}
    first = next(iter(stages.values()), {}) if stages else {}
    gen = (stages.get("generate") or first).get("settings") or {}
    rows = [fill("row", name=k, cells=fill("cell", text=v)) for k, v in _key_rows(gen, run_dir)]
    rows.append(fill("row", name="Versions", cells=fill("cell", text=_versions(stages) or "—")))
    other = {k: v for k, v in manifest.items() if k != "stages"}
    return fill("manifest", rows=join(rows),
                stages=fill("stages", rows=_stage_rows(stages)) if stages else fill("no_stages"),
                other=fill("other_fields", json=json.dumps(other, indent=1, default=str)) if other else NOTHING)


def figures_html(run_dir: Path) -> Html:
    pngs = sorted((run_dir / "figures").glob("*.png")) if (run_dir / "figures").is_dir() else []
    if not pngs:
        return fill("no_figures")
    return join((fill("figure", data=base64.b64encode(png.read_bytes()).decode("ascii"), alt=png.stem, name=png.name)
                 for png in pngs), "\n")


# ------------------------------------------------------------------------------------ build


def build_report(run_dir: str | Path, max_traces: int | None = None) -> str:
    """The complete HTML text of the report of one run directory."""
    run_dir = open_existing(run_dir)
    manifest = read_manifest(run_dir)
    run = store.RunDir(run_dir)  # read only: no lock
    traces = run.traces()
    n_all = len(traces)
    if max_traces is not None:
        traces = traces[:max_traces]
    steps, tags, probes = run.steps(), run.tags(), run.probes()
    rows = trace_data(traces, steps, tags, probes)
    behaviours = in_order(sorted({t.behaviour for t in tags}))
    gen = store.stage_settings(manifest, "generate")
    data = {
        "traces": rows,
        "n_all": n_all,
        "has": {"steps": bool(steps), "tags": (run_dir / store.RECORD_FILES[Tag]).exists(), "probes": bool(probes)},
        "behaviours": behaviour_colours(behaviours),
        "present": behaviours,
        "labels": _scale_labels(manifest),
        "page": PAGE_SIZE,
    }
    graded = [t for t in traces if t.correct is not None]
    return _substitute(Template(_asset("page.html")), {
        "title": f"cotprobe report: {gen.get('model', run_dir.name)} on {gen.get('dataset', '?')}",
        "shown": f"{len(rows)} of {n_all}" if len(rows) < n_all else f"{n_all}",
        "accuracy": f"{sum(t.correct for t in graded) / len(graded):.1%}" if graded else "—",
        "files": ", ".join(f"{name}{'' if (run_dir / name).exists() else ' (absent)'}" for name in
                           [store.RECORD_FILES[Step], store.RECORD_FILES[Tag], store.RECORD_FILES[Probe], store.METRICS_FILE]),
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "css": Html(_asset("style.css")), "js": Html(_asset("script.js")),
        "manifest": manifest_html(manifest, run_dir), "metrics": metrics_html(read_metrics(run_dir)),
        "figures": figures_html(run_dir), "data": Html(json_for_script(_clean(data))),
    })


def _asset(name: str) -> str:
    """The text of the report's page, style sheet or script: package data in _data/report/."""
    return data_path(f"report/{name}").read_text(encoding="utf-8")


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
    parser.add_argument("--max-traces", type=non_negative_int, default=None,
                        help="embed only the first N traces (default: all)")
    args = parser.parse_args(argv)
    out = write_report(args.run_dir, args.out, args.max_traces)
    print(f"report: {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


entry = entry_point(main)  # the console script (setup.cfg)

if __name__ == "__main__":
    entry()
