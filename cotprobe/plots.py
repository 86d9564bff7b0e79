"""Figures. Numbers come from `cotprobe.summary` / `cotprobe.metrics`; this module only draws.

Every `draw_*` function draws into the axes it is given (``ax=`` for one panel, ``axes=`` for
several; a new figure when None) and returns the figure, so figures compose; `save` writes one.
Each `plot_*(data, stem)` is `save(draw_*(data), stem)`, the form the stage commands call.
Metric names, labels and directions come from `cotprobe.metrics.METRICS`; behaviour colours
from `cotprobe.colours`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .colours import behaviour_colours, in_order
from .metrics import COMPARED, METRICS
from .metrics.sections import (BehaviourSection, ConditionRow, ConditionSection, CutSection, EarlyExitSection,
                               EstimatorSection, LatentSection, PrefixSection, has_interval, interval)

PROGRESS_PANELS = ("ece", "smooth_ece", "brier", "auroc", "accuracy")
LATENT_PANELS = ("auroc", "ece", "brier")
ESTIMATOR_PANELS = ("auroc", "brier", "ece", "smooth_ece")
COT_AXIS = "fraction of CoT kept (tokens)"


def style() -> None:
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.2)


def save(fig: Figure, stem: str | Path) -> Path:
    """Write stem.png (200 dpi) and stem.svg, close the figure; return the PNG path."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(stem.with_suffix(".png"), dpi=200, bbox_inches="tight")
    fig.savefig(stem.with_suffix(".svg"), bbox_inches="tight")
    plt.close(fig)
    return stem.with_suffix(".png")


# ------------------------------------------------------------------------- shared pieces


def _panels(axes, rows: int, cols: int, size: tuple[float, float], **kw) -> tuple[Figure, list, bool]:
    """(figure, flat list of axes, whether the figure is new): the given axes, or a new styled
    rows x cols grid with panels of `size` inches."""
    if axes is not None:
        flat = list(np.ravel(axes))
        return flat[0].figure, flat, False
    style()
    fig, grid = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False, **kw)
    return fig, list(grid.ravel()), True


def _finish(fig: Figure, new: bool, title: str) -> Figure:
    """Title and lay out a figure this module made; leave a caller's figure to the caller."""
    if new:
        fig.suptitle(title)
        fig.tight_layout()
    return fig


def _cot_axes(axes, xlabel: str = COT_AXIS, xlim: tuple[float, float] | None = (-0.02, 1.02), **legend) -> None:
    """The x axis of panels drawn along the CoT (or another x), and a small legend on each."""
    for ax in axes:
        ax.set_xlabel(xlabel)
        if xlim:
            ax.set_xlim(*xlim)
        ax.legend(fontsize=7, loc="best", **legend)


def _band(ax, rows, x, key, color, label, marker="o"):
    """A line of the rows' value `key` with its 95% band."""
    values, lows, highs = zip(*(interval(r, key) for r in rows)) if rows else ((), (), ())
    ax.plot(x, values, marker=marker, ms=4, color=color, label=label)
    ax.fill_between(x, lows, highs, color=color, alpha=0.2, linewidth=0)


# ----------------------------------------------------------------------------- figures


def draw_progress(results: dict[str, CutSection], axes=None, title: str | None = None) -> Figure:
    """Calibration against CoT progress: one panel per metric, one line + 95% band per run
    (results: run label -> `summary.cut_metrics` output; or stratum -> its part of "by_length")."""
    fig, axes, new = _panels(axes, 1, len(PROGRESS_PANELS), (4.2, 3.8), sharex=True)
    colors = sns.color_palette("colorblind", len(results))
    for color, (label, result) in zip(colors, results.items()):
        rows = [r for r in result["levels"] if has_interval(r, "accuracy")]
        x = [r["fraction_realised"] for r in rows]
        for ax, key in zip(axes, PROGRESS_PANELS):
            trend = result["trends"].get(key, {}).get("clustered")
            name = label if trend is None else f"{label}\nslope {trend['slope']:+.2f} [{trend['low']:+.2f}, {trend['high']:+.2f}]"
            _band(ax, rows, x, key, color, name)
            ax.set_title(METRICS[key].axis_label)
    _cot_axes(axes, title="95% CI bands; slope per unit CoT", title_fontsize=7)
    source = next(iter(results.values()))["source"]
    return _finish(fig, new, title or f"Calibration along the chain of thought (confidence: {source})")


