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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .grade import grade
from .backends import fork
from .probe import ForceSettings, force_answers
from .profiles import Profile
from .records import Probe, Question, Resample, Step, Trace
from .resample import resample_cuts
from .scales import Scale
from .segment import to_records, token_char_starts
from .store import RunDir

CUT_MODES = ("step", "token", "every-step")


@dataclass(frozen=True)
class Cut:
    fraction_requested: float
    fraction_realised: float
    step_index: int  # whole steps kept
    token_index: int  # CoT tokens kept


MAX_CUTS = 1001  # requested cut levels at most (every step boundary: --cut every-step)


def parse_fractions(spec: str) -> list[float]:
    """'0:1:0.1' (start:stop:step, inclusive) or '0,0.25,0.5,1'; at most MAX_CUTS values."""
    bad = f"--fractions {spec!r}"
    try:
        if ":" in spec:
            start, stop, step = (float(x) for x in spec.split(":"))
            if not all(np.isfinite([start, stop, step])) or step <= 0:
                raise ValueError(f"{bad}: the step must be a positive number")
            count = (stop - start) / step
            if count + 1 > MAX_CUTS:
                raise ValueError(f"{bad}: {int(count) + 1:,} cuts; at most {MAX_CUTS} "
                                 "(for a cut after every step use --cut every-step)")
            values = np.round(np.arange(start, stop + step / 2, step), 6).tolist()
        else:
            values = [float(x) for x in spec.split(",")]
    except ValueError as exc:
        if str(exc).startswith(bad):
            raise
        raise ValueError(f"{bad}: use start:stop:step (e.g. 0:1:0.1) or a comma list") from None
    if not values or any(not 0 <= v <= 1 for v in values):
        raise ValueError(f"{bad}: fractions must lie in [0, 1]")
    values = sorted(set(values))
    if len(values) > MAX_CUTS:
        raise ValueError(f"{bad}: {len(values):,} cuts; at most {MAX_CUTS}")
    return values


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
               scale: Scale, force: ForceSettings, max_rows: int = 16, hidden_layers: list[int] | None = None,
               hidden: dict[int, object] | None = None) -> list[Probe]:
    """Probe one trace at every cut: distinct cut points run as rows of one batch over the
    trace's shared encoding (at most max_rows at a time, to bound cache memory). With
    hidden_layers, `hidden` is filled with each cut's hidden states (token index -> (layers,
    hidden) array), taken from that same encoding pass."""
    prompt_ids = backend.encode(trace.prompt)
    ids = prompt_ids + trace.cot_token_ids
    points = sorted({c.token_index for c in cuts}, reverse=True)
    made: dict[int, tuple[str, object]] = {}
    for start in range(0, len(points), max_rows):
        chunk = points[start:start + max_rows]
        rows = fork(backend, ids, [len(prompt_ids) + t for t in chunk], hidden_layers)
        if hidden_layers and hidden is not None:
            hidden.update(zip(chunk, rows.hidden.numpy()))
        cots = [backend.decode(trace.cot_token_ids[:t]) for t in chunk]
        made.update(zip(chunk, force_answers(rows, backend, profile, scale, cots, force)))
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


@dataclass(frozen=True)
class ResampleSettings:
    """truncate --resample: k continuations per cut at `temperature`, within `budget` thinking
    tokens in all, at the cut levels in `fractions` (None: every level)."""

    k: int
    temperature: float = 0.7
    budget: int = 256
    seed: int = 0
    fractions: tuple[float, ...] | None = None


