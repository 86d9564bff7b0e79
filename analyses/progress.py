"""Calibration against CoT progress, several runs overlaid (the paper's truncation figure).

For each run with truncation probes (``condition == "cut"`` in probes.jsonl), the metrics at every
requested cut level (`cotprobe.summary.cut_metrics`) are drawn against the realised fraction of the
CoT kept, with 95% bootstrap bands, by `cotprobe.plots.plot_progress`, with each run's question-clustered slope of the metric per unit
of CoT and its interval in the legend.

Writes progress.{png,svg,csv} (one row per run and level) and progress_trends.csv (slopes).

    python -m analyses.progress RUN_DIR... [--out figures] [--source expected]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from cotprobe import plots
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
         n_resamples: int = 1000) -> list[Path]:
    """Write progress.{png,svg,csv} and progress_trends.csv."""
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
    return [out / f"{NAME}.csv", out / f"{NAME}_trends.csv", out / f"{NAME}.png", out / f"{NAME}.svg"]


def cli(argv: list[str] | None = None) -> int:
    p = parser(NAME, "Calibration (ECE, Brier, AUROC, accuracy) against the fraction of CoT kept, runs overlaid.")
    return run_cli(main, p.parse_args(argv))


if __name__ == "__main__":
    from cotprobe.cli import run_main

    sys.exit(run_main(cli))
