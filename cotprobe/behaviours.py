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
from pathlib import Path
from typing import Any

import numpy as np

from .records import Probe, Step, Tag, Trace
from .steps import Tagged, group_by_question, tagger_name
from .summary import confidence_value
from .tags import BEHAVIOURS, behaviour_counts

CHANGE_DEFINITION = (
    "change of a step = confidence at the cut keeping steps 0..i minus confidence at the cut keeping "
    "steps 0..i-1 (the empty CoT for the first step); only steps whose two neighbouring cuts were "
    "both probed; intervals resample whole traces"
)



def _per_trace_summary(values: list[int]) -> dict[str, float]:
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
    per = {}
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


def _cluster_stats(groups: list[tuple[np.ndarray, np.ndarray]], n_clusters: int, n_resamples: int,
                   seed: int) -> np.ndarray:
    """Bootstrap replicates of the mean of each group, resampling clusters jointly.

    groups: (cluster code per row, value per row). Returns an array (n_resamples, n_groups);
    NaN where a resample holds no row of a group.
    """
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_clusters, (n_resamples, n_clusters))
    weight = np.zeros((n_resamples, n_clusters))
    np.add.at(weight, (np.repeat(np.arange(n_resamples), n_clusters), draws.ravel()), 1.0)
    out = np.full((n_resamples, len(groups)), np.nan)
    for g, (codes, values) in enumerate(groups):
        sums = np.bincount(codes, weights=values, minlength=n_clusters)
        counts = np.bincount(codes, minlength=n_clusters).astype(float)
        num, den = weight @ sums, weight @ counts
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, g] = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return out


def _interval(reps: np.ndarray) -> tuple[float, float]:
    ok = reps[np.isfinite(reps)]
    if ok.size == 0 or 2 * ok.size < reps.size:
        return float("nan"), float("nan")
    low, high = np.quantile(ok, [0.025, 0.975])
    return float(low), float(high)


def _p(reps: np.ndarray) -> float:
    ok = reps[np.isfinite(reps)]
    if ok.size == 0 or 2 * ok.size < reps.size:
        return float("nan")
    return float(min(1.0, 2 * min(np.mean(ok <= 0), np.mean(ok >= 0))))


def change_relation(rows: list[dict[str, Any]], behaviours: list[str], n_resamples: int = 1000,
                    seed: int = 0) -> dict[str, Any]:
    """Mean (and mean absolute) confidence change of steps with each behaviour vs steps with none."""
    qids = sorted({r["question_id"] for r in rows})
    code = {q: i for i, q in enumerate(qids)}
    def select(keep) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        chosen = [r for r in rows if keep(r)]
        return (np.array([code[r["question_id"]] for r in chosen], dtype=int),
                np.array([r["change"] for r in chosen], dtype=float),
                np.array([abs(r["change"]) for r in chosen], dtype=float))
    groups = {"none": select(lambda r: not r["behaviours"])}
    for b in behaviours:
        groups[b] = select(lambda r, b=b: b in r["behaviours"])
    out: dict[str, Any] = {"definition": CHANGE_DEFINITION, "n_steps": len(rows), "n_traces": len(qids),
                           "groups": {}}
    if not rows:
        return out
    names = list(groups)
    for kind, col in (("change", 1), ("abs_change", 2)):
        reps = _cluster_stats([(groups[n][0], groups[n][col]) for n in names], len(qids), n_resamples, seed)
        for j, name in enumerate(names):
            codes, values = groups[name][0], groups[name][col]
            entry = out["groups"].setdefault(name, {"n_steps": int(values.size),
                                                    "n_traces": int(np.unique(codes).size)})
            if values.size == 0:
                continue
            mean = float(values.mean())
            low, high = _interval(reps[:, j])
            entry[f"mean_{kind}"], entry[f"mean_{kind}_low"], entry[f"mean_{kind}_high"] = mean, low, high
            if name != "none" and groups["none"][1].size:
                diff = reps[:, j] - reps[:, 0]
                d_low, d_high = _interval(diff)
                entry[f"diff_{kind}_vs_none"] = {"estimate": mean - float(groups["none"][col].mean()),
                                                 "low": d_low, "high": d_high, "p_value": _p(diff)}
    return out


def behaviour_section(tagged: Tagged, probes: list[Probe], source: str = "expected",
                      n_resamples: int = 1000) -> dict[str, Any]:
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


def _cell(row: dict[str, Any], key: str) -> str:
    return f"{row[key]:+.3f} [{row[key + '_low']:+.3f}, {row[key + '_high']:+.3f}]"


def print_behaviours(section: dict[str, Any], run_dir: str | Path) -> None:
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
        if "mean_change" not in g:
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
