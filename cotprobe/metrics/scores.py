"""Point metrics over (confidence, correct) arrays: accuracy, Brier, ECE, smooth ECE, AUROC, their
soft-target forms, the Wilson interval of a proportion and the shape of one confidence trajectory.

See `cotprobe.metrics` for the input rules and the binning convention."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

Metric = Callable[[np.ndarray, np.ndarray], float]


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


# ---------------------------------------------------------------- smooth ECE (relplot)


@dataclass(frozen=True)
class Tuned:
    """A metric with a tuning it chooses from the rows it scores (smooth ECE's kernel bandwidth).

    Called, it chooses the tuning and scores (`fn`). `frozen(c, y)` is the metric at the tuning
    chosen on (c, y), for the bootstrap resamples of those rows: the interval then measures the
    sampling variation of the calibration error at the full sample's bandwidth, not that of the
    bandwidth search (which would cost its search on every resample, see `smooth_ece`)."""

    fn: Callable[[np.ndarray, np.ndarray], tuple[float, float]]  # (c, y) -> (value, tuning)
    at: Callable[[np.ndarray, np.ndarray, float], float]  # (c, y, tuning) -> value

    def __call__(self, confidence, correct) -> float:
        return self.fn(*_check(confidence, correct))[0]

    def tuning(self, confidence, correct) -> float:
        return self.fn(*_check(confidence, correct))[1]

    def frozen(self, confidence, correct) -> Metric:
        tuning = self.tuning(confidence, correct)
        return lambda c, y: self.at(*_check(c, y), tuning)


def for_resamples(metric: Metric, confidence, correct) -> Metric:
    """The form of `metric` a bootstrap applies to the resamples of (confidence, correct): the
    metric itself, or a `Tuned` one at the tuning the full rows chose."""
    return metric.frozen(confidence, correct) if isinstance(metric, Tuned) else metric


def _smece_tuned(c: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    import relplot  # imported on first use: it loads matplotlib, pandas and scikit-learn

    value, sigma = relplot.smECE(c, y, return_width=True)
    return float(value), float(sigma)


def _smece_at(c: np.ndarray, y: np.ndarray, sigma: float) -> float:
    import relplot

    return float(relplot.smECE_sigma(c, y, sigma))


class SmoothECE(Tuned):
    """Smooth ECE (Błasiok & Nakkiran, 2023): the calibration error of a kernel-smoothed reliability
    curve, with no bins, through `relplot.smECE` (its automatic bandwidth: the fixed point sigma =
    smECE_sigma(sigma); a reflected Gaussian kernel). Bootstrap intervals (`bootstrap_ci`,
    `slope_clustered`, the paired differences) score every resample with `relplot.smECE_sigma` at
    the bandwidth the full rows chose (`Tuned.frozen`): the search costs about 12 kernel passes a
    call, so 1000 resamples of every cut table, each with its own search, would dominate `metrics`.
    Even at a fixed bandwidth a call costs ~0.7 ms, five times a table's other metrics together, so
    the tables take at most `table.SMOOTH_ECE_RESAMPLES` (200) resamples for it."""


smooth_ece = SmoothECE(_smece_tuned, _smece_at)


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
