"""Hostile but fair inputs, round 2 (issue #26): ingest, the report's sections, run files, serving.

Each refusal is one line on stderr (`error: ...`) naming the file, line and field or the option,
exit status 2, no traceback, and no run directory left or changed; each case of wrong data now
gives the right result. In-process (cotprobe.cli.run_main), tiny model, small inputs.
"""

import errno
import io
import json
import sqlite3

import pytest

from test_hostile import cli, refused, snapshot

from cotprobe import ingest, report
from cotprobe.backends.answers import MalformedAnswer, compact
from cotprobe.backends.cache import RequestCache
from cotprobe.records import Question, Trace, read_jsonl
from cotprobe.store import RunDir, RunDirError
from cotprobe.traces_in import split_thought

TOK = ["--tokenizer", "tiny-random"]


def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _row(**over):
    row = {"id": "a", "question": "What is 2 + 2?", "answer": "4", "response": "<think>2 + 2 = 4.</think>\n**Answer**: 4"}
    row.update(over)
    return {k: v for k, v in row.items() if v is not ...}


def _ingested(tmp_path, capsys, rows, *extra):
    path = _jsonl(tmp_path / "in.jsonl", rows)
    code, _, err = cli(ingest, [path, "--out", tmp_path / "run", *TOK, *extra], capsys)
    assert code == 0, err
    return (read_jsonl(tmp_path / "run" / "questions.jsonl", Question),
            read_jsonl(tmp_path / "run" / "traces.jsonl", Trace))


# ------------------------------------------------------------------ 4, 6, 10: ingest reads values right


def test_numeric_gold_is_read_as_the_dataset_reads_it(tmp_path, capsys):
    questions, traces = _ingested(tmp_path, capsys, [_row(answer=4.0), _row(id=7, answer=12, response="x")])
    assert [q.answer for q in questions] == ["4", "12"] and [q.id for q in questions] == ["a", "7"]
    assert traces[0].correct is True  # "4" graded against gold 4.0


@pytest.mark.parametrize("response, expected", [
    ("pre</think> mid <think>x", ("pre", "mid <think>x", "stop")),
    ("pre</think>after", ("pre", "after", "stop")),
    ("<think>a</think>b</think>c", ("a", "b</think>c", "stop")),
])
def test_an_end_tag_before_the_start_tag_closes_the_prompts_thought(response, expected):
    assert split_thought(response) == expected


# ------------------------------------------------------------------ 5, 10, 11, 13: ingest refuses, writes nothing


def _chat(choices, content="What is 2 + 2?"):
    return {"id": "c", "answer": "4", "request": {"messages": [{"role": "user", "content": content}]},
            "response": {"choices": choices}}


MESSAGE = {"message": {"content": "<think>t</think>\n**Answer**: 4"}, "finish_reason": "stop"}


@pytest.mark.parametrize("row, needles", [
    (_row(answer=float("nan")), ["in.jsonl:2", "empty answer"]),
    (_row(answer=float("inf")), ["in.jsonl:2", "'answer'"]),
    (_row(id=["a"]), ["in.jsonl:2", "'id'"]),
    (_row(answer="E", choices=["x", "y"]), ["in.jsonl:2", "out of range"]),
    (_row(answer="four", kind="numeric"), ["in.jsonl:2", "must be a number"]),
    (_row(answer=""), ["in.jsonl:2", "empty answer"]),
    (_row(question="   "), ["in.jsonl:2", "empty question"]),
    (_row(answer="A", choices=["x"]), ["in.jsonl:2", "at least 2 choices"]),
    (_row(answer="A", choices=[None], kind="mc"), ["in.jsonl:2", "at least 2 choices"]),
    (_row(kind="essay"), ["in.jsonl:2", "unknown kind 'essay'"]),
    ('{"id": "a", "question": "q\\ud800?", "answer": "4", "response": "x"}', ["in.jsonl:2", "'question'", "surrogate"]),
    ('{"id": "\\udc00", "question": "q?", "answer": "4", "response": "x"}', ["in.jsonl:2", "'id'", "surrogate"]),
    ('{"id": "a", "question": "q?", "answer": "4", "response": "<think>\\ud83d</think>"}', ["in.jsonl:2", "'response'"]),
])
def test_bad_ingest_rows_are_named_and_nothing_is_written(tmp_path, capsys, row, needles):
    path = _jsonl(tmp_path / "in.jsonl", [_row(id="first"), row])
    refused(ingest, [path, "--out", tmp_path / "run", *TOK], capsys, *needles)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("row, needles", [
    (_chat([MESSAGE, MESSAGE]), ["in.jsonl:1", "'response.choices' holds 2 samples"]),
    (_chat([MESSAGE], content=[{"type": "text", "text": 5}]), ["in.jsonl:1", "content[0].text"]),
    (_chat(["just text"]), ["in.jsonl:1", "choices[0].message"]),
])
def test_bad_chat_dumps_are_named_and_nothing_is_written(tmp_path, capsys, row, needles):
    path = _jsonl(tmp_path / "in.jsonl", [row])
    refused(ingest, [path, "--out", tmp_path / "run", *TOK, "--format", "openai-chat"], capsys, *needles)
    assert not (tmp_path / "run").exists()


def test_thought_anchors_solution_names_its_own_field(tmp_path, capsys):
    folder = tmp_path / "ta" / "problem_1"
    folder.mkdir(parents=True)
    (folder / "base_solution.json").write_text(json.dumps({"solution": 5}))
    (folder / "problem.json").write_text(json.dumps({"problem": "2 + 2?", "gt_answer": "4"}))
    refused(ingest, [tmp_path / "ta", "--out", tmp_path / "run", *TOK], capsys, "base_solution.json", "'solution'")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ 1, 3: the report's sections


