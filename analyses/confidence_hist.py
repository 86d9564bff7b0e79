"""How the final answers' verbal confidence is distributed over the ten classes, split by outcome.

One panel per run: for each class of the scale, the share of the correct answers (blue) and of the
incorrect answers (vermillion) that carry it, so the two distributions are comparable whatever the
accuracy (counts are in the CSV, and the group sizes in the legend). A well-calibrated and
discriminating model puts its correct answers on the right and its incorrect ones on the left.
For the sampled confidence, answers whose confidence did not parse form an "unparsed" column.

Writes confidence_hist.{png,svg,csv}.

    python -m analyses.confidence_hist RUN_DIR... [--out figures] [--class-source scored|sampled]
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

from cotprobe import plots

from .common import (
    MissingInputs,
    Run,
    load_runs,
    note,
    parser,
    run_cli,
    with_traces,
    write_csv,
)

NAME = "confidence_hist"
UNPARSED = "unparsed"


def class_counts(run: Run, class_source: str) -> pd.DataFrame:
    """Rows (class, outcome): count and share of that outcome's answers, in scale order."""
    labels = list(run.scale_labels)
    values = dict(zip(run.scale_labels, run.scale_values))
    rows: dict[tuple[str, bool], int] = {}
    for t in run.traces:
        if t.correct is None:
            continue
        label = t.confidence.scored_label if class_source == "scored" else t.confidence.sampled_label
        label = UNPARSED if label is None else label
        if label not in labels and label != UNPARSED:
            labels.append(label)  # a label outside the recorded scale: shown after it
        rows[(label, bool(t.correct))] = rows.get((label, bool(t.correct)), 0) + 1
    if not rows:
        return pd.DataFrame()
    if any(label == UNPARSED for label, _ in rows):
        labels.append(UNPARSED)
    totals = {ok: sum(n for (_, o), n in rows.items() if o == ok) for ok in (True, False)}
    out = []
    for label in labels:
        for ok in (True, False):
            n = rows.get((label, ok), 0)
            out.append({"run": run.label, "path": str(run.path), "source": class_source, "label": label,
                        "value": values.get(label, math.nan), "correct": ok, "count": n,
                        "n_group": totals[ok], "proportion": n / totals[ok] if totals[ok] else math.nan})
    return pd.DataFrame(out)


def plot(tables: list[tuple[Run, pd.DataFrame]], stem: Path, class_source: str) -> None:
    plots.style()
    n = len(tables)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.4 * cols, 4.4 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    palette = sns.color_palette("colorblind")
    colors = {True: palette[0], False: palette[3]}
    for ax, (run, table) in zip(axes.flat, tables):
        labels = list(dict.fromkeys(table["label"]))
        x = np.arange(len(labels))
        for shift, ok in ((-0.2, True), (0.2, False)):
            part = table[table["correct"] == ok].set_index("label").loc[labels]
            name = "correct" if ok else "incorrect"
            ax.bar(x + shift, 100 * part["proportion"].fillna(0), width=0.4, color=colors[ok],
                   label=f"{name} (n={int(part['n_group'].iloc[0])})", edgecolor="white", lw=0.5)
        ax.set_xticks(x, labels, rotation=55, ha="right", rotation_mode="anchor", fontsize=8)
        ax.set_xlabel(f"verbal confidence class ({class_source} label)")
        ax.set_ylabel("share of answers in outcome group (%)")
        ax.set_title(run.title, fontsize=10.5)
        ax.legend(fontsize=8, loc="upper left", title="final answer", title_fontsize=8)
    fig.suptitle("Distribution of verbal confidence, correct vs incorrect answers "
                 "(each group sums to 100%)", y=1.0)
    fig.tight_layout()
    plots.save(fig, stem)


def main(run_dirs: Sequence[str | Path | Run], out_dir: str | Path = "figures", source: str = "expected",
         n_resamples: int = 1000, class_source: str = "scored") -> list[Path]:
    """Write confidence_hist.{png,svg,csv}. `source` and `n_resamples` are accepted for a uniform
    interface; the classes come from `class_source` (scored or sampled label)."""
    if class_source not in ("scored", "sampled"):
        raise ValueError(f"class_source {class_source!r}: use a class-valued confidence, scored or sampled")
    out = Path(out_dir)
    runs = with_traces(load_runs(run_dirs), "the confidence histograms")
    tables = []
    for run in runs:
        table = class_counts(run, class_source)
        if table.empty:
            note(f"{run.path}: no graded answers; left out of the confidence histograms")
        else:
            tables.append((run, table))
    if not tables:
        raise MissingInputs("confidence histograms need graded traces")
    write_csv(pd.concat([t for _, t in tables]), out / f"{NAME}.csv")
    plot(tables, out / NAME, class_source)
    return [out / f"{NAME}.csv", out / f"{NAME}.png", out / f"{NAME}.svg"]


def cli(argv: list[str] | None = None) -> int:
    p = parser(NAME, "Histograms of the final answers' verbal confidence class, correct vs incorrect, per run.")
    p.add_argument("--class-source", choices=("scored", "sampled"), default="scored",
                   help="which label: the model's most probable scale label (scored, default) or the one "
                        "it wrote (sampled; unparsed outputs get their own column)")
    args = p.parse_args(argv)
    return run_cli(main, args, class_source=args.class_source)


if __name__ == "__main__":
    from cotprobe.cli import run_main

    sys.exit(run_main(cli))
