"""Reliability diagrams of the final answers, one panel per run, side by side.

Each bar is one confidence bin: its height is the accuracy of the answers in the bin, the outlined
box on it reaches the mean confidence in the bin (the gap ECE weighs), the number above it is the
count of answers in the bin; empty bins are not drawn.
The diagonal is perfect calibration and the title gives the ECE (`cotprobe.metrics.ece`, same
bins). Bins are the 10 equal-width bins [k/10, (k+1)/10) of `cotprobe.metrics` (last bin closed;
0.3 lands in [0.3, 0.4)).

Beside it, reliability_smooth draws relplot's smoothed reliability diagram of the same answers
(`relplot.prepare_rel_diagram` / `plot_rel_diagram`: a kernel-smoothed curve of accuracy against
confidence at the bandwidth smooth ECE chose, drawn thicker where more answers lie, with the
density of the confidences below), its title the smooth ECE with its question-clustered interval
(`cotprobe.metrics.smooth_ece`, as in every table). relplot's own bootstrap bands are not drawn (they
are unseeded and resample answers, not questions).

A further figure, reliability_classes, has one bar per verbal class (the ten labels of the scale)
for a class-valued confidence (the scored label, or the sampled one), with the per-class ECE.

Writes reliability.{png,svg,csv}, reliability_smooth.{png,svg,csv} (the curve on relplot's mesh)
and reliability_classes.{png,svg,csv}.

    python -m analyses.reliability RUN_DIR... [--out figures] [--source expected] [--class-source scored]
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from cotprobe import metrics, plots

from .common import MissingInputs, Run, load_runs, note, parser, with_traces, write_csv

NAME = "reliability"
N_BINS = 10


def bin_table(run: Run, source: str, n_bins: int = N_BINS) -> pd.DataFrame:
    """One row per non-empty equal-width bin: edges, count, mean confidence, accuracy."""
    _, conf, correct = run.trace_items(source)
    if conf.size == 0:
        return pd.DataFrame()
    unparsed = sum(1 for t in run.traces if t.correct is not None) - conf.size
    idx = metrics._bin_index(conf, n_bins, "width")  # the binning ece() uses
    rows = []
    for k in np.unique(idx):
        m = idx == k
        rows.append({"run": run.label, "path": str(run.path), "source": source, "bin": int(k),
                     "bin_low": k / n_bins, "bin_high": (k + 1) / n_bins, "n": int(m.sum()),
                     "mean_confidence": float(conf[m].mean()), "accuracy": float(correct[m].mean()),
                     "ece": metrics.ece(conf, correct, n_bins=n_bins), "n_answers": int(conf.size),
                     "n_unparsed": unparsed})
    return pd.DataFrame(rows)


def smooth_table(run: Run, source: str, n_resamples: int) -> pd.DataFrame:
    """relplot's smoothed reliability curve of the final answers: one row per mesh point (the
    curve, the density of confidences), with the smooth ECE and its interval on every row."""
    import relplot

    _, conf, correct = run.trace_items(source)
    if conf.size == 0:
        return pd.DataFrame()
    diagram = relplot.prepare_rel_diagram(conf, correct, plot_confidence_band=False, report_CE_std=False)
    row = run.trace_table(source, n_resamples)
    return pd.DataFrame({"run": run.label, "path": str(run.path), "source": source, "mesh": diagram["mesh"],
                         "mu": diagram["mu"], "density": diagram["density"], "sigma": diagram["sigma"],
                         "smooth_ece": row["smooth_ece"], "smooth_ece_low": row["smooth_ece_low"],
                         "smooth_ece_high": row["smooth_ece_high"], "n_answers": int(conf.size),
                         "n_unparsed": row["n_unparsed"]})


def class_table(run: Run, source: str) -> pd.DataFrame:
    """One row per verbal class present: label, value, count, accuracy, and the per-class ECE."""
    _, conf, correct = run.trace_items(source)
    if conf.size == 0:
        return pd.DataFrame()
    unparsed = sum(1 for t in run.traces if t.correct is not None) - conf.size
    names = dict(zip(run.scale_values, run.scale_labels))
    ece = metrics.ece(conf, correct, binning="class")
    rows = []
    for value in np.unique(conf):
        m = conf == value
        rows.append({"run": run.label, "path": str(run.path), "source": source,
                     "label": names.get(float(value), f"{value:g}"), "value": float(value), "n": int(m.sum()),
                     "accuracy": float(correct[m].mean()), "ece_class": ece, "n_answers": int(conf.size),
                     "n_unparsed": unparsed})
    return pd.DataFrame(rows)


def _count(table: pd.DataFrame) -> str:
    n, unparsed = int(table["n_answers"].iloc[0]), int(table["n_unparsed"].iloc[0])
    return f"n = {n} answers ({unparsed} unparsed left out)" if unparsed else f"n = {n} answers"


def _grid(n: int) -> tuple[plt.Figure, np.ndarray]:
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 4.6 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def _panel(ax, x, width, table: pd.DataFrame, title: str, unit: str = "bin") -> None:
    """Accuracy bars, the gap to the mean confidence (outlined), the count above each bin."""
    blue, red = sns.color_palette("colorblind")[0], sns.color_palette("colorblind")[3]
    conf = table["mean_confidence"] if unit == "bin" else table["value"]
    ax.plot([0, 1], [0, 1], ls="--", color="0.35", lw=1, label="perfect calibration")
    ax.bar(x, table["accuracy"], width=width, color=blue, alpha=0.8, edgecolor="white", lw=0.5,
           label=f"accuracy in {unit}")
    ax.bar(x, conf - table["accuracy"], bottom=table["accuracy"], width=width, color=red, alpha=0.18,
           edgecolor=red, lw=1, label=f"gap to mean confidence in {unit}" if unit == "bin" else "gap to class value")
    for xi, top, n in zip(x, np.maximum(conf, table["accuracy"]), table["n"]):
        ax.annotate(f"{n}", (xi, top), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                    fontsize=7.5, color="0.15")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.1)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10.5)


def plot_bins(tables: list[tuple[Run, pd.DataFrame]], stem: Path, source: str) -> None:
    plots.style()
    fig, axes = _grid(len(tables))
    for ax, (run, table) in zip(axes, tables):
        x = (table["bin_low"] + table["bin_high"]) / 2
        _panel(ax, x, 1 / N_BINS * 0.92, table, f"{run.title}\nECE = {table['ece'].iloc[0]:.3f}\n{_count(table)}")
        ax.set_xticks(np.linspace(0, 1, 6))
        ax.set_xlabel(f"confidence ({source}; 10 equal-width bins)")
        ax.set_ylabel("accuracy (fraction correct)")
    axes[0].legend(loc="upper left", fontsize=7.5, framealpha=0.9)
    fig.suptitle("Reliability of final answers (numbers: answers per bin; empty bins not drawn)", y=1.0)
    fig.tight_layout()
    plots.save(fig, stem)


def plot_smooth(tables: list[tuple[Run, pd.DataFrame]], stem: Path, source: str) -> None:
    """relplot's smoothed diagram per run (its drawing, on our axes and style)."""
    import relplot

    plots.style()
    fig, axes = _grid(len(tables))
    for ax, (run, table) in zip(axes, tables):
        diagram = {"mesh": table["mesh"].to_numpy(), "mu": table["mu"].to_numpy(),
                   "density": table["density"].to_numpy(), "bags": []}
        relplot.plot_rel_diagram(diagram, fig=fig, ax=ax, use_default_style=False, plot_density=True,
                                 plot_density_ticks=False, color=sns.color_palette("colorblind")[3])
        first = table.iloc[0]
        ax.set_title(f"{run.title}\nsmooth ECE = {first['smooth_ece']:.3f} [{first['smooth_ece_low']:.3f}, "
                     f"{first['smooth_ece_high']:.3f}] (σ = {first['sigma']:.3f})\n{_count(table)}", fontsize=10.5)
        ax.set_xlabel(f"confidence ({source}; kernel-smoothed, no bins)")
        ax.set_ylabel("accuracy (smoothed E[correct | confidence])")
    fig.suptitle("Smoothed reliability of final answers (relplot; line width and grey area: density of answers)",
                 y=1.0)
    fig.tight_layout()
    plots.save(fig, stem)


