"""python -m cotprobe.ingest and cotprobe.traces_in: traces made elsewhere become a run directory."""

import json
import subprocess
import sys

import pytest

from cotprobe.records import Question, Step, Trace, read_jsonl
from cotprobe.traces_in import (
    TraceFormatError,
    detect_format,
    parse_answer,
    read_traces,
    split_thought,
)

R1_THOUGHT = (
    "Okay, so I need to find how many ways to seat 5 people around a round table. "
    "For a line it would be 5! = 120, but a rotation gives the same seating.\n\n"
    "Wait, so I should divide by 5: the count is (5-1)! = 4! = 24. "
    "Let me double-check with a smaller case: 3 people give (3-1)! = 2, which matches."
)


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def generic_rows():
    return [
        {"id": "seat", "question": "In how many ways can 5 people sit around a round table?", "answer": "24",
         "model": "r1-distill-8b",
         "response": f"<think>\n{R1_THOUGHT}\n</think>\n\nThe answer is \\boxed{{24}}.\n**Confidence**: Almost certain"},
        {"id": "capital", "question": "What is the capital of Australia?", "answer": "Canberra",
         "aliases": ["Canberra, ACT"], "reasoning_content": "Hmm, Sydney is the largest city, but wait, the "
         "capital is Canberra. I'm fairly sure.", "content": "**Answer**: Canberra\n**Confidence**: Highly likely"},
        {"id": "unclosed", "question": "What is 17 * 23?", "answer": "391",
         "response": "<think>\nLet me compute 17 * 23. 17 * 20 = 340, and 17 * 3 = 51, so"},
        {"id": "nothought", "question": "Which planet is largest?", "answer": "Jupiter",
         "response": "**Answer**: Jupiter\n**Confidence**: Very good chance"},
    ]


# ---------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("response, expected", [
    ("<think>\nA. B.\n</think>\n\n**Answer**: x", ("A. B.", "**Answer**: x", "stop")),
    ("A. B.\n</think>\nx", ("A. B.", "x", "stop")),  # the template opened the thought
    ("<thought>A.</thought>x", ("A.", "x", "stop")),
    ("<think>A. B", ("A. B", "", "unclosed")),
    ("just an answer", ("", "just an answer", "none")),
])
def test_split_thought(response, expected):
    assert split_thought(response) == expected


@pytest.mark.parametrize("after, expected", [
    ("**Answer**: Paris\n**Confidence**: Likely", ("Paris", "Likely")),
    ("**Answer:** $\\boxed{\\frac{1}{2}}$", ("\\frac{1}{2}", "")),
    ("So the final answer is \\boxed{24}.\n", ("24", "")),
    ("Answer: B\nConfidence: Unlikely", ("B", "Unlikely")),
    ("Canberra\nbecause ...", ("Canberra", "")),
    ("", ("", "")),
])
def test_parse_answer(after, expected):
    assert parse_answer(after) == expected


def test_generic_jsonl_reads_every_kind_of_row(tmp_path):
    path = _write_jsonl(tmp_path / "runs.jsonl", generic_rows())
    assert detect_format(path) == "jsonl"
    seat, capital, unclosed, nothought = read_traces(path)
    assert seat.thought == R1_THOUGHT and seat.ended == "stop" and seat.model == "r1-distill-8b"
    assert "<think>" not in seat.thought and "boxed" not in seat.thought
    assert capital.thought.startswith("Hmm, Sydney") and capital.after.startswith("**Answer**: Canberra")
    assert capital.question.aliases == ["Canberra, ACT"]
    assert unclosed.ended == "unclosed" and unclosed.after == "" and unclosed.thought.endswith("so")
    assert nothought.ended == "none" and nothought.thought == ""
    assert seat.where.endswith("runs.jsonl:1")


def test_openai_chat_dumps(tmp_path):
    completion = {"model": "qwq-32b", "choices": [{"finish_reason": "stop", "message": {
        "role": "assistant", "reasoning_content": R1_THOUGHT, "content": "**Answer**: 24"}}]}
    rows = [
        {"id": "a", "answer": "24", "request": {"model": "qwq-32b", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "In how many ways can 5 people sit around a round table?"}]},
         "response": completion},
        {"custom_id": "b", "request": {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is 2 + 2?"}]}], "metadata": {"answer": "4"}},
         "response": {"status_code": 200, "body": {"choices": [{"finish_reason": "length", "message": {
             "content": "<think>2 + 2 is 4, but let me make sure"}}]}}},
    ]
    path = _write_jsonl(tmp_path / "dump.jsonl", rows)
    assert detect_format(path) == "openai-chat"
    a, b = read_traces(path)
    assert a.question.question.startswith("In how many") and a.thought == R1_THOUGHT and a.model == "qwq-32b"
    assert a.after == "**Answer**: 24" and a.ended == "stop"
    assert b.question.id == "b" and b.question.answer == "4" and b.ended == "unclosed"


def test_thought_anchors_folder(tmp_path):
    for k, (problem, answer) in enumerate([("Compute 5!.", "120"), ("Compute 3!.", "6")]):
        folder = tmp_path / "ta" / "correct_base_solution" / f"problem_{k}"
        folder.mkdir(parents=True)
        (folder / "problem.json").write_text(json.dumps({"problem": problem, "gt_answer": answer, "level": "Level 1"}))
        (folder / "base_solution.json").write_text(json.dumps({
            "prompt": f"Solve: {problem} <think>\n", "solution": f"5! is 5 * 4! = 120.\n</think>\n\n\\boxed{{{answer}}}",
            "answer": answer, "is_correct": True}))
    assert detect_format(tmp_path / "ta") == "thought-anchors"
    traces = read_traces(tmp_path / "ta")
    assert [t.question.id for t in traces] == ["correct_base_solution/problem_0", "correct_base_solution/problem_1"]
    assert traces[0].thought == "5! is 5 * 4! = 120." and parse_answer(traces[0].after)[0] == "120"