def test_report_draws_the_newer_sections_as_their_own(tmp_path):
    metrics = {
        "early_exit": {"n_questions": 3, "sources": ["verbal", "scored"], "policies": [{"policy": "x"}]},
        "latent": {"levels": [{"level": 0.5}], "pooled": {}, "n_parsed": 3},
        "resample": {"sources": {"verbal": {"levels": []}}, "n": 3},
    }
    page = report.metrics_html(metrics)
    assert "no parsed confidences" not in page and "Final answers" not in page
    for name in metrics:
        assert name in page


# ------------------------------------------------------------------ 7, 20: server answers


@pytest.mark.parametrize("choice, needle", [
    ({"text": None, "finish_reason": "stop"}, "text is null"),
    ({"finish_reason": "stop"}, "text is null"),
    ({"text": "x", "logprobs": {"top_logprobs": "abc"}}, "top log-probabilities"),
    ({"text": "x", "logprobs": {"top_logprobs": ["a"]}}, "top log-probabilities"),
    ({"text": "x", "logprobs": "abc"}, "logprobs is a string"),
])
def test_answers_without_text_or_with_odd_logprobs_are_malformed(choice, needle):
    with pytest.raises(MalformedAnswer, match=needle):
        compact({"choices": [choice]})
    assert compact({"choices": [{"text": "", "finish_reason": "length"}]})["text"] == ""


# ------------------------------------------------------------------ 12: symlinked run files


@pytest.mark.parametrize("name", ["traces.jsonl", "metrics.json", "manifest.json"])
def test_a_symlinked_run_file_is_refused_before_any_write(tmp_path, name):
    run, outside = tmp_path / "run", tmp_path / "outside.txt"
    run.mkdir()
    outside.write_text("{}\n")
    (run / name).symlink_to(outside)
    with pytest.raises(RunDirError, match=f"{name}: is a symbolic link"):
        with RunDir(run) as rd:
            rd.append("traces.jsonl", Question("q", "x", "y"))
    assert outside.read_text() == "{}\n" and (run / name).is_symlink()


# ------------------------------------------------------------------ 21: the request cache


def test_a_corrupt_cache_is_set_aside_and_rebuilt(tmp_path, capsys):
    root = tmp_path / "c"
    root.mkdir()
    (root / "requests.sqlite").write_bytes(b"not a database at all" * 100)
    cache = RequestCache(root)
    cache.put("k", None, {"text": "y"})
    assert cache.get("k", None) == {"text": "y"}
    assert "set aside" in capsys.readouterr().err
    assert len(list(root.glob("requests.sqlite.corrupt-*"))) == 1
    good = RequestCache(tmp_path / "t")
    good.put("k", None, {"text": "y"})
    good._db.close()
    data = (tmp_path / "t" / "requests.sqlite").read_bytes()
    (tmp_path / "t" / "requests.sqlite").write_bytes(data[:len(data) // 2])  # truncated
    assert RequestCache(tmp_path / "t").get("k", None) is None


def test_cache_dir_naming_a_file_or_a_read_only_cache_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="--cache-dir"):
        RequestCache(tmp_path / "f")
    RequestCache(tmp_path / "ro")._db.close()
    real = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda target, **kw: real(f"file:{target}?mode=ro", uri=True, **kw))
    with pytest.raises(ValueError, match="--cache-dir: the request cache .* cannot be written"):
        RequestCache(tmp_path / "ro")


# ------------------------------------------------------------------ 23, 24: the disk refuses


def _refusing_writes(monkeypatch, under, code):
    real = io.open

    def fake(file, mode="r", *args, **kwargs):
        if str(file).startswith(str(under)) and any(c in mode for c in "wax+"):
            raise OSError(code, __import__("os").strerror(code), str(file))
        return real(file, mode, *args, **kwargs)
    monkeypatch.setattr(io, "open", fake)
    monkeypatch.setattr("builtins.open", fake)


def test_disk_full_during_ingest_is_one_line_and_resumes(tmp_path, capsys, monkeypatch):
    path = _jsonl(tmp_path / "in.jsonl", [_row(id="a"), _row(id="b")])
    run = tmp_path / "run"
    code, _, _ = cli(ingest, [path, "--out", run, *TOK], capsys)
    assert code == 0
    (run / "traces.jsonl").write_text((run / "traces.jsonl").read_text().splitlines()[0] + "\n")
    before = snapshot(run)
    _refusing_writes(monkeypatch, run / "traces.jsonl", errno.ENOSPC)
    refused(ingest, [path, "--out", run, *TOK], capsys, "traces.jsonl", "No space left", "resume")
    assert snapshot(run) == before
    monkeypatch.undo()
    code, _, err = cli(ingest, [path, "--out", run, *TOK], capsys)
    assert code == 0, err
    assert [t.question_id for t in read_jsonl(run / "traces.jsonl", Trace)] == ["a", "b"]


def test_a_read_only_run_directory_is_one_line(tmp_path, capsys, monkeypatch):
    path = _jsonl(tmp_path / "in.jsonl", [_row(id="a")])
    run = tmp_path / "run"
    assert cli(ingest, [path, "--out", run, *TOK], capsys)[0] == 0
    before = snapshot(run)
    _refusing_writes(monkeypatch, run, errno.EACCES)
    from cotprobe import tag
    from cotprobe.metrics import __main__ as metrics

    for module, argv in [(metrics, [run]), (report, [run]), (tag, [run])]:
        refused(module, argv, capsys, str(run), "cannot write")
    assert snapshot(run) == before
