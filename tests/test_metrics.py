"""Tests for cotprobe.metrics; sklearn and scipy serve as independent references."""

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import brier_score_loss, roc_auc_score

from cotprobe.metrics import (
    Diff,
    Resampling,
    Slope,
    accuracy,
    auroc,
    bootstrap_ci,
    brier,
    ece,
    paired_bootstrap_diff,
    slope_clustered,
    slope_ols,
    summarize,
    trajectory,
)


def _sample(n, seed=0):
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0, 1, n)
    correct = (rng.uniform(0, 1, n) < conf * 0.8).astype(int)
    return conf, correct


# ---------------------------------------------------------------- references


def test_brier_matches_sklearn_on_random_data():
    conf, y = _sample(500)
    assert brier(conf, y) == pytest.approx(brier_score_loss(y, conf), abs=1e-12)


def test_auroc_matches_sklearn_on_random_data():
    conf, y = _sample(500, seed=1)
    assert auroc(conf, y) == pytest.approx(roc_auc_score(y, conf), abs=1e-12)


def test_auroc_and_brier_match_sklearn_with_ties():
    rng = np.random.default_rng(2)
    conf = rng.integers(0, 10, 300) / 10 + 0.05  # ten verbal classes: many ties
    y = (rng.uniform(size=300) < conf).astype(int)
    assert auroc(conf, y) == pytest.approx(roc_auc_score(y, conf), abs=1e-12)
    assert brier(conf, y) == pytest.approx(brier_score_loss(y, conf), abs=1e-12)


def test_accuracy_is_mean_of_correct_and_accepts_bools():
    assert accuracy([True, False, True, True]) == 0.75


# ---------------------------------------------------------------- ECE, width bins


def test_ece_hand_computed_small_input():
    conf = [0.1, 0.1, 0.35, 0.35, 0.9, 0.9, 0.9, 0.9]
    y = [0, 0, 1, 0, 1, 1, 1, 0]
    # bin [0.1,0.2): n=2, acc 0,    conf 0.1  -> 2/8 * 0.10 = 0.025
    # bin [0.3,0.4): n=2, acc 0.5,  conf 0.35 -> 2/8 * 0.15 = 0.0375
    # bin [0.9,1.0]: n=4, acc 0.75, conf 0.9  -> 4/8 * 0.15 = 0.075
    # ECE = 0.025 + 0.0375 + 0.075 = 0.1375
    assert ece(conf, y) == pytest.approx(0.1375, abs=1e-12)


@pytest.mark.parametrize("edge", [0.3, 0.6, 0.7])
def test_ece_edge_value_lands_in_bin_starting_at_it(edge):
    # Paired with edge + 0.09 (same bin only if edge opens its bin): ECE = |0.5 - mean conf|.
    # Had edge fallen into the bin below, ECE would be ((1 - edge) + (edge + 0.09)) / 2 = 0.545.
    assert ece([edge, edge + 0.09], [1, 0]) == pytest.approx(abs(0.5 - (edge + 0.045)), abs=1e-12)


def test_ece_every_tenth_lands_in_its_own_bin():
    for k in range(10):
        v = k / 10
        assert ece([v, v + 0.05], [1, 0]) == pytest.approx(abs(0.5 - (v + 0.025)), abs=1e-12)
    # n_bins=5: 0.6 opens bin [0.6, 0.8)
    assert ece([0.6, 0.79], [1, 0], n_bins=5) == pytest.approx(abs(0.5 - 0.695), abs=1e-12)


def test_ece_one_is_in_last_bin_and_counted():
    assert ece([1.0], [0]) == 1.0
    assert ece([1.0, 0.95], [1, 0]) == pytest.approx(abs(0.5 - 0.975), abs=1e-12)


def test_ece_zero_is_in_first_bin_and_counted():
    assert ece([0.0], [1]) == 1.0
    assert ece([0.0, 0.05], [1, 0]) == pytest.approx(abs(0.5 - 0.025), abs=1e-12)


def test_ece_all_confident_and_correct_is_zero():
    assert ece(np.ones(50), np.ones(50)) == 0.0


