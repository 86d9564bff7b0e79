"""`python -m cotprobe.metrics RUN_DIR` (and the `cotprobe-metrics` script): recompute a run's
metric tables from its records (the tables come from `cotprobe.summary`).

It lives here and not in the package's `__init__`, so `import cotprobe.metrics` stays pure
(numpy, scipy): `cotprobe.summary`, which imports the metrics, is only loaded by the command."""

from __future__ import annotations


from ..cli import entry_point, run_dir_parser, run_main
from ..estimators import estimator_metrics, print_estimators
from ..lengths import length_metrics, print_length_summary
from ..records import SOURCES, LatentPrediction
from ..store import RunDir, open_existing
from ..summary import (
    BESIDE,
    HEADLINE,
    censored_questions,
    condition_metrics,
    cut_metrics,
    print_condition_summary,
    print_cut_summary,
    print_traces,
    read_metrics,
    trace_metrics,
    update_metrics,
)
from .sections import Metrics

REBUILT = ("traces", "truncate", "by_length", "estimators", "ablate")  # the sections this command computes from the records


def main(argv: list[str] | None = None) -> int:
    """Run the command; a user error prints one `error:` line and returns 2."""
    return run_main(recompute, argv)


def recompute(argv: list[str] | None = None) -> int:
    """Parse the options, rebuild metrics.json from the records and print the tables."""
    parser = run_dir_parser(
        "python -m cotprobe.metrics",
        "Recompute the metric tables of a run directory (traces, cuts, ablations) from its records, print them "
        "and write metrics.json afresh. No model is loaded.",
        "a run directory made by cotprobe")
    parser.add_argument("--completed-only", action="store_true",
                        help="cut tables without the questions whose thought hit the thinking budget (counted "
                             "as censored either way)")
    parser.add_argument("--source", choices=SOURCES, default=HEADLINE,
                        help=f"confidence used for cut and ablation tables (default {HEADLINE}: the label the model "
                             f"wrote, as the paper; cut tables show {BESIDE} beside it)")
    args = parser.parse_args(argv)
    run_dir = open_existing(args.run_dir)
    with RunDir(run_dir) as run:  # no other process is writing while the tables are computed
        traces, probes = run.traces(), run.probes()
        tables: Metrics = {}
        if traces:
            tables["traces"] = trace_metrics(traces, args.resamples)
        if any(p.condition == "cut" for p in probes):
            tables["truncate"] = cut_metrics(probes, args.source, args.resamples, beside=BESIDE,
                                             censored=censored_questions(traces), completed_only=args.completed_only)
            tables["by_length"] = length_metrics(probes, traces, args.source, args.resamples,
                                                 censored_questions(traces), args.completed_only)
            latent = {(r.question_id, round(r.fraction_requested, 6)): r.confidence
                      for r in run.records(LatentPrediction) if r.condition == "cut"}  # cotprobe.latent's, if run
            tables["estimators"] = estimator_metrics(probes, latent, run.resamples(), args.resamples)
        if any(p.condition != "cut" for p in probes):
            edits = read_metrics(run_dir).get("ablate", {}).get("edits")  # made by ablate, not from records
            tables["ablate"] = condition_metrics(probes, source=args.source, n_resamples=args.resamples, edits=edits)
        # Sections of records this command does not read (behaviours, from tag) are kept; the
        # others are rebuilt, so a section whose records are gone goes too.
        update_metrics(run_dir, tables, drop=REBUILT)
    if not traces and not probes:
        print(f"{run_dir}: no traces or probes yet; metrics.json holds no tables")
    if traces:
        print_traces(tables["traces"], run_dir)
    if "truncate" in tables and any(p.condition == "cut" for p in probes):
        print_cut_summary(tables["truncate"], run_dir)
        print_length_summary(tables["by_length"], run_dir)
        print_estimators(tables["estimators"], run_dir)
        if tables["estimators"]["estimators"]:
            from ..plots import plot_estimators  # matplotlib, only when there is a figure to draw

            print(f"figure: {plot_estimators(tables['estimators'], run_dir / 'figures' / 'estimators')}")
    if any(p.condition != "cut" for p in probes):
        print_condition_summary(tables["ablate"], run_dir)
    return 0


entry = entry_point(recompute)  # the console script (setup.cfg); `main` is already wrapped

if __name__ == "__main__":
    entry()
