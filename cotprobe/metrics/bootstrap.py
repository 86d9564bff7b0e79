"""Percentile bootstrap intervals, plain or resampling whole clusters, and paired differences.

See `cotprobe.metrics` for the rules (NaN replicates, cluster resampling)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .scores import Metric, _check, _check_clusters, for_resamples


@dataclass
class Diff:
    """metric(A) - metric(B) on paired data, its bootstrap interval and two-sided p."""

    estimate: float
    low: float
    high: float
    p_value: float


@dataclass(frozen=True)
class Resampling:
    """How a bootstrap resamples: B resamples, the interval's level, the seed."""

    n_resamples: int = 1000
    level: float = 0.95
    seed: int = 0


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
    """Two-sided bootstrap p-value, floored at 1/(B+1): B resamples cannot show a smaller one
    (a p-value of 0 would claim more than the bootstrap measured)."""
    ok = _valid(reps)
    if ok is None:
        return float("nan")
    return float(max(1.0 / (ok.size + 1), min(1.0, 2 * min(np.mean(ok <= 0), np.mean(ok >= 0)))))


def bootstrap_ci(metric: Metric, confidence, correct, clusters=None, n_resamples: int = 1000,
                 level: float = 0.95, seed=0) -> tuple[float, float]:
    """Percentile bootstrap interval (low, high) of metric(confidence, correct).

    With clusters, resample clusters with replacement and take all rows of each. A `Tuned` metric
    (smooth ECE) scores the resamples at the tuning chosen on all rows (`scores.for_resamples`).
    """
    c, y = _check(confidence, correct)
    fn = for_resamples(metric, c, y)
    reps = _replicates(lambda i: fn(c[i], y[i]), _sampler(c.size, clusters), n_resamples, seed)
    return _interval(reps, level)


def paired_bootstrap_diff(metric: Metric, conf_a, correct_a, conf_b, correct_b,
                          resampling: Resampling = Resampling()) -> Diff:
    """metric(A) - metric(B) where row i of A and of B is the same question.

    Question indices are resampled jointly (a `Tuned` metric keeps each side's full-sample tuning);
    p_value = 2 * min(P(diff <= 0), P(diff >= 0)),
    floored at 1/(B+1) (see `bootstrap_diff`).
    """
    ca, ya = _check(conf_a, correct_a)
    cb, yb = _check(conf_b, correct_b)
    if ca.size != cb.size:
        raise ValueError(f"paired conditions differ in length: {ca.size} vs {cb.size}")
    fa, fb = for_resamples(metric, ca, ya), for_resamples(metric, cb, yb)
    return bootstrap_diff(lambda i: fa(ca[i], ya[i]) - fb(cb[i], yb[i]), ca.size, None, resampling)


def bootstrap_diff(diff: Callable[[np.ndarray], float], n: int, clusters=None,
                   resampling: Resampling = Resampling()) -> Diff:
    """A difference statistic diff(rows) over rows range(n): its value on all rows, the percentile
    interval over (cluster) resamples of the rows, and the two-sided p-value of a zero difference,
    floored at 1/(B+1). Both sides of the difference see the same resample."""
    reps = _replicates(diff, _sampler(n, clusters), resampling.n_resamples, resampling.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        estimate = float(diff(np.arange(n)))
    return Diff(estimate, *_interval(reps, resampling.level), _p_two_sided(reps))


def bootstrap_stat(stat: Callable[[np.ndarray], float], n: int, clusters=None, n_resamples: int = 1000,
                   level: float = 0.95, seed=0) -> tuple[float, float]:
    """Percentile bootstrap interval of stat(rows), rows an index array of a (cluster) resample of
    range(n): for statistics that are not a metric(confidence, correct)."""
    return _interval(_replicates(stat, _sampler(n, clusters), n_resamples, seed), level)
