import json

import pytest

from cotprobe.conditions import LINEAR_BEHAVIOURS, load_rewrite_prompts, random_deletion_variant, rebuild, rewrite_variant
from cotprobe.ablate import Ablation, Rewriting, ablate, main
from cotprobe.forcing import Prober
from cotprobe.hedges import dehedge
from cotprobe.backends.scripted import ScriptedBackend
from cotprobe.records import Probe
from cotprobe.scales import VERBAL_10
from cotprobe.segment import to_records
from cotprobe.store import RunDir
from cotprobe.summary import condition_metrics
from cotprobe.tags import tag_step
from conftest import COTS, PROFILE

def _ablate(backend, path, traces, tagged, by_id, conditions, rewriting=None, seed=0):
    with RunDir(path) as run:
        return ablate(Prober(backend, PROFILE, VERBAL_10), traces, by_id, run,
                      Ablation(conditions, tagged.steps, tagged.tags, seed=seed, rewriting=rewriting))


def test_scripted_traces_have_the_behaviours_the_tests_need(scripted_run):
    _, _, traces, tagged, _ = scripted_run
    assert [t.cot for t in traces] == list(COTS.values())
    found = {(t.question_id, t.behaviour) for t in tagged.tags}
    assert {("q1", "backtracking"), ("q1", "verification"), ("q1", "hedging"), ("q2", "alternative"),
            ("q3", "hedging")} <= found


def test_linear_removes_exactly_the_tagged_steps_and_records_them(scripted_run):
    backend, path, traces, tagged, by_id = scripted_run
    probes, _ = _ablate(backend, path, traces, tagged, by_id, ["full", "linear"])
    linear = {p.question_id: p for p in probes if p.condition == "linear"}
    for trace in traces:
        steps = tagged.steps[trace.question_id]
        drop = {t.step_index for t in tagged.tags
                if t.question_id == trace.question_id and t.behaviour in LINEAR_BEHAVIOURS}
        probe = linear[trace.question_id]
        assert probe.removed == [s.text for s in steps if s.index in drop]
        kept = [s.text for s in steps if s.index not in drop]
        assert probe.cot.split() == " ".join(kept).split()  # exactly the other steps, in order
        assert probe.step_index == len(kept)
        assert probe.error == "" and probe.answer
    q1 = linear["q1"]
    assert q1.cot == "The capital of France is Lyon.\n\nI think the answer is Paris."  # paragraph break kept
    assert 0 < q1.fraction_realised < 1
    assert linear["q3"].cot == traces[2].cot and linear["q3"].fraction_realised == 1.0  # nothing tagged


def test_unchanged_cot_is_probed_on_the_traces_own_tokens(scripted_run):
    backend, path, traces, tagged, by_id = scripted_run
    probes, _ = _ablate(backend, path, traces, tagged, by_id, ["full", "none", "linear"])
    full = {p.question_id: p for p in probes if p.condition == "full"}
    none = {p.question_id: p for p in probes if p.condition == "none"}
    for trace in traces:
        assert full[trace.question_id].token_index == len(trace.cot_token_ids)
        assert full[trace.question_id].answer == trace.answer
        assert full[trace.question_id].confidence.sampled_label == trace.confidence.sampled_label
        assert none[trace.question_id].cot == "" and none[trace.question_id].token_index == 0
        assert none[trace.question_id].fraction_requested == 0.0
    assert [p.condition for p in probes if p.question_id == "q1"] == ["full", "none", "linear"]


def test_random_deletion_matches_linear_token_budget_within_one_step_and_is_seeded(scripted_run):
    _, _, traces, tagged, _ = scripted_run
    for trace in traces:
        steps = tagged.steps[trace.question_id]
        sizes = [s.token_end - s.token_start for s in steps]
        for target in range(0, sum(sizes) + 1, 3):
            v = random_deletion_variant(trace, steps, target, seed=1)
            assert abs(v.info["deleted_tokens"] - target) <= max(sizes)
            assert v.info["deleted_tokens"] == sum(s.token_end - s.token_start for s in steps if s.text in v.removed)
            again = random_deletion_variant(trace, steps, target, seed=1)
            assert again.cot == v.cot and again.removed == v.removed
    # different seeds choose different steps somewhere
    trace, steps = traces[0], tagged.steps["q1"]
    half = sum(s.token_end - s.token_start for s in steps) // 2
    picks = {tuple(random_deletion_variant(trace, steps, half, seed=s).removed) for s in range(8)}
    assert len(picks) > 1


def test_random_deletion_probe_follows_linear_budget(scripted_run):
    backend, path, traces, tagged, by_id = scripted_run
    probes, edits = _ablate(backend, path, traces, tagged, by_id, ["linear", "random-deletion"])
    steps = tagged.steps
    for q in ("q1", "q2"):
        lin = next(p for p in probes if p.question_id == q and p.condition == "linear")
        rnd = next(p for p in probes if p.question_id == q and p.condition == "random-deletion")
        size = {s.text: s.token_end - s.token_start for s in steps[q]}
        gap = abs(sum(size[t] for t in rnd.removed) - sum(size[t] for t in lin.removed))
        assert gap <= max(size.values())
    assert edits["random-deletion"]["max_abs_token_gap_to_linear"] <= max(
        s.token_end - s.token_start for q in steps for s in steps[q])


