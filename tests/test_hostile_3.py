"""Hostile but fair inputs, round 2 (issue #26), continued: truncate, resampling, latent, early
exit, the judge's verdicts, hand-edited manifests. Each refusal is one `error:` line, exit 2, no
traceback, nothing written; in-process on the tiny model and an ingested run of two traces.
"""

import argparse
import dataclasses
import json
import shutil

import numpy as np
import pytest

from test_hostile import cli, refused, snapshot
from test_hostile_2 import TOK, _jsonl, _row

from cotprobe import early_exit, hidden, ingest, latent, truncate
from cotprobe.backends.scripted import ScriptedBackend
from cotprobe.backends.tiny import tiny_tokenizer
from cotprobe.judge import AnswerJudge, load_grader_prompt
from cotprobe.records import HiddenState, Probe, RecordError, Trace, Verdict, read_jsonl
from cotprobe.store import RunDir, RunDirError, read_records

FAST = ["--model", "tiny-random", "--profile", "plain", "--dataset", "arithmetic", "-n", "1", "--budget", "4"]


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """An ingested run of two traces, one with an empty thought, probed at cuts 0 and 1 (item 2)."""
    root = tmp_path_factory.mktemp("probed")
    path = _jsonl(root / "in.jsonl", [_row(id="a"), _row(id="empty", response="**Answer**: 4")])
    run = root / "R"
    assert ingest.main([str(path), "--out", str(run), *TOK]) == 0
    assert truncate.main(["--from-run", str(run), "--fractions", "0,1"]) == 0
    return run


@pytest.fixture()
def run(probed, tmp_path):
    path = tmp_path / "R"
    shutil.copytree(probed, path)
    return path


# ------------------------------------------------------------------ 2: an empty thought is probed


def test_a_trace_with_no_thought_is_probed_at_every_cut(probed):
    probes = read_jsonl(probed / "probes.jsonl", Probe)
    empty = [p for p in probes if p.question_id == "empty"]
    assert sorted(p.fraction_requested for p in empty) == [0.0, 1.0]
    assert all(p.token_index == 0 for p in empty)
    assert {p.question_id for p in probes} == {"a", "empty"}


# ------------------------------------------------------------------ 8, 9, 16: resampling options


@pytest.mark.parametrize("extra, needles", [
    (["--resample", "2", "--resample-fractions", "0.3", "--fractions", "0,0.5,1"], ["--resample-fractions", "0.3", "cut level"]),
    (["--resample-fractions", "0.5"], ["--resample-fractions", "without --resample"]),
    (["--temperature", "0.5"], ["--temperature", "without --resample"]),
    (["--resample", "2", "--temperature", "inf"], ["--temperature", "finite"]),
    (["--resample", "2", "--temperature", "nan"], ["--temperature"]),
    (["--resample", "2", "--resample-fractions", "1.5"], ["--resample-fractions '1.5'", "[0, 1]"]),
    (["--resample", "1000000"], ["--resample", "0..1024"]),
    (["--resample", "-1"], ["--resample"]),
    (["--timeout", "1e300"], ["--timeout"]),
    (["--grader", "judge", "--judge-model", "x", "--judge-backend", "openai"], ["--judge-base-url"]),
])
def test_bad_probing_options_are_refused_before_anything_is_written(tmp_path, capsys, extra, needles):
    out = tmp_path / "out"
    refused(truncate, [*FAST, *extra, "--out", out], capsys, *needles)
    assert not out.exists()


def test_resampling_needs_a_sampling_backend_and_hidden_states_a_local_model(tiny):
    class Greedy(ScriptedBackend):
        samples = False

    backend = Greedy(tiny_tokenizer(), {})
    args = argparse.Namespace(resample=2, hidden_states=False)
    with pytest.raises(ValueError, match="--resample needs a backend that samples"):
        truncate.check_backend(backend, args)
    with pytest.raises(ValueError, match="no hidden states"):
        truncate.check_backend(backend, argparse.Namespace(resample=0, hidden_states=True))
    truncate.check_backend(tiny, argparse.Namespace(resample=2, hidden_states=True))  # the hf backend: accepted


# ------------------------------------------------------------------ 25: hand-edited manifests


@pytest.mark.parametrize("key, value, needle", [
    ("model", 123, "settings.model should be text"),
    ("limit", "six", "settings.limit should be a whole number"),
    ("scale_spec", 5, "settings.scale_spec should be text"),
    ("profile", "plain", None),  # a profile given by its name is read
    ("profile", "nonesuch", "settings.profile should be one of"),
    ("profile", 7, "settings.profile"),
])
def test_hand_edited_manifest_values_are_named(run, capsys, key, value, needle):
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["stages"]["generate"]["settings"][key] = value
    (run / "manifest.json").write_text(json.dumps(manifest))
    before = snapshot(run)
    if needle is None:
        code, _, err = cli(truncate, ["--from-run", run, "--fractions", "0,1"], capsys)
        assert code == 0, err
        return
    refused(truncate, ["--from-run", run, "--fractions", "0,1"], capsys, "manifest.json", needle)
    assert snapshot(run) == before


# ------------------------------------------------------------------ 14: latent options and the store


@pytest.mark.parametrize("folds", ["0", "2", "5"])
def test_latent_folds_are_named_before_any_extraction(run, capsys, folds):
    before = snapshot(run)
    refused(latent, [run, "--folds", folds], capsys, f"--folds {folds}")
    assert snapshot(run) == before and not (run / hidden.ARRAY).exists()


