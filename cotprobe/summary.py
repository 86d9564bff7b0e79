"""Metric tables from run records: per run, per CoT cut level, per ablation condition.

The numbers come from `cotprobe.metrics`; this module only groups records and lays out tables
(the sections of `metrics.json`, typed in `cotprobe.metrics.sections`, and the printed summary).
`update_metrics` is the one writer of metrics.json: the functions that compute a section do not
write it, and those that print it do neither. Three confidence sources are reported side by side:
`sampled` (the label the model wrote, as the paper measures it; unparsed outputs are counted and
the parse rate reported, and the metrics for this source cover the parsed ones only), `scored`
(value of the most probable label) and `expected` (probability-weighted value). Headline tables
show the sampled confidence with its parse rate and the scored (expected) one beside it.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics
from .metrics import COMPARED, METRICS, Resampling
from .metrics.sections import (SECTIONS, ConditionRow, ConditionSection, CutSection, LevelRow, Metrics, PairedDiff,
                               TableRow, TraceSection, Trajectories, Trend, diff, diff_key, has_interval, interval)
from .records import SOURCES, Confidence, Probe, Trace
from .store import METRICS_FILE, RunDir

HEADLINE = "sampled"  # the paper reads the confidence the model wrote
BESIDE = "expected"  # and the scored distribution is shown beside it


def confidence_value(conf: Confidence, source: str) -> float | None:
    return {"scored": conf.scored_value, "expected": conf.expected_value, "sampled": conf.sampled_value}[source]


def table(items: list[tuple[str, Confidence, bool | None]], source: str, n_resamples: int = 1000,
          seed: int = 0) -> TableRow:
    """Metrics with intervals over (cluster, confidence, correct) items for one source."""
    usable = [(c, confidence_value(conf, source), ok) for c, conf, ok in items
              if ok is not None and confidence_value(conf, source) is not None]
    row: TableRow = {"n_total": len(items), "n_unparsed": len(items) - len(usable)}
    if source != "sampled" and items and not any(conf.scored_probs for _, conf, _ in items):
        row["unavailable"] = "not scored: the backend returned no log-probabilities"
    if not usable:
        return row
    clusters, conf, correct = (np.array(v) for v in zip(*usable))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # one-class AUROC: reported as NaN + note
        row.update(metrics.summarize(conf, correct.astype(float), clusters=clusters,
                                     n_resamples=n_resamples, seed=seed))
    if correct.min() == correct.max():
        row["note"] = f"AUROC undefined: all answers {'correct' if correct[0] else 'incorrect'}"
    return row


def trace_metrics(traces: list[Trace], n_resamples: int = 1000) -> TraceSection:
    """The "traces" section: the final answers' metrics per confidence source."""
    items = [(t.question_id, t.confidence, t.correct) for t in traces]
    return {
        "n": len(traces),
        "thinking_ended": _counts(t.thinking_ended for t in traces),
        "sources": {s: table(items, s, n_resamples) for s in SOURCES},
    }


MAX_LEVELS = 21  # more requested levels than this (every-step cuts) are binned


def cut_level(p: Probe, binned: bool) -> float:
    """A probe's level: its requested fraction, or with `binned` its realised fraction rounded to
    the nearest tenth (every-step cuts request each step boundary's own fraction, so without
    binning most levels would hold one probe)."""
    return round(round(p.fraction_realised * 10) / 10 if binned else p.fraction_requested, 6)


