"""Early-exit replay against hand-computed tokens and accuracy on a scripted run."""

import json
import subprocess
import sys

import pytest
from analyses_fixtures import confidence, make_run

from cotprobe.records import Confidence, Probe
from cotprobe.stopping import Policy, early_exit_metrics, evaluate, pareto, views


def cut(qid, t, n, answer, correct, scored, verbal):
    conf = Confidence(sampled_value=verbal, expected_value=scored, scored_value=scored)
    return Probe(question_id=qid, condition="cut", fraction_requested=round(t / n, 2), fraction_realised=t / n,
                 step_index=0, token_index=t, answer=answer, confidence=conf, correct=correct, grader="test")


PROBES = [  # question A: 10 thought tokens, B: 8
    cut("A", 0, 10, "7", False, 0.3, 0.25), cut("A", 5, 10, "5", True, 0.6, None), cut("A", 10, 10, "5", True, 0.9, 0.95),
    cut("B", 0, 8, "1", False, 0.8, 0.85), cut("B", 4, 8, "2", False, 0.5, 0.45), cut("B", 8, 8, "3", True, 0.7, 0.65),
]


@pytest.mark.parametrize("policy, tokens, accuracy", [
    (Policy("confidence", 0.6, "scored"), (5, 0), 0.5),   # A stops at its 2nd cut, B at its 1st
    (Policy("stable", 2), (10, 8), 1.0),                  # A's answer repeats at its last cut; B never repeats
    (Policy("fraction", 0.5), (5, 4), 0.5),
    (Policy("fraction", 0.0), (0, 0), 0.0),
    (Policy("confidence", 0.9, "verbal"), (10, 8), 1.0),  # an unparsed verbal confidence never stops
    (Policy("confidence", 0.4, "verbal"), (10, 0), 0.5),
])
def test_replay_matches_hand_computed_tokens_and_accuracy(policy, tokens, accuracy):
    row = evaluate(views(PROBES), policy, n_resamples=50)
    assert row["mean_tokens"] == pytest.approx(sum(tokens) / 2)
    assert row["token_share"] == pytest.approx(sum(tokens) / 18)
    assert row["accuracy"] == pytest.approx(accuracy)
    assert row["accuracy_full"] == pytest.approx(1.0)
    assert row["accuracy_diff"] == pytest.approx(accuracy - 1.0)
    assert row["token_share_low"] <= row["token_share"] <= row["token_share_high"]


def test_latent_policy_uses_the_probe_predictions_and_pareto_is_monotone():
    latent = {("A", 0): 0.2, ("A", 5): 0.9, ("A", 10): 0.9, ("B", 0): 0.1, ("B", 4): 0.2, ("B", 8): 0.95}
    row = evaluate(views(PROBES, latent), Policy("confidence", 0.85, "latent"), n_resamples=50)
    assert row["mean_tokens"] == pytest.approx((5 + 8) / 2) and row["accuracy"] == 1.0
    result = early_exit_metrics(views(PROBES, latent), ["verbal", "scored", "latent"], n_resamples=50)
    front = [r for r in result["policies"] if r["policy"] in result["pareto"]]
    front.sort(key=lambda r: r["token_share"])
    assert all(a["accuracy"] < b["accuracy"] for a, b in zip(front, front[1:]))
    latent_row = next(r for r in result["matched_accuracy"] if r["family"] == "confidence (latent)")
    assert latent_row["token_reduction"] == pytest.approx(1 - 13 / 18)  # the cheapest setting at full accuracy
    assert pareto([{"token_share": 0.5, "accuracy": 0.5}, {"token_share": 0.4, "accuracy": 0.6}]) == [
        {"token_share": 0.4, "accuracy": 0.6}]


def test_early_exit_command_writes_table_metrics_and_figure(tmp_path):
    run = make_run(tmp_path, "run", probes=PROBES)
    proc = subprocess.run([sys.executable, "-m", "cotprobe.early_exit", str(run), "--resamples", "50"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "token reduction at matched accuracy" in proc.stdout and "scored >= 0.60" in proc.stdout
    result = json.loads((run / "metrics.json").read_text())["early_exit"]
    assert result["n_questions"] == 2 and result["full"]["accuracy"] == 1.0
    assert (run / "figures" / "early_exit_pareto.png").stat().st_size > 10_000
    assert (run / "figures" / "early_exit_pareto.svg").exists()


def test_early_exit_without_cut_probes_is_one_clear_line(tmp_path):
    run = make_run(tmp_path, "empty", probes=[Probe("A", "full", 1.0, 1.0, 0, 3, "a", confidence(0.5), True)])
    proc = subprocess.run([sys.executable, "-m", "cotprobe.early_exit", str(run)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "no cut probes" in proc.stderr and "Traceback" not in proc.stderr
