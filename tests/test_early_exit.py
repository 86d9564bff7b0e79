"""Early-exit replay against hand-computed tokens and accuracy on scripted runs: causal stops,
the whole trace as the full thought, fixed budgets that ignore the final length, and the
matched-accuracy setting chosen on held-out questions."""

import json
import subprocess
import sys

import numpy as np
import pytest
from analyses_fixtures import confidence, make_run

from cotprobe.records import Confidence, Probe, Trace
from cotprobe.stopping import (CutView, Policy, Question, early_exit_metrics, evaluate, matched_accuracy, pareto,
                               policies, stop, views)


def cut(qid, t, n, answer, correct, scored, verbal):
    conf = Confidence(sampled_value=verbal, expected_value=scored, scored_value=scored)
    return Probe(question_id=qid, condition="cut", fraction_requested=round(t / n, 2), fraction_realised=t / n,
                 step_index=0, token_index=t, answer=answer, confidence=conf, correct=correct, grader="test")


def whole(qid, n, answer, correct, scored=None):
    return Trace(question_id=qid, model="m", prompt="Q?", cot="...", answer=answer,
                 confidence=Confidence(expected_value=scored, scored_value=scored), prompt_tokens=3,
                 cot_token_ids=list(range(n)), thinking_ended="stop", correct=correct, grader="test")


PROBES = [  # question A: 10 thought tokens, B: 8
    cut("A", 0, 10, "7", False, 0.3, 0.25), cut("A", 5, 10, "5", True, 0.6, None), cut("A", 10, 10, "5", True, 0.9, 0.95),
    cut("B", 0, 8, "1", False, 0.8, 0.85), cut("B", 4, 8, "2", False, 0.5, 0.45), cut("B", 8, 8, "3", True, 0.7, 0.65),
]
TRACES = [whole("A", 10, "5", True, 0.9), whole("B", 8, "3", True, 0.7)]


@pytest.mark.parametrize("policy, tokens, accuracy", [
    (Policy("confidence", 0.6, "scored"), (5, 0), 0.5),   # A stops at its 2nd cut, B at its 1st
    (Policy("stable", 2), (10, 8), 1.0),                  # A's answer repeats at its last cut; B thinks to its end
    (Policy("budget", 0.25, budget=20), (5, 4), 0.5),     # stop after 5 tokens: A's cut 5, B's cut 4
    (Policy("budget", 0.0, budget=20), (0, 0), 0.0),
    (Policy("budget", 0.5, budget=20), (10, 8), 1.0),     # both traces end within 10 tokens
    (Policy("confidence", 0.9, "verbal"), (10, 8), 1.0),  # an unparsed verbal confidence never stops
    (Policy("confidence", 0.4, "verbal"), (10, 0), 0.5),
])
def test_replay_matches_hand_computed_tokens_and_accuracy(policy, tokens, accuracy):
    row = evaluate(views(PROBES, traces=TRACES), policy, n_resamples=50)
    assert row["mean_tokens"] == pytest.approx(sum(tokens) / 2)
    assert row["token_share"] == pytest.approx(sum(tokens) / 18)
    assert row["accuracy"] == pytest.approx(accuracy)
    assert row["accuracy_full"] == pytest.approx(1.0)
    assert row["accuracy_diff"] == pytest.approx(accuracy - 1.0)
    assert row["token_share_low"] <= row["token_share"] <= row["token_share_high"]


# Three traces under a budget of 16: a (12 tokens, right), b (6, wrong: it ends early), c (16, right).
RUN3 = [cut("a", 0, 12, "x", False, 0.3, 0.3), cut("a", 4, 12, "y", True, 0.7, 0.6),
        cut("a", 8, 12, "y", True, 0.8, None), cut("a", 12, 12, "y", True, 0.9, 0.9),
        cut("b", 0, 6, "p", False, 0.9, 0.95), cut("b", 3, 6, "q", False, 0.4, 0.4), cut("b", 6, 6, "q", False, 0.5, 0.5),
        cut("c", 0, 16, "m", False, 0.2, 0.2), cut("c", 8, 16, "n", False, 0.6, 0.7), cut("c", 16, 16, "o", True, 0.95, 0.9)]