def draw_behaviour_frequency(section: BehaviourSection, axes=None) -> Figure:
    """Histogram per behaviour of how many times it occurs in a trace (the "behaviours" section
    of metrics.json, as written by `python -m cotprobe.tag`)."""
    per_trace = section["per_trace"]
    names = list(section["per_behaviour"])
    colours = behaviour_colours(names)
    fig, axes, new = _panels(axes, 1, len(names), (3.3, 3.6), sharey=True)
    n = len(per_trace)
    for ax, name in zip(axes, names):
        values = np.array([row.get(name, 0) for row in per_trace.values()], dtype=int)
        top = int(values.max()) if values.size else 0
        ax.hist(values, bins=np.arange(-0.5, top + 1.5, 1), color=colours[name], edgecolor="white")
        row = section["per_behaviour"][name]
        ax.set_title(f"{name}\n{row['traces']}/{n} traces, {row['steps']} step{'' if row['steps'] == 1 else 's'}",
                     fontsize=11)
        ax.set_xlabel("tags in a trace")
        ax.set_xlim(-0.6, max(top, 1) + 0.6)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("number of traces")
    return _finish(fig, new, f"How often each behaviour occurs per trace ({n} traces, tagger {section.get('tagger', '?')})")


def _condition_bars(ax, row: ConditionRow, pos, width: float, colour, label: str) -> None:
    """One condition's bars over the compared metrics, with 95% intervals ("n/a" where undefined)."""
    cells = np.array([interval(row, m) for m in COMPARED], dtype=float)
    values, low, high = cells[:, 0], cells[:, 1], cells[:, 2]
    err = np.vstack([np.clip(values - low, 0, None), np.clip(high - values, 0, None)])
    err = np.where(np.isfinite(err), err, 0)
    ax.bar(pos, np.nan_to_num(values), width * 0.92, yerr=err, capsize=2.5, color=colour, label=label,
           error_kw={"elinewidth": 1})
    for p, v in zip(pos, values):
        if not np.isfinite(v):
            ax.text(p, 0.01, "n/a", ha="center", va="bottom", rotation=90, fontsize=8)


def draw_conditions(result: ConditionSection, ax=None, title: str = "") -> Figure:
    """Calibration per ablation condition: grouped bars (one group per metric, one bar per
    condition) with 95% bootstrap intervals (`summary.condition_metrics` output)."""
    conds = [c for c, row in result["conditions"].items() if has_interval(row, "accuracy")]
    width_in = 2.0 + 1.9 * len(COMPARED) * max(len(conds), 3) / 5
    fig, (ax,), new = _panels(ax, 1, 1, (width_in, 4.4))
    colours = sns.color_palette("colorblind", max(len(conds), 1))
    width = 0.8 / max(len(conds), 1)
    x = np.arange(len(COMPARED))
    for k, (cond, colour) in enumerate(zip(conds, colours)):
        row = result["conditions"][cond]
        _condition_bars(ax, row, x - 0.4 + width * (k + 0.5), width, colour, f"{cond} (n={row.get('n', 0)})")
    ax.set_xticks(x, [f"{METRICS[m].label}\n({METRICS[m].direction})" for m in COMPARED])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("value (95% bootstrap interval)")
    ax.legend(title="condition", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, title_fontsize=9)
    ax.set_title(title or f"Calibration per condition (confidence: {result.get('source', '?')})")
    if new:
        fig.tight_layout()
    return fig


