"""Calibration metrics, bootstrap intervals and trend tests over numpy arrays.

Every metric takes ``confidence`` (floats in [0, 1]) and ``correct`` (0/1 or bool), both
1-D and of equal, non-zero length; anything else raises ``ValueError`` saying why.

Binning convention for ``ece(..., binning="width")``: bin k of n is [k/n, (k+1)/n), the
last bin [1 - 1/n, 1] is closed. The bin index is ``floor(conf * n + 1e-9)`` clipped to
n - 1, so values on an edge (0.3, 0.6, 0.7 with n = 10) land in the bin that starts
there, not in the one below as float edge comparisons can make them.

Bootstrap intervals are percentile intervals. With ``clusters`` (e.g. question ids when
each question appears at several chain-of-thought cut levels) whole clusters are
resampled with replacement, keeping all their rows. Replicates that come out NaN (e.g.
AUROC of a one-class resample) are dropped; if more than half do, the interval is NaN.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats

Metric = Callable[[np.ndarray, np.ndarray], float]


@dataclass
class Diff:
    """metric(A) - metric(B) on paired data, its bootstrap interval and two-sided p."""

    estimate: float
    low: float
    high: float
    p_value: float


@dataclass
class Slope:
    """A fitted trend of a metric over cut level, with interval and p-value for the slope."""

    slope: float
    intercept: float
    p_value: float
    low: float
    high: float


# ---------------------------------------------------------------- validation


def _check(confidence, correct) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(confidence, dtype=float)
    y = np.asarray(correct)
    if c.ndim != 1 or y.ndim != 1:
        raise ValueError(f"confidence and correct must be 1-D, got shapes {c.shape} and {y.shape}")
    if c.shape != y.shape:
        raise ValueError(f"length mismatch: {c.size} confidences but {y.size} correctness labels")
    if c.size == 0:
        raise ValueError("empty input: need at least one (confidence, correct) pair")
    if np.isnan(c).any():
        raise ValueError(f"confidence contains NaN at index {int(np.flatnonzero(np.isnan(c))[0])}")
    bad = (c < 0) | (c > 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"confidence must lie in [0, 1], got {c[i]!r} at index {i}")
    y = y.astype(float)
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("correct must contain only 0/1 or True/False")
    return c, y


def _check_clusters(clusters, n: int) -> np.ndarray:
    g = np.asarray(clusters)
    if g.ndim != 1 or g.size != n:
        raise ValueError(f"clusters must be 1-D with one id per row ({n}), got shape {g.shape}")
    return g


# ---------------------------------------------------------------- point metrics


def accuracy(correct) -> float:
    """Fraction of correct answers."""
    y = np.asarray(correct, dtype=float)
    return float(_check(np.zeros(y.shape), y)[1].mean())


def brier(confidence, correct) -> float:
    """Mean squared error between confidence and the 0/1 outcome."""
    c, y = _check(confidence, correct)
    return float(np.mean((c - y) ** 2))


def _bin_index(c: np.ndarray, n_bins: int, binning: str) -> np.ndarray:
    if binning == "class":
        return np.unique(c, return_inverse=True)[1].ravel()
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if binning == "width":
        return np.clip(np.floor(c * n_bins + 1e-9).astype(int), 0, n_bins - 1)
    if binning == "mass":
        # Quantile edges; equal values always share a bin, so ties can make bins unequal.
        edges = np.quantile(c, np.linspace(0, 1, n_bins + 1)[1:-1])
        return np.searchsorted(edges, c, side="right")
    raise ValueError(f"unknown binning {binning!r}: use 'width', 'mass' or 'class'")


def ece(confidence, correct, n_bins: int = 10, binning: str = "width") -> float:
    """Expected calibration error: sum over bins of (n_b / N) * |acc_b - conf_b|.

    binning: "width" (n_bins equal-width bins on [0, 1], see module doc for edges),
    "mass" (n_bins quantile bins) or "class" (one bin per distinct confidence value,
    e.g. the ten verbal classes; n_bins is ignored). Empty bins contribute nothing.
    """
    c, y = _check(confidence, correct)
    idx = _bin_index(c, n_bins, binning)
    gap = np.bincount(idx, weights=y) - np.bincount(idx, weights=c)
    return float(np.abs(gap).sum() / c.size)


def auroc(confidence, correct) -> float:
    """Area under the ROC curve of confidence as a score for correctness.

    Mann-Whitney form with average ranks for ties (same as sklearn's roc_auc_score).
    Returns NaN with a warning when all answers are correct or all incorrect.
    """
    c, y = _check(confidence, correct)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        which = "incorrect" if n_pos == 0 else "correct"
        warnings.warn(f"AUROC undefined: all answers {which}", RuntimeWarning, stacklevel=2)
        return float("nan")
    ranks = stats.rankdata(c)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ---------------------------------------------------------------- bootstrap


def _sampler(n: int, clusters) -> Callable[[np.random.Generator], np.ndarray]:
    """Return draw(rng) -> row indices of one (cluster) bootstrap resample."""
    if clusters is None:
        return lambda rng: rng.integers(0, n, n)
    codes = np.unique(_check_clusters(clusters, n), return_inverse=True)[1].ravel()
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.cumsum(counts) - counts

    def draw(rng):  # rows of the drawn clusters, concatenated
        pick = rng.integers(0, counts.size, counts.size)
        lens = counts[pick]
        shift = np.repeat(starts[pick] - (np.cumsum(lens) - lens), lens)
        return order[shift + np.arange(lens.sum())]

    return draw


def _replicates(stat: Callable[[np.ndarray], float], draw, n_resamples: int, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([stat(draw(rng)) for _ in range(n_resamples)], dtype=float)


def _valid(reps: np.ndarray) -> np.ndarray | None:
    ok = reps[~np.isnan(reps)]
    return None if 2 * ok.size < reps.size or ok.size == 0 else ok


def _interval(reps: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    ok = _valid(reps)
    if ok is None:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    low, high = np.quantile(ok, [alpha, 1 - alpha])
    return float(low), float(high)


def _p_two_sided(reps: np.ndarray) -> float:
    ok = _valid(reps)
    if ok is None:
        return float("nan")
    return float(min(1.0, 2 * min(np.mean(ok <= 0), np.mean(ok >= 0))))


def bootstrap_ci(metric: Metric, confidence, correct, clusters=None, n_resamples: int = 1000,
                 level: float = 0.95, seed=0) -> tuple[float, float]:
    """Percentile bootstrap interval (low, high) of metric(confidence, correct).

    With clusters, resample clusters with replacement and take all rows of each.
    """
    c, y = _check(confidence, correct)
    reps = _replicates(lambda i: metric(c[i], y[i]), _sampler(c.size, clusters), n_resamples, seed)
    return _interval(reps, level)


def paired_bootstrap_diff(metric: Metric, conf_a, correct_a, conf_b, correct_b,
                          n_resamples: int = 1000, level: float = 0.95, seed=0) -> Diff:
    """metric(A) - metric(B) where row i of A and of B is the same question.

    Question indices are resampled jointly; p_value = 2 * min(P(diff <= 0), P(diff >= 0)).
    """
    ca, ya = _check(conf_a, correct_a)
    cb, yb = _check(conf_b, correct_b)
    if ca.size != cb.size:
        raise ValueError(f"paired conditions differ in length: {ca.size} vs {cb.size}")
    estimate = metric(ca, ya) - metric(cb, yb)
    reps = _replicates(lambda i: metric(ca[i], ya[i]) - metric(cb[i], yb[i]),
                       _sampler(ca.size, None), n_resamples, seed)
    return Diff(float(estimate), *_interval(reps, level), _p_two_sided(reps))


def summarize(confidence, correct, clusters=None, n_bins: int = 10, n_resamples: int = 1000,
              level: float = 0.95, seed=0) -> dict:
    """n, accuracy, ece, brier, auroc, mean_confidence and their `<name>_low/_high` intervals."""
    c, y = _check(confidence, correct)
    metrics = {
        "accuracy": lambda c, y: float(y.mean()),
        "ece": lambda c, y: ece(c, y, n_bins=n_bins),
        "brier": brier,
        "auroc": auroc,
        "mean_confidence": lambda c, y: float(c.mean()),
    }
    out: dict = {"n": int(c.size)}
    for name, fn in metrics.items():
        out[name] = float(fn(c, y))
        low, high = bootstrap_ci(fn, c, y, clusters, n_resamples, level, seed)
        out[f"{name}_low"], out[f"{name}_high"] = low, high
    return out


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


def _level_fit(metric: Metric, f, c, y, codes, n_groups: int) -> tuple[float, float]:
    xs = np.full(n_groups, np.nan)
    vs = np.full(n_groups, np.nan)
    for g in range(n_groups):
        m = codes == g
        if m.any():
            xs[g], vs[g] = f[m].mean(), metric(c[m], y[m])
    ok = ~(np.isnan(xs) | np.isnan(vs))
    x, v = xs[ok], vs[ok]
    if x.size < 2 or np.ptp(x) == 0:
        return float("nan"), float("nan")
    dx = x - x.mean()
    slope = float(dx @ (v - v.mean()) / (dx @ dx))
    return slope, float(v.mean() - slope * x.mean())


def slope_clustered(metric: Metric, fractions, confidence, correct, clusters, levels=None,
                    n_resamples: int = 1000, level: float = 0.95, seed=0) -> Slope:
    """Slope of metric-per-level on mean realised fraction per level, with cluster bootstrap.

    Each question (cluster) contributes one row per cut level; rows are grouped by
    `levels` (the requested level; defaults to `fractions`). The whole slope is recomputed
    on resamples of questions, so the shared questions across levels are accounted for
    (unlike slope_ols, which treats the levels as independent points).
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
    slope, intercept = _level_fit(metric, f, c, y, codes, n_groups)
    reps = _replicates(lambda i: _level_fit(metric, f[i], c[i], y[i], codes[i], n_groups)[0],
                       _sampler(c.size, clusters), n_resamples, seed)
    return Slope(slope, intercept, _p_two_sided(reps), *_interval(reps, level))


# ---------------------------------------------------------------- soft targets, proportions


def binomial_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion successes / n (NaN, NaN for n = 0)."""
    if n <= 0:
        return float("nan"), float("nan")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n], got {successes} of {n}")
    z = stats.norm.ppf(0.5 + level / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _check_target(confidence, target) -> tuple[np.ndarray, np.ndarray]:
    c, _ = _check(confidence, np.zeros(np.asarray(confidence).shape))
    t = np.asarray(target, dtype=float)
    if t.shape != c.shape or np.isnan(t).any() or (t < 0).any() or (t > 1).any():
        raise ValueError(f"target must be {c.size} probabilities in [0, 1] (no NaN)")
    return c, t


def brier_target(confidence, target) -> float:
    """Mean squared gap between confidence and a probability target (e.g. P(correct | prefix))."""
    c, t = _check_target(confidence, target)
    return float(np.mean((c - t) ** 2))


def ece_target(confidence, target, n_bins: int = 10) -> float:
    """ECE against a probability target: per equal-width confidence bin, |mean confidence - mean
    target|, weighted by the bin's share (with 0/1 targets it equals `ece`)."""
    c, t = _check_target(confidence, target)
    bins = _bin_index(c, n_bins, "width")
    gaps = [abs(c[bins == b].mean() - t[bins == b].mean()) * np.mean(bins == b)
            for b in np.unique(bins)]
    return float(np.sum(gaps))


def bootstrap_stat(stat: Callable[[np.ndarray], float], n: int, clusters=None, n_resamples: int = 1000,
                   level: float = 0.95, seed=0) -> tuple[float, float]:
    """Percentile bootstrap interval of stat(rows), rows an index array of a (cluster) resample of
    range(n): for statistics that are not a metric(confidence, correct)."""
    return _interval(_replicates(stat, _sampler(n, clusters), n_resamples, seed), level)


# ---------------------------------------------------------------- per-question trajectory


def trajectory(values) -> dict:
    """Shape of one question's confidence sequence along its cuts.

    Returns first, last, change (last - first), largest_jump (signed value of the largest
    absolute consecutive change; 0 for fewer than two values) and direction_changes (sign
    flips among the nonzero consecutive differences). first/last/change are NaN when empty.
    """
    v = np.asarray(values, dtype=float).ravel()
    if np.isnan(v).any():
        raise ValueError("trajectory values contain NaN; drop unparsed probes first")
    if v.size == 0:
        nan = float("nan")
        return {"first": nan, "last": nan, "change": nan, "largest_jump": 0.0, "direction_changes": 0}
    d = np.diff(v)
    s = np.sign(d[d != 0])
    return {
        "first": float(v[0]),
        "last": float(v[-1]),
        "change": float(v[-1] - v[0]),
        "largest_jump": float(d[np.argmax(np.abs(d))]) if d.size else 0.0,
        "direction_changes": int(np.count_nonzero(s[1:] != s[:-1])),
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m cotprobe.metrics RUN_DIR`: tables from a run's records (see cotprobe.summary)."""
    from .cli import run_main
    from .summary import main as summary_main

    return run_main(summary_main, argv)


if __name__ == "__main__":
    import sys

    sys.exit(main())
