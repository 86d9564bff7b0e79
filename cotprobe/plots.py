"""Figures. Numbers come from `cotprobe.summary` / `cotprobe.metrics`; this module only draws."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

PANELS = [("ece", "ECE (lower is better)"), ("brier", "Brier score (lower is better)"),
          ("auroc", "AUROC (higher is better)"), ("accuracy", "Accuracy")]


def style() -> None:
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.2)


def save(fig: Any, stem: str | Path) -> Path:
    """Write stem.png (200 dpi) and stem.svg; return the PNG path."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(stem.with_suffix(".png"), dpi=200, bbox_inches="tight")
    fig.savefig(stem.with_suffix(".svg"), bbox_inches="tight")
    plt.close(fig)
    return stem.with_suffix(".png")


def plot_progress(results: dict[str, dict[str, Any]], stem: str | Path) -> Path:
    """Calibration against CoT progress: one panel per metric, one line + 95% band per run."""
    style()
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.8), sharex=True)
    colors = sns.color_palette("colorblind", len(results))
    for color, (label, result) in zip(colors, results.items()):
        rows = [r for r in result["levels"] if "accuracy" in r]
        x = [r["fraction_realised"] for r in rows]
        for ax, (key, title) in zip(axes, PANELS):
            trend = result["trends"].get(key, {}).get("clustered")
            name = label if trend is None else f"{label}\nslope {trend['slope']:+.2f} [{trend['low']:+.2f}, {trend['high']:+.2f}]"
            ax.plot(x, [r[key] for r in rows], marker="o", ms=4, color=color, label=name)
            ax.fill_between(x, [r[key + "_low"] for r in rows], [r[key + "_high"] for r in rows],
                            color=color, alpha=0.2, linewidth=0)
            ax.set_title(title)
            ax.set_xlabel("fraction of CoT kept (tokens)")
            ax.set_xlim(-0.02, 1.02)
    for ax in axes:
        ax.legend(fontsize=7, loc="best", title="95% CI bands; slope per unit CoT", title_fontsize=7)
    fig.suptitle(f"Calibration along the chain of thought (confidence: {next(iter(results.values()))['source']})")
    fig.tight_layout()
    return save(fig, stem)
