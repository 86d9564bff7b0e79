"""How reasoning behaviours relate to confidence: per-behaviour frequencies, each step's
confidence change between the cuts on either side of it, and behaviour trajectories along the
CoT, with intervals that resample whole traces (questions).

A step's change is the expected confidence at the cut just after the step (the cut keeping
steps 0..i) minus the confidence at the cut just before it (keeping steps 0..i-1; the empty CoT
for the first step). Only steps whose two neighbouring cuts were both probed count, so the
numbers come from `python -m cotprobe.truncate --cut every-step` (every step) or, more sparsely,
from step cuts (`--cut step`) that happen to fall on adjacent boundaries; token cuts (`--cut
token`) rarely land on step boundaries and are only used where they do. For each behaviour, the
mean change over the steps that carry it is compared with the mean over the steps that carry no
behaviour at all; intervals are 95% percentile bootstraps that resample whole traces.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics
from .metrics import Resampling
from .metrics.sections import (BehaviourSection, ChangeGroup, ChangeRelation, Frequency, PerTrace, has_interval,
                               interval, interval_fields)
from .records import Probe, Step, Tag, Trace
from .steps import Tagged, group_by_question, tagger_name
from .summary import confidence_value
from .tags import BEHAVIOURS, behaviour_counts

CHANGE_DEFINITION = (
    "change of a step = confidence at the cut keeping steps 0..i minus confidence at the cut keeping "
    "steps 0..i-1 (the empty CoT for the first step); only steps whose two neighbouring cuts were "
    "both probed; intervals resample whole traces"
)


def _per_trace_summary(values: list[int]) -> PerTrace:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "median": float(np.median(v)), "max": float(v.max())}


def frequency(traces: list[Trace], steps: dict[str, list[Step]], tags: list[Tag]) -> dict[str, Any]:
    """Per behaviour: steps carrying it, traces with at least one, tags per trace."""
    qids = [t.question_id for t in traces]
    counts = behaviour_counts(tags, qids)
    names = list(next(iter(counts.values())).keys()) if counts else list(BEHAVIOURS)
    tagged_steps = {(t.question_id, t.step_index, t.behaviour) for t in tags}
    n_steps = sum(len(steps.get(q, [])) for q in qids)
    per: dict[str, Frequency] = {}
    for b in names:
        n_with = sum(1 for q in qids if counts[q][b] > 0)
        s = sum(1 for (_, _, bb) in tagged_steps if bb == b)
        per[b] = {"steps": s, "steps_fraction": s / n_steps if n_steps else float("nan"),
                  "traces": n_with, "traces_fraction": n_with / len(qids) if qids else float("nan"),
                  "tags": sum(counts[q][b] for q in qids),
                  "tags_per_trace": _per_trace_summary([counts[q][b] for q in qids]) if qids else {}}
    untagged = sum(1 for q in qids for s in steps.get(q, [])
                   if not any((q, s.index, b) in tagged_steps for b in names))
    return {"n_traces": len(qids), "n_steps": n_steps,
            "steps_per_trace": _per_trace_summary([len(steps.get(q, [])) for q in qids]) if qids else {},
            "steps_without_behaviour": untagged, "per_behaviour": per,
            "per_trace": {q: counts[q] for q in qids}}


def step_changes(steps: dict[str, list[Step]], tags: list[Tag], probes: list[Probe],
                 source: str = "expected") -> list[dict[str, Any]]:
    """One row per step whose two neighbouring cuts were probed: its confidence change and behaviours."""
    conf: dict[str, dict[int, float]] = defaultdict(dict)
    for p in probes:
        if p.condition != "cut" or p.error:
            continue
        value = confidence_value(p.confidence, source)
        if value is not None:
            conf[p.question_id].setdefault(p.token_index, value)
    behaviours: dict[tuple[str, int], set[str]] = defaultdict(set)
    for t in tags:
        behaviours[(t.question_id, t.step_index)].add(t.behaviour)
    rows = []
    for q, q_steps in steps.items():
        at = conf.get(q)
        if not at:
            continue
        for i, step in enumerate(q_steps):
            before = q_steps[i - 1].token_end if i else 0
            after = step.token_end
            if after <= before or before not in at or after not in at:
                continue
            rows.append({"question_id": q, "step_index": step.index, "before": at[before], "after": at[after],
                         "change": at[after] - at[before],
                         "behaviours": sorted(behaviours.get((q, step.index), set()))})
    return rows


CHANGES = {"change": ("mean_change", "diff_change_vs_none"),  # what is averaged -> its keys in a group
           "abs_change": ("mean_abs_change", "diff_abs_change_vs_none")}


def change_relation(rows: list[dict[str, Any]], behaviours: list[str], n_resamples: int = 1000,
                    seed: int = 0) -> ChangeRelation:
    """Mean (and mean absolute) confidence change of steps with each behaviour vs steps with none.

    Intervals and the p-value of each difference to "none" resample whole traces
    (`metrics.bootstrap_stat`, `metrics.bootstrap_diff`); a group's mean is NaN in a resample
    holding none of its steps."""
    qids = np.array([r["question_id"] for r in rows])
    values = {"change": np.array([r["change"] for r in rows], dtype=float)}
    values["abs_change"] = np.abs(values["change"])
    masks = {"none": np.array([not r["behaviours"] for r in rows], dtype=bool)}
    for b in behaviours:
        masks[b] = np.array([b in r["behaviours"] for r in rows], dtype=bool)
    out: ChangeRelation = {"definition": CHANGE_DEFINITION, "n_steps": len(rows),
                           "n_traces": int(np.unique(qids).size), "groups": {}}
    if not rows:
        return out
    resampling = Resampling(n_resamples, seed=seed)

    def mean_of(v: np.ndarray, mask: np.ndarray):
        return lambda i: float(v[i][mask[i]].mean()) if mask[i].any() else float("nan")

    for name, mask in masks.items():
        group: ChangeGroup = {"n_steps": int(mask.sum()), "n_traces": int(np.unique(qids[mask]).size)}
        out["groups"][name] = group
        if not mask.any():
            continue
        for kind, (mean_key, diff_key) in CHANGES.items():
            v = values[kind]
            group.update(interval_fields(mean_key, float(v[mask].mean()), metrics.bootstrap_stat(
                mean_of(v, mask), len(rows), qids, resampling.n_resamples, resampling.level, resampling.seed)))
            if name != "none" and masks["none"].any():
                mine, none = mean_of(v, mask), mean_of(v, masks["none"])
                group[diff_key] = asdict(metrics.bootstrap_diff(lambda i: mine(i) - none(i), len(rows), qids,
                                                                resampling))
    return out


def behaviour_section(tagged: Tagged, probes: list[Probe], source: str = "expected",
                      n_resamples: int = 1000) -> BehaviourSection:
    """The "behaviours" section: who tagged, the frequencies and the confidence change."""
    freq = frequency(tagged.traces, tagged.steps, tagged.tags)
    rows = step_changes(tagged.steps, tagged.tags, probes, source)
    relation = change_relation(rows, list(freq["per_behaviour"]), n_resamples)
    relation["source"] = source
    settings = tagged.settings
    if settings.get("tagger") == "judge":
        who = {"judged_steps": settings["judged_steps"], "unparsed": settings["unparsed"]}
    else:
        who = {"lexicon": settings.get("lexicon")}
    return {"tagger": tagger_name(settings), **who, **freq, "confidence_change": relation}


def _cell(row: ChangeGroup, key: str) -> str:
    value, low, high = interval(row, key)
    return f"{value:+.3f} [{low:+.3f}, {high:+.3f}]"


def print_behaviours(section: BehaviourSection, run_dir: str | Path) -> None:
    print(f"\n{run_dir}: behaviours ({section['tagger']}) in {section['n_traces']} traces, "
          f"{section['n_steps']} steps ({section['steps_without_behaviour']} steps without any)")
    if "unparsed" in section:
        print(f"judge answers that did not parse: {section['unparsed']} of {section['judged_steps']} steps "
              f"(counted as untagged; see judgements.jsonl)")
    print(f"{'behaviour':<14} {'steps':>6} {'% steps':>8} {'traces>=1':>10} {'% traces':>9} {'tags/trace':>11}")
    for b, row in section["per_behaviour"].items():
        print(f"{b:<14} {row['steps']:>6} {100 * row['steps_fraction']:>7.1f}% {row['traces']:>10} "
              f"{100 * row['traces_fraction']:>8.1f}% {row['tags_per_trace'].get('mean', float('nan')):>11.2f}")
    rel = section["confidence_change"]
    if not rel["n_steps"]:
        print("confidence change per step: no step has both neighbouring cuts probed "
              "(run python -m cotprobe.truncate --from-run RUN --cut every-step)")
        return
    print(f"\nconfidence change across a step (confidence={rel['source']}; {rel['n_steps']} steps of "
          f"{rel['n_traces']} traces with both neighbouring cuts probed; 95% CI, traces resampled)")
    print(f"{'steps with':<14} {'n':>5}  {'mean change':<26} {'diff vs none':<26} {'mean |change|':<26}")
    for name, g in rel["groups"].items():
        if not has_interval(g, "mean_change"):
            print(f"{name:<14} {g['n_steps']:>5}  -")
            continue
        d = g.get("diff_change_vs_none")
        diff = f"{d['estimate']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" if d else ""
        print(f"{name:<14} {g['n_steps']:>5}  {_cell(g, 'mean_change'):<26} {diff:<26} "
              f"{_cell(g, 'mean_abs_change'):<26}")


def trajectories(tagged: Tagged, probes: list[Probe], source: str = "expected",
                 limit: int = 6) -> list[dict[str, Any]]:
    """Per-trace confidence along the CoT with the tagged steps, for plots.plot_trajectories.

    Prefers the traces with the most kinds of behaviour, then the most tags, then the most cuts.
    """
    by_q = group_by_question([p for p in probes if p.condition == "cut" and not p.error])
    tags_by_q = group_by_question(tagged.tags)
    out = []
    for trace in tagged.traces:
        group = by_q.get(trace.question_id, [])
        points = sorted({(p.fraction_realised, confidence_value(p.confidence, source)) for p in group
                         if confidence_value(p.confidence, source) is not None})
        if len(points) < 2:
            continue
        n_tokens = len(trace.cot_token_ids) or 1
        steps = {s.index: s for s in tagged.steps.get(trace.question_id, [])}
        marks = [(steps[t.step_index].token_end / n_tokens, t.behaviour)
                 for t in tags_by_q.get(trace.question_id, []) if t.step_index in steps]
        out.append({"question_id": trace.question_id, "correct": trace.correct,
                    "x": [x for x, _ in points], "y": [y for _, y in points], "marks": sorted(set(marks))})
    out.sort(key=lambda r: (-len({b for _, b in r["marks"]}), -len(r["marks"]), -len(r["x"]), r["question_id"]))
    return out[:limit]
