"""python -m cotprobe.truncate: cut each chain of thought short and ask for answer and confidence.

For every trace and every requested fraction f, the CoT is cut on its own token ids at the step
boundary nearest f (or at exactly f of its tokens, or after every step), the thought is closed,
and an answer and confidence are forced (see `cotprobe.probe`). Cuts run from the longest to the
shortest so the Hugging Face backend only ever crops its key/value cache: the trace is encoded
once and each cut costs only its forcing suffix. Writes steps.jsonl, probes.jsonl, metrics.json
and figures/calibration_progress.png.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .grade import grade
from .probe import ForceSettings, force_cuts
from .profiles import Profile
from .records import Probe, Question, Step, Trace
from .scales import Scale
from .segment import to_records
from .store import RunDir

CUT_MODES = ("step", "token", "every-step")


@dataclass(frozen=True)
class Cut:
    fraction_requested: float
    fraction_realised: float
    step_index: int  # whole steps kept
    token_index: int  # CoT tokens kept


def parse_fractions(spec: str) -> list[float]:
    """'0:1:0.1' (start:stop:step, inclusive) or '0,0.25,0.5,1'."""
    try:
        if ":" in spec:
            start, stop, step = (float(x) for x in spec.split(":"))
            values = np.round(np.arange(start, stop + step / 2, step), 6).tolist()
        else:
            values = [float(x) for x in spec.split(",")]
    except ValueError:
        raise ValueError(f"--fractions {spec!r}: use start:stop:step (e.g. 0:1:0.1) or a comma list") from None
    if not values or any(not 0 <= v <= 1 for v in values):
        raise ValueError(f"--fractions {spec!r}: fractions must lie in [0, 1]")
    return sorted(set(values))


def token_char_starts(backend, ids: list[int]) -> list[int]:
    """Character offset in the decoded CoT at which each token starts."""
    starts, prev = [], 0
    for k in range(len(ids)):
        starts.append(prev)
        prev = max(prev, len(backend.decode(ids[: k + 1])))
    return starts


def segment_trace(backend, trace: Trace) -> list[Step]:
    return to_records(trace.question_id, trace.cot, token_char_starts(backend, trace.cot_token_ids))


def plan_cuts(steps: list[Step], n_tokens: int, fractions: list[float], mode: str = "step") -> list[Cut]:
    """Where to cut for each fraction: nearest step boundary, exact token fraction, or every step."""
    boundaries = sorted({0, n_tokens, *(s.token_end for s in steps)})
    def steps_kept(t: int) -> int:
        return sum(1 for s in steps if s.token_end <= t)
    def realised(t: int, requested: float) -> float:
        return t / n_tokens if n_tokens else requested
    if mode == "every-step":
        return [Cut(realised(t, 1.0), realised(t, 1.0), steps_kept(t), t) for t in boundaries]
    cuts = []
    for f in fractions:
        target = f * n_tokens
        if mode == "token":
            t = int(round(target))
        elif mode == "step":
            t = min(boundaries, key=lambda b: (abs(b - target), b))
        else:
            raise ValueError(f"unknown cut mode {mode!r}: use one of {', '.join(CUT_MODES)}")
        cuts.append(Cut(f, realised(t, f), steps_kept(t), t))
    return cuts


def probe_cuts(backend, trace: Trace, question: Question, cuts: list[Cut], profile: Profile,
               scale: Scale, force: ForceSettings, max_rows: int = 16) -> list[Probe]:
    """Probe one trace at every cut: distinct cut points run as rows of one batch over the
    trace's shared encoding (at most max_rows at a time, to bound cache memory), each closed
    the same way (`cotprobe.probe.force_cuts`)."""
    prompt_ids = backend.encode(trace.prompt)
    ids = prompt_ids + trace.cot_token_ids
    points = sorted({c.token_index for c in cuts}, reverse=True)
    forced = force_cuts(backend, ids, len(prompt_ids), [len(prompt_ids) + t for t in points], profile, scale,
                        force, max_rows)
    made = dict(zip(points, forced))
    probes = []
    for cut in cuts:
        answer, confidence = made[cut.token_index]
        result = grade(question, answer)
        probes.append(Probe(
            question_id=trace.question_id, condition="cut", fraction_requested=cut.fraction_requested,
            fraction_realised=cut.fraction_realised, step_index=cut.step_index,
            token_index=cut.token_index, answer=answer, confidence=confidence,
            correct=result.correct, grader=result.grader,
        ))
    return probes


def truncate(backend, traces: list[Trace], questions: dict[str, Question], run: RunDir, profile: Profile,
             scale: Scale, fractions: list[float], mode: str = "step",
             force: ForceSettings = ForceSettings()) -> list[Probe]:
    """Segment every trace (steps.jsonl) and probe it at every cut (probes.jsonl), resuming."""
    for name in ("steps.jsonl", "probes.jsonl"):
        run.repair(name)
    steps_by_q: dict[str, list[Step]] = {}
    for step in run.read("steps.jsonl", Step):
        steps_by_q.setdefault(step.question_id, []).append(step)
    done: dict[str, list[Probe]] = {}
    for p in run.read("probes.jsonl", Probe):
        if p.condition == "cut":
            done.setdefault(p.question_id, []).append(p)
    out = []
    for trace in tqdm(traces, desc="truncate", unit="trace"):
        if trace.question_id not in steps_by_q:
            steps_by_q[trace.question_id] = segment_trace(backend, trace)
            for step in steps_by_q[trace.question_id]:
                run.append("steps.jsonl", step)
        cuts = plan_cuts(steps_by_q[trace.question_id], len(trace.cot_token_ids), fractions, mode)
        have = {round(p.fraction_requested, 6) for p in done.get(trace.question_id, [])}
        todo = [c for c in cuts if round(c.fraction_requested, 6) not in have]
        if todo:
            for probe in probe_cuts(backend, trace, questions[trace.question_id], todo, profile, scale, force):
                run.append("probes.jsonl", probe)
                done.setdefault(trace.question_id, []).append(probe)
        out.extend(done.get(trace.question_id, []))
    return out


def main(argv: list[str] | None = None) -> int:
    from .generate import add_model_arguments, print_verdicts, settings_from_run, setup_generation, traces_for
    from .plots import plot_progress
    from .summary import cut_metrics, update_metrics, print_cut_summary

    parser = argparse.ArgumentParser(
        prog="python -m cotprobe.truncate",
        description=(
            "Cut each chain of thought at increasing fractions, force an answer and a confidence at "
            "every cut, and measure calibration against CoT progress. With no arguments: a small "
            "default experiment on the embedded model and the bundled trivia set (a few minutes on a CPU)."
        ),
    )
    add_model_arguments(parser)
    parser.set_defaults(limit=30, budget=192)
    parser.add_argument("--fractions", default="0:1:0.1", help="cut fractions: start:stop:step or a list (default 0:1:0.1)")
    parser.add_argument("--cut", choices=CUT_MODES, default="step",
                        help="step: nearest step boundary (default); token: exact token fraction; every-step")
    parser.add_argument("--naive", action="store_true", help="re-encode prompt + prefix for every cut (no cache reuse)")
    parser.add_argument("--out", default="runs/default", help="run directory (default runs/default); resumed if it exists")
    parser.add_argument("--source", choices=("sampled", "expected", "scored"), default="sampled",
                        help="confidence for the metrics: the label the model wrote (default, as the paper; the "
                             "parse rate is shown), the expected value of the scored label distribution (never "
                             "unparsed; shown beside the sampled one), or the scored distribution's most likely label")
    parser.add_argument("--from-run", help="reuse the traces of this run directory instead of generating")
    args = parser.parse_args(argv)

    fractions = parse_fractions(args.fractions)
    out = Path(args.from_run or args.out)
    if args.from_run:
        settings_from_run(args, out)
    backend, questions, profile, scale, settings, recorded = setup_generation(args)
    with RunDir(out) as run:
        traces = traces_for(run, bool(args.from_run), backend, questions, profile, scale, settings,
                            recorded, "truncate")
        by_id = {q.id: q for q in questions}
        run.start_stage("truncate", {"fractions": fractions, "cut": args.cut})
        probes = truncate(backend, traces, by_id, run, profile, scale, fractions, args.cut, settings.force)
    result = cut_metrics(probes, source=args.source, beside="expected" if args.source != "expected" else "sampled")
    update_metrics(out, "truncate", result)
    figure = plot_progress({f"{args.model} ({profile.name})": result}, out / "figures" / "calibration_progress")
    print_cut_summary(result, out)
    print_verdicts(args)
    print(f"figure: {figure}")
    return 0


if __name__ == "__main__":
    from .cli import run_main

    sys.exit(run_main(main))
