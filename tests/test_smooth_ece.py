"""Smooth ECE through relplot: the value is relplot's, the bootstrap scores resamples at the full
sample's bandwidth, and the tables, trends and paired differences carry it."""

import numpy as np
import pytest

relplot = pytest.importorskip("relplot")

from cotprobe import metrics  # noqa: E402
from cotprobe.metrics import Resampling, bootstrap_ci, paired_bootstrap_diff, slope_clustered, smooth_ece  # noqa: E402


def _sample(n, seed=0):
    rng = np.random.default_rng(seed)
    conf = rng.uniform(size=n)
    return conf, (rng.uniform(size=n) < conf ** 2).astype(float)


def test_smooth_ece_is_relplots_smece():
    for seed, n in ((0, 50), (1, 300), (2, 1000)):
        conf, y = _sample(n, seed)
        assert smooth_ece(conf, y) == pytest.approx(float(relplot.smECE(conf, y)), abs=1e-12)
        value, sigma = relplot.smECE(conf, y, return_width=True)
        assert smooth_ece.tuning(conf, y) == pytest.approx(sigma)
        assert float(relplot.smECE_sigma(conf, y, sigma)) == pytest.approx(value)


def test_smooth_ece_edge_cases_all_correct_one_question_constant_confidence():
    conf = np.array([0.9, 0.8, 0.95, 0.7])
    ones = np.ones(4)
    assert smooth_ece(conf, ones) == pytest.approx(float(relplot.smECE(conf, ones)))
    assert 0 < smooth_ece(conf, ones) <= 1  # all correct, confidence below 1: miscalibrated
    assert smooth_ece(np.ones(5), np.ones(5)) == pytest.approx(float(relplot.smECE(np.ones(5), np.ones(5))))
    assert smooth_ece([0.7], [1]) == pytest.approx(float(relplot.smECE(np.array([0.7]), np.array([1.0]))))
    flat = np.full(40, 0.6)
    y = (np.arange(40) % 2).astype(float)  # accuracy 0.5 at constant confidence 0.6
    assert smooth_ece(flat, y) == pytest.approx(float(relplot.smECE(flat, y)))
    assert smooth_ece(flat, y) == pytest.approx(0.1, abs=0.02)  # the one gap, smoothed
    with pytest.raises(ValueError, match="lie in"):
        smooth_ece([1.2], [1])


def test_bootstrap_scores_resamples_at_the_full_sample_bandwidth():
    conf, y = _sample(120, 3)
    sigma = relplot.smECE(conf, y, return_width=True)[1]
    rng = np.random.default_rng(7)
    reps = [float(relplot.smECE_sigma(conf[i], y[i], sigma)) for i in (rng.integers(0, 120, 120) for _ in range(60))]
    assert bootstrap_ci(smooth_ece, conf, y, n_resamples=60, seed=7) == pytest.approx(
        tuple(np.quantile(reps, [0.025, 0.975])))


def test_clustered_interval_and_summary_hold_smooth_ece():
    conf, y = _sample(90, 4)
    q = np.repeat(np.arange(30), 3)
    out = metrics.summarize(conf, y, clusters=q, n_resamples=50)
    assert out["smooth_ece"] == pytest.approx(float(relplot.smECE(conf, y)))
    assert out["smooth_ece_low"] <= out["smooth_ece"] <= out["smooth_ece_high"]
    one = metrics.summarize(conf[:3], y[:3], clusters=q[:3], n_resamples=20)  # one question: one cluster
    assert one["smooth_ece_low"] == pytest.approx(one["smooth_ece"]) == pytest.approx(one["smooth_ece_high"])


def test_paired_difference_and_slope_of_smooth_ece():
    conf, y = _sample(80, 5)
    other = np.clip(conf * 0.5 + 0.5, 0, 1)
    d = paired_bootstrap_diff(smooth_ece, conf, y, other, y, Resampling(40))
    assert d.estimate == pytest.approx(float(relplot.smECE(conf, y)) - float(relplot.smECE(other, y)))
    levels = np.repeat([0.0, 0.5, 1.0], 80)
    c3, y3 = np.concatenate([conf, other, conf]), np.concatenate([y, y, y])
    s = slope_clustered(smooth_ece, levels, c3, y3, np.tile(np.arange(80), 3), resampling=Resampling(30))
    per_level = [float(relplot.smECE(c3[levels == v], y3[levels == v])) for v in (0.0, 0.5, 1.0)]
    assert s.slope == pytest.approx(np.polyfit([0.0, 0.5, 1.0], per_level, 1)[0])


def test_tables_cap_smooth_ece_resamples_and_keep_the_others():
    from cotprobe.metrics import METRICS
    from cotprobe.metrics.table import SMOOTH_ECE_RESAMPLES

    conf, y = _sample(60, 6)
    q = np.repeat(np.arange(20), 3)
    out = metrics.summarize(conf, y, clusters=q, n_resamples=400, seed=2)
    assert METRICS["smooth_ece"].resamples(400) == SMOOTH_ECE_RESAMPLES == 200
    assert METRICS["ece"].resamples(400) == 400
    assert (out["smooth_ece_low"], out["smooth_ece_high"]) == pytest.approx(
        bootstrap_ci(smooth_ece, conf, y, q, n_resamples=200, seed=2))
    assert (out["ece_low"], out["ece_high"]) == pytest.approx(
        bootstrap_ci(metrics.ece, conf, y, q, n_resamples=400, seed=2))