def test_thought_anchors_bad_json_names_the_file_and_line(tmp_path):
    folder = tmp_path / "ta" / "problem_0"
    folder.mkdir(parents=True)
    (folder / "problem.json").write_text(json.dumps({"problem": "Compute 3!.", "gt_answer": "6"}))
    (folder / "base_solution.json").write_text('{"solution": "3! = 6.</think> 6",\n "answer": }')
    with pytest.raises(TraceFormatError, match=r"base_solution.json line 2: not valid JSON"):
        read_traces(tmp_path / "ta")
    (folder / "base_solution.json").write_text('["not", "an object"]')
    with pytest.raises(TraceFormatError, match=r"base_solution.json: expected a JSON object"):
        read_traces(tmp_path / "ta")


def test_reasoningflow_rows(tmp_path):
    path = _write_jsonl(tmp_path / "data_raw.jsonl", [{"question_id": 7, "question": "What is 3 * 4?",
                                                         "correct_answer": "12", "response": "<think>3 * 4 = 12."
                                                         "</think>\n**Answer**: 12"}])
    assert detect_format(path) == "reasoningflow"
    (t,) = read_traces(path)
    assert t.question.id == "7" and t.question.answer == "12" and t.thought == "3 * 4 = 12."


@pytest.mark.parametrize("row, message", [
    ({"question": "Q?", "response": "<think>x</think>y"}, "runs.jsonl:2: missing field 'answer'"),
    ({"answer": "a", "response": "x"}, "runs.jsonl:2: missing field 'question'"),
    ({"question": "Q?", "answer": "a"}, "runs.jsonl:2: missing field 'response'"),
    ({"question": "Q?", "answer": "a", "response": 3}, "runs.jsonl:2: field 'response' must be a string"),
])
def test_bad_rows_name_file_line_and_field(tmp_path, row, message):
    path = _write_jsonl(tmp_path / "runs.jsonl", [generic_rows()[0], row])
    with pytest.raises(TraceFormatError, match=message):
        read_traces(path)


# ---------------------------------------------------------------------------- the command


def _run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", *args], check=False, capture_output=True, text=True,
                          timeout=timeout)


def test_malformed_input_writes_nothing(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(generic_rows()[0]) + "\n{not json\n")
    proc = _run("cotprobe.ingest", str(path), "--out", str(tmp_path / "run"), "--tokenizer", "tiny-random")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [(f"error: {path}:2: not valid JSON (Expecting property name "
                                                f"enclosed in double quotes)")]
    assert not (tmp_path / "run").exists()


def test_ingested_run_is_read_by_tag_report_and_metrics(tmp_path):
    path = _write_jsonl(tmp_path / "runs.jsonl", generic_rows())
    run = tmp_path / "run"
    proc = _run("cotprobe.ingest", str(path), "--out", str(run), "--tokenizer", "tiny-random")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ingested 4 traces" in proc.stdout
    traces = {t.question_id: t for t in read_jsonl(run / "traces.jsonl", Trace)}
    assert {q: t.thinking_ended for q, t in traces.items()} == {
        "seat": "stop", "capital": "stop", "unclosed": "unclosed", "nothought": "none"}
    seat = traces["seat"]
    assert seat.cot == R1_THOUGHT and seat.model == "r1-distill-8b" and seat.cot_token_ids
    assert seat.answer == "24" and seat.correct is True and seat.confidence.sampled_label == "Almost certain"
    assert traces["capital"].correct is True and traces["capital"].confidence.sampled_value == pytest.approx(0.85)
    assert traces["unclosed"].answer == "" and traces["unclosed"].correct is None
    assert "round table" in seat.prompt  # the reader's chat prompt for the question
    manifest = json.loads((run / "manifest.json").read_text())
    made = manifest["stages"]["generate"]["settings"]
    assert made["source"] == "ingest" and made["model"] == "tiny-random"
    assert [q.id for q in read_jsonl(run / "questions.jsonl", Question)] == list(traces)

    again = _run("cotprobe.ingest", str(path), "--out", str(run), "--tokenizer", "tiny-random")
    assert again.returncode == 0 and len((run / "traces.jsonl").read_text().splitlines()) == 4  # resumed

    tag = _run("cotprobe.tag", str(run))
    assert tag.returncode == 0, tag.stderr[-2000:]
    steps = read_jsonl(run / "steps.jsonl", Step)
    assert {s.question_id for s in steps} == {"seat", "capital", "unclosed"}  # no thought, no steps
    assert all(seat.cot[s.start:s.end] == s.text for s in steps if s.question_id == "seat")
    for cmd in (("cotprobe.report", str(run)), ("cotprobe.metrics", str(run))):
        proc = _run(*cmd)
        assert proc.returncode == 0, (cmd, proc.stderr[-2000:])


def test_truncate_from_an_ingested_run_with_the_embedded_model(tmp_path):
    path = _write_jsonl(tmp_path / "runs.jsonl", generic_rows()[1:2])
    run = tmp_path / "run"
    assert _run("cotprobe.ingest", str(path), "--out", str(run)).returncode == 0
    proc = _run("cotprobe.truncate", "--from-run", str(run), "--model", "smollm2-135m-instruct",
                "--fractions", "0,1", timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    probes = [json.loads(line) for line in (run / "probes.jsonl").read_text().splitlines()]
    assert len(probes) == 2 and {p["question_id"] for p in probes} == {"capital"}
    assert all(p["confidence"]["scored_probs"] for p in probes)
