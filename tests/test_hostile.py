"""Hostile but fair inputs (issue #14): every refusal is one line on stderr naming the file, line
and field or the option, exit status 2, no traceback, and no run directory left or changed.

Runs in-process (cotprobe.cli.run_main) on the tiny random model: a few seconds in all.
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PROFILE

from cotprobe.forcing import Prober
from cotprobe import cuts, generate, report, tag, truncate
from cotprobe.config import DEFAULT_EXPERIMENT_N, add_run_arguments, resolve_run
from cotprobe.metrics import __main__ as metrics  # the command `python -m cotprobe.metrics`
from cotprobe.scales import VERBAL_10
from cotprobe.cli import given_options, run_main
from cotprobe.data import DatasetError, load_dataset
from cotprobe.records import Step, Trace, read_jsonl
from cotprobe.scales import get_scale
from cotprobe.store import RunDir, RunDirError, read_records, steps_complete
from cotprobe.cuts import Sweep, parse_fractions

TINY = ["--model", "tiny-random", "--profile", "plain"]
FAST = ["--dataset", "arithmetic", "-n", "3", "--budget", "4"]


def cli(module, argv, capsys):
    """(exit status, stdout, stderr) of one command run in-process."""
    code = run_main(module.main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused(module, argv, capsys, *needles):
    code, _, err = cli(module, argv, capsys)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len([line for line in lines if line.startswith("error:")]) == 1, err
    error = next(line for line in lines if line.startswith("error:"))
    for needle in needles:
        assert needle in error, error
    return error


def snapshot(path: Path) -> dict[str, str]:
    """Every file under path (but the lock) and its hash: to check that nothing changed."""
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """R: a finished generate + truncate run of 4 arithmetic questions on the tiny model."""
    path = tmp_path_factory.mktemp("finished") / "R"
    assert run_main(generate.main, [*TINY, *FAST, "--out", str(path)]) == 0
    assert run_main(truncate.main, ["--from-run", str(path), "--fractions", "0,1"]) == 0
    return path


@pytest.fixture()
def run(finished, tmp_path):
    """A private copy of R."""
    path = tmp_path / "R"
    shutil.copytree(finished, path)
    return path


# ------------------------------------------------------------------ 1. half-written step lists


def _half_write_steps(path):
    """Steps as a run killed between two per-step appends left them: the last trace's last step
    missing (that trace has no probes yet)."""
    whole = read_jsonl(path / "steps.jsonl", Step)
    last = whole[-1].question_id
    assert sum(s.question_id == last for s in whole) >= 2
    lines = (path / "steps.jsonl").read_text().splitlines()
    (path / "steps.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    return whole, last


def test_half_written_step_list_is_segmented_again(scripted_run, capsys):
    backend, path, traces, _, by_id = scripted_run
    whole, last = _half_write_steps(path)
    assert not steps_complete(next(t for t in traces if t.question_id == last),
                              [s for s in whole if s.question_id == last][:-1])
    with RunDir(path) as rd:  # truncate: the cuts of the last trace use its whole step list
        probes = cuts.truncate(Prober(backend, PROFILE, VERBAL_10), traces, by_id, rd, Sweep([0.0, 0.5, 1.0]))
    assert "incomplete" in capsys.readouterr().err
    assert read_jsonl(path / "steps.jsonl", Step) == whole
    steps = [s for s in whole if s.question_id == last]
    half = next(p for p in probes if p.question_id == last and p.fraction_requested == 0.5)
    assert half.step_index == sum(1 for s in steps if s.token_end <= half.token_index)
    _half_write_steps(path)  # and tag, the other stage that segments
    assert tag.main([str(path)]) == 0
    assert read_jsonl(path / "steps.jsonl", Step) == whole


def test_steps_of_one_trace_are_one_write(tmp_path):
    with RunDir(tmp_path / "r") as rd:
        rd.append_many("x.jsonl", [Step("q", i, "a", 0, 1, "", 0, 1) for i in range(3)])
    assert len((tmp_path / "r" / "x.jsonl").read_text().splitlines()) == 3


# ------------------------------------------------------------------ 2. --from-run overrides


@pytest.mark.parametrize("extra, needle", [
    (["--model", "smollm2-135m-instruct"], "--model smollm2-135m-instruct"),
    (["--budget", "100"], "--budget 100"),
    (["--scale", "numeric100"], "--scale numeric100"),
    (["--dataset", "trivia"], "--dataset trivia"),
    (["-n", "2"], "-n 2"),
    (["--profile", "think"], "--profile think"),
    (["--out", "{elsewhere}"], "--out"),
])
def test_from_run_refuses_contradicting_options(run, tmp_path, capsys, extra, needle):
    before = snapshot(run)
    extra = [e.replace("{elsewhere}", str(tmp_path / "elsewhere")) for e in extra]
    refused(truncate, ["--from-run", run, *extra], capsys, needle)
    assert snapshot(run) == before
    assert not (tmp_path / "elsewhere").exists()


def test_ablate_run_dir_refuses_contradicting_options(run, capsys):
    before = snapshot(run)
    refused(__import__("cotprobe.ablate").ablate, [run, "--budget", "100"], capsys, "--budget 100")
    assert snapshot(run) == before


def test_from_run_accepts_options_equal_to_the_run(run, capsys):
    code, _, err = cli(truncate, ["--from-run", run, *TINY, "--budget", "4", "--fractions", "0,1"], capsys)
    assert code == 0, err


# ------------------------------------------------------------------ 3, 10. dataset values


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("row, needle", [
    ({"id": "a", "question": "q?", "answer": ["x", "y"]}, "field 'answer' should be text or a number"),
    ({"id": "a", "question": "q?", "answer": {"v": "x"}}, "field 'answer'"),
    ({"id": "a", "question": "q?", "answer": True}, "field 'answer'"),
    ({"id": "a", "question": ["q?"], "answer": "x"}, "field 'question' should be text"),
    ({"id": "a", "question": "q?", "answer": "x", "meta": ["m"]}, "field 'meta' should be an object"),
    ({"id": "a", "question": "q?", "answer": "four", "kind": "numeric"}, "must be a number"),
    ({"id": "", "question": "q?", "answer": "x"}, "field 'id' is empty"),
    ({"id": "a", "question": "q?", "answer": "x", "aliases": [["y"]]}, "field 'aliases[0]'"),
])
def test_bad_jsonl_values_are_refused_with_file_line_field(tmp_path, row, needle):
    path = _jsonl(tmp_path / "qs.jsonl", [{"id": "ok", "question": "fine?", "answer": "1"}, row])
    with pytest.raises(DatasetError, match="qs.jsonl line 2") as info:
        load_dataset(str(path))
    assert needle in str(info.value)


def test_numbers_and_lists_that_are_values_still_load(tmp_path):
    path = _jsonl(tmp_path / "qs.jsonl", [
        {"id": 7, "question": "How many?", "answer": 4, "kind": "numeric"},
        {"id": "b", "question": "Pick", "answer": "B", "choices": ["x", 2, "z"]},
    ])
    qs = load_dataset(str(path))
    assert [q.id for q in qs] == ["7", "b"] and qs[0].answer == "4" and qs[1].choices == ["x", "2", "z"]


@pytest.mark.parametrize("text, needle", [
    ('question,answer\nq1,"a1\nq2,a2\nq3,a3\n', "line 2: malformed CSV (a quoted field is not closed)"),
    ('question,answer\nq1,a1,extra\n', "row 1 (line 2): 3 fields but the header has 2"),
    ('question,answer\nq1\n', "row 1 (line 2): 1 fields but the header has 2"),
    ('question,answer,answer\nq1,a,b\n', "duplicate column"),
    ('id,question,answer\n,q1,a1\n', "field 'id' is empty"),
])
def test_bad_csv_is_refused_at_its_line(tmp_path, text, needle):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DatasetError, match="bad.csv") as info:
        load_dataset(str(path))
    assert needle in str(info.value)


def test_bom_csv_loads_and_non_utf8_names_file_and_line(tmp_path):
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffquestion,answer\nq1?,a1\n".encode("utf-8"))
    assert load_dataset(str(bom))[0].question == "q1?"
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"id": "a", "question": "q", "answer": "x"}\n{"id": "b", "question": "caf\xe9", "answer": "y"}\n')
    with pytest.raises(DatasetError, match=r"latin\.jsonl line 2: not UTF-8 text \(byte 0xe9\)"):
        load_dataset(str(latin))


def test_bad_dataset_leaves_no_run_directory(tmp_path, capsys):
    path = _jsonl(tmp_path / "qs.jsonl", [{"id": "a", "question": "q?", "answer": True}])
    refused(generate, [*TINY, "--dataset", path, "--out", tmp_path / "out"], capsys, "qs.jsonl line 1", "'answer'")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ 4. custom scales


@pytest.mark.parametrize("content, needle", [
    ({"labels": ["a", "a", "b"], "values": [0.1, 0.2, 0.3]}, "are the same"),
    ({"labels": ["Likely", "likely!"], "values": [0.1, 0.2]}, "are the same"),
    ({"labels": ["", "b"], "values": [0.1, 0.9]}, "no letters or digits"),
    ({"labels": "abc", "values": [0.1, 0.2, 0.3]}, "'labels' must be a JSON list"),
    ({"labels": ["a", "b"], "values": ["0.1", "0.9"]}, "must be a number in [0, 1]"),
    ({"labels": [1, 2], "values": [0.1, 0.9]}, "is not text"),
    ({"labels": ["a", "b"], "values": [0.1, 1.5]}, "must be a number in [0, 1]"),
    ({"labels": ["a"], "values": [0.5]}, "at least two labels"),
    (["a", "b"], "a JSON object"),
    ('{"labels": ["a" "b"]}', "line 1: not valid JSON"),
])
def test_bad_custom_scales_name_the_file(tmp_path, content, needle):
    path = tmp_path / "scale.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ValueError, match="scale.json") as info:
        get_scale(str(path))
    assert needle in str(info.value)


def test_scale_directory_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a file"):
        get_scale(str(tmp_path))


# ------------------------------------------------------------------ 5. --fractions


@pytest.mark.parametrize("spec, needle", [
    ("0:1:1e-9", "at most"), ("0:1:0", "positive"), ("0:1:-0.1", "positive"), ("0:1:nan", "positive"),
    ("0,nan", "[0, 1]"), ("0:2:0.5", "[0, 1]"),
])
def test_fractions_are_bounded(spec, needle):
    with pytest.raises(ValueError, match="--fractions") as info:
        parse_fractions(spec)
    assert needle in str(info.value)
    assert len(parse_fractions("0:1:0.001")) == 1001


# ------------------------------------------------------------------ 6, 7, 11, 15. pre-flight


def test_over_long_question_is_named_before_anything_runs(tmp_path, capsys):
    rows = [{"id": f"q{i}", "question": "What is 1 + 1?", "answer": "2"} for i in range(3)]
    rows[1]["question"] = "word " * 6000
    path = _jsonl(tmp_path / "qs.jsonl", rows)
    out = tmp_path / "out"
    refused(generate, [*TINY, "--dataset", path, "--budget", "8", "--out", out], capsys,
            "qs.jsonl line 2", "'q1'", "context of 4096")
    assert not out.exists()


@pytest.mark.parametrize("bad, needle", [
    (["--budget", "0"], "--budget"), (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "-1"], "--batch-size"), (["-n", "0"], "-n"),
])
def test_bad_numbers_are_refused_before_the_run_directory(tmp_path, capsys, bad, needle):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        generate.main([*TINY, *FAST, *bad, "--out", str(out)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "must be at least 1" in err and "Traceback" not in err
    assert not out.exists()


def test_integer_scale_labels_refused_then_the_fixed_rerun_works(tmp_path, capsys):
    scale = tmp_path / "s.json"
    scale.write_text(json.dumps({"labels": [1, 2], "values": [0.2, 0.8]}))
    out = tmp_path / "out"
    refused(generate, [*TINY, *FAST, "--scale", scale, "--out", out], capsys, "s.json")
    assert not out.exists()
    scale.write_text(json.dumps({"labels": ["low", "high"], "values": [0.2, 0.8]}))
    code, _, err = cli(generate, [*TINY, *FAST, "--scale", scale, "--out", out], capsys)
    assert code == 0, err


def test_failure_inside_a_stage_leaves_no_claim(tmp_path):
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError):
        with RunDir(fresh) as rd:
            rd.start_stage("generate", {"model": "a"})
            raise RuntimeError("boom")
    assert not fresh.exists()  # created here, nothing written: removed
    kept = tmp_path / "kept"
    with RunDir(kept) as rd:
        rd.start_stage("generate", {"model": "a"})
        rd.append("traces.jsonl", Step("q", 0, "a", 0, 1, "", 0, 1))
    with pytest.raises(RuntimeError):
        with RunDir(kept) as rd:
            rd.start_stage("truncate", {"fractions": [0, 1]})
            raise RuntimeError("boom")
    stages = json.loads((kept / "manifest.json").read_text())["stages"]
    assert list(stages) == ["generate"]  # the stage that wrote nothing is not claimed
    with RunDir(kept) as rd:
        rd.start_stage("truncate", {"fractions": [0, 0.5, 1]})  # the corrected rerun is accepted


def test_out_naming_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("x")
    refused(generate, [*TINY, *FAST, "--out", target], capsys, "not a directory")
    assert target.read_text() == "x"


def test_nonexistent_model_folder_is_named(tmp_path, capsys):
    refused(generate, ["--model", "/nonexistent/folder", "--profile", "plain", "--out", tmp_path / "o"],
            capsys, "/nonexistent/folder: no such model folder")


def test_benchmark_hint_names_the_command_line_option(tmp_path):
    with pytest.raises(DatasetError, match="--data-dir"):
        load_dataset("mmlu-pro", data_dir=tmp_path, hub=False)


# ------------------------------------------------------------------ 8, 13. one reading rule


def test_torn_last_lines_are_read_alike_by_every_stage(run, capsys):
    for name in ("traces.jsonl", "probes.jsonl"):
        with open(run / name, "a") as fh:
            fh.write('{"question_id": "arith-3-0-9999", "mo')
    code, out, err = cli(metrics, [run], capsys)
    assert code == 0, err
    assert "3 traces" in out and "incomplete" in err
    code, _, err = cli(report, [run], capsys)
    assert code == 0, err
    code, _, err = cli(truncate, ["--from-run", run, "--fractions", "0,1"], capsys)
    assert code == 0, err
    assert (run / "probes.jsonl").read_text().endswith("\n")  # the writer cut the torn line off


def test_duplicated_lines_are_counted_once(run, capsys):
    for name in ("traces.jsonl", "probes.jsonl"):
        first = (run / name).read_text().splitlines()[0]
        with open(run / name, "a") as fh:
            fh.write(first + "\n")
    code, out, err = cli(metrics, [run], capsys)
    assert code == 0, err
    assert "3 traces" in out and "duplicate" in err
    section = json.loads((run / "metrics.json").read_text())
    assert section["truncate"]["levels"][0]["n_total"] == 3
    assert len(read_records(run / "traces.jsonl", Trace)) == 3


# ------------------------------------------------------------------ 9. derived and provenance files


def test_corrupt_metrics_json_is_rebuilt(run, capsys):
    (run / "metrics.json").write_text('{"traces": ')
    code, _, err = cli(truncate, ["--from-run", run, "--fractions", "0,1"], capsys)
    assert code == 0, err
    assert "metrics.json" in err and "rebuilding" in err
    assert "truncate" in json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text("[1, 2]")
    code, _, err = cli(metrics, [run], capsys)
    assert code == 0, err
    assert {"traces", "truncate"} <= set(json.loads((run / "metrics.json").read_text()))


@pytest.mark.parametrize("manifest, needle", [
    ('{"stages": ', "manifest.json: not valid JSON"),
    ('{"stages": []}', "manifest.json: 'stages' should be an object"),
    ('[]', "manifest.json: expected a JSON object"),
])
def test_corrupt_manifest_is_named_by_every_command(run, capsys, manifest, needle):
    (run / "manifest.json").write_text(manifest)
    from cotprobe import ablate

    for module, argv in [(metrics, [run]), (report, [run]), (tag, [run]),
                         (truncate, ["--from-run", run]), (ablate, [run])]:
        refused(module, argv, capsys, needle)


# ------------------------------------------------------------------ 12. hidden -n 30


def test_a_given_dataset_is_not_cut_to_thirty(tmp_path, capsys):
    rows = [{"id": f"q{i}", "question": f"What is {i} + 1?", "answer": str(i + 1), "kind": "numeric"}
            for i in range(1)]
    path = _jsonl(tmp_path / "one.jsonl", rows)
    out = tmp_path / "out"
    code, _, err = cli(truncate, [*TINY, "--dataset", path, "--budget", "8", "--fractions", "0,1",
                                  "--out", out], capsys)
    assert code == 0, err
    assert len(read_jsonl(out / "traces.jsonl", Trace)) == 1


def test_default_experiment_says_it_takes_thirty(capsys):
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    parser.add_argument("--out", default="runs/default")
    args = parser.parse_args([])
    _, config = resolve_run(parser, args, [], None, "--from-run")
    assert config.limit == DEFAULT_EXPERIMENT_N
    assert f"default experiment: {DEFAULT_EXPERIMENT_N} questions" in capsys.readouterr().err
    args = parser.parse_args(["--dataset", "mc"])
    _, config = resolve_run(parser, args, ["--dataset", "mc"], None, "--from-run")
    assert config.limit is None
    assert given_options(parser, ["--dataset", "mc", "-n", "5"]) == {"dataset", "limit"}


# ------------------------------------------------------------------ 14. lock hygiene


def _hold(path, ready, release):
    with RunDir(path):
        ready.set()
        release.wait(20)


def test_refused_writer_keeps_the_holders_pid_and_metrics_waits(run, capsys):
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(run, ready, release))
    holder.start()
    try:
        assert ready.wait(20)
        pid = (run / ".lock").read_text()
        assert pid == str(holder.pid)
        with pytest.raises(RunDirError, match=f"pid {pid}"):
            with RunDir(run):
                pass
        assert (run / ".lock").read_text() == pid
        before = snapshot(run)
        refused(metrics, [run], capsys, "another cotprobe process is writing")
        refused(report, [run], capsys, "another cotprobe process is writing")
        assert snapshot(run) == before
    finally:
        release.set()
        holder.join()


def test_lock_is_reentrant_in_one_process(tmp_path):
    with RunDir(tmp_path / "r") as outer:
        with RunDir(tmp_path / "r"):
            pass
        outer.append("x.jsonl", Step("q", 0, "a", 0, 1, "", 0, 1))  # still held
    with RunDir(tmp_path / "r"):
        pass


# ------------------------------------------------------------------ 15. smaller


def test_metrics_resamples_must_be_positive(run, capsys):
    before = snapshot(run)
    for bad in ("0", "-1"):
        with pytest.raises(SystemExit):
            metrics.main([str(run), "--resamples", bad])
        assert "--resamples" in capsys.readouterr().err
    assert snapshot(run) == before


def test_metrics_on_a_run_without_records_says_so_and_drops_stale_tables(run, capsys):
    (run / "traces.jsonl").unlink()
    (run / "probes.jsonl").unlink()
    code, out, err = cli(metrics, [run], capsys)
    assert code == 0, err
    assert "no traces or probes" in out
    assert json.loads((run / "metrics.json").read_text()) == {}


def test_sigterm_says_how_to_resume(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cotprobe.generate", *TINY, "--dataset", "arithmetic", "-n", "200",
           "--budget", "24", "--batch-size", "1", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "traces.jsonl").exists():
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-1000:]
    assert "run the same command again to resume" in err and "Traceback" not in err
    lines = (out / "traces.jsonl").read_text()
    assert lines.endswith("\n")
    assert os.path.exists(out / "manifest.json")
