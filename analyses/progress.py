"""Calibration against CoT progress, several runs overlaid (the paper's truncation figure).

For each run with truncation probes (``condition == "cut"`` in probes.jsonl), the metrics at every
requested cut level (`cotprobe.summary.cut_metrics`) are drawn against the realised fraction of the
CoT kept, with 95% bootstrap bands, by `cotprobe.plots.plot_progress`, with each run's question-clustered slope of the metric per unit
of CoT and its interval in the legend.

Writes progress.{png,svg,csv} (one row per run and level) and progress_trends.csv (slopes).

With --by-length, also the same curves within terciles of full-thought length
(`cotprobe.lengths`, the "by_length" section of metrics.json): progress_by_length.{png,svg,csv}
and progress_by_length_trends.csv, one line per run and stratum, so a curve that is only the
selection of hard questions into long thoughts shows as a pooled curve no stratum follows.

    python -m analyses.progress RUN_DIR... [--out figures] [--source expected] [--by-length]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from cotprobe import plots
from cotprobe.lengths import as_cut_sections, length_metrics
from cotprobe.metrics.sections import CutSection, has_interval

from .common import (
    MissingInputs,
    Run,
    load_runs,
    metric_columns,
    note,
    parser,
    run_cli,
    write_csv,
)

NAME = "progress"


def runs_with_cuts(runs: Sequence[Run], what: str) -> list[Run]:
    keep = []
    for run in runs:
        if any(p.condition == "cut" for p in run.probes):
            keep.append(run)
        else:
            note(f"{run.path} has no truncation probes (condition 'cut'); left out of {what}")
    if not keep:
        raise MissingInputs(f"{what} needs truncation probes (python -m cotprobe.truncate) in at least one run")
    return keep


def level_rows(run: Run, result: CutSection) -> list[dict[str, Any]]:
    return [{"run": run.label, "path": str(run.path), "source": result["source"], "level": level["level"],
             "fraction_realised": level["fraction_realised"], "n": level.get("n", 0),
             "n_total": level["n_total"], "n_unparsed": level["n_unparsed"], **metric_columns(level)}
            for level in result["levels"]]


def trend_rows(run: Run, result: CutSection) -> list[dict[str, Any]]:
    rows = []
    for name, trend in result["trends"].items():
        c, o = trend["clustered"] or {}, trend["ols_per_level"] or {}
        rows.append({"run": run.label, "path": str(run.path), "source": result["source"], "metric": name,
                     "slope": c.get("slope"), "slope_low": c.get("low"), "slope_high": c.get("high"),
                     "slope_p": c.get("p_value"), "ols_slope": o.get("slope"), "ols_p": o.get("p_value")})
    return rows


def main(run_dirs: Sequence[str | Path | Run], out_dir: str | Path = "figures", source: str = "expected",
         n_resamples: int = 1000, by_length: bool = False) -> list[Path]:
    """Write progress.{png,svg,csv} and progress_trends.csv (with by_length, their
    progress_by_length counterparts too)."""
    out = Path(out_dir)
    runs = runs_with_cuts(load_runs(run_dirs), "the CoT-progress figure")
    results = {run.label: run.cut_table(source, n_resamples) for run in runs}
    levels = [row for run in runs for row in level_rows(run, results[run.label])]
    usable = [run for run in runs if any(has_interval(lv, "accuracy") for lv in results[run.label]["levels"])]
    if not usable:
        raise MissingInputs(f"no truncation probe has a graded answer with a {source} confidence")
    write_csv(pd.DataFrame(levels), out / f"{NAME}.csv")
    write_csv(pd.DataFrame([r for run in runs for r in trend_rows(run, results[run.label])]),
              out / f"{NAME}_trends.csv")
    plots.plot_progress({run.label: results[run.label] for run in usable}, out / NAME)
    written = [out / f"{NAME}.csv", out / f"{NAME}_trends.csv", out / f"{NAME}.png", out / f"{NAME}.svg"]
    return written + (length_outputs(usable, out, source, n_resamples) if by_length else [])


def length_outputs(runs: Sequence[Run], out: Path, source: str, n_resamples: int) -> list[Path]:
    """progress_by_length.{png,svg,csv} and progress_by_length_trends.csv."""
    stem = out / f"{NAME}_by_length"
    curves, levels, trends = {}, [], []
    for run in runs:
        section = length_metrics(run.probes, run.traces, source, n_resamples)
        for label, part in as_cut_sections(section).items():
            key = label if len(runs) == 1 else f"{run.label} · {label}"
            curves[key] = part
            levels += [{**row, "stratum": label} for row in level_rows(run, part)]
            trends += [{**row, "stratum": label} for row in trend_rows(run, part)]
    write_csv(pd.DataFrame(levels), stem.with_suffix(".csv"))
    write_csv(pd.DataFrame(trends), out / f"{NAME}_by_length_trends.csv")
    plots.plot_progress(curves, stem, title=f"Along the chain of thought, within terciles of full-thought length "
                                            f"(confidence: {source})")
    return [stem.with_suffix(".csv"), out / f"{NAME}_by_length_trends.csv", stem.with_suffix(".png"),
            stem.with_suffix(".svg")]


def cli(argv: list[str] | None = None) -> int:
    p = parser(NAME, "Calibration (ECE, smooth ECE, Brier, AUROC, accuracy) against the fraction of CoT kept, "
                     "runs overlaid.")
    p.add_argument("--by-length", action="store_true",
                   help="also the curves within terciles of full-thought length (progress_by_length.*)")
    args = p.parse_args(argv)
    return run_cli(main, args, by_length=args.by_length)


if __name__ == "__main__":
    from cotprobe.cli import run_main

    sys.exit(run_main(cli))