TRACES3 = [whole("a", 12, "y", True, 0.9), whole("b", 6, "q", False, 0.5), whole("c", 16, "o", True, 0.95)]


@pytest.mark.parametrize("policy, tokens, correct", [
    (Policy("full"), (12, 6, 16), (1, 0, 1)),
    (Policy("budget", 0.5, budget=16), (8, 6, 8), (1, 0, 0)),    # limit 8: a's cut 8, b's end, c's cut 8
    (Policy("budget", 0.2, budget=16), (0, 3, 0), (0, 0, 0)),    # limit 3.2: the last cut within it
    (Policy("budget", 1.0, budget=16), (12, 6, 16), (1, 0, 1)),  # the whole budget is the full thought
    (Policy("tokens", 4), (4, 3, 0), (1, 0, 0)),
    (Policy("stable", 2), (8, 6, 16), (1, 0, 1)),                # a: y at 4 and 8; c never repeats: its end
    (Policy("confidence", 0.7, "scored"), (4, 0, 16), (1, 0, 1)),
    (Policy("confidence", 0.8, "verbal"), (12, 0, 16), (1, 0, 1)),
    (Policy("oracle"), (4, 6, 16), (1, 0, 1)),  # hindsight: a's first right cut, b never right, c only at its end
])
def test_three_question_replay_by_hand(policy, tokens, correct):
    row = evaluate(views(RUN3, traces=TRACES3), policy, n_resamples=50)
    assert row["mean_tokens"] == pytest.approx(sum(tokens) / 3)
    assert row["mean_full_tokens"] == pytest.approx(34 / 3)
    assert row["token_share"] == pytest.approx(sum(tokens) / 34)
    assert row["accuracy"] == pytest.approx(sum(correct) / 3)
    assert row["accuracy_full"] == pytest.approx(2 / 3)
    assert row["stopped_early"] == pytest.approx(np.mean(np.array(tokens) < [12, 6, 16]))


def test_calibration_is_read_where_the_policy_stopped():
    row = evaluate(views(RUN3, traces=TRACES3), Policy("confidence", 0.7, "scored"), n_resamples=50)
    assert row["brier"] == pytest.approx((0.3 ** 2 + 0.9 ** 2 + 0.05 ** 2) / 3)  # cuts a:4, b:0 and c's end
    full = evaluate(views(RUN3, traces=TRACES3), Policy("full"), n_resamples=50)
    assert full["brier"] == pytest.approx((0.1 ** 2 + 0.5 ** 2 + 0.05 ** 2) / 3)  # the traces' own confidences


def test_a_fixed_budget_does_not_depend_on_the_final_length():
    """Two traces identical over their first 8 tokens, one ending at 10 and one at 40: a budget of
    0.3 x 20 = 6 tokens stops both at the cut at token 4 (a fraction of the final length would not)."""
    early = [CutView(0, "a", False), CutView(4, "b", True), CutView(8, "b", True)]
    short = Question(early + [CutView(10, "b", True)], CutView(10, "b", True))
    long = Question(early + [CutView(20, "c", False), CutView(40, "c", False)], CutView(40, "c", False))
    policy = Policy("budget", 0.3, budget=20)
    assert stop(short, policy) == stop(long, policy) == CutView(4, "b", True)
    assert [p.name for p in policies([], 20, {"q": short})][:4] == ["budget 0.0", "budget 0.1", "budget 0.2",
                                                                    "budget 0.3"]
    assert [p.name for p in policies([], None, {"q": long})][:3] == ["16 tokens", "32 tokens", "64 tokens"]


