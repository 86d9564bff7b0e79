"""Trends of a metric over chain-of-thought cut level: per-level OLS and the question-clustered slope."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .bootstrap import Resampling, _interval, _p_two_sided, _replicates, _sampler
from .scores import Metric, _check, for_resamples


@dataclass
class Slope:
    """A fitted trend of a metric over cut level, with interval and p-value for the slope."""

    slope: float
    intercept: float
    p_value: float
    low: float
    high: float


# ---------------------------------------------------------------- trends over cut level


def slope_ols(levels, values) -> Slope:
    """OLS of per-level metric values on level (scipy linregress), t-based CI of the slope.

    Pairs with a NaN value are dropped; at least 3 must remain.
    """
    x = np.asarray(levels, dtype=float)
    v = np.asarray(values, dtype=float)
    if x.shape != v.shape or x.ndim != 1:
        raise ValueError(f"levels and values must be 1-D of equal length, got {x.shape}, {v.shape}")
    ok = ~(np.isnan(x) | np.isnan(v))
    if ok.sum() < 3:
        raise ValueError(f"need at least 3 non-NaN points for a slope test, got {int(ok.sum())}")
    r = stats.linregress(x[ok], v[ok])
    half = stats.t.ppf(0.975, ok.sum() - 2) * r.stderr
    return Slope(float(r.slope), float(r.intercept), float(r.pvalue),
                 float(r.slope - half), float(r.slope + half))


def _level_fit(fns: list[Metric], f, c, y, codes) -> tuple[float, float]:
    """OLS slope and intercept of fns[g](rows of level g) on the levels' mean fraction."""
    n_groups = len(fns)
    xs = np.full(n_groups, np.nan)
    vs = np.full(n_groups, np.nan)
    for g in range(n_groups):
        m = codes == g
        if m.any():
            xs[g], vs[g] = f[m].mean(), fns[g](c[m], y[m])
    ok = ~(np.isnan(xs) | np.isnan(vs))
    x, v = xs[ok], vs[ok]
    if x.size < 2 or np.ptp(x) == 0:
        return float("nan"), float("nan")
    dx = x - x.mean()
    slope = float(dx @ (v - v.mean()) / (dx @ dx))
    return slope, float(v.mean() - slope * x.mean())


def slope_clustered(metric: Metric, fractions, confidence, correct, clusters, levels=None,
                    resampling: Resampling = Resampling()) -> Slope:
    """Slope of metric-per-level on mean realised fraction per level, with cluster bootstrap.

    Each question (cluster) contributes one row per cut level; rows are grouped by
    `levels` (the requested level; defaults to `fractions`). The whole slope is recomputed
    on resamples of questions, so the shared questions across levels are accounted for
    (unlike slope_ols, which treats the levels as independent points). A `Tuned` metric (smooth
    ECE) scores each level of a resample at the tuning chosen on that level's full rows.
    """
    c, y = _check(confidence, correct)
    f = np.asarray(fractions, dtype=float)
    if f.shape != c.shape or np.isnan(f).any():
        raise ValueError("fractions must be finite with one value per row")
    lv = f if levels is None else np.asarray(levels)
    if lv.shape != c.shape:
        raise ValueError(f"levels must have one value per row ({c.size}), got shape {lv.shape}")
    codes = np.unique(lv, return_inverse=True)[1].ravel()
    n_groups = int(codes.max()) + 1
    fns = [for_resamples(metric, c[codes == g], y[codes == g]) if (codes == g).any() else metric
           for g in range(n_groups)]
    slope, intercept = _level_fit(fns, f, c, y, codes)
    reps = _replicates(lambda i: _level_fit(fns, f[i], c[i], y[i], codes[i])[0],
                       _sampler(c.size, clusters), resampling.n_resamples, resampling.seed)
    return Slope(slope, intercept, _p_two_sided(reps), *_interval(reps, resampling.level))
