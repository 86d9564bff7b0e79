import json

import pytest
from conftest import PROFILE

from cotprobe.forcing import Prober
from cotprobe.records import Confidence, Probe, Step, Tag, read_jsonl
from cotprobe.scales import VERBAL_10
from cotprobe.store import RunDir
from cotprobe.behaviours import change_relation, step_changes
from cotprobe.tag import main
from cotprobe.steps import segment_trace
from cotprobe.cuts import Sweep, truncate


@pytest.fixture()
def run_dir(scripted_traces):
    """Three scripted traces recorded as made by tiny-random (so the CLI loads its tokenizer)."""
    return scripted_traces


def test_tag_segments_tags_counts_and_rewrites_atomically(run_dir, capsys):
    backend, path, traces, _ = run_dir
    assert not (path / "steps.jsonl").exists()
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "backtracking" in out and "traces>=1" in out
    steps = read_jsonl(path / "steps.jsonl", Step)
    assert steps == [s for t in traces for s in segment_trace(backend, t)]  # the model's token spans
    tags = read_jsonl(path / "tags.jsonl", Tag)
    section = json.loads((path / "metrics.json").read_text())["behaviours"]
    assert section["n_traces"] == 3 and section["n_steps"] == len(steps)
    per = section["per_behaviour"]
    assert per["backtracking"]["traces"] == 2 and per["hedging"]["traces"] == 3  # "Wait, ...", "Actually, no"
    assert per["backtracking"]["steps"] == len({(t.question_id, t.step_index) for t in tags
                                                 if t.behaviour == "backtracking"})
    assert section["per_trace"]["q1"]["verification"] >= 1
    assert (path / "figures" / "behaviour_frequency.png").stat().st_size > 10_000
    assert "no step has both neighbouring cuts probed" in out
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["stages"]["tag"]["settings"]["lexicon"] == "default"
    # again: same files, nothing appended
    first = ((path / "steps.jsonl").read_bytes(), (path / "tags.jsonl").read_bytes())
    assert main([str(path)]) == 0
    assert ((path / "steps.jsonl").read_bytes(), (path / "tags.jsonl").read_bytes()) == first
    assert not (path / "tags.jsonl.tmp").exists()


def test_tag_with_a_custom_lexicon(run_dir, tmp_path):
    _, path, _, _ = run_dir
    lexicon = tmp_path / "lex.json"
    lexicon.write_text(json.dumps({"version": "t1", "behaviours": {"geography": {"patterns": [{"phrase": "capital"}]}}}))
    assert main([str(path), "--lexicon", str(lexicon)]) == 0
    tags = read_jsonl(path / "tags.jsonl", Tag)
    assert tags and {t.behaviour for t in tags} == {"geography"} and {t.tagger for t in tags} == {"rules@t1"}
    section = json.loads((path / "metrics.json").read_text())["behaviours"]
    assert section["per_behaviour"]["geography"]["traces"] == 1


def test_confidence_change_across_steps_from_every_step_cuts(run_dir, capsys):
    backend, path, traces, by_id = run_dir
    with RunDir(path) as run:
        truncate(Prober(backend, PROFILE, VERBAL_10), traces, by_id, run, Sweep([], "every-step"))
    assert main([str(path), "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert "confidence change across a step" in out
    rel = json.loads((path / "metrics.json").read_text())["behaviours"]["confidence_change"]
    n_steps = len(read_jsonl(path / "steps.jsonl", Step))
    assert rel["n_steps"] == n_steps and rel["n_traces"] == 3  # every step has both neighbours
    # the scripted model drops from "Almost certain" to "Highly likely" once "Wait" is in the CoT:
    # of the two backtracking steps ("Wait, ...", "Actually, no, ...") one changes confidence by -0.1
    back = rel["groups"]["backtracking"]
    assert back["n_steps"] == 2 and back["mean_change"] == pytest.approx(-0.05)
    assert back["mean_abs_change"] == pytest.approx(0.05)
    assert rel["groups"]["none"]["mean_change"] == pytest.approx(0.0, abs=1e-9)
    assert back["diff_change_vs_none"]["estimate"] == pytest.approx(-0.05)
    assert (path / "figures" / "behaviour_trajectories.png").stat().st_size > 10_000


def _probe(q, token_index, value):
    return Probe(question_id=q, condition="cut", fraction_requested=0.0, fraction_realised=0.0, step_index=0,
                 token_index=token_index, answer="", confidence=Confidence(expected_value=value))


def test_step_change_uses_only_steps_with_both_neighbouring_cuts():
    steps = {"q": [Step("q", i, "x", 0, 1, " ", a, b) for i, (a, b) in enumerate([(0, 4), (5, 9), (9, 12), (12, 12)])]}
    tags = [Tag("q", 1, "backtracking", "wait", 0, 4), Tag("q", 1, "hedging", "maybe", 5, 9)]
    probes = [_probe("q", 0, 0.5), _probe("q", 4, 0.7), _probe("q", 9, 0.4),
              Probe(**{**_probe("q", 9, 0.9).__dict__, "condition": "linear"})]  # not a cut: ignored
    rows = step_changes(steps, tags, probes)
    # step 0: 0 -> 4; step 1: 4 -> 9; step 2: 12 not probed; step 3: no tokens of its own
    assert [(r["step_index"], round(r["change"], 6), r["behaviours"]) for r in rows] == [
        (0, 0.2, []), (1, -0.3, ["backtracking", "hedging"])]
    rel = change_relation(rows, ["backtracking", "hedging", "verification"], n_resamples=50)
    assert rel["groups"]["hedging"]["mean_change"] == pytest.approx(-0.3)
    assert rel["groups"]["verification"] == {"n_steps": 0, "n_traces": 0}
    assert rel["groups"]["backtracking"]["mean_abs_change"] == pytest.approx(0.3)


def test_tag_command_refuses_a_directory_without_a_run(tmp_path, capsys):
    from cotprobe.cli import run_main

    assert run_main(main, [str(tmp_path)]) == 2
    assert "not a cotprobe run directory" in capsys.readouterr().err
