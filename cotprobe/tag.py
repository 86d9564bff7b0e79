"""python -m cotprobe.tag RUN_DIR: tag reasoning behaviours in every step of a run's traces.

Segments the traces into steps if that has not been done (steps.jsonl, token spans in the
model's own tokenization: only the tokenizer is loaded, never the model), tags every step with
the rule tagger of `cotprobe.tags` (tags.jsonl, rewritten atomically on every run: tagging is
cheap and deterministic) or, with --judge MODEL, with an LLM judge (`cotprobe.judge`; its
answers are kept in judgements.jsonl and not asked again), prints per-behaviour counts and
writes the "behaviours" section of metrics.json plus figures/behaviour_frequency.png (and
figures/behaviour_trajectories.png when the run has cut probes).

How behaviours relate to confidence (metrics.json "behaviours" -> "confidence_change"): a step's
change is the expected confidence at the cut just after the step (the cut keeping steps 0..i)
minus the confidence at the cut just before it (keeping steps 0..i-1; the empty CoT for the
first step). Only steps whose two neighbouring cuts were both probed count, so the numbers come
from `python -m cotprobe.truncate --cut every-step` (every step) or, more sparsely, from step
cuts (`--cut step`) that happen to fall on adjacent boundaries; token cuts (`--cut token`) rarely
land on step boundaries and are only used where they do. For each behaviour, the mean change
over the steps that carry it is compared with the mean over the steps that carry no behaviour
at all; intervals are 95% percentile bootstraps that resample whole traces (questions).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .backends import TokenizerOps
from .judge import JudgePrompt, describe, judge_key, judge_steps, judgement_tags, load_judge_prompt
from .records import Judgement, Probe, Step, Tag, Trace, write_jsonl
from .resources import data_path
from .store import RunDir, open_existing, package_versions, steps_complete
from .summary import confidence_value, update_metrics
from .tags import BEHAVIOURS, behaviour_counts, load_lexicon, tag_steps

CHANGE_DEFINITION = (
    "change of a step = confidence at the cut keeping steps 0..i minus confidence at the cut keeping "
    "steps 0..i-1 (the empty CoT for the first step); only steps whose two neighbouring cuts were "
    "both probed; intervals resample whole traces"
)


class TokenizerBackend(TokenizerOps):
    """Just enough of a backend to segment traces: encode/decode with the model's tokenizer."""

    def __init__(self, tokenizer: Any, name: str = ""):
        self.tokenizer = tokenizer
        self.name = name


def load_tokenizer(model: str, cache_dir: str | None = None) -> TokenizerBackend:
    """The tokenizer of a model name (tiny-random, embedded, folder or hub id), without its weights."""
    from .backends import TINY_MODEL

    if model == TINY_MODEL:
        from .backends.tiny import tiny_tokenizer

        return TokenizerBackend(tiny_tokenizer(), model)
    from transformers import AutoTokenizer

    from . import models

    where = models.resolve(model, cache_dir)
    try:
        return TokenizerBackend(AutoTokenizer.from_pretrained(where), model)
    except OSError as exc:
        raise models.ModelError(f"could not load the tokenizer of {model!r}: {str(exc).splitlines()[0]}") from None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def _group(records, key=lambda r: r.question_id) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for r in records:
        out[key(r)].append(r)
    return out


@dataclass
class Tagged:
    traces: list[Trace]
    steps: dict[str, list[Step]]  # question id -> steps in order
    tags: list[Tag]
    settings: dict[str, Any]  # what was recorded in the manifest ("tag" stage)


def lexicon_settings(lexicon: str | Path | None) -> dict[str, Any]:
    path = Path(lexicon) if lexicon is not None else data_path("behaviours.json")
    lex = load_lexicon(path)
    return {"lexicon": "default" if lexicon is None else str(path), "version": lex.version,
            "lexicon_sha256": _sha256(path)}


