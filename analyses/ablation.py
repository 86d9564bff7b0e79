"""Ablations: calibration after removing behaviours from the CoT, per condition, runs side by side.

From the probes whose condition is not ``cut`` (written by ``python -m cotprobe.ablate``: full,
none, linear, random-deletion, no-hedging, rewrite-...), `cotprobe.summary.condition_metrics`
gives each condition's metrics with 95% bootstrap intervals and its paired difference to the
reference condition (``full``: the unmodified CoT) on the same questions. One panel per metric,
one group of bars per condition, one bar per run; a star marks a condition whose paired 95%
interval of the difference to ``full`` excludes zero. Probes that failed (``error`` set) are left
out and counted in the CSV.

Writes ablation.{png,svg,csv}.

    python -m analyses.ablation RUN_DIR... [--out figures] [--source expected] [--reference full]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from cotprobe import plots
from cotprobe.metrics.sections import ConditionSection, diff

from .common import (
    CONDITION_ORDER,
    METRIC_LABELS,
    METRIC_NAMES,
    METRICS,
    MissingInputs,
    Run,
    diff_columns,
    error_bars,
    load_runs,
    metric_columns,
    note,
    order_by,
    parser,
    run_cli,
    write_csv,
)

NAME = "ablation"


def condition_rows(run: Run, result: ConditionSection) -> list[dict[str, Any]]:
    ref = result["reference"]
    rows = []
    for cond, table in result["conditions"].items():
        row: dict[str, Any] = {"run": run.label, "path": str(run.path), "source": result["source"],
                               "condition": cond, "reference": ref, "n": table.get("n", 0),
                               "n_total": table["n_total"], "n_unparsed": table["n_unparsed"],
                               "n_failed": table.get("n_failed", 0), **metric_columns(table)}
        paired = diff(table, ref) or {"n": 0}
        row["n_paired"] = paired["n"]
        for name in METRICS:
            row.update(diff_columns(name, paired.get(name)))
        rows.append(row)
    return rows


def plot(frame: pd.DataFrame, stem: Path, source: str, reference: str) -> None:
    plots.style()
    conds = order_by(frame["condition"], CONDITION_ORDER)
    runs = list(dict.fromkeys(frame["run"]))
    colours = sns.color_palette("colorblind", len(runs))
    panel = max(4.2, 0.32 * len(conds) * max(len(runs), 2) + 1.6)
    fig, axes = plt.subplots(2, 2, figsize=(2 * panel, 7.6), squeeze=False)
    width = 0.8 / len(runs)
    x = np.arange(len(conds))
    for ax, name in zip(axes.flat, ("ece", "brier", "auroc", "accuracy")):
        for k, (run, colour) in enumerate(zip(runs, colours)):
            part = frame[frame["run"] == run].set_index("condition").reindex(conds)
            values = part[name].to_numpy(dtype=float)
            pos = x - 0.4 + width * (k + 0.5)
            ax.bar(pos, np.nan_to_num(values), width * 0.9, color=colour, label=run,
                   yerr=error_bars(values, part[name + "_low"], part[name + "_high"]), capsize=2,
                   error_kw={"elinewidth": 1})
            sig = (part[f"d_{name}_low"] > 0) | (part[f"d_{name}_high"] < 0)
            for p, top, s, v in zip(pos, part[name + "_high"].fillna(part[name]), sig, values):
                if not np.isfinite(v):
                    ax.text(p, 0.01, "n/a", ha="center", va="bottom", rotation=90, fontsize=7.5)
                elif s:
                    ax.text(p, top + 0.01, "*", ha="center", va="bottom", fontsize=11, color="0.1")
        ax.set_xticks(x, conds, rotation=35, ha="right", rotation_mode="anchor")
        ax.set_xlabel("condition" if ax in axes[1] else "")
        ax.set_ylabel(METRIC_LABELS[name])
        ax.set_title(METRIC_NAMES[name])
        ax.set_ylim(0, 1.08 if name in ("accuracy", "auroc") else None)
        if name not in ("accuracy", "auroc"):
            ax.set_ylim(0, ax.get_ylim()[1] * 1.08)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(runs), 3),
               frameon=False, title="run (bars: 95% bootstrap CI)", title_fontsize=9, fontsize=9)
    fig.suptitle(f"Calibration per ablation condition (confidence: {source})\n"
                 f"* paired 95% CI of the difference to '{reference}' (same questions) excludes 0", fontsize=12)
    fig.tight_layout()
    plots.save(fig, stem)


def main(run_dirs: Sequence[str | Path | Run], out_dir: str | Path = "figures", source: str = "expected",
         n_resamples: int = 1000, reference: str = "full") -> list[Path]:
    """Write ablation.{png,svg,csv} from the non-cut probes of the runs."""
    out = Path(out_dir)
    runs = []
    for run in load_runs(run_dirs):
        if any(p.condition != "cut" for p in run.probes):
            runs.append(run)
        else:
            note(f"{run.path} has no ablation probes; left out of the ablation figure")
    if not runs:
        raise MissingInputs("the ablation figure needs ablation probes (python -m cotprobe.ablate RUN_DIR) "
                            "in at least one run")
    rows = [row for run in runs for row in condition_rows(run, run.condition_table(source, n_resamples, reference))]
    frame = pd.DataFrame(rows)
    if not frame["accuracy"].notna().any():
        raise MissingInputs(f"no ablation probe has a graded answer with a {source} confidence")
    write_csv(frame, out / f"{NAME}.csv")
    plot(frame[frame["accuracy"].notna()], out / NAME, source, reference)
    return [out / f"{NAME}.csv", out / f"{NAME}.png", out / f"{NAME}.svg"]


def cli(argv: list[str] | None = None) -> int:
    p = parser(NAME, "Calibration per ablation condition (grouped bars with 95% intervals), runs side by side.")
    p.add_argument("--reference", default="full", help="condition the paired differences are taken to (default full)")
    args = p.parse_args(argv)
    return run_cli(main, args, reference=args.reference)


if __name__ == "__main__":
    from cotprobe.cli import run_main

    sys.exit(run_main(cli))
