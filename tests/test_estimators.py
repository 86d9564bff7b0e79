"""Every confidence estimator in one table (`cotprobe.estimators`, the "estimators" section)."""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "tests")) if p not in sys.path]

from analyses_fixtures import make_run, probe, trace  # noqa: E402

from cotprobe.estimators import EstimatorSettings, estimator_metrics, estimator_values  # noqa: E402
from cotprobe.records import Resample  # noqa: E402

LEVELS = (0.0, 0.5, 1.0)


def _probes(n_questions=30, seed=0):
    """Cut probes whose correctness falls with the thought's length so far; verbal confidence noisy."""
    rng = np.random.default_rng(seed)
    probes = []
    for i in range(n_questions):
        length = int(rng.integers(20, 200))
        for level in LEVELS:
            tokens = int(level * length)
            correct = bool(rng.random() < 0.85 - tokens / 250)
            value = float(np.clip(0.5 + 0.2 * (correct - 0.5) + 0.15 * rng.normal(), 0.02, 0.98))
            probes.append(replace(probe(f"q{i:02d}", "cut", value, correct, fraction=level), token_index=tokens))
    return probes


def test_verbal_columns_are_the_recorded_confidences_and_metrics_match_sklearn_and_relplot():
    import relplot
    from sklearn.metrics import roc_auc_score

    probes = _probes()
    section = estimator_metrics(probes, n_resamples=20)
    assert list(section["estimators"]) == ["verbal:sampled", "verbal:expected", "length", "verbal+length"]
    conf = np.array([p.confidence.expected_value for p in probes])
    y = np.array([float(p.correct) for p in probes])
    pooled = section["estimators"]["verbal:expected"]["pooled"]
    assert pooled["n"] == len(probes) and section["n_questions"] == 30
    assert pooled["auroc"] == pytest.approx(roc_auc_score(y, conf))
    assert pooled["brier"] == pytest.approx(np.mean((conf - y) ** 2))
    assert pooled["smooth_ece"] == pytest.approx(float(relplot.smECE(conf, y)))
    level = section["estimators"]["verbal:expected"]["levels"][1]
    at = np.array([p.fraction_requested == 0.5 for p in probes])
    assert level["level"] == 0.5 and level["auroc"] == pytest.approx(roc_auc_score(y[at], conf[at]))
    sampled = estimator_values(probes)["verbal:sampled"]
    assert sampled == pytest.approx([p.confidence.sampled_value for p in probes])


def test_fitted_estimators_are_out_of_fold_by_question():
    probes = _probes(seed=1)
    before = estimator_values(probes)
    flipped = [replace(p, correct=not p.correct) if p.question_id == "q07" else p for p in probes]
    after = estimator_values(flipped)
    mine = np.array([p.question_id == "q07" for p in probes])
    for name in ("length", "verbal+length"):  # a question's own labels never reach its prediction
        assert after[name][mine] == pytest.approx(before[name][mine])
        assert not np.allclose(after[name][~mine], before[name][~mine])  # but others' fits saw them
    assert ((before["length"] >= 0) & (before["length"] <= 1)).all()


def test_the_length_baseline_is_monotone_in_tokens_within_each_fold():
    from cotprobe.linprobe import grouped_folds

    probes = _probes(seed=2)
    length = estimator_values(probes, settings=EstimatorSettings(folds=5))["length"]
    tokens = np.array([p.token_index for p in probes])
    folds = grouped_folds(np.array([p.question_id for p in probes]), 5, 0)
    for f in range(5):
        order = np.argsort(tokens[folds == f], kind="stable")
        d = np.diff(length[folds == f][order])
        assert (d <= 1e-12).all() or (d >= -1e-12).all()
    # correctness falls with tokens here: the fitted direction is decreasing
    assert np.corrcoef(tokens, length)[0, 1] < 0


def test_latent_and_prefix_join_where_defined():
    probes = _probes(12, seed=3)
    latent = {(p.question_id, round(p.fraction_requested, 6)): 0.4 for p in probes}
    resamples = [Resample(question_id=p.question_id, fraction_requested=0.5, token_index=p.token_index,
                          temperature=0.7, answers=["a"] * 4, correct=[True, True, False, False],
                          continuation_tokens=[3] * 4, n_correct=2, n_graded=4, p_correct=0.5, low=0.1, high=0.9)
                 for p in probes if p.fraction_requested == 0.5]
    section = estimator_metrics(probes, latent, resamples, n_resamples=10)
    assert set(section["estimators"]) >= {"latent", "prefix"}
    assert section["estimators"]["prefix"]["pooled"]["n"] == 12  # the resampled cuts only
    assert [r["level"] for r in section["estimators"]["prefix"]["levels"] if r["n"]] == [0.5]
    assert section["estimators"]["latent"]["pooled"]["mean_confidence"] == pytest.approx(0.4)


def test_edge_cases_one_question_and_all_correct():
    one = _probes(1, seed=4)
    section = estimator_metrics(one, n_resamples=10)
    assert "length" not in section["estimators"]  # nothing to fit out of fold on one question
    assert section["estimators"]["verbal:expected"]["pooled"]["n"] == 3
    right = [replace(p, correct=True) for p in _probes(6, seed=5)]
    section = estimator_metrics(right, n_resamples=10)
    assert np.isnan(section["estimators"]["verbal:expected"]["pooled"]["auroc"])
    length = estimator_values(right)["length"]  # each fold: the smoothed rate of its one class, (n + 0.5) / (n + 1)
    assert set(np.round(length, 9)) <= {round((n + 0.5) / (n + 1), 9) for n in range(9, 16)}
    assert estimator_metrics([], n_resamples=10)["estimators"] == {}


def test_metrics_command_writes_and_prints_the_table_and_the_figure_draws(tmp_path, capsys):
    import matplotlib

    matplotlib.use("Agg")
    from cotprobe.metrics.__main__ import main as metrics_main
    from cotprobe.metrics.sections import EstimatorRow, EstimatorSection
    from cotprobe.plots import plot_estimators
    from cotprobe.summary import read_metrics

    probes = _probes(10, seed=6)
    traces = [trace(f"q{i:02d}", 0.6, True) for i in range(10)]
    run = make_run(tmp_path, "run", traces, probes)
    assert metrics_main([str(run), "--resamples", "10"]) == 0
    section = read_metrics(run)["estimators"]
    assert set(section) == set(EstimatorSection.__required_keys__)
    assert all(set(row) == set(EstimatorRow.__required_keys__) for row in section["estimators"].values())
    out = capsys.readouterr().out
    assert "confidence estimators on the same 30 cut probes" in out and "verbal+length" in out
    png = plot_estimators(section, tmp_path / "estimators")
    assert png.exists() and png.with_suffix(".svg").exists()