def truncate(backend, traces: list[Trace], questions: dict[str, Question], run: RunDir, profile: Profile,
             scale: Scale, fractions: list[float], mode: str = "step",
             force: ForceSettings = ForceSettings(), hidden_store=None,
             resample: ResampleSettings | None = None) -> list[Probe]:
    """Segment every trace (steps.jsonl) and probe it at every cut (probes.jsonl), resuming.

    hidden_store (a `cotprobe.hidden.HiddenStore`): also store every cut's hidden states, from
    the pass that encodes the trace for the sweep (cuts probed on an earlier run get one pass of
    their own). resample: also sample continuations at the cuts (resamples.jsonl)."""
    from .tag import ensure_steps

    for name in ("probes.jsonl", "resamples.jsonl"):
        run.repair(name)
    resampled = {(r.question_id, round(r.fraction_requested, 6)) for r in run.read("resamples.jsonl", Resample)}
    steps_by_q = ensure_steps(run, traces, backend)  # whole step lists only (see store.steps_complete)
    done: dict[str, list[Probe]] = {}
    for p in run.read("probes.jsonl", Probe):
        if p.condition == "cut":
            done.setdefault(p.question_id, []).append(p)
    out = []
    for trace in tqdm(traces, desc="truncate", unit="trace"):
        cuts = plan_cuts(steps_by_q[trace.question_id], len(trace.cot_token_ids), fractions, mode)
        have = {round(p.fraction_requested, 6) for p in done.get(trace.question_id, [])}
        todo = [c for c in cuts if round(c.fraction_requested, 6) not in have]
        question = questions[trace.question_id]
        layers = hidden_store.layers if hidden_store is not None else None
        hidden: dict[int, object] = {}
        if todo:
            for probe in probe_cuts(backend, trace, question, todo, profile, scale, force,
                                    hidden_layers=layers, hidden=hidden):
                run.append("probes.jsonl", probe)
                done.setdefault(trace.question_id, []).append(probe)
        if hidden_store is not None:
            store_hidden(backend, trace, cuts, hidden_store, hidden)
        if resample is not None:
            wanted = [c for c in cuts if round(c.fraction_requested, 6) not in
                      {f for q, f in resampled if q == trace.question_id}
                      and (resample.fractions is None
                           or any(abs(c.fraction_requested - f) < 1e-9 for f in resample.fractions))]
            if wanted:
                for record in resample_cuts(backend, trace, question, wanted, profile, scale, resample.k,
                                            resample.temperature, resample.budget, force, resample.seed):
                    run.append("resamples.jsonl", record)
        out.extend(done.get(trace.question_id, []))
    return out


def store_hidden(backend, trace: Trace, cuts: list[Cut], store, computed: dict[int, object]) -> None:
    """Store the hidden states of every cut (and of the end of the thought) not stored yet:
    those computed by the sweep, the rest from one pass over the trace."""
    points = sorted({c.token_index for c in cuts} | {len(trace.cot_token_ids)})
    missing = [t for t in points if t not in computed and not store.has(trace.question_id, "cut", t)]
    if missing:
        prompt_ids = backend.encode(trace.prompt)
        states = backend.hidden_states(prompt_ids + trace.cot_token_ids[:max(missing)],
                                       [len(prompt_ids) + t - 1 for t in missing], store.layers)
        computed.update(zip(missing, states.numpy()))
    fresh = [t for t in points if not store.has(trace.question_id, "cut", t)]
    if fresh:
        store.append(trace.question_id, "cut", fresh, [computed[t] for t in fresh])