def test_ece_empty_bins_contribute_nothing():
    # only bins 0 and 9 occupied: 1/2 * |0 - 0.05| + 1/2 * |1 - 0.95| = 0.05
    assert ece([0.05, 0.95], [0, 1], n_bins=10) == pytest.approx(0.05, abs=1e-12)
    assert ece([0.05, 0.95], [0, 1], n_bins=100) == pytest.approx(0.05, abs=1e-12)


# ---------------------------------------------------------------- ECE, mass and class bins


def test_ece_mass_bins_split_into_equal_counts():
    conf, y = [0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1]
    # mass, 2 bins: {0.1,0.2} acc 0 conf .15; {0.3,0.4} acc 1 conf .35 -> .5*.15 + .5*.65 = 0.4
    assert ece(conf, y, n_bins=2, binning="mass") == pytest.approx(0.4, abs=1e-12)
    # width, 2 bins: all in [0, .5): |0.5 - 0.25| = 0.25
    assert ece(conf, y, n_bins=2, binning="width") == pytest.approx(0.25, abs=1e-12)


def test_ece_mass_bins_follow_quantiles_not_width():
    # skewed: mass bins are {.01,.02} and {.03,.9}: .5*|0-.015| + .5*|1-.465| = 0.275
    assert ece([0.01, 0.02, 0.03, 0.9], [0, 0, 1, 1], n_bins=2, binning="mass") == pytest.approx(0.275)


def test_ece_mass_bins_keep_ties_together():
    # 0.5 x3 cannot be split across the median edge: bins {0.2} and {0.5,0.5,0.5}
    # -> 1/4*|0-0.2| + 3/4*|2/3-0.5| = 0.05 + 0.125 = 0.175
    assert ece([0.2, 0.5, 0.5, 0.5], [0, 1, 1, 0], n_bins=2, binning="mass") == pytest.approx(0.175)


def test_ece_class_bins_on_ten_midpoints():
    mids = np.arange(10) / 10 + 0.05  # 0.05 .. 0.95, with float noise
    conf = np.repeat(mids, 10)
    # class j holds 10 items with j correct: acc j/10 vs conf j/10 + 0.05 -> gap 0.05 each
    y = np.concatenate([np.arange(10) < j for j in range(10)]).astype(int)
    assert ece(conf, y, binning="class") == pytest.approx(0.05, abs=1e-12)
    assert ece(conf, y, binning="width") == pytest.approx(0.05, abs=1e-12)


def test_ece_class_bins_separate_values_a_width_bin_merges():
    # class: .5*|1-.25| + .5*|0-.3| = 0.525; width n_bins=5 merges both into [.2,.4): |.5-.275|
    assert ece([0.25, 0.3], [1, 0], binning="class") == pytest.approx(0.525)
    assert ece([0.25, 0.3], [1, 0], n_bins=5) == pytest.approx(0.225)


# ---------------------------------------------------------------- AUROC one class


@pytest.mark.parametrize("label,word", [(1, "correct"), (0, "incorrect")])
def test_auroc_one_class_is_nan_with_warning(label, word):
    with pytest.warns(RuntimeWarning, match=f"AUROC undefined: all answers {word}"):
        assert np.isnan(auroc([0.2, 0.5, 0.9], [label] * 3))


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "conf,y,match",
    [
        ([0.5, 1.2], [1, 0], r"\[0, 1\]"),
        ([-0.1, 0.5], [1, 0], r"\[0, 1\]"),
        ([0.5, float("nan")], [1, 0], "NaN"),
        ([0.5, 0.4], [1, 0, 1], "length mismatch"),
        ([], [], "empty"),
        ([0.5, 0.4], [1, 2], "0/1"),
    ],
)
@pytest.mark.parametrize("fn", [ece, brier, auroc])
def test_invalid_inputs_raise_value_error(fn, conf, y, match):
    with pytest.raises(ValueError, match=match):
        fn(conf, y)


def test_ece_rejects_unknown_binning_and_bad_n_bins():
    with pytest.raises(ValueError, match="unknown binning"):
        ece([0.5], [1], binning="quantile")
    with pytest.raises(ValueError, match="n_bins"):
        ece([0.5], [1], n_bins=0)


