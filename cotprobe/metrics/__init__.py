"""Calibration metrics, bootstrap intervals and trend tests over numpy arrays.

Every metric takes ``confidence`` (floats in [0, 1]) and ``correct`` (0/1 or bool), both
1-D and of equal, non-zero length; anything else raises ``ValueError`` saying why.

Binning convention for ``ece(..., binning="width")``: bin k of n is [k/n, (k+1)/n), the
last bin [1 - 1/n, 1] is closed. The bin index is ``floor(conf * n + 1e-9)`` clipped to
n - 1, so values on an edge (0.3, 0.6, 0.7 with n = 10) land in the bin that starts
there, not in the one below as float edge comparisons can make them.

``smooth_ece`` is relplot's smooth ECE (``relplot.smECE``, no bins, its own bandwidth); its
bootstrap resamples are scored at the bandwidth the full rows chose (``scores.SmoothECE``).

Bootstrap intervals are percentile intervals. With ``clusters`` (e.g. question ids when
each question appears at several chain-of-thought cut levels) whole clusters are
resampled with replacement, keeping all their rows. Replicates that come out NaN (e.g.
AUROC of a one-class resample) are dropped; if more than half do, the interval is NaN.

Layout: `scores` (point metrics), `bootstrap` (intervals, paired differences), `trends` (slopes
over cut level), `table` (the metric facts every table and figure reads), `sections` (the typed
shape of metrics.json and the accessors of its computed keys). The command
`python -m cotprobe.metrics RUN_DIR` lives in `__main__` and is not imported here, so this
package needs only numpy and scipy (and relplot, imported when smooth ECE is first computed).
"""

from . import sections
from .bootstrap import Diff, Resampling, bootstrap_ci, bootstrap_diff, bootstrap_stat, paired_bootstrap_diff
from .scores import (
    Metric,
    _bin_index,
    accuracy,
    auroc,
    binomial_ci,
    brier,
    brier_target,
    ece,
    ece_target,
    for_resamples,
    smooth_ece,
    trajectory,
)
from .table import (
    CALIBRATION,
    COMPARED,
    METRICS,
    MetricFacts,
    mean_confidence,
    metric_fns,
    summarize,
)
from .trends import Slope, slope_clustered, slope_ols

__all__ = [
    "CALIBRATION", "COMPARED", "METRICS", "Diff", "Metric", "MetricFacts", "Resampling", "Slope", "_bin_index",
    "accuracy", "auroc", "binomial_ci", "bootstrap_ci", "bootstrap_diff", "bootstrap_stat", "brier", "brier_target",
    "ece", "ece_target", "for_resamples", "mean_confidence", "metric_fns", "paired_bootstrap_diff", "sections",
    "slope_clustered", "slope_ols", "smooth_ece", "summarize", "trajectory",
]
