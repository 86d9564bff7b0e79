"""In-context slow thinking vs chain-of-thought vs direct prompting of the same model.

Runs of one model on one dataset whose prompt style differs (``direct``, ``cot``, ``slow-think``)
form a setting; a slow-think run counts under the profile its own was derived from
(`cotprobe.profiles.style_base`: ``slow-think`` under ``plain``). For each, the final answers' accuracy, ECE, Brier and AUROC
with 95% bootstrap intervals (`cotprobe.summary.table`), one panel per metric, one group of bars
per setting, one bar per style; and, in the CSV, each style's paired difference to ``direct`` on
the questions both answered (`cotprobe.metrics.paired_bootstrap_diff`).

Writes slow_think.{png,svg,csv}.

    python -m analyses.slow_think RUN_DIR... [--out figures] [--source expected]
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from cotprobe import plots

from .common import (
    METRIC_LABELS,
    METRIC_NAMES,
    METRICS,
    STYLE_ORDER,
    MissingInputs,
    Run,
    error_bars,
    load_runs,
    metric_columns,
    order_by,
    paired,
    parser,
    run_cli,
    with_traces,
    write_csv,
)

NAME = "slow_think"
STYLE_COLOURS = {"direct": 7, "cot": 0, "slow-think": 2}  # grey, blue, green of the colour-blind palette


def settings(runs: Sequence[Run]) -> dict[tuple[str, str, str], list[Run]]:
    """Runs grouped by (model, profile, dataset), keeping groups with at least two styles."""
    groups: dict[tuple[str, str, str], list[Run]] = defaultdict(list)
    for run in runs:
        groups[(run.model, run.base_profile, run.dataset)].append(run)
    return {k: v for k, v in groups.items() if len({r.style for r in v}) >= 2}


def rows(groups: dict[tuple[str, str, str], list[Run]], source: str, n_resamples: int) -> list[dict[str, Any]]:
    out = []
    for (model, profile, dataset), group in groups.items():
        setting = f"{group[0].fields['model']} · {profile} · {group[0].fields['dataset']}"
        direct = [r for r in group if r.style == "direct"]
        for run in group:
            table = run.trace_table(source, n_resamples)
            row: dict[str, Any] = {"setting": setting, "run": run.label, "path": str(run.path), "model": model,
                                   "profile": profile, "dataset": dataset, "style": run.style, "source": source,
                                   "n": table.get("n", 0), "n_unparsed": table["n_unparsed"],
                                   **metric_columns(table)}
            if direct and run.style != "direct":
                diff = paired(run, direct[0], source, n_resamples)
                row["n_paired_vs_direct"] = diff["n_shared"]
                for name in METRICS:
                    for suffix in ("", "_low", "_high", "_p"):
                        row[f"d_{name}{suffix}_vs_direct"] = diff.get(f"d_{name}{suffix}", np.nan)
            out.append(row)
    return out


def plot(frame: pd.DataFrame, stem: Path, source: str) -> None:
    plots.style()
    palette = sns.color_palette("colorblind", 10)
    styles = order_by(frame["style"], STYLE_ORDER)
    spare = iter(i for i in (1, 4, 5, 6, 8, 9) if i not in STYLE_COLOURS.values())
    colours = {s: palette[STYLE_COLOURS[s]] if s in STYLE_COLOURS else palette[next(spare)] for s in styles}
    settings_ = list(dict.fromkeys(frame["setting"]))
    panel = max(4.0, 0.45 * len(settings_) * len(styles) + 1.4)
    fig, axes = plt.subplots(2, 2, figsize=(2 * panel, 7.6), squeeze=False)
    width = 0.8 / len(styles)
    x = np.arange(len(settings_))
    for ax, name in zip(axes.flat, ("ece", "brier", "auroc", "accuracy")):
        for k, style in enumerate(styles):
            part = frame[frame["style"] == style].drop_duplicates("setting").set_index("setting").reindex(settings_)
            values = part[name].to_numpy(dtype=float)
            pos = x - 0.4 + width * (k + 0.5)
            ax.bar(pos, np.nan_to_num(values), width * 0.9, color=colours[style], label=style,
                   yerr=error_bars(values, part[name + "_low"], part[name + "_high"]), capsize=2.5,
                   error_kw={"elinewidth": 1})
            for p, v, present in zip(pos, values, part["run"].notna()):
                if present and not np.isfinite(v):
                    ax.text(p, 0.01, "n/a", ha="center", va="bottom", rotation=90, fontsize=7.5)
        ax.set_xticks(x, [s.replace(" · ", "\n", 1) for s in settings_], fontsize=9)
        ax.set_ylabel(METRIC_LABELS[name])
        ax.set_title(METRIC_NAMES[name])
        if name in ("accuracy", "auroc"):
            ax.set_ylim(0, 1.05)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(styles), frameon=False,
               title="prompt style (bars: 95% bootstrap CI)", title_fontsize=9, fontsize=9)
    fig.suptitle(f"In-context slow thinking vs CoT vs direct prompting, final answers (confidence: {source})",
                 fontsize=12)
    fig.tight_layout()
    plots.save(fig, stem)


def main(run_dirs: Sequence[str | Path | Run], out_dir: str | Path = "figures", source: str = "expected",
         n_resamples: int = 1000) -> list[Path]:
    """Write slow_think.{png,svg,csv} for every (model, profile, dataset) with two or more styles."""
    out = Path(out_dir)
    runs = with_traces(load_runs(run_dirs), "the prompt-style comparison")
    groups = settings(runs)
    if not groups:
        found = ", ".join(sorted({r.style for r in runs}))
        raise MissingInputs("the prompt-style comparison needs runs of one model and dataset with different "
                            f"prompt styles (direct, cot, slow-think); the given runs have: {found}")
    frame = pd.DataFrame(rows(groups, source, n_resamples))
    write_csv(frame, out / f"{NAME}.csv")
    plot(frame, out / NAME, source)
    return [out / f"{NAME}.csv", out / f"{NAME}.png", out / f"{NAME}.svg"]


def cli(argv: list[str] | None = None) -> int:
    p = parser(NAME, "Final-answer calibration per prompt style (direct, cot, slow-think) of the same model.")
    return run_cli(main, p.parse_args(argv))


if __name__ == "__main__":
    from cotprobe.cli import run_main

    sys.exit(run_main(cli))