def build_parser() -> argparse.ArgumentParser:
    from .generate import DEFAULT_EXPERIMENT, add_model_arguments

    parser = argparse.ArgumentParser(
        prog="python -m cotprobe.truncate",
        description=(
            "Cut each chain of thought at increasing fractions, force an answer and a confidence at "
            "every cut, and measure calibration against CoT progress. With no arguments at all: the default "
            "experiment on the embedded model (" + ", ".join(f"--{k.replace('limit', 'n')} {v}" for k, v in
                                                              DEFAULT_EXPERIMENT.items()) +
            "; a few minutes on a CPU); with any argument, the defaults below."
        ),
    )
    add_model_arguments(parser)
    parser.set_defaults(limit=30, budget=192)
    parser.add_argument("--fractions", default="0:1:0.1", help="cut fractions: start:stop:step or a list (default 0:1:0.1)")
    parser.add_argument("--cut", choices=CUT_MODES, default="step",
                        help="step: nearest step boundary (default); token: exact token fraction; every-step")
    parser.add_argument("--naive", action="store_true", help="re-encode prompt + prefix for every cut (no cache reuse)")
    parser.add_argument("--out", default="runs/default", help="run directory (default runs/default); resumed if it exists")
    parser.add_argument("--source", choices=("expected", "scored", "sampled"), default="expected",
                        help="confidence for the metrics: expected value of the scored label distribution "
                             "(default; never unparsed), its most likely label, or the label the model wrote")
    parser.add_argument("--from-run", help="reuse the traces of this run directory instead of generating")
    parser.add_argument("--hidden-states", action="store_true",
                        help="also store the hidden state at every cut (hidden_states.f16, from the pass that "
                             "encodes the trace for the sweep) for python -m cotprobe.latent; hf backend only")
    parser.add_argument("--layers", default=None,
                        help="layers to store with --hidden-states: 'default' (8 spread over the depth, with "
                             "the last), 'all', or a list such as 6,12,-1 (0 = embeddings)")
    parser.add_argument("--resample", type=int, default=0, metavar="K",
                        help="at every cut also sample K continuations of the thought, force and grade each: "
                             "P(correct | prefix) with a binomial interval (resamples.jsonl)")
    parser.add_argument("--temperature", type=float, default=0.7,
                        help="sampling temperature of --resample continuations (default 0.7)")
    parser.add_argument("--resample-fractions", default=None,
                        help="resample only at these cut levels (same syntax as --fractions; default every level)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from .generate import default_experiment, settings_from_run, setup_generation, traces_for
    from .plots import plot_progress
    from .summary import cut_metrics, update_metrics, print_cut_summary

    parser = build_parser()
    args = parser.parse_args(default_experiment(parser, argv))
    if args.resample < 0:
        raise ValueError(f"--resample must be >= 0, got {args.resample}")
    if args.resample and not args.temperature > 0:
        raise ValueError(f"--temperature must be > 0, got {args.temperature}")

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
        store = None
        if args.hidden_states:
            from .hidden import HiddenStore, model_layers, parse_layers

            n_layers, size = model_layers(backend)
            store = HiddenStore(run, parse_layers(args.layers, n_layers), size)
        resample = None
        if args.resample:
            at = tuple(parse_fractions(args.resample_fractions)) if args.resample_fractions else None
            resample = ResampleSettings(args.resample, args.temperature, settings.budget, args.seed, at)
            run.start_stage("resample", asdict(resample))
        probes = truncate(backend, traces, by_id, run, profile, scale, fractions, args.cut, settings.force,
                          store, resample)
    result = cut_metrics(probes, source=args.source)
    update_metrics(out, "truncate", result)
    figure = plot_progress({f"{args.model} ({profile.name})": result}, out / "figures" / "calibration_progress")
    print_cut_summary(result, out)
    print(f"figure: {figure}")
    if args.resample:
        from .plots import plot_prefix_accuracy
        from .resample import prefix_metrics, print_prefix_summary

        with RunDir(out) as run:
            resamples = run.read("resamples.jsonl", Resample)
        prefix = prefix_metrics(probes, resamples, {f"verbal:{args.source}": args.source})
        update_metrics(out, "resample", prefix)
        print_prefix_summary(prefix, out)
        print(f"figure: {plot_prefix_accuracy(prefix, out / 'figures' / 'prefix_accuracy')}")
    if args.hidden_states:
        print(f"hidden states: {out / 'hidden_states.f16'} (python -m cotprobe.latent {out})")
    return 0


if __name__ == "__main__":
    from .cli import run_main

    sys.exit(run_main(main))