def ensure_steps(run: RunDir, traces: list[Trace], backend=None, model: str = "",
                 cache_dir: str | None = None) -> dict[str, list[Step]]:
    """Steps of every trace; traces not yet (or not wholly) in steps.jsonl are segmented.

    A trace's steps are appended in one write, and read back only if they tile its CoT
    (`store.steps_complete`); a partial set left by an interrupted run is segmented again and
    steps.jsonl rewritten without it. `backend` (anything with encode/decode in the model's
    tokenization) is loaded from `model`'s tokenizer only if some trace needs segmenting.
    """
    from .truncate import segment_trace

    run.repair("steps.jsonl")
    steps = _group(run.read("steps.jsonl", Step))
    for rows in steps.values():
        rows.sort(key=lambda s: s.index)
    missing = [t for t in traces if not steps_complete(t, steps.get(t.question_id, []))]
    partial = [t.question_id for t in missing if steps.get(t.question_id)]
    if missing:
        backend = backend or load_tokenizer(model, cache_dir)
        for trace in missing:
            steps[trace.question_id] = segment_trace(backend, trace)
            if not partial:
                run.append_many("steps.jsonl", steps[trace.question_id])
        if partial:
            print(f"cotprobe: {run.path / 'steps.jsonl'}: the steps of {len(partial)} trace(s) were incomplete "
                  f"(e.g. {partial[0]}); segmented again", file=sys.stderr)
            write_jsonl(run.path / "steps.jsonl", [s for rows in steps.values() for s in rows])
    return dict(steps)


@dataclass
class Judge:
    """The LLM-judge tagger: a loaded backend, the name it was loaded by, and the prompt."""

    backend: Any
    model: str
    kind: str
    prompt: JudgePrompt
    batch_size: int = 8


def judge_run(run: RunDir, judge: Judge, traces: list[Trace], steps: dict[str, list[Step]]) -> list[Judgement]:
    """This judge's judgement of every step; steps it already judged (judgements.jsonl) are not
    asked again, and each new judgement is appended as it comes, so an interrupted run resumes."""
    from tqdm import tqdm

    key = judge_key(judge.model, judge.prompt)
    run.repair("judgements.jsonl")
    done = {(j.question_id, j.step_index): j for j in run.read("judgements.jsonl", Judgement) if j.judge == key}
    todo = [(step, rows[step.index - 1].text if step.index else "")
            for t in traces for rows in [steps.get(t.question_id, [])] for step in rows
            if (t.question_id, step.index) not in done]
    for j in tqdm(judge_steps(judge.backend, judge.prompt, key, todo, judge.batch_size),
                  total=len(todo), desc="judge", unit="step", disable=not todo):
        run.append("judgements.jsonl", j)
        done[(j.question_id, j.step_index)] = j
    return [done[(t.question_id, s.index)] for t in traces for s in steps.get(t.question_id, [])]


def tag_run(run: RunDir, lexicon: str | Path | None = None, backend=None,
            cache_dir: str | None = None, judge: Judge | None = None) -> Tagged:
    """Segment (if needed) and tag every trace of an open run directory; rewrite tags.jsonl.

    Tags come from the rule lexicon, or from `judge` (an LLM) when one is given."""
    run.repair("traces.jsonl")
    traces = run.read("traces.jsonl", Trace)
    if not traces:
        raise ValueError(f"{run.path}: no traces to tag (run python -m cotprobe.generate first)")
    manifest = run.read_manifest()
    model = manifest.get("stages", {}).get("generate", {}).get("settings", {}).get("model") or traces[0].model
    steps = ensure_steps(run, traces, backend, model, cache_dir)  # in the run's model's tokenization
    if judge is None:
        settings = {"tagger": "rules", **lexicon_settings(lexicon)}
        lex = load_lexicon(Path(lexicon) if lexicon is not None else None)
        tags = [tag for t in traces for tag in tag_steps(t.question_id, steps.get(t.question_id, []), lex)]
    else:
        judgements = judge_run(run, judge, traces, steps)
        settings = describe(judge.model, judge.kind, judge.prompt)
        settings["unparsed"] = sum(1 for j in judgements if j.error)
        settings["judged_steps"] = len(judgements)
        tags = judgement_tags((j for j in judgements if not j.error), steps)
    write_jsonl(run.path / "tags.jsonl", tags)
    settings["steps_sha256"] = _sha256(run.path / "steps.jsonl")
    settings["n_traces"] = len(traces)
    # Tagging replaces its output every time, so the manifest keeps the latest settings (no
    # resume check as for the model stages); ablations record the lexicon hash they used.
    manifest = run.read_manifest()
    manifest.setdefault("stages", {})["tag"] = {
        "settings": settings,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "command": " ".join(sys.argv),
    }
    run.write_manifest(manifest)
    return Tagged(traces, {t.question_id: steps.get(t.question_id, []) for t in traces}, tags, settings)