def plot_classes(tables: list[tuple[Run, pd.DataFrame]], stem: Path, source: str) -> None:
    plots.style()
    fig, axes = _grid(len(tables))
    for ax, (run, table) in zip(axes, tables):
        _panel(ax, table["value"], 0.08, table,
               f"{run.title}\nper-class ECE = {table['ece_class'].iloc[0]:.3f}\n{_count(table)}", unit="class")
        values = run.scale_values or sorted(table["value"])
        labels = run.scale_labels or [f"{v:g}" for v in values]
        ax.set_xticks(values, labels, rotation=55, ha="right", rotation_mode="anchor", fontsize=8)
        ax.set_xlabel(f"verbal confidence class ({source} label)")
        ax.set_ylabel("accuracy (fraction correct)")
    axes[0].legend(loc="upper left", fontsize=7.5, framealpha=0.9)
    fig.suptitle("Reliability per verbal class (numbers: answers per class; empty classes not drawn)", y=1.0)
    fig.tight_layout()
    plots.save(fig, stem)


def main(run_dirs: Sequence[str | Path | Run], out_dir: str | Path = "figures", source: str = "expected",
         n_resamples: int = 1000, class_source: str = "scored") -> list[Path]:
    """Write reliability.{png,svg,csv} (equal-width bins of `source`) and reliability_classes.*
    (one bin per verbal class of `class_source`: scored or sampled)."""
    if class_source not in ("scored", "sampled"):
        raise ValueError(f"class_source {class_source!r}: use a class-valued confidence, scored or sampled")
    out = Path(out_dir)
    runs = with_traces(load_runs(run_dirs), "the reliability diagrams")
    written = []
    tables = [(run, bin_table(run, source)) for run in runs]
    for run, table in tables:
        if table.empty:
            note(f"{run.path}: no graded answers with a {source} confidence; left out of the reliability diagram")
    tables = [(r, t) for r, t in tables if not t.empty]
    if not tables:
        raise MissingInputs(f"reliability needs graded traces with a {source} confidence")
    write_csv(pd.concat([t for _, t in tables]), out / f"{NAME}.csv")
    plot_bins(tables, out / NAME, source)
    written += [out / f"{NAME}.csv", out / f"{NAME}.png", out / f"{NAME}.svg"]
    smooth = [(run, smooth_table(run, source, n_resamples)) for run, _ in tables]
    write_csv(pd.concat([t for _, t in smooth]), out / f"{NAME}_smooth.csv")
    plot_smooth(smooth, out / f"{NAME}_smooth", source)
    written += [out / f"{NAME}_smooth.csv", out / f"{NAME}_smooth.png", out / f"{NAME}_smooth.svg"]
    classes = [(run, class_table(run, class_source)) for run in runs]
    classes = [(r, t) for r, t in classes if not t.empty]
    if classes:
        write_csv(pd.concat([t for _, t in classes]), out / f"{NAME}_classes.csv")
        plot_classes(classes, out / f"{NAME}_classes", class_source)
        written += [out / f"{NAME}_classes.csv", out / f"{NAME}_classes.png", out / f"{NAME}_classes.svg"]
    else:
        note(f"no graded answers with a {class_source} confidence; per-class reliability not drawn")
    return written


def cli(argv: list[str] | None = None) -> int:
    p = parser(NAME, "Reliability diagrams (accuracy per confidence bin, counts, ECE) of the final answers, "
                     "one panel per run; and the per-class version over the verbal scale.")
    p.add_argument("--class-source", choices=("scored", "sampled"), default="scored",
                   help="class-valued confidence for the per-class diagram (default scored)")
    args = p.parse_args(argv)
    from .common import run_cli

    return run_cli(main, args, class_source=args.class_source)


if __name__ == "__main__":
    from cotprobe.cli import run_main

    sys.exit(run_main(cli))