def test_ablation_leaves_traces_byte_identical_and_resume_adds_nothing(scripted_run):
    backend, path, traces, tagged, by_id = scripted_run
    before = (path / "traces.jsonl").read_bytes()
    conditions = ["full", "none", "linear", "no-hedging", "random-deletion"]
    _ablate(backend, path, traces[:2], tagged, by_id, conditions)
    _ablate(backend, path, traces, tagged, by_id, conditions)
    lines = (path / "probes.jsonl").read_text().splitlines()
    _ablate(backend, path, traces, tagged, by_id, conditions)
    assert (path / "probes.jsonl").read_text().splitlines() == lines
    keys = [(p.question_id, p.condition) for p in (Probe(**json.loads(l)) for l in lines)]
    assert len(keys) == len(set(keys)) == 15
    # a torn last record (killed mid-write) is dropped and redone, not duplicated
    with (path / "probes.jsonl").open("w") as fh:
        fh.write("\n".join(lines[:-1]) + "\n" + lines[-1][:40])
    _ablate(backend, path, traces, tagged, by_id, conditions)
    again = (path / "probes.jsonl").read_text().splitlines()
    assert len(again) == 15 and again[:-1] == lines[:-1]
    assert (path / "traces.jsonl").read_bytes() == before


def test_no_hedging_removes_cues_and_records_them(scripted_run):
    backend, path, traces, tagged, by_id = scripted_run
    probes, edits = _ablate(backend, path, traces, tagged, by_id, ["no-hedging"])
    by_q = {p.question_id: p for p in probes}
    assert by_q["q1"].cot.endswith("The answer is Paris.")
    assert "I think " in by_q["q1"].removed
    assert by_q["q2"].cot.startswith("Two plus three. It is 6.")
    assert by_q["q3"].cot == "The largest planet is Jupiter. Jupiter is option B. So the answer is B."
    assert by_q["q3"].removed == ["probably"]
    assert edits["no-hedging"]["cues"] >= 3


HEDGED = [
    ("I think the answer is Paris.", "The answer is Paris."),
    ("I think that it is Paris.", "It is Paris."),
    ("Maybe it's Paris.", "It's Paris."),
    ("It is probably Paris.", "It is Paris."),
    ("Paris is, perhaps, the capital.", "Paris is the capital."),
    ("Paris, I think.", "Paris."),
    ("So I think it's Paris.", "So it's Paris."),
    ("It might be Paris.", "It is Paris."),
    ("It seems large.", "It is large."),
    ("It seems that the answer is Lyon.", "The answer is Lyon."),
    ("I'm not sure, but I think it's 1912.", "It's 1912."),
    ("If I recall correctly, the Titanic sank in 1912.", "The Titanic sank in 1912."),
    ("The Titanic, if I remember correctly, sank in 1912.", "The Titanic sank in 1912."),
    ("I'm pretty sure it was Edison.", "It was Edison."),
    ("My guess is Canberra.", "Canberra."),
    ("So my guess is Canberra.", "So the answer is Canberra."),
    ("He will likely win the race.", "He will win the race."),
    ("The answer is most likely B.", "The answer is B."),
    ("They seem to be twins.", "They are twins."),
    ("Okay, I believe the capital is Canberra, not Sydney.", "Okay, the capital is Canberra, not Sydney."),
    ("It is likely that the answer is Paris.", "The answer is Paris."),
    ("Probably, x = 5 works.", "x = 5 works."),
    ("This could be hard, maybe not.", "This is hard."),
    ("I'm not sure.", ""),
    ("I think so.", "I think so."),  # no rule keeps it grammatical: left in place
]


@pytest.mark.parametrize("text,expected", HEDGED)
def test_no_hedging_keeps_sentences_grammatical(text, expected):
    cues = [(h.start, h.end) for h in tag_step(text) if h.behaviour == "hedging"]
    assert cues, text
    result = dehedge(text, cues)
    assert result.text == expected
    assert (result.kept == []) == (expected != text)


def test_rebuild_is_lossless_without_changes_and_keeps_paragraph_breaks():
    text = "  First step. Second step.\n\nThird step.\n- item one\n- item two\n"
    steps = to_records("q", text)
    assert rebuild(text, steps, {})[0] == text
    assert rebuild(text, steps, {1: ""})[0] == "  First step.\n\nThird step.\n- item one\n- item two\n"
    assert rebuild(text, steps, {s.index: "" for s in steps}) == ("", 0)


def _rewriter(tiny_parts, reply):
    return ScriptedBackend(lambda context: reply, tiny_parts[1], name="rewriter")