def test_check_folds_accepts_what_cross_validation_can_fill():
    latent.check_folds(5, 10)
    latent.check_folds(2, 4)
    latent.check_folds(3, 3)
    with pytest.raises(ValueError, match="use --folds 3 or fewer"):
        latent.check_folds(4, 3)


def _store(tmp_path, rows=2, layers=(1, 2), size=4):
    """A hidden-state store of `rows` rows written by HiddenStore (as truncate --hidden-states does)."""
    with RunDir(tmp_path / "H") as rd:
        store = hidden.HiddenStore(rd, list(layers), size)
        store.append("q", "cut", list(range(rows)), np.ones((rows, len(layers), size)))
    return tmp_path / "H"


def test_hidden_store_damage_is_read_by_the_shared_rule_or_named(tmp_path):
    path = _store(tmp_path)
    index = path / hidden.INDEX
    lines = index.read_text().splitlines()
    index.write_text("\n".join([lines[0], lines[1], lines[1]]) + "\n")  # a duplicated line: read once
    records, array, _ = hidden.load(path)
    assert len(records) == 2 and array.shape[0] == 2
    index.write_text(lines[0] + "\n" + lines[1][:10])  # a torn last line: skipped, then resumed
    assert len(hidden.load(path)[0]) == 1
    with RunDir(path) as rd:
        store = hidden.HiddenStore(rd, [1, 2], 4)
        store.append("q", "cut", [1, 5], np.ones((2, 2, 4)))
    records, array, _ = hidden.load(path)
    assert [(r.token_index, r.row) for r in records] == [(0, 0), (1, 1), (5, 2)] and array.shape[0] == 3
    with open(path / hidden.ARRAY, "rb+") as fh:  # a short array
        fh.truncate(8)
    with pytest.raises(RunDirError, match="do not belong together"):
        hidden.load(path)


def test_an_index_row_out_of_range_is_named(tmp_path):
    path = _store(tmp_path)
    with open(path / hidden.INDEX, "a") as fh:
        fh.write(json.dumps(dataclasses.asdict(HiddenState("q", "cut", 9, 99))) + "\n")
    with pytest.raises(RunDirError, match="points at row 99"):
        hidden.load(path)
    with pytest.raises(RunDirError, match="points at row 99"):
        with RunDir(path) as rd:
            hidden.HiddenStore(rd, [1, 2], 4)


# ------------------------------------------------------------------ 15: early exit with nothing graded


def test_early_exit_with_no_graded_cut_is_one_line(run, capsys):
    probes = read_jsonl(run / "probes.jsonl", Probe)
    (run / "probes.jsonl").write_text("".join(json.dumps({**dataclasses.asdict(p), "correct": None}) + "\n"
                                              for p in probes))
    before = snapshot(run)
    code, _, err = cli(early_exit, [run], capsys)
    assert code == 2 and err.strip().startswith("error:") and "graded" in err
    assert len(err.strip().splitlines()) == 1, err  # no RuntimeWarning lines before it
    assert snapshot(run) == before


# ------------------------------------------------------------------ 19: the judge's torn verdict


def test_a_torn_last_verdict_does_not_block_resume(tmp_path):
    prompt = load_grader_prompt()
    path = tmp_path / "verdicts.jsonl"
    judge = AnswerJudge(None, "m", prompt)
    whole = Verdict("q1", "Paris", judge.key, "A", "correct", "")
    path.write_text(json.dumps(dataclasses.asdict(whole)) + "\n" + '{"question_id": "q2", "ans')
    judge = AnswerJudge(None, "m", prompt, cache=path)
    assert list(judge.verdicts.values()) == [whole]
    assert path.read_text().endswith("\n") and len(read_records(path, Verdict)) == 1


# ------------------------------------------------------------------ 26: token ids a tokenizer cannot take


@pytest.mark.parametrize("bad", [-1, 2**32 + 1])
def test_token_ids_outside_any_vocabulary_are_named_at_their_line(run, capsys, bad):
    traces = [dataclasses.asdict(t) for t in read_jsonl(run / "traces.jsonl", Trace)]
    traces[1]["cot_token_ids"] = [5, bad]
    (run / "traces.jsonl").write_text("".join(json.dumps(t) + "\n" for t in traces))
    with pytest.raises(RecordError, match=r"traces\.jsonl:2: field 'cot_token_ids'\[1\]"):
        read_jsonl(run / "traces.jsonl", Trace)
    before = snapshot(run)
    refused(truncate, ["--from-run", run, "--fractions", "0,0.5,1"], capsys, "traces.jsonl:2", "cot_token_ids")
    assert snapshot(run) == before


def test_tag_judge_on_a_server_without_its_address_names_judge_base_url(probed, capsys):
    from cotprobe import tag

    before = sorted(p.name for p in probed.iterdir())
    refused(tag, [str(probed), "--judge", "x", "--judge-backend", "openai"], capsys, "--judge-base-url")
    assert sorted(p.name for p in probed.iterdir()) == before


def test_token_ids_outside_the_models_vocabulary_are_refused_naming_the_question(run, capsys):
    traces = [dataclasses.asdict(t) for t in read_jsonl(run / "traces.jsonl", Trace)]
    traces[1]["cot_token_ids"] = [5, 100_000]  # a valid id for some tokenizer, not for this model's
    (run / "traces.jsonl").write_text("".join(json.dumps(t) + "\n" for t in traces))
    before = snapshot(run)
    refused(truncate, ["--from-run", run, "--fractions", "0,0.5,1"], capsys, "traces.jsonl",
            repr(traces[1]["question_id"]), "outside the vocabulary")
    assert snapshot(run) == before
