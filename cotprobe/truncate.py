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
import math
from dataclasses import asdict

from .backends import capabilities_of
from .cli import entry_point, given_options
from .config import DEFAULT_EXPERIMENT, add_run_arguments, default_experiment, resolve_run
from .cuts import CUT_MODES, Sweep, parse_fractions, truncate
from .experiment import setup
from .lengths import length_metrics, print_length_summary
from .plots import plot_prefix_accuracy, plot_progress
from .resample import ResampleSettings, prefix_metrics, print_prefix_summary
from .records import SOURCES
from .store import RunDir
from .summary import censored_questions, cut_metrics, print_cut_summary, print_scoring, update_metrics


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
    parser.add_argument("--completed-only", action="store_true",
                        help="leave out of the tables the questions whose thought hit the thinking budget (their "
                             "probes are still recorded); by default they are in, and counted as censored")
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
    parser.add_argument("--sweep-batch", type=int, default=None, metavar="N",
                        help="traces probed together: on --backend openai, N traces in flight at once (default: "
                             "enough to keep --concurrency requests in flight); on --backend hf, the cut rows of N "
                             "traces decoded as one batch (default: from the device, see docs/serving.md)")
    parser.add_argument("--pool", default="last",
                        help="with --hidden-states: poolings of the prefix's hidden states to store, last (the last "
                             "token before the cut, default), mean, max (over the CoT tokens kept), e.g. last,mean,max; "
                             "mean and max take one further pass per trace (hidden_states_<pool>.*, as much disk per "
                             "cut as last; cotprobe.latent --pool probes them)")
    parser.add_argument("--resample-fractions", default=None,
                        help="resample only at these cut levels (same syntax as --fractions; default every level)")
    return parser


MAX_RESAMPLES = 1024  # continuations per cut: more is a memory bound, not a finer estimate


def check_resample_options(args: argparse.Namespace, given: set[str], fractions: list[float]
                           ) -> tuple[float, ...] | None:
    """The --resample-fractions levels (None: every level), with --resample K, --temperature and
    --resample-fractions checked against each other and the cut levels, before anything runs."""
    if args.sweep_batch is not None and args.sweep_batch < 1:
        raise ValueError(f"--sweep-batch must be a positive number of traces, got {args.sweep_batch}")
    if not 0 <= args.resample <= MAX_RESAMPLES:
        raise ValueError(f"--resample must lie in 0..{MAX_RESAMPLES}, got {args.resample}")
    if args.resample == 0:
        unused = [f"--{name.replace('_', '-')}" for name in ("resample_fractions", "temperature") if name in given]
        if unused:
            raise ValueError(f"{unused[0]}: given without --resample K, so nothing would be resampled; "
                             "add --resample K (continuations per cut) or leave it out")
        return None
    if not 0 < args.temperature < math.inf:
        raise ValueError(f"--temperature must be a finite number > 0, got {args.temperature}")
    if args.resample_fractions is None:
        return None
    try:
        at = parse_fractions(args.resample_fractions)
    except ValueError as exc:
        raise ValueError(str(exc).replace("--fractions", "--resample-fractions", 1)) from None
    if args.cut != "every-step":
        off = [f for f in at if not any(abs(f - level) < 1e-9 for level in fractions)]
        if off:
            raise ValueError(f"--resample-fractions {args.resample_fractions}: {off[0]:g} is not a cut level of "
                             f"--fractions {args.fractions}; resampling happens only at cuts")
    return tuple(at)


def check_backend(backend, args: argparse.Namespace) -> None:
    """--resample and --hidden-states need a backend that samples and one that gives hidden states."""
    if args.resample and not capabilities_of(backend).samples:
        raise ValueError(f"--resample needs a backend that samples; {type(backend).__name__} does not (use --backend hf)")
    if args.hidden_states:
        from .hidden import model_layers

        model_layers(backend)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(default_experiment(parser, argv))
    fractions = parse_fractions(args.fractions)
    resample_at = check_resample_options(args, given_options(parser, argv), fractions)
    if args.pool != "last":
        from .hidden import parse_pools

        if parse_pools(args.pool) != ["last"] and not args.hidden_states:
            raise ValueError(f"--pool {args.pool} pools hidden states: it needs --hidden-states")
    out, config = resolve_run(parser, args, argv, args.from_run, "--from-run")
    ex = setup(config, out, new_traces=not args.from_run)
    check_backend(ex.prober.backend, args)  # before any trace is generated or any stage claimed
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
            resample = ResampleSettings(args.resample, args.temperature, config.budget, config.seed, resample_at)
            run.start_stage("resample", asdict(resample))
        probes = truncate(ex.prober, traces, ex.by_id, run, Sweep(fractions, args.cut, store, resample,
                                                                     args.sweep_batch))
        if store is not None and args.pool != "last":
            from .hidden import parse_pools, store_pooled

            store_pooled(ex.prober.backend, list(traces), store, parse_pools(args.pool))
    result = cut_metrics(probes, source=args.source, beside="expected" if args.source != "expected" else "sampled",
                         censored=censored_questions(traces), completed_only=args.completed_only)
    by_length = length_metrics(probes, traces, args.source, censored=censored_questions(traces),
                               completed_only=args.completed_only)
    update_metrics(out, {"truncate": result, "by_length": by_length})
    figure = plot_progress({f"{config.model} ({ex.prober.profile.name})": result}, out / "figures" / "calibration_progress")
    print_cut_summary(result, out)
    print_length_summary(by_length, out, levels=False)
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