# ---------------------------------------------------------------- properties

_pairs = st.integers(1, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(0, 1), min_size=n, max_size=n),
        st.lists(st.booleans(), min_size=n, max_size=n),
    )
)


@settings(max_examples=100, deadline=None)
@given(_pairs, st.sampled_from(["width", "mass", "class"]), st.integers(1, 20))
def test_ece_lies_in_unit_interval(pair, binning, n_bins):
    e = ece(*pair, n_bins=n_bins, binning=binning)
    assert 0.0 <= e <= 1.0 + 1e-12


@settings(max_examples=50, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=60))
def test_brier_of_perfect_forecaster_is_zero(y):
    assert brier(np.array(y, dtype=float), y) == 0.0


@settings(max_examples=100, deadline=None)
@given(_pairs, st.data())
def test_metrics_are_permutation_invariant(pair, data):
    conf, y = np.array(pair[0]), np.array(pair[1])
    perm = np.array(data.draw(st.permutations(range(conf.size))))
    for binning in ("width", "mass", "class"):
        assert ece(conf[perm], y[perm], binning=binning) == pytest.approx(ece(conf, y, binning=binning), abs=1e-12)
    assert brier(conf[perm], y[perm]) == pytest.approx(brier(conf, y), abs=1e-12)
    if 0 < y.sum() < y.size:
        assert auroc(conf[perm], y[perm]) == pytest.approx(auroc(conf, y), abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(_pairs)
def test_ece_with_one_width_bin_is_gap_of_means(pair):
    conf, y = np.array(pair[0]), np.array(pair[1], dtype=float)
    assert ece(conf, y, n_bins=1) == pytest.approx(abs(conf.mean() - y.mean()), abs=1e-12)


# ---------------------------------------------------------------- bootstrap_ci


@pytest.mark.parametrize("metric", [ece, brier, auroc])
def test_bootstrap_ci_contains_point_estimate(metric):
    conf, y = _sample(400, seed=3)
    low, high = bootstrap_ci(metric, conf, y, n_resamples=500, seed=1)
    assert low <= metric(conf, y) <= high
    assert low < high


def test_bootstrap_ci_is_deterministic_given_seed():
    conf, y = _sample(200)
    assert bootstrap_ci(brier, conf, y, seed=7) == bootstrap_ci(brier, conf, y, seed=7)


def test_clustered_bootstrap_is_wider_than_naive_on_duplicated_rows():
    conf, y = _sample(100, seed=4)
    conf5, y5, qid = np.repeat(conf, 5), np.repeat(y, 5), np.repeat(np.arange(100), 5)
    naive = bootstrap_ci(brier, conf5, y5, n_resamples=1000, seed=0)
    clustered = bootstrap_ci(brier, conf5, y5, clusters=qid, n_resamples=1000, seed=0)
    # five copies per cluster: clustered width ~ sqrt(5) x naive width
    assert clustered[1] - clustered[0] >= 1.5 * (naive[1] - naive[0])


def test_clustered_bootstrap_with_singleton_clusters_matches_scale_of_naive():
    conf, y = _sample(300, seed=5)
    naive = bootstrap_ci(brier, conf, y, seed=0)
    clustered = bootstrap_ci(brier, conf, y, clusters=np.arange(300), seed=0)
    assert (clustered[1] - clustered[0]) == pytest.approx(naive[1] - naive[0], rel=0.3)


def test_bootstrap_ci_ignores_minority_nan_replicates_without_warnings():
    # one correct among 20: about 36% of resamples are one-class (AUROC NaN)
    conf = np.linspace(0.05, 0.95, 20)
    y = np.zeros(20, dtype=int)
    y[-1] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        low, high = bootstrap_ci(auroc, conf, y, n_resamples=300, seed=0)
    assert np.isfinite(low) and np.isfinite(high)


def test_bootstrap_ci_is_nan_when_most_replicates_are_nan():
    conf, y = _sample(50)
    assert all(np.isnan(bootstrap_ci(lambda c, y: float("nan"), conf, y, n_resamples=50)))


# ---------------------------------------------------------------- paired_bootstrap_diff


def test_paired_diff_of_identical_conditions_is_zero():
    conf, y = _sample(200)
    d = paired_bootstrap_diff(ece, conf, y, conf, y, Resampling(300))
    assert isinstance(d, Diff)
    assert d.estimate == 0.0 and d.low <= 0.0 <= d.high and d.p_value == 1.0


def test_paired_diff_detects_clearly_better_condition():
    rng = np.random.default_rng(6)
    conf_a = rng.uniform(0, 1, 300)
    y = (rng.uniform(size=300) < conf_a).astype(int)  # A calibrated
    conf_b = np.clip(conf_a + 0.3, 0, 1)  # B overconfident on the same answers
    d = paired_bootstrap_diff(ece, conf_a, y, conf_b, y, Resampling(500))
    assert d.estimate < 0 and d.high < 0 and d.p_value < 0.05


def test_paired_diff_rejects_unpaired_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap_diff(brier, [0.5, 0.5], [1, 0], [0.5], [1])


# ---------------------------------------------------------------- summarize


def test_summarize_has_all_keys_and_is_json_serializable():
    conf, y = _sample(150)
    s = summarize(conf, y, clusters=np.arange(150) // 3, n_resamples=200)
    names = ["accuracy", "ece", "smooth_ece", "brier", "auroc", "mean_confidence"]
    assert set(s) == {"n", *names, *(f"{m}_{b}" for m in names for b in ("low", "high"))}
    assert s["n"] == 150 and s["brier"] == pytest.approx(brier(conf, y))
    assert all(type(v) is float for k, v in s.items() if k != "n")
    for m in names:
        assert s[f"{m}_low"] <= s[m] <= s[f"{m}_high"]
    json.dumps(s)


def test_summarize_one_class_gives_nan_auroc():
    with pytest.warns(RuntimeWarning, match="all answers correct"):
        s = summarize([0.3, 0.8, 0.9], [1, 1, 1], n_resamples=50)
    assert np.isnan(s["auroc"]) and np.isnan(s["auroc_low"]) and s["accuracy"] == 1.0


# ---------------------------------------------------------------- slopes


def test_slope_ols_matches_scipy_linregress():
    x = np.linspace(0, 1, 11)
    v = 0.3 + 0.5 * x + np.random.default_rng(7).normal(0, 0.05, 11)
    s, r = slope_ols(x, v), stats.linregress(x, v)
    half = stats.t.ppf(0.975, 9) * r.stderr
    assert isinstance(s, Slope)
    assert (s.slope, s.intercept, s.p_value) == pytest.approx((r.slope, r.intercept, r.pvalue))
    assert (s.low, s.high) == pytest.approx((r.slope - half, r.slope + half))


def test_slope_ols_recovers_exact_line():
    s = slope_ols([0, 1, 2, 3], [1, 3, 5, 7])
    assert s.slope == pytest.approx(2) and s.intercept == pytest.approx(1) and s.p_value < 1e-6


def _rising_accuracy(n_q=200, seed=8):
    # 11 cut levels; each question has fixed difficulty u, correct iff u < 0.25 + 0.5 * fraction,
    # so accuracy rises with slope 0.5 and a question's answers are correlated across levels.
    rng = np.random.default_rng(seed)
    lv = np.tile(np.linspace(0, 1, 11), n_q)
    qid = np.repeat(np.arange(n_q), 11)
    frac = np.clip(lv + rng.normal(0, 0.02, lv.size), 0, 1)
    correct = (rng.uniform(size=n_q)[qid] < 0.25 + 0.5 * frac).astype(int)
    conf = rng.uniform(size=lv.size)
    return lv, qid, frac, conf, correct


def test_slope_clustered_covers_known_slope():
    lv, qid, frac, conf, correct = _rising_accuracy()
    acc = lambda c, y: float(y.mean())
    s = slope_clustered(acc, frac, conf, correct, qid, levels=lv, resampling=Resampling(500))
    assert s.low <= 0.5 <= s.high and s.low > 0 and s.p_value < 0.05


def test_slope_clustered_point_estimate_is_ols_on_level_means():
    lv, qid, frac, conf, correct = _rising_accuracy()
    acc = lambda c, y: float(y.mean())
    s = slope_clustered(acc, frac, conf, correct, qid, levels=lv, resampling=Resampling(20))
    xs = [frac[lv == l].mean() for l in np.unique(lv)]
    vs = [correct[lv == l].mean() for l in np.unique(lv)]
    ref = stats.linregress(xs, vs)
    assert (s.slope, s.intercept) == pytest.approx((ref.slope, ref.intercept))


def test_slope_clustered_finds_no_trend_in_flat_data():
    lv, qid, frac, conf, _ = _rising_accuracy()
    rng = np.random.default_rng(9)
    correct = (rng.uniform(size=200)[qid] < 0.5).astype(int)
    s = slope_clustered(brier, frac, conf, correct, qid, levels=lv, resampling=Resampling(300))
    assert s.low <= 0 <= s.high and s.p_value > 0.05


# ---------------------------------------------------------------- trajectory


def test_trajectory_on_rising_sequence_with_a_dip():
    t = trajectory([0.5, 0.7, 0.6, 0.6, 0.9])  # diffs +.2 -.1 0 +.3
    assert t["first"] == 0.5 and t["last"] == 0.9
    assert t["change"] == pytest.approx(0.4) and t["largest_jump"] == pytest.approx(0.3)
    assert t["direction_changes"] == 2


def test_trajectory_largest_jump_keeps_its_sign():
    t = trajectory([0.9, 0.2, 0.4])
    assert t["largest_jump"] == pytest.approx(-0.7) and t["direction_changes"] == 1


def test_trajectory_of_constant_sequence_has_no_changes():
    assert trajectory([0.6, 0.6, 0.6]) == {
        "first": 0.6, "last": 0.6, "change": 0.0, "largest_jump": 0.0, "direction_changes": 0}


def test_trajectory_of_length_one():
    assert trajectory([0.4]) == {
        "first": 0.4, "last": 0.4, "change": 0.0, "largest_jump": 0.0, "direction_changes": 0}


def test_trajectory_of_length_zero():
    t = trajectory([])
    assert np.isnan(t["first"]) and np.isnan(t["last"]) and np.isnan(t["change"])
    assert t["largest_jump"] == 0.0 and t["direction_changes"] == 0


def _cut_probe(q, requested, realised, conf, correct):
    from cotprobe.records import Confidence, Probe

    return Probe(question_id=q, condition="cut", fraction_requested=requested, fraction_realised=realised,
                 step_index=0, token_index=0, answer="x", confidence=Confidence(expected_value=conf),
                 correct=correct)


def test_every_step_cuts_are_binned_by_realised_tenths_and_requested_levels_are_not():
    from cotprobe.summary import cut_metrics

    rng = np.random.default_rng(0)
    probes = []
    for q in range(40):  # every-step cuts: each question's own step boundaries
        bounds = np.concatenate([[0.0], np.sort(rng.uniform(0, 1, rng.integers(3, 9))), [1.0]])
        probes += [_cut_probe(f"q{q}", f, f, float(rng.uniform()), bool(rng.uniform() < 0.5)) for f in bounds]
    result = cut_metrics(probes, n_resamples=50)
    assert result["binned"]
    levels = [row["level"] for row in result["levels"]]
    assert levels == sorted(levels) and set(levels) <= {round(k / 10, 6) for k in range(11)}
    # each question once per level (its cut nearest the level), however many of its steps fall there
    pairs = {(p.question_id, round(round(p.fraction_realised * 10) / 10, 6)) for p in probes}
    expected = {lv: sum(1 for _, level in pairs if level == lv) for lv in levels}
    assert {row["level"]: row["n_total"] for row in result["levels"]} == expected
    assert sum(expected.values()) == len(pairs) < len(probes)
    long = [_cut_probe("long", f, f, 0.9, True) for f in (0.46, 0.48, 0.5, 0.52, 0.54)]
    short = [_cut_probe("short", f, f + 0.01, 0.1, False) for f in (0.0, 0.5, 1.0)]
    many = [_cut_probe("other", k / 40, k / 40, 0.5, True) for k in range(30)]  # > MAX_LEVELS requested levels
    result = cut_metrics(long + short + many, n_resamples=20)
    row = next(r for r in result["levels"] if r["level"] == 0.5)
    assert result["binned"] and row["n_total"] == 3  # long, short and other once each
    assert row["fraction_realised"] == pytest.approx((0.5 + 0.51 + 0.5) / 3)  # long by its cut at 0.50

    fixed = [_cut_probe(f"q{q}", k / 10, k / 10 + 0.01 * (q % 3), 0.5, q % 2 == 0) for q in range(20) for k in range(11)]
    result = cut_metrics(fixed, n_resamples=50)
    assert result["binned"] is None and [row["level"] for row in result["levels"]] == [k / 10 for k in range(11)]
    assert all(row["n_total"] == 20 for row in result["levels"])


def test_bootstrap_p_values_are_floored_at_one_over_b_plus_one():
    rng = np.random.default_rng(0)
    conf = rng.uniform(size=200)
    correct = (conf > 0.5).astype(float)
    d = paired_bootstrap_diff(brier, conf, correct, np.full(200, 0.5), correct, Resampling(99))
    assert d.high < 0 and d.p_value == pytest.approx(1 / 100)


# ---------------------------------------------------------------- the table of metric facts


def test_metric_table_names_labels_directions_and_functions():
    from cotprobe.metrics import CALIBRATION, COMPARED, METRICS, metric_fns

    assert list(METRICS) == ["accuracy", "ece", "smooth_ece", "brier", "auroc", "mean_confidence"]
    assert set(COMPARED) | set(CALIBRATION) <= set(METRICS) and set(CALIBRATION) < set(COMPARED)
    assert {m.name: m.higher_is_better for m in METRICS.values()} == {
        "accuracy": True, "ece": False, "smooth_ece": False, "brier": False, "auroc": True, "mean_confidence": None}
    assert all(METRICS[k].label in METRICS[k].axis_label for k in COMPARED)
    assert all(METRICS[k].direction in METRICS[k].axis_label for k in CALIBRATION)
    conf, y = _sample(200)
    fns = metric_fns()
    assert list(fns) == list(COMPARED)
    assert fns["accuracy"](conf, y) == accuracy(y) and fns["ece"](conf, y) == ece(conf, y)
    assert fns["brier"](conf, y) == brier(conf, y) and fns["auroc"](conf, y) == auroc(conf, y)
    out = summarize(conf, y, n_resamples=20)
    assert [k for k in out if not k.endswith(("_low", "_high")) and k != "n"] == list(METRICS)
    assert out["mean_confidence"] == pytest.approx(conf.mean())


def test_import_of_the_metrics_loads_no_tables_run_directory_or_command():
    import subprocess
    import sys

    code = ("import sys, cotprobe.metrics; "
            "print(sorted(m for m in sys.modules if m.startswith('cotprobe')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(eval(out))
    assert loaded <= {"cotprobe", "cotprobe.metrics", "cotprobe.metrics.scores", "cotprobe.metrics.bootstrap",
                      "cotprobe.metrics.trends", "cotprobe.metrics.table", "cotprobe.metrics.sections",
                      "cotprobe.metrics.early_exit_sections", "cotprobe.metrics.keys"}, loaded


def test_censored_thoughts_are_counted_and_completed_only_leaves_them_out():
    from cotprobe.summary import cut_metrics

    probes = [_cut_probe(f"q{q}", k / 10, k / 10, 0.6, q % 2 == 0) for q in range(6) for k in range(11)]
    censored = frozenset({"q1", "q3", "q4"})  # their thoughts hit the budget
    both = cut_metrics(probes, n_resamples=20, censored=censored | {"elsewhere"})
    assert both["censored"] == 3 and not both["completed_only"]
    assert all(row["n_total"] == 6 for row in both["levels"])
    done = cut_metrics(probes, n_resamples=20, censored=censored, completed_only=True)
    assert done["censored"] == 3 and done["completed_only"]
    assert all(row["n_total"] == 3 and row["accuracy"] == pytest.approx(2 / 3) for row in done["levels"])  # q0, q2, q5