def cut_metrics(probes: list[Probe], source: str = "expected", n_resamples: int = 1000,
                beside: str | None = None, censored: frozenset[str] = frozenset(),
                completed_only: bool = False) -> CutSection:
    """Per requested cut level: metrics with intervals; the trend of each metric along the CoT.

    censored: the questions whose thought hit the thinking budget (`Trace.thinking_ended`
    "budget"), counted in the section; with completed_only they are left out of every row, so the
    table reads on finished thoughts alone (a truncated thought graded wrong is not a wrong answer
    the model finished).

    With more than MAX_LEVELS distinct requested fractions (`--cut every-step`), levels are the
    realised fractions binned to tenths, and the result says so ("binned"); each question then
    counts once per level, by its cut nearest the level (a long thought has many steps in a bin,
    which pooled would outweigh a short one's single cut there)."""
    probes = [p for p in probes if p.condition == "cut"]
    n_censored = len({p.question_id for p in probes} & censored)
    if completed_only:
        probes = [p for p in probes if p.question_id not in censored]
    binned = len({round(p.fraction_requested, 6) for p in probes}) > MAX_LEVELS
    if binned:
        nearest: dict[tuple[str, float], Probe] = {}
        for p in probes:
            key = (p.question_id, cut_level(p, True))
            if key not in nearest or abs(p.fraction_realised - key[1]) < abs(nearest[key].fraction_realised - key[1]):
                nearest[key] = p
        probes = list(nearest.values())
    by_level: dict[float, list[Probe]] = defaultdict(list)
    for p in probes:
        by_level[cut_level(p, binned)].append(p)
    levels = sorted(by_level)
    per_level: list[LevelRow] = []
    for level in levels:
        group = by_level[level]
        items = [(p.question_id, p.confidence, p.correct) for p in group]
        row: LevelRow = {**table(items, source, n_resamples), "level": level,
                         "fraction_realised": float(np.mean([p.fraction_realised for p in group]))}
        if beside and beside != source:
            row["beside"] = {**table(items, beside, n_resamples), "source": beside}
        per_level.append(row)
    usable = [p for p in probes if p.correct is not None and confidence_value(p.confidence, source) is not None]
    trends: dict[str, Trend] = {}
    if len(levels) >= 3 and usable:
        frac = np.array([p.fraction_realised for p in usable])
        lev = np.array([cut_level(p, binned) for p in usable])
        conf = np.array([confidence_value(p.confidence, source) for p in usable])
        ok = np.array([float(p.correct) for p in usable])
        qid = np.array([p.question_id for p in usable])
        for name, fn in metrics.metric_fns().items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                clustered = metrics.slope_clustered(fn, frac, conf, ok, qid, levels=lev,
                                                    resampling=Resampling(METRICS[name].resamples(n_resamples)))
            values = [interval(row, name).estimate if has_interval(row, name) else math.nan for row in per_level]
            realised = [row["fraction_realised"] for row in per_level]
            finite = np.isfinite(values)
            # the per-level OLS needs 3 levels with values at distinct realised fractions (a stratum of
            # one-step thoughts realises every cut at 0 or 1)
            ols = (metrics.slope_ols(realised, values)
                   if finite.sum() >= 3 and np.ptp(np.asarray(realised)[finite]) > 0 else None)
            trends[name] = {"clustered": _plain(clustered), "ols_per_level": _plain(ols)}
    return {"source": source, "binned": "realised fraction, nearest tenth" if binned else None,
            "censored": n_censored, "completed_only": completed_only, "levels": per_level, "trends": trends, "trajectories": _trajectory_summary(usable, source)}


def condition_metrics(probes: list[Probe], reference: str = "full", source: str = "expected",
                      n_resamples: int = 1000, edits: dict[str, dict[str, Any]] | None = None) -> ConditionSection:
    """Per ablation condition: metrics, and the paired difference to the reference condition
    (`edits`: what each rule-based condition changed, kept in the section as given)."""
    by_cond: dict[str, dict[str, Probe]] = defaultdict(dict)
    for p in probes:
        if p.condition != "cut":
            by_cond[p.condition][p.question_id] = p
    out: dict[str, ConditionRow] = {}
    ref = by_cond.get(reference, {})
    for cond, group in by_cond.items():
        failed = [p for p in group.values() if p.error]
        good = [p for p in group.values() if not p.error]
        row: ConditionRow = {**table([(p.question_id, p.confidence, p.correct) for p in good], source, n_resamples),
                             "n_failed": len(failed)}
        if cond != reference and ref:
            row[diff_key(reference)] = _paired(ref, {p.question_id: p for p in good}, source, n_resamples)
        out[cond] = row
    section: ConditionSection = {"source": source, "reference": reference, "conditions": out}
    if edits is not None:
        section["edits"] = edits
    return section


