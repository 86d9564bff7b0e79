"""The one table of metric facts: name, labels, direction and function of every reported metric.

Tables (`cotprobe.summary`), figures (`cotprobe.plots`), the report and the analyses read their
column names, axis labels and "better" directions here, and `summarize` computes the metrics in
this order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from .bootstrap import bootstrap_ci
from .scores import Metric, _check, accuracy, auroc, brier, ece, smooth_ece
from .sections import Summary, interval_fields


@dataclass(frozen=True)
class MetricFacts:
    """What every table and figure needs to know about one metric."""

    name: str  # key in metrics.json and in every table row
    label: str  # short name for column heads, legends and panel titles
    axis_label: str  # axis label with the unit and the direction
    higher_is_better: bool | None  # None: a descriptive quantity with no better direction
    fn: Metric  # fn(confidence, correct) -> float
    max_resamples: int | None = None  # a costly metric's cap on bootstrap resamples (None: as asked)

    def resamples(self, n_resamples: int) -> int:
        """The bootstrap resamples this metric's intervals take when `n_resamples` are asked for."""
        return n_resamples if self.max_resamples is None else min(n_resamples, self.max_resamples)

    @property
    def direction(self) -> str:
        """'higher is better', 'lower is better' or '' (no direction)."""
        if self.higher_is_better is None:
            return ""
        return "higher is better" if self.higher_is_better else "lower is better"


def _accuracy(confidence, correct) -> float:
    return accuracy(correct)


def mean_confidence(confidence, correct) -> float:
    """Mean of the confidences (the correctness labels only fix the rows)."""
    return float(np.mean(_check(confidence, correct)[0]))


SMOOTH_ECE_RESAMPLES = 200  # relplot.smECE_sigma is ~0.7 ms a call: 5x the rest of a table's metrics together

METRICS: dict[str, MetricFacts] = {m.name: m for m in (
    MetricFacts("accuracy", "Accuracy", "Accuracy (fraction correct)", True, _accuracy),
    MetricFacts("ece", "ECE", "ECE (prob. units; lower is better)", False, ece),
    MetricFacts("smooth_ece", "smECE", "smECE, smooth ECE (prob. units; lower is better)", False, smooth_ece,
                max_resamples=SMOOTH_ECE_RESAMPLES),
    MetricFacts("brier", "Brier", "Brier score (lower is better)", False, brier),
    MetricFacts("auroc", "AUROC", "AUROC (higher is better)", True, auroc),
    MetricFacts("mean_confidence", "Mean conf.", "Mean confidence", None, mean_confidence),
)}
COMPARED = ("accuracy", "ece", "smooth_ece", "brier", "auroc")  # compared between conditions and along the CoT
CALIBRATION = ("ece", "brier", "auroc")  # the paper's three calibration metrics


def metric_fns(names: tuple[str, ...] = COMPARED) -> dict[str, Metric]:
    """name -> fn(confidence, correct) for the named metrics (default: the four compared ones)."""
    return {name: METRICS[name].fn for name in names}


def summarize(confidence, correct, clusters=None, n_bins: int = 10, n_resamples: int = 1000,
              level: float = 0.95, seed=0) -> Summary:
    """n, then every metric of METRICS (accuracy, ece, smooth_ece, brier, auroc, mean_confidence)
    with its `<name>_low/_high` bootstrap interval; ece uses n_bins equal-width bins, smooth_ece's
    resamples the bandwidth chosen on all rows (`scores.SmoothECE`), at most SMOOTH_ECE_RESAMPLES
    of them (`MetricFacts.resamples`)."""
    c, y = _check(confidence, correct)
    fns = dict(metric_fns(tuple(METRICS)), ece=partial(ece, n_bins=n_bins))
    out: Summary = {"n": int(c.size)}
    for name, fn in fns.items():
        reps = METRICS[name].resamples(n_resamples)
        out.update(interval_fields(name, float(fn(c, y)), bootstrap_ci(fn, c, y, clusters, reps, level, seed)))
    return out
