"""python -m cotprobe.truncate: cut each chain of thought short and ask for answer and confidence.

For every trace and every requested fraction f, the CoT is cut on its own token ids at the step
boundary nearest f (or at exactly f of its tokens, or after every step), the thought is closed,
and an answer and confidence are forced (see `cotprobe.cuts` and `cotprobe.forcing`). Cuts run
from the longest to the shortest so the Hugging Face backend only ever crops its key/value
cache: the trace is encoded once and each cut costs only its forcing suffix. Writes steps.jsonl,
probes.jsonl, metrics.json and figures/calibration_progress.png.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from .cli import entry_point
from .config import DEFAULT_EXPERIMENT, add_run_arguments, default_experiment, resolve_run
from .cuts import CUT_MODES, Sweep, parse_fractions, truncate
from .experiment import setup
from .plots import plot_prefix_accuracy, plot_progress
from .resample import ResampleSettings, prefix_metrics, print_prefix_summary
from .records import SOURCES
from .store import RunDir
from .summary import cut_metrics, print_cut_summary, print_scoring, update_metrics


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cotprobe.truncate",
        description=(
            "Cut each chain of thought at increasing fractions, force an answer and a confidence at "
            "every cut, and measure calibration against CoT progress. With no arguments at all: the default "
            "experiment on the embedded model (" + ", ".join(f"--{k.replace('limit', 'n').replace('_', '-')} {v}" for k, v in
                                                              DEFAULT_EXPERIMENT.items()) +
            "; a few minutes on a CPU); with any argument, the defaults below."
        ),
    )
    add_run_arguments(parser)
    parser.add_argument("--fractions", default="0:1:0.1", help="cut fractions: start:stop:step or a list (default 0:1:0.1)")
    parser.add_argument("--cut", choices=CUT_MODES, default="step",
                        help="step: nearest step boundary (default); token: exact token fraction; every-step")
    parser.add_argument("--naive", action="store_true", help="re-encode prompt + prefix for every cut (no cache reuse)")
    parser.add_argument("--out", default="runs/default", help="run directory (default runs/default); resumed if it exists")
    parser.add_argument("--source", choices=SOURCES, default="sampled",
                        help="confidence for the metrics: the label the model wrote (default, as the paper; the "
                             "parse rate is shown), the expected value of the scored label distribution (never "
                             "unparsed; shown beside the sampled one), or the scored distribution's most likely label")
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
    parser = build_parser()
    args = parser.parse_args(default_experiment(parser, argv))
    if args.resample < 0:
        raise ValueError(f"--resample must be >= 0, got {args.resample}")
    if args.resample and not args.temperature > 0:
        raise ValueError(f"--temperature must be > 0, got {args.temperature}")

    fractions = parse_fractions(args.fractions)
    out, config = resolve_run(parser, args, argv, args.from_run, "--from-run")
    ex = setup(config, out, new_traces=not args.from_run)
    with RunDir(out) as run:
        traces = ex.traces(run, reuse=bool(args.from_run), stage="truncate")
        run.start_stage("truncate", {"fractions": fractions, "cut": args.cut})
        store = None
        if args.hidden_states:
            from .hidden import HiddenStore, model_layers, parse_layers

            n_layers, size = model_layers(ex.prober.backend)
            store = HiddenStore(run, parse_layers(args.layers, n_layers), size)
        resample = None
        if args.resample:
            at = tuple(parse_fractions(args.resample_fractions)) if args.resample_fractions else None
            resample = ResampleSettings(args.resample, args.temperature, config.budget, config.seed, at)
            run.start_stage("resample", asdict(resample))
        probes = truncate(ex.prober, traces, ex.by_id, run, Sweep(fractions, args.cut, store, resample))
    result = cut_metrics(probes, source=args.source, beside="expected" if args.source != "expected" else "sampled")
    update_metrics(out, {"truncate": result})
    figure = plot_progress({f"{config.model} ({ex.prober.profile.name})": result}, out / "figures" / "calibration_progress")
    print_cut_summary(result, out)
    print_scoring(probes)
    ex.report_grading(out)
    print(f"figure: {figure}")
    if args.resample:
        with RunDir(out) as run:
            resamples = run.resamples()
        prefix = prefix_metrics(probes, resamples, {f"verbal:{args.source}": args.source})
        update_metrics(out, {"resample": prefix})
        print_prefix_summary(prefix, out)
        print(f"figure: {plot_prefix_accuracy(prefix, out / 'figures' / 'prefix_accuracy')}")
    if args.hidden_states:
        print(f"hidden states: {out / 'hidden_states.f16'} (python -m cotprobe.latent {out})")
    return 0


entry = entry_point(main)  # the console script (setup.cfg)

if __name__ == "__main__":
    entry()