def test_full_thought_is_the_whole_trace_when_the_sweep_stopped_at_half():
    """Cuts at 0, 0.25 and 0.5 of traces of 500 and 300 tokens: the full thought is 400 tokens
    on average with the traces' own grades, not the last cut's 200."""
    probes = [cut(q, round(f * n), n, "wrong", False, 0.2, 0.2) for q, n in (("x", 500), ("y", 300))
              for f in (0.0, 0.25, 0.5)]
    traces = [whole("x", 500, "right", True, 0.9), whole("y", 300, "other", False, 0.4)]
    result = early_exit_metrics(views(probes, traces=traces), ["scored"], n_resamples=50, budget=512)
    assert result["full"]["policy"] == "full thought" and result["full"]["mean_tokens"] == pytest.approx(400)
    assert result["full"]["accuracy"] == pytest.approx(0.5)
    never = next(r for r in result["policies"] if r["policy"] == "scored >= 0.95")  # never fires: the ends
    assert never["mean_tokens"] == pytest.approx(400) and never["accuracy"] == pytest.approx(0.5)
    assert views(probes) == {}  # no trace and no cut at the full thought: nothing to replay


def test_policies_never_look_past_where_they_stop():
    """Rewriting every cut after the stop (and the trace's end) leaves the stop where it was."""
    rng = np.random.default_rng(0)

    def random_cut(t):
        return CutView(t, str(rng.integers(3)), bool(rng.integers(2)),
                       {"scored": float(rng.uniform()), "verbal": None if rng.uniform() < 0.2 else float(rng.uniform())})

    for _ in range(200):
        points = sorted(rng.choice(np.arange(1, 60), size=rng.integers(1, 8), replace=False))
        cuts = [random_cut(int(t)) for t in points]
        q = Question(cuts, random_cut(int(points[-1]) + int(rng.integers(0, 5))))
        for policy in policies(["scored", "verbal"], 64, {"q": q}):
            s = stop(q, policy)
            seen = [c for c in cuts if c.token_index <= s.token_index]
            later = [random_cut(c.token_index) for c in cuts if c.token_index > s.token_index]
            assert stop(Question(seen + later, random_cut(q.end.token_index)), policy).token_index == s.token_index


def test_matched_accuracy_is_not_chosen_on_the_questions_it_reports():
    """Three questions are right at their first cut (scored 0.6); the fourth is wrong there at
    scored 0.9 and right at its end. On all four only 0.95 keeps full accuracy (no saving);
    left out one at a time, the fourth's fold is given 0.50 (chosen on the other three) and
    gets it wrong, the others' folds are given 0.95: 30 of 40 tokens, accuracy 0.75."""
    probes = [p for q in "ABC" for p in (cut(q, 0, 10, "r", True, 0.6, None), cut(q, 5, 10, "r", True, 0.6, None))]
    probes += [cut("D", 0, 10, "w", False, 0.9, None), cut("D", 5, 10, "r", True, 0.5, None)]
    questions = views(probes, traces=[whole(q, 10, "r", True, 0.9) for q in "ABCD"])
    scored = [Policy("confidence", t, "scored") for t in (0.5, 0.55, 0.6, 0.9, 0.95)]
    row, = matched_accuracy(questions, scored, n_folds=4, n_resamples=50)
    assert row["token_reduction"] == pytest.approx(0.25) and row["accuracy"] == pytest.approx(0.75)
    assert row["accuracy_diff"] == pytest.approx(-0.25) and row["accuracy_full"] == 1.0
    assert sorted(row["chosen"]) == ["scored >= 0.50", "scored >= 0.95", "scored >= 0.95", "scored >= 0.95"]
    assert row["threshold_choice"].startswith("cross-fitted over 4 folds of questions")
    in_sample = [evaluate(questions, p, n_resamples=10) for p in scored]  # what choosing on all four gives
    best = min((r for r in in_sample if r["accuracy"] >= r["accuracy_full"]), key=lambda r: r["token_share"])
    assert best["policy"] == "scored >= 0.95" and best["token_share"] == 1.0 and best["accuracy"] == 1.0
    assert matched_accuracy(questions, scored, n_folds=4, n_resamples=50) == [row]  # deterministic
    assert matched_accuracy(questions, scored, n_folds=2, n_resamples=50, seed=1) == matched_accuracy(
        questions, scored, n_folds=2, n_resamples=50, seed=1)


