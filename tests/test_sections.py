"""The typed shape of metrics.json (`cotprobe.metrics.sections`), its one writer
(`summary.update_metrics`) and the floored p-value of the cluster bootstrap of a difference."""

import copy
import json

import numpy as np
import pytest

from cotprobe import metrics
from cotprobe.behaviours import change_relation
from cotprobe.linprobe import ProbeSettings, latent_metrics
from cotprobe.metrics import Resampling, bootstrap_diff
from cotprobe.metrics.sections import (SECTIONS, BesideRow, ChangeGroup, ConditionRow, LevelRow, PolicyRow, PrefixLevel, Summary,
                                       diff, diff_key, has_interval, interval, interval_fields)
from cotprobe.plots import draw_latent_layers, draw_latent_vs_verbal
from cotprobe.records import Confidence, Probe, Resample
from cotprobe.resample import prefix_metrics
from cotprobe.stopping import early_exit_metrics, views
from cotprobe.summary import condition_metrics, cut_metrics, read_metrics, update_metrics


def keys(typed) -> set[str]:
    return set(typed.__required_keys__ | typed.__optional_keys__)


def probe(q: int, condition: str, fraction: float, value: float, correct: bool) -> Probe:
    return Probe(question_id=f"q{q}", condition=condition, fraction_requested=fraction, fraction_realised=fraction,
                 step_index=0, token_index=int(100 * fraction), answer="a" if correct else "b", correct=correct,
                 confidence=Confidence(sampled_value=value, expected_value=value))


def cut_probes(n: int = 12) -> list[Probe]:
    rng = np.random.default_rng(0)
    return [probe(q, "cut", f, float(rng.uniform(0.1, 0.9)), bool(rng.uniform() < 0.3 + 0.5 * f))
            for q in range(n) for f in (0.0, 0.5, 1.0)]


# ------------------------------------------------------------------ computed keys


def test_interval_accessors_read_what_interval_fields_write():
    row = interval_fields("ece", 0.1, (0.05, 0.2))
    assert row == {"ece": 0.1, "ece_low": 0.05, "ece_high": 0.2}  # the layout on disk
    assert interval(row, "ece") == (0.1, 0.05, 0.2) and interval(row, "ece").low == 0.05
    assert has_interval(row, "ece") and not has_interval(row, "brier")
    assert interval({"ece": 0.1}, "ece") == (0.1, None, None)
    assert diff_key("full") == "diff_vs_full"
    assert diff({"diff_vs_full": {"n": 3}}, "full") == {"n": 3} and diff({}, "full") is None


def test_computed_sections_hold_only_the_keys_their_types_declare():
    probes = cut_probes()
    result = cut_metrics(probes, n_resamples=20, beside="sampled")
    for row in result["levels"]:
        assert set(row) <= keys(LevelRow) and set(row["beside"]) <= keys(BesideRow)
    assert set(metrics.summarize([0.5, 0.6], [1, 0], n_resamples=5)) == keys(Summary)
    ablated = probes + [probe(q, c, 1.0, 0.6, q % 2 == 0) for q in range(12) for c in ("full", "none")]
    section = condition_metrics(ablated, n_resamples=20)
    row = section["conditions"]["none"]
    assert set(row) - keys(ConditionRow) == {diff_key("full")}
    assert set(diff(row, "full")) == {"n", *metrics.COMPARED}
    exits = early_exit_metrics(views(probes), ["verbal", "scored"], n_resamples=20)
    assert all(set(r) <= keys(PolicyRow) for r in exits["policies"])
    resamples = [Resample(question_id=p.question_id, fraction_requested=p.fraction_requested, token_index=p.token_index,
                          temperature=0.7, answers=["a", "b"], correct=[True, False], continuation_tokens=[1, 1],
                          n_correct=1, n_graded=2, p_correct=0.5, low=0.1, high=0.9) for p in probes]
    prefix = prefix_metrics(probes, resamples, {"verbal": "expected"}, n_resamples=20)
    assert all(set(r) == keys(PrefixLevel) for r in prefix["sources"]["verbal"]["levels"])


# ------------------------------------------------------------------ bootstrap of a difference


def test_cluster_bootstrap_diff_floors_its_p_value_at_one_over_b_plus_one():
    rows = np.arange(60)
    clusters = rows // 3
    d = bootstrap_diff(lambda i: 1.0 + 0.01 * float(rows[i].mean()), rows.size, clusters, Resampling(199, seed=3))
    assert d.low > 0 and d.p_value == pytest.approx(1 / 200)  # every replicate is above zero: not p = 0
    same = bootstrap_diff(lambda i: 1.0 + 0.01 * float(rows[i].mean()), rows.size, clusters, Resampling(199, seed=3))
    assert same == d  # seeded
    centred = bootstrap_diff(lambda i: float(rows[i].mean() - rows.mean()), rows.size, clusters, Resampling(199))
    assert centred.low < 0 < centred.high and centred.p_value > 0.2


def test_behaviour_differences_use_the_floored_p_value():
    # every backtracking step drops by 0.3, every untagged one rises by 0.1: no resample crosses zero
    rows = [{"question_id": f"q{q}", "step_index": i, "change": -0.3 if i == 0 else 0.1,
             "behaviours": ["backtracking"] if i == 0 else []} for q in range(10) for i in range(3)]
    rel = change_relation(rows, ["backtracking"], n_resamples=99)
    back: ChangeGroup = rel["groups"]["backtracking"]
    assert back["diff_change_vs_none"]["estimate"] == pytest.approx(-0.4)
    assert back["diff_change_vs_none"]["p_value"] == pytest.approx(1 / 100)
    assert interval(back, "mean_change") == pytest.approx((-0.3, -0.3, -0.3))
    assert back["diff_abs_change_vs_none"]["estimate"] == pytest.approx(0.2)


# ------------------------------------------------------------------ one writer


def test_update_metrics_sets_drops_keeps_and_refuses_unknown_sections(tmp_path):
    update_metrics(tmp_path, {"traces": {"n": 1, "thinking_ended": {}, "sources": {}}})
    update_metrics(tmp_path, {"early_exit": {"n_questions": 2}}, drop=("missing",))
    assert list(read_metrics(tmp_path)) == ["traces", "early_exit"]
    update_metrics(tmp_path, {}, drop=("traces",))
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"early_exit": {"n_questions": 2}}
    with pytest.raises(ValueError, match="unknown metrics.json section"):
        update_metrics(tmp_path, {"trace": {}})
    assert set(SECTIONS) == {"traces", "truncate", "by_length", "resample", "ablate", "behaviours", "latent", "estimators",
                             "early_exit", "grading"}


def test_latent_section_keeps_the_prefix_it_is_given_and_figures_add_nothing():
    probes = cut_probes(10)
    y = np.array([p.correct for p in probes], dtype=float)
    rng = np.random.default_rng(1)
    per_layer = {1: np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.1, y.size), 0.01, 0.99),
                 2: np.full(y.size, 0.5)}
    prefix = {"n_pairs": 0, "k": 0, "temperature": None, "sources": {}}
    result = latent_metrics(probes, per_layer, "expected", ProbeSettings(folds=2), 20, prefix)
    assert result["best_layer"] == 1 and result["prefix"] is prefix
    assert "prefix" not in latent_metrics(probes, per_layer, "expected", ProbeSettings(folds=2), 20)
    before = copy.deepcopy(result)
    draw_latent_vs_verbal(result)
    draw_latent_layers(result)
    assert result == before