def test_rewrite_failures_are_recorded_as_errors_never_filler(scripted_run, tiny_parts):
    backend, path, traces, tagged, by_id = scripted_run
    prompts = load_rewrite_prompts()
    spec = prompts["conditions"]["rewrite-linear"]
    steps = tagged.steps["q1"]
    long = rewrite_variant(_rewriter(tiny_parts, "and so on " * 200), spec, "rewrite-linear", traces[0], steps, 30)
    assert "token limit (30 tokens)" in long.error and long.cot == ""
    empty = rewrite_variant(_rewriter(tiny_parts, "  </rewritten>"), spec, "rewrite-linear", traces[0], steps, 30)
    assert "empty output" in empty.error
    good = rewrite_variant(_rewriter(tiny_parts, "The capital of France is Paris.</rewritten> extra"), spec,
                           "rewrite-linear", traces[0], steps, 60)
    assert good.error == "" and good.cot == "The capital of France is Paris."
    assert "The capital of France is Lyon." in good.removed

    failing = Rewriting(_rewriter(tiny_parts, "and so on " * 200), prompts, max_tokens=20)
    probes, _ = _ablate(backend, path, traces, tagged, by_id, ["full", "rewrite-no-uncertainty"], rewriting=failing)
    failed = [p for p in probes if p.condition == "rewrite-no-uncertainty"]
    assert len(failed) == 3
    for p in failed:
        assert p.error.startswith("rewrite failed") and p.cot is None
        assert p.answer == "" and p.correct is None and p.confidence.expected_value is None
    table = condition_metrics(probes, n_resamples=20)["conditions"]["rewrite-no-uncertainty"]
    assert table["n_failed"] == 3 and table["n_total"] == 0
    # resume does not retry (the rewrite is greedy: it would fail the same way)
    probes, _ = _ablate(backend, path, traces, tagged, by_id, ["full", "rewrite-no-uncertainty"], rewriting=failing)
    assert len(probes) == 6


def test_successful_rewrite_is_probed_with_the_rewritten_cot(scripted_run, tiny_parts):
    backend, path, traces, tagged, by_id = scripted_run
    rewriting = Rewriting(_rewriter(tiny_parts, "A plain line of thought about it.</rewritten>"), load_rewrite_prompts())
    probes, _ = _ablate(backend, path, traces, tagged, by_id, ["rewrite-linear"], rewriting=rewriting)
    assert [p.cot for p in probes] == ["A plain line of thought about it."] * 3
    assert all(p.error == "" and p.answer for p in probes)


def test_unknown_condition_is_refused(scripted_run):
    backend, path, traces, tagged, by_id = scripted_run
    with pytest.raises(ValueError, match="unknown condition"):
        _ablate(backend, path, traces, tagged, by_id, ["full", "shuffle"])


def test_ablate_command_on_a_tiny_random_run(tmp_path, capsys):
    from cotprobe.cli import run_main
    from cotprobe.generate import main as generate_main

    out = tmp_path / "run"
    assert generate_main(["--model", "tiny-random", "-n", "3", "--budget", "24", "--out", str(out)]) == 0
    before = (out / "traces.jsonl").read_bytes()
    # the random model writes no confidence label: the scored expected value is always there
    args = [str(out), "--conditions", "full,none,linear,no-hedging,random-deletion", "--source", "expected"]
    assert run_main(main, args) == 0
    printed = capsys.readouterr().out
    assert "calibration per condition" in printed and "diff none" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["ablate"]["conditions"]) == ["full", "none", "linear", "no-hedging", "random-deletion"]
    assert metrics["ablate"]["edits"]["random-deletion"]["traces"] == 3
    assert (out / "figures" / "ablation.png").stat().st_size > 10_000
    assert (out / "tags.jsonl").exists() and (out / "traces.jsonl").read_bytes() == before
    assert len((out / "probes.jsonl").read_text().splitlines()) == 15
    assert json.loads((out / "manifest.json").read_text())["stages"]["ablate"]["settings"]["deletion_seed"] == 0
    # resuming under another deletion seed is refused; unknown conditions are refused
    assert run_main(main, args + ["--deletion-seed", "3"]) == 2
    assert "deletion_seed" in capsys.readouterr().err
    assert run_main(main, [str(out), "--conditions", "full,bogus"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_embedded_model_rewrites_a_real_cot_or_the_failure_is_recorded(embedded, scripted_run):
    """The rewrite path with real weights: the output is the model's own text between the
    prompt's tags, or a recorded failure; never the original CoT passed off as a rewrite."""
    _, _, traces, tagged, _ = scripted_run
    prompts = load_rewrite_prompts()
    trace = traces[0]
    for condition in ("rewrite-linear", "rewrite-no-uncertainty"):
        variant = rewrite_variant(embedded, prompts["conditions"][condition], condition, trace,
                                  tagged.steps[trace.question_id], 160)
        assert variant.condition == condition
        if variant.error:
            assert variant.error.startswith("rewrite failed") and variant.cot == ""
        else:
            assert variant.cot.strip() and "</rewritten>" not in variant.cot
            assert variant.removed == [s.text for s in tagged.steps[trace.question_id] if s.text not in variant.cot]