def _paired(ref: dict[str, Probe], other: dict[str, Probe], source: str, n_resamples: int) -> PairedDiff:
    shared = [q for q in ref if q in other
              and confidence_value(ref[q].confidence, source) is not None
              and confidence_value(other[q].confidence, source) is not None
              and ref[q].correct is not None and other[q].correct is not None]
    if len(shared) < 2:
        return {"n": len(shared)}
    def arrays(group):
        return (np.array([confidence_value(group[q].confidence, source) for q in shared]),
                np.array([float(group[q].correct) for q in shared]))
    ca, ka = arrays(other)
    cb, kb = arrays(ref)
    result: PairedDiff = {"n": len(shared)}
    for name, fn in metrics.metric_fns().items():
        result[name] = _plain(metrics.paired_bootstrap_diff(fn, ca, ka, cb, kb,
                                                            Resampling(METRICS[name].resamples(n_resamples))))
    return result


def _trajectory_summary(probes: list[Probe], source: str) -> Trajectories:
    by_q: dict[str, list[Probe]] = defaultdict(list)
    for p in probes:
        by_q[p.question_id].append(p)
    rows = []
    for qid, group in by_q.items():
        group.sort(key=lambda p: p.fraction_requested)
        traj = metrics.trajectory([confidence_value(p.confidence, source) for p in group])
        rows.append({"question_id": qid, **traj})
    if not rows:
        return {"n": 0}
    mean = lambda key: float(np.mean([r[key] for r in rows]))
    return {"n": len(rows), "mean_change": mean("change"), "mean_abs_largest_jump":
            float(np.mean([abs(r["largest_jump"]) for r in rows])),
            "mean_direction_changes": mean("direction_changes"), "per_question": rows}


def _counts(values) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for v in values:
        out[v] += 1
    return dict(out)


def _plain(obj: Any) -> Any:
    """A metrics dataclass (Slope, Diff) as the dict a section stores (None stays None)."""
    return None if obj is None else {k: float(v) for k, v in asdict(obj).items()}


def parse_rate(row: TableRow) -> str:
    parsed = row["n_total"] - row["n_unparsed"]
    return f"{parsed}/{row['n_total']}" if row["n_total"] else "0/0"


def format_row(name: str, row: TableRow | LevelRow) -> str:
    """One printed table row: n, parse rate, the compared metrics with their intervals (and, for a
    cut level, ECE and AUROC of the source shown beside)."""
    beside = row.get("beside")
    extra = ""
    if beside is not None:
        extra = (f"  | {beside['ece']:.3f}  {beside['auroc']:.3f}" if has_interval(beside, "ece") else "  | -      -")
    if not has_interval(row, "accuracy"):
        why = row.get("unavailable", "no parsed confidences")
        return f"{name:<22} {row['n_total']:>5} {parse_rate(row):>9}  ({why}){extra}"
    def cell(key):
        value, low, high = interval(row, key)
        return f"{value:.3f} [{low:.3f}, {high:.3f}]"
    return f"{name:<22} {row['n_total']:>5} {parse_rate(row):>9}  " + "  ".join(map(cell, COMPARED)) + extra


# The table head: the first metric column says what the brackets hold; the others name the metric.
HEADER = f"{'':<22} {'n':>5} {'parsed':>9}  " + "  ".join(
    f"{head:<22}" for head in [f"{COMPARED[0]} [95% CI]"] + [METRICS[m].label for m in COMPARED[1:]])


def print_traces(result: TraceSection, run_dir: str | Path) -> None:
    print(f"\n{run_dir}: {result['n']} traces; thinking ended: {result['thinking_ended']}")
    print(HEADER)
    for source, row in result["sources"].items():
        print(format_row(f"confidence={source}", row))