def _trajectory_panel(ax, t: dict[str, Any], order: list[str], colours: dict[str, str], source: str,
                      row_gap: float) -> None:
    """One trace's confidence curve, with a dashed line and a strip marker per tagged step."""
    for k, b in enumerate(order):
        xs = [x for x, bb in t["marks"] if bb == b]
        for x in xs:
            ax.plot([x, x], [0, 1], color=colours[b], lw=1.1, alpha=0.6, ls="--", zorder=1)
        ax.plot(xs, [-row_gap * (k + 1)] * len(xs), "|", color=colours[b], ms=9, mew=2.2, zorder=3)
    ax.plot(t["x"], t["y"], color="0.15", marker="o", ms=3, lw=1.4, zorder=2)
    verdict = {True: "correct", False: "wrong", None: "ungraded"}[t.get("correct")]
    ax.set_title(f"{t['question_id']} (final answer {verdict})", fontsize=10)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-row_gap * (len(order) + 0.8), 1.03)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel(COT_AXIS)
    ax.set_ylabel(f"confidence ({source})")


def draw_trajectories(traces: list[dict[str, Any]], axes=None, source: str = "expected",
                      columns: int = 3) -> Figure:
    """Confidence along single chains of thought, with tagged steps marked.

    traces: dicts with "question_id", "correct", "x" (fraction of CoT tokens kept at each
    probed cut), "y" (confidence there) and "marks" [(fraction at the end of a tagged step,
    behaviour)] (see `cotprobe.tag.trajectories`). Each tagged step gets a dashed vertical line
    at its end, coloured by behaviour, and a marker in that behaviour's row of the strip below
    the curve (so steps with several behaviours stay readable).
    """
    order = in_order(b for t in traces for _, b in t["marks"])
    colours = behaviour_colours(order)
    cols = min(columns, max(len(traces), 1))
    fig, axes, new = _panels(axes, max(1, -(-len(traces) // cols)), cols, (4.6, 3.6))
    for ax in axes[len(traces):]:
        ax.set_visible(False)
    for ax, t in zip(axes, traces):
        _trajectory_panel(ax, t, order, colours, source, row_gap=0.07)
    _finish(fig, new, "Confidence along single chains of thought, with tagged behaviours")
    handles = [Line2D([], [], color=colours[b], ls="--", marker="|", ms=9, mew=2.2, label=b) for b in order]
    if handles and new:
        fig.legend(handles=handles, loc="upper center", ncol=len(handles), bbox_to_anchor=(0.5, 0.0),
                   title="tagged step: dashed line at its end; strip below the curve: one row per behaviour",
                   frameon=False, fontsize=10, title_fontsize=10)
    return fig


def draw_prefix_accuracy(result: PrefixSection, axes=None) -> Figure:
    """Confidence against P(correct | prefix) along the CoT: mean prefix accuracy and mean
    confidence per cut (left), Brier against the prefix accuracy and against the outcome (right)."""
    fig, (left, right), new = _panels(axes, 1, 2, (5, 3.8), sharex=True)
    colors = sns.color_palette("colorblind", len(result["sources"]) + 1)
    first = next(iter(result["sources"].values()), None)
    if first:
        rows = first["levels"]
        x = [r["fraction_realised"] for r in rows]
        _band(left, rows, x, "prefix_accuracy", "black", "P(correct | prefix)", marker="s")
        _band(left, rows, x, "outcome_accuracy", "grey", "forced answer correct")
    for color, (name, section) in zip(colors, result["sources"].items()):
        rows = section["levels"]
        x = [r["fraction_realised"] for r in rows]
        _band(left, rows, x, "mean_confidence", color, f"{name} confidence")
        _band(right, rows, x, "brier_prefix", color, f"{name}: vs P(correct | prefix)")
        right.plot(x, [r["brier_outcome"] for r in rows], ls="--", color=color, label=f"{name}: vs outcome")
    left.set_title("Mean per cut (95% CI)")
    right.set_title(METRICS["brier"].axis_label)
    _cot_axes((left, right))
    return _finish(fig, new, f"Confidence against the prefix accuracy ({result['k']} sampled continuations per cut)")


def draw_latent_vs_verbal(result: LatentSection, axes=None) -> Figure:
    """Latent (linear probe) against verbal confidence of the same probes, per cut level (or
    ablation condition): AUROC, ECE, Brier with 95% bands."""
    fig, axes, new = _panels(axes, 1, len(LATENT_PANELS), (4.2, 3.8), sharex=True)
    levels = result["levels"]
    categorical = any(isinstance(r["level"], str) for r in levels)
    colors = sns.color_palette("colorblind", 2)
    for color, kind, label in zip(colors, ("latent", "verbal"),
                                  (f"latent (probe, layer {result['best_layer']})", f"verbal ({result['source']})")):
        rows = [r for r in levels if r[kind].get("n")]
        x = list(range(len(rows))) if categorical else [r["fraction_realised"] for r in rows]
        for ax, key in zip(axes, LATENT_PANELS):
            _band(ax, [r[kind] for r in rows], x, key, color, label)
            ax.set_title(METRICS[key].axis_label)
            if categorical:
                ax.set_xticks(range(len(rows)), [r["level"] for r in rows], rotation=30, ha="right")
            else:
                ax.set_xlabel(COT_AXIS)
                ax.set_xlim(-0.02, 1.02)
    axes[0].axhline(0.5, color="grey", lw=0.8, ls=":")
    axes[0].legend(fontsize=7, loc="best")
    return _finish(fig, new, f"Latent vs verbal confidence along the CoT ({result['n_questions']} questions, "
                             f"{result['probe']['folds']}-fold CV grouped by question)")


def draw_latent_layers(result: LatentSection, axes=None) -> Figure:
    """Probe quality per layer: pooled AUROC and Brier with 95% bands, and AUROC per layer at the
    first, middle and last cut level."""
    fig, (left, right), new = _panels(axes, 1, 2, (5, 3.8), sharex=True)
    rows = result["layers"]
    x = [r["layer"] for r in rows]
    colors = sns.color_palette("colorblind", 5)
    _band(left, rows, x, "auroc", colors[0], "all cuts pooled")
    keys = list(rows[0]["auroc_per_level"]) if rows else []
    for color, key in zip(colors[1:], sorted({keys[0], keys[len(keys) // 2], keys[-1]}, key=keys.index) if keys else []):
        left.plot(x, [r["auroc_per_level"][key] for r in rows], ls="--", marker=".", color=color, label=f"cut {key}")
    left.axhline(0.5, color="grey", lw=0.8, ls=":")
    verbal = result["pooled"]["verbal"]
    if verbal.get("n"):
        left.axhline(verbal["auroc"], color="black", lw=1, label="verbal, pooled")
        right.axhline(verbal["brier"], color="black", lw=1, label="verbal, pooled")
    _band(right, rows, x, "brier", colors[0], "latent, all cuts pooled")
    auroc = METRICS["auroc"]
    left.set_title(f"{auroc.label} of the probe ({auroc.direction})")
    right.set_title(METRICS["brier"].axis_label)
    _cot_axes((left, right), xlabel="layer (0 = embeddings)", xlim=None)
    return _finish(fig, new, f"Layer sweep of the latent-confidence probe (best: layer {result['best_layer']})")


def draw_early_exit(result: EarlyExitSection, ax=None) -> Figure:
    """Thinking tokens used (share of the full thought) against accuracy for every replayed
    stopping policy, one colour per family, the Pareto frontier, the full-thought point and the
    oracle (the earliest right cut, in hindsight: the ceiling)."""
    fig, (ax,), new = _panels(ax, 1, 1, (6.4, 4.6))
    rows = result["policies"]
    families = list(dict.fromkeys(r["family"] for r in rows))
    colors = dict(zip(families, sns.color_palette("colorblind", len(families))))
    for family in families:
        mine = sorted((r for r in rows if r["family"] == family), key=lambda r: r["token_share"])
        accuracy = [interval(r, "accuracy") for r in mine]
        ax.errorbar([r["token_share"] for r in mine], [a.estimate for a in accuracy],
                    yerr=[[a.estimate - a.low for a in accuracy], [a.high - a.estimate for a in accuracy]],
                    marker="o", ms=4, lw=0.8, elinewidth=0.5, capsize=0, alpha=0.85, color=colors[family],
                    label=family)
    names = set(result["pareto"])
    front = sorted((r for r in rows if r["policy"] in names), key=lambda r: r["token_share"])
    ax.step([r["token_share"] for r in front], [r["accuracy"] for r in front], where="post", color="black",
            lw=1.2, ls="--", label="Pareto frontier")
    full = result["full"]
    ax.plot([full["token_share"]], [full["accuracy"]], marker="*", ms=14, color="black", ls="none",
            label=f"full thought ({full['accuracy']:.2f})")
    oracle = result["oracle"]
    ax.plot([oracle["token_share"]], [oracle["accuracy"]], marker="D", ms=8, mfc="none", color="black", ls="none",
            label=f"oracle, in hindsight ({oracle['accuracy']:.2f})")
    ax.set_ylabel("accuracy at the stopping cut (95% CI)")
    _cot_axes((ax,), xlabel="thinking tokens used (share of the full thought)", xlim=(-0.02, 1.05))
    ax.set_title(f"Early exit replayed on {result['n_questions']} traces")
    if new:
        fig.tight_layout()
    return fig


def draw_estimators(result: EstimatorSection, axes=None) -> Figure:
    """Every confidence estimator on the same probes: pooled AUROC, Brier, ECE and smooth ECE with
    95% intervals (one row per estimator), and AUROC along the CoT with its band."""
    fig, axes, new = _panels(axes, 1, len(ESTIMATOR_PANELS) + 1, (3.4, 3.6))
    names = [n for n, row in result["estimators"].items() if row["pooled"].get("n")]
    colors = dict(zip(names, sns.color_palette("colorblind", len(names))))
    for ax, key in zip(axes, ESTIMATOR_PANELS):
        for i, name in enumerate(names):
            value, low, high = interval(result["estimators"][name]["pooled"], key)
            err = np.nan_to_num(np.clip([[value - low], [high - value]], 0, None))  # a percentile CI may miss it
            ax.errorbar([value], [i], xerr=err, fmt="o", color=colors[name], capsize=3)
        ax.set_yticks(range(len(names)), names if ax is axes[0] else [""] * len(names))
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_title(f"{METRICS[key].label} ({METRICS[key].direction})", fontsize=9)
    axes[0].axvline(0.5, color="grey", lw=0.8, ls=":")
    for name in names:
        rows = [r for r in result["estimators"][name]["levels"] if has_interval(r, "auroc") and r["auroc"] == r["auroc"]]
        _band(axes[-1], rows, [r["fraction_realised"] for r in rows], "auroc", colors[name], name)
    axes[-1].axhline(0.5, color="grey", lw=0.8, ls=":")
    axes[-1].set_title("AUROC along the CoT (95% CI)", fontsize=9)
    _cot_axes(axes[-1:])
    return _finish(fig, new, f"Confidence estimators on the same {result['n_probes']} cut probes "
                             f"({result['n_questions']} questions; pooled over cuts, 95% question-clustered CI)")


# ------------------------------------------------------------- draw and save, for the stages


def plot_progress(results: dict[str, CutSection], stem: str | Path, title: str | None = None) -> Path:
    return save(draw_progress(results, title=title), stem)


def plot_behaviour_frequency(section: BehaviourSection, stem: str | Path) -> Path:
    return save(draw_behaviour_frequency(section), stem)


def plot_conditions(result: ConditionSection, stem: str | Path, title: str = "") -> Path:
    return save(draw_conditions(result, title=title), stem)


def plot_trajectories(traces: list[dict[str, Any]], stem: str | Path, source: str = "expected",
                      columns: int = 3) -> Path:
    return save(draw_trajectories(traces, source=source, columns=columns), stem)


def plot_prefix_accuracy(result: PrefixSection, stem: str | Path) -> Path:
    return save(draw_prefix_accuracy(result), stem)


def plot_latent_vs_verbal(result: LatentSection, stem: str | Path) -> Path:
    return save(draw_latent_vs_verbal(result), stem)


def plot_latent_layers(result: LatentSection, stem: str | Path) -> Path:
    return save(draw_latent_layers(result), stem)


def plot_estimators(result: EstimatorSection, stem: str | Path) -> Path:
    return save(draw_estimators(result), stem)


def plot_early_exit(result: EarlyExitSection, stem: str | Path) -> Path:
    return save(draw_early_exit(result), stem)