def tagger_name(settings: dict[str, Any]) -> str:
    """'rules@LEXICON_VERSION' or 'judge:MODEL@PROMPT_HASH', from the tag stage's settings."""
    if settings.get("tagger") == "judge":
        return settings["judge"]
    return f"rules@{settings.get('version', '?')}"


def tags_are_current(run: RunDir) -> bool:
    """Whether tags.jsonl exists and was made from the current steps.jsonl."""
    recorded = run.read_manifest().get("stages", {}).get("tag", {}).get("settings", {})
    return (run.path / "tags.jsonl").exists() and recorded.get("steps_sha256") == _sha256(run.path / "steps.jsonl")


# ------------------------------------------------------------------------------ statistics


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
    by_q = _group([p for p in probes if p.condition == "cut" and not p.error])
    tags_by_q = _group(tagged.tags)
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


def main(argv: list[str] | None = None) -> int:
    from .plots import plot_behaviour_frequency, plot_trajectories

    parser = argparse.ArgumentParser(
        prog="python -m cotprobe.tag",
        description="Tag reasoning behaviours (backtracking, alternatives, verification, hedging, conclusion) "
                    "in every step of a run's traces; print counts; relate behaviours to confidence changes.",
    )
    parser.add_argument("run_dir", help="a run directory with traces.jsonl")
    parser.add_argument("--lexicon", default=None, help="behaviour lexicon JSON (default: the shipped cotprobe/_data/behaviours.json)")
    parser.add_argument("--source", choices=("expected", "scored", "sampled"), default="expected",
                        help="confidence used for the change analysis (default expected)")
    parser.add_argument("--cache-dir", default=None, help="where embedded models are cached (for the tokenizer)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    judging = parser.add_argument_group(
        "LLM judge", "tag with a model instead of the lexicon: it is asked, step by step, which behaviours "
                     "the step shows (prompt: cotprobe/_data/judge_prompt.json); its answers go to judgements.jsonl, "
                     "unparsed ones are counted and left untagged")
    judging.add_argument("--judge", metavar="MODEL", default=None,
                         help="judge model (embedded name, local folder, hub id, or the served model's name)")
    judging.add_argument("--judge-backend", choices=("hf", "openai"), default="hf", help="default hf")
    judging.add_argument("--judge-base-url", default=None, help="server of --judge-backend openai")
    judging.add_argument("--judge-prompt", default=None, help="judge prompt JSON (default cotprobe/_data/judge_prompt.json)")
    judging.add_argument("--judge-batch-size", type=int, default=8, help="steps per batch (default 8)")
    from .generate import add_server_arguments

    add_server_arguments(parser)
    args = parser.parse_args(argv)
    out = open_existing(args.run_dir)
    judge = None
    if args.judge:
        from .backends import load_backend
        from .generate import server_options

        prompt = load_judge_prompt(args.judge_prompt)
        backend = load_backend(args.judge, kind=args.judge_backend, cache_root=args.cache_dir,
                               base_url=args.judge_base_url, **server_options(args))
        judge = Judge(backend, args.judge, args.judge_backend, prompt, args.judge_batch_size)
    with RunDir(out) as run:
        tagged = tag_run(run, args.lexicon, cache_dir=args.cache_dir, judge=judge)
        probes = run.read("probes.jsonl", Probe)
    section = behaviour_section(tagged, probes, args.source, args.resamples)
    update_metrics(out, "behaviours", section)
    print_behaviours(section, out)
    figures = [plot_behaviour_frequency(section, out / "figures" / "behaviour_frequency")]
    traj = trajectories(tagged, probes, args.source)
    if traj:
        figures.append(plot_trajectories(traj, out / "figures" / "behaviour_trajectories",
                                         source=args.source))
    print(f"tags: {out / 'tags.jsonl'} ({len(tagged.tags)} tags)")
    for f in figures:
        print(f"figure: {f}")
    return 0


if __name__ == "__main__":
    from .cli import run_main

    sys.exit(run_main(main))