def read_metrics(run_dir: str | Path) -> Metrics:
    """run_dir/metrics.json ({} if absent). It is derived from the records, so an unreadable
    one is not an error: it is set aside (noted on stderr) and rebuilt section by section."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return {}
    try:
        current = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(current, dict):
            return current
        why = "not a JSON object"
    except (ValueError, UnicodeDecodeError) as exc:
        why = f"not valid JSON ({exc})"
    print(f"cotprobe: {path}: {why}; rebuilding it (python -m cotprobe.metrics {run_dir} "
          "recomputes every section)", file=sys.stderr)
    return {}


def update_metrics(run_dir: str | Path, sections: Metrics, drop: Iterable[str] = ()) -> None:
    """The one writer of run_dir/metrics.json: under the run's lock, set `sections`, remove the
    sections named in `drop` (stale ones) and keep the others; atomically (sibling file, rename)."""
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown metrics.json section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    path = Path(run_dir) / METRICS_FILE
    with RunDir(run_dir):
        current = read_metrics(run_dir)
        for name in drop:
            current.pop(name, None)
        current.update(sections)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(current, indent=2, default=float) + "\n")
        tmp.replace(path)


def censored_questions(traces: Iterable[Trace]) -> frozenset[str]:
    """The questions whose thought hit the thinking budget (cut off, not finished)."""
    return frozenset(t.question_id for t in traces if t.thinking_ended == "budget")


def print_scoring(probes: Iterable[Probe]) -> None:
    """Say how many scored confidences are the model's exact label distribution: a server whose
    top-k misses a label token leaves that probe unscored, and the scored and expected rows of
    every table leave it out (their parsed column counts it as not parsed)."""
    flags = [p.confidence.scored_exact for p in probes if p.confidence.scored_exact is not None]
    if flags and not all(flags):
        print(f"scored confidence: {sum(flags)} of {len(flags)} probes exact; the other {flags.count(False)} "
              "(a label token outside the server's top-k) are not scored and are left out of the scored and "
              "expected rows (start the server with a larger --max-logprobs)")


def print_cut_summary(result: CutSection, run_dir: str | Path) -> None:
    binned = f"; every-step cuts binned by {result['binned']}" if result.get("binned") else ""
    first = result["levels"][0] if result["levels"] else {}
    beside = f"; after |: ECE and AUROC of confidence={first['beside']['source']}" if "beside" in first else ""
    print(f"\n{run_dir}: calibration against CoT progress (confidence={result['source']}{binned}{beside})")
    print(HEADER.replace(" " * 22, f"{'cut (realised)':<22}", 1) + ("  | ECE    AUROC" if beside else ""))
    for row in result["levels"]:
        print(format_row(f"{row['level']:.2f} ({row['fraction_realised']:.2f})", row))
    for name, trend in result["trends"].items():
        c, o = trend["clustered"], trend["ols_per_level"]
        ols = f"; per-level OLS slope {o['slope']:+.3f} (p={o['p_value']:.3f})" if o else ""
        print(f"trend {name:<8} slope {c['slope']:+.3f} per unit of CoT "
              f"[{c['low']:+.3f}, {c['high']:+.3f}] (question-clustered bootstrap){ols}")
    if result.get("completed_only"):
        print(f"completed thoughts only: {result['censored']} question(s) whose thought hit the budget left out")
    elif result.get("censored"):
        print(f"censored: {result['censored']} question(s)' thoughts hit the thinking budget and are in the rows "
              "above (--completed-only reads the finished thoughts alone)")


def print_condition_summary(result: ConditionSection, run_dir: str | Path) -> None:
    ref = result["reference"]
    print(f"\n{run_dir}: calibration per condition (confidence={result['source']}; diff = condition - {ref})")
    print(HEADER.replace(" " * 22, f"{'condition':<22}", 1))
    for cond, row in result["conditions"].items():
        print(format_row(cond, row) + (f"  ({row['n_failed']} failed)" if row.get("n_failed") else ""))
    for cond, row in result["conditions"].items():
        paired = diff(row, ref)
        if paired and "ece" in paired:
            cells = "  ".join(f"{m} {d['estimate']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
                              for m, d in ((m, paired[m]) for m in COMPARED))
            print(f"diff {cond:<17} n={paired['n']:<4} {cells}")