def test_latent_policy_uses_the_probe_predictions_and_pareto_is_monotone():
    latent = {("A", 0): 0.2, ("A", 5): 0.9, ("A", 10): 0.9, ("B", 0): 0.1, ("B", 4): 0.2, ("B", 8): 0.95}
    questions = views(PROBES, latent, TRACES)
    row = evaluate(questions, Policy("confidence", 0.85, "latent"), n_resamples=50)
    assert row["mean_tokens"] == pytest.approx((5 + 8) / 2) and row["accuracy"] == 1.0
    result = early_exit_metrics(questions, ["verbal", "scored", "latent"], n_resamples=50, budget=20)
    front = [r for r in result["policies"] if r["policy"] in result["pareto"]]
    front.sort(key=lambda r: r["token_share"])
    assert all(a["accuracy"] < b["accuracy"] for a, b in zip(front, front[1:]))
    latent_row = next(r for r in result["matched_accuracy"] if r["family"] == "confidence (latent)")
    # each question's setting is chosen on the other: 0.50 both times (A stops at 5, B at 8)
    assert latent_row["chosen"] == ["latent >= 0.50"] * 2
    assert latent_row["token_reduction"] == pytest.approx(1 - 13 / 18)
    assert result["threshold_choice"].startswith("cross-fitted over 2 folds")
    assert pareto([{"token_share": 0.5, "accuracy": 0.5}, {"token_share": 0.4, "accuracy": 0.6}]) == [
        {"token_share": 0.4, "accuracy": 0.6}]


def test_early_exit_command_writes_table_metrics_and_figure(tmp_path):
    run = make_run(tmp_path, "run", traces=TRACES, probes=PROBES)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["stages"]["generate"]["settings"]["budget"] = 20
    (run / "manifest.json").write_text(json.dumps(manifest))
    proc = subprocess.run([sys.executable, "-m", "cotprobe.early_exit", str(run), "--resamples", "50"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "token reduction at matched accuracy" in proc.stdout and "scored >= 0.60" in proc.stdout
    assert "budget 0.3" in proc.stdout and "cross-fitted over 2 folds of questions" in proc.stdout
    result = json.loads((run / "metrics.json").read_text())["early_exit"]
    assert result["n_questions"] == 2 and result["full"]["accuracy"] == 1.0 and result["budget"] == 20
    assert result["full"]["mean_tokens"] == 9.0
    assert (run / "figures" / "early_exit_pareto.png").stat().st_size > 10_000
    assert (run / "figures" / "early_exit_pareto.svg").exists()


def test_early_exit_without_cut_probes_is_one_clear_line(tmp_path):
    run = make_run(tmp_path, "empty", probes=[Probe("A", "full", 1.0, 1.0, 0, 3, "a", confidence(0.5), True)])
    proc = subprocess.run([sys.executable, "-m", "cotprobe.early_exit", str(run)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "no cut probes" in proc.stderr and "Traceback" not in proc.stderr


def test_the_oracle_row_is_the_hindsight_ceiling_and_no_policy_of_the_table():
    section = early_exit_metrics(views(RUN3, traces=TRACES3), ["scored", "verbal"], n_resamples=50, budget=16)
    oracle = section["oracle"]
    assert oracle["policy"] == "oracle (hindsight)" and oracle["mean_tokens"] == pytest.approx(26 / 3)
    assert oracle["accuracy"] == pytest.approx(2 / 3)
    assert all(r["policy"] != oracle["policy"] for r in section["policies"])  # nor on the frontier
    assert oracle["policy"] not in section["pareto"]
    # no online policy beats it: at its tokens or fewer, none is more accurate
    assert not any(r["accuracy"] > oracle["accuracy"] and r["mean_tokens"] <= oracle["mean_tokens"]
                   for r in section["policies"])
