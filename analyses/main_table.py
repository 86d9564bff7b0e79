"""The paper's main table: accuracy, ECE, Brier and AUROC of the final answers, per run, with 95%
bootstrap intervals; and, for reasoning vs non-reasoning pairs, the paired difference on the
questions both answered, with the number of settings in which one side is strictly better on all
three calibration metrics (the paper's "33 of 36").

Pairs are declared with ``--pair RUN_A:RUN_B`` (A is the reasoning side; differences are A - B),
or, when none is declared, found automatically among the given runs: same model and dataset, and
either the prompt style differs (``cot`` or ``slow-think`` vs ``direct``, same profile) or the
profile does (a reasoning profile vs a non-reasoning one, e.g. qwen3-thinking vs
qwen3-nothinking, same style).

Writes main_table.csv (one row per run), main_table_pairs.csv (one row per pair),
main_table.md (both tables and the count) and main_table.png/.svg (the metrics with intervals);
main_table_pairs.png/.svg shows the paired differences.

    python -m analyses.main_table RUN_DIR... [--pair RUN_A:RUN_B ...] [--out figures]
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
from cotprobe.metrics.sections import has_interval

from .common import (
    LOWER_IS_BETTER,
    METRIC_LABELS,
    METRIC_NAMES,
    METRICS,
    REASONING_STYLES,
    Run,
    ci_text,
    error_bars,
    load_runs,
    metric_columns,
    paired,
    parser,
    run_cli,
    with_traces,
    write_csv,
)

NAME = "main_table"


def auto_pairs(runs: Sequence[Run]) -> list[tuple[Run, Run]]:
    """(reasoning, non-reasoning) pairs among runs on the same model and dataset."""
    pairs = []
    for a in runs:
        for b in runs:
            if a is b or (a.model, a.dataset) != (b.model, b.dataset):
                continue
            by_style = a.base_profile == b.base_profile and a.style in REASONING_STYLES and b.style == "direct"
            by_profile = a.style == b.style and a.reasoning is True and b.reasoning is False
            if by_style or by_profile:
                pairs.append((a, b))
    return pairs


def run_rows(runs: Sequence[Run], source: str, n_resamples: int) -> pd.DataFrame:
    rows = []
    for run in runs:
        table = run.trace_table(source, n_resamples)
        row: dict[str, Any] = {"run": run.label, "path": str(run.path), "model": run.model,
                               "profile": run.profile, "reasoning_profile": run.reasoning,
                               "style": run.style, "dataset": run.dataset, "source": source,
                               "n": table.get("n", 0), "n_total": table["n_total"],
                               "n_unparsed": table["n_unparsed"], **metric_columns(table)}
        row["note"] = table.get("note", "" if has_interval(table, "accuracy") else "no graded answers with a confidence")
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(runs: pd.DataFrame, pairs: pd.DataFrame, source: str) -> str:
    lines = [f"# Main table (confidence: {source}; 95% bootstrap intervals over questions)", "",
             "| run | n | unparsed | accuracy | ECE ↓ | Brier ↓ | AUROC ↑ |",
             "|---|---:|---:|---|---|---|---|"]
    for row in runs.to_dict("records"):
        lines.append(f"| {row['run']} | {row['n']} | {row['n_unparsed']} | " + " | ".join(
            ci_text(row, m) for m in METRICS) + " |")
    notes = [f"- {r['run']}: {r['note']}" for r in runs.to_dict("records") if r["note"]]
    if notes:
        lines += ["", *notes]
    if len(pairs):
        lines += ["", "## Reasoning (A) vs non-reasoning (B), paired on shared questions (A − B)", "",
                  "| setting | n shared | Δ accuracy | Δ ECE | Δ Brier | Δ AUROC | strictly better on all three |",
                  "|---|---:|---|---|---|---|---|"]
        for row in pairs.to_dict("records"):
            verdict = "A" if row["a_better_all"] else "B" if row["b_better_all"] else "neither"
            if row["a_better_all_significant"] or row["b_better_all_significant"]:
                verdict += " (all three intervals exclude 0)"
            lines.append(f"| {row['setting']} | {row['n_shared']} | " + " | ".join(
                ci_text(row, f"d_{m}", signed=True) for m in METRICS) + f" | {verdict} |")
        lines += ["", count_sentence(pairs)]
    return "\n".join(lines) + "\n"


def count_sentence(pairs: pd.DataFrame) -> str:
    n = len(pairs)
    a, b = int(pairs["a_better_all"].sum()), int(pairs["b_better_all"].sum())
    sa, sb = int(pairs["a_better_all_significant"].sum()), int(pairs["b_better_all_significant"].sum())
    return (f"The reasoning side (A) is strictly better on all three calibration metrics (lower ECE, lower "
            f"Brier, higher AUROC; point estimates on shared questions) in **{a} of {n}** settings; the "
            f"non-reasoning side (B) in {b} of {n}; neither in {n - a - b}. With all three 95% intervals "
            f"excluding zero: A in {sa}, B in {sb}.")


def plot_runs(frame: pd.DataFrame, stem: Path, source: str) -> None:
    plots.style()
    n = len(frame)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.6 * len(METRICS), 1.2 + 0.45 * n), sharey=True,
                             squeeze=False)
    colors = sns.color_palette("colorblind", n)
    y = np.arange(n)
    for ax, name in zip(axes[0], METRICS):
        err = error_bars(frame[name], frame[name + "_low"], frame[name + "_high"])
        for i in range(n):
            ax.errorbar(frame[name].iloc[i], y[i], xerr=err[:, i:i + 1], fmt="o", color=colors[i],
                        capsize=3, ms=6)
        ax.set_xlabel(METRIC_LABELS[name])
        ax.set_title(METRIC_NAMES[name])
        ax.set_xlim(*_xlim(name, frame))
    axes[0, 0].set_yticks(y, frame["run"])
    axes[0, 0].set_ylim(n - 0.5, -0.5)
    fig.suptitle(f"Final-answer calibration per run (confidence: {source}; 95% bootstrap CI)")
    fig.tight_layout()
    plots.save(fig, stem)


def _xlim(name: str, frame: pd.DataFrame) -> tuple[float, float]:
    values = frame[[name, name + "_low", name + "_high"]].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    low = min(0.0, values.min()) if values.size else 0.0
    high = max(1.0 if name in ("accuracy", "auroc") else 0.0, values.max() if values.size else 1.0)
    pad = 0.04 * (high - low or 1)
    return low - pad, high + pad


def plot_pairs(frame: pd.DataFrame, stem: Path, source: str) -> None:
    plots.style()
    n = len(frame)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.6 * len(METRICS), 2.0 + 0.8 * n), sharey=True,
                             squeeze=False)
    y = np.arange(n)
    better, worse, neutral = sns.color_palette("colorblind")[0], sns.color_palette("colorblind")[3], "0.4"
    for ax, name in zip(axes[0], METRICS):
        d = frame[f"d_{name}"].to_numpy(dtype=float)
        err = error_bars(d, frame[f"d_{name}_low"], frame[f"d_{name}_high"])
        for i in range(n):
            good = d[i] < 0 if LOWER_IS_BETTER[name] else d[i] > 0
            color = neutral if name == "accuracy" or not np.isfinite(d[i]) or d[i] == 0 else better if good else worse
            ax.errorbar(d[i], y[i], xerr=err[:, i:i + 1], fmt="o", color=color, capsize=3, ms=6)
            if not np.isfinite(d[i]):
                ax.text(0, y[i], " n/a ", ha="center", va="center", fontsize=8, color="0.3",
                        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
        ax.axvline(0, color="0.2", lw=1)
        arrow = ("\n(fraction correct)" if name == "accuracy"
                 else "\n(< 0: A better)" if LOWER_IS_BETTER[name] else "\n(> 0: A better)")
        ax.set_xlabel(f"Δ {METRIC_NAMES[name]}, A − B{arrow}")
        ax.set_title(f"Δ {METRIC_NAMES[name]}")
    labels = [f"{s}\n(n={k})" for s, k in zip(frame["setting"], frame["n_shared"])]
    axes[0, 0].set_yticks(y, labels)
    axes[0, 0].set_ylim(n - 0.5, -0.5)
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=t) for c, t in
               [(better, "A better"), (worse, "B better"), (neutral, "accuracy / no difference")]]
    fig.legend(handles=handles, loc="lower center", ncol=3, bbox_to_anchor=(0.5, 0.0), frameon=False,
               title="point estimate (bars: 95% paired bootstrap CI)")
    a = int(frame["a_better_all"].sum())
    fig.suptitle(f"Reasoning (A) vs non-reasoning (B), paired on shared questions (confidence: {source}); "
                 f"A strictly better on ECE, Brier and AUROC in {a} of {n}", fontsize=11)
    fig.tight_layout(rect=(0, 0.7 / (2.0 + 0.8 * n), 1, 1))
    plots.save(fig, stem)


def main(run_dirs: Sequence[str | Path | Run], out_dir: str | Path = "figures", source: str = "expected",
         n_resamples: int = 1000, pairs: Sequence[tuple[str | Path | Run, str | Path | Run]] | None = None
         ) -> list[Path]:
    """Write main_table.{csv,md,png,svg} and, if there are pairs, main_table_pairs.{csv,png,svg}.

    pairs: (reasoning run, non-reasoning run) tuples; None finds them automatically.
    """
    out = Path(out_dir)
    runs = load_runs([*run_dirs, *(r for pair in (pairs or []) for r in pair)])
    by_path = {r.path.resolve(): r for r in runs}
    runs = with_traces(runs, "the main table")
    if pairs:
        chosen = [(by_path[Path(a.path if isinstance(a, Run) else a).resolve()],
                   by_path[Path(b.path if isinstance(b, Run) else b).resolve()]) for a, b in pairs]
        chosen = [(a, b) for a, b in chosen if a.traces and b.traces]
    else:
        chosen = auto_pairs(runs)
    table = run_rows(runs, source, n_resamples)
    pair_table = pd.DataFrame([paired(a, b, source, n_resamples) for a, b in chosen])
    written = [write_csv(table, out / f"{NAME}.csv")]
    if len(pair_table):
        written.append(write_csv(pair_table, out / f"{NAME}_pairs.csv"))
    md = out / f"{NAME}.md"
    md.write_text(markdown(table, pair_table, source))
    written.append(md)
    plot_runs(table, out / NAME, source)
    written += [out / f"{NAME}.png", out / f"{NAME}.svg"]
    if len(pair_table):
        plot_pairs(pair_table, out / f"{NAME}_pairs", source)
        written += [out / f"{NAME}_pairs.png", out / f"{NAME}_pairs.svg"]
        print(count_sentence(pair_table))
    return written


def parse_pair(text: str) -> tuple[str, str]:
    parts = text.split(":")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"--pair {text!r}: use RUN_A:RUN_B (A the reasoning run, B the non-reasoning one)")
    return parts[0], parts[1]


def cli(argv: list[str] | None = None) -> int:
    p = parser(NAME, "Accuracy, ECE, Brier and AUROC with 95% intervals per run, and paired reasoning vs "
                     "non-reasoning differences with the count of settings strictly better on all three "
                     "calibration metrics.")
    p.add_argument("--pair", action="append", default=[], metavar="RUN_A:RUN_B",
                   help="a reasoning run A and its non-reasoning counterpart B (repeatable); without it, "
                        "pairs are found among the runs (same model and dataset; cot/slow-think vs direct, "
                        "or reasoning vs non-reasoning profile)")
    args = p.parse_args(argv)
    return run_cli(main, args, pairs=[parse_pair(x) for x in args.pair] or None)


if __name__ == "__main__":
    from cotprobe.cli import run_main

    sys.exit(run_main(cli))
