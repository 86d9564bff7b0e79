import json
import multiprocessing

import pytest

from cotprobe.records import Confidence, Question, RecordError, Trace, from_dict, read_jsonl, to_dict, write_jsonl
from cotprobe.store import RunDir, RunDirError


def trace(qid="q1", **kw):
    base = dict(question_id=qid, model="m", prompt="p", cot="c", answer="a", confidence=Confidence(),
                prompt_tokens=1, cot_token_ids=[1, 2], thinking_ended="stop")
    return Trace(**{**base, **kw})


def test_records_round_trip_through_jsonl(tmp_path):
    records = [trace("q1"), trace("q2", correct=True, confidence=Confidence(scored_probs=[0.5, 0.5]))]
    write_jsonl(tmp_path / "t.jsonl", records)
    assert read_jsonl(tmp_path / "t.jsonl", Trace) == records


@pytest.mark.parametrize("change, message", [
    ({"prompt_tokens": "7"}, "field 'prompt_tokens': expected an integer"),
    ({"cot_token_ids": [1, "x"]}, r"field 'cot_token_ids'\[1\]"),
    ({"surprise": 1}, "unknown field"),
    ({"correct": "yes"}, "field 'correct'"),
])
def test_malformed_record_names_file_line_and_field(tmp_path, change, message):
    good = to_dict(trace())
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, **change}) + "\n")
    with pytest.raises(RecordError, match=r"t\.jsonl:2: .*" + message):
        read_jsonl(path, Trace)


def test_missing_field_and_bad_json_are_reported(tmp_path):
    with pytest.raises(RecordError, match="missing field.*answer"):
        from_dict(Question, {"id": "x", "question": "?"})
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "x", "question": "?", "answer": "a"}\n{"id": \n')
    with pytest.raises(RecordError, match=r"q\.jsonl:2: not valid JSON"):
        read_jsonl(path, Question)


def _hold_lock(path, ready, release):
    with RunDir(path):
        ready.set()
        release.wait(10)


def test_second_writer_is_refused(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(tmp_path / "run", ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(RunDirError, match="another cotprobe process is writing"):
            with RunDir(tmp_path / "run"):
                pass
    finally:
        release.set()
        holder.join()
    with RunDir(tmp_path / "run"):  # free again once the holder exits
        pass


def test_torn_last_line_is_cut_and_complete_records_kept(tmp_path):
    with RunDir(tmp_path) as run:
        run.append("traces.jsonl", trace("q1"))
        with open(tmp_path / "traces.jsonl", "a") as fh:
            fh.write('{"question_id": "q2", "mod')  # a write interrupted mid-record
        run.repair("traces.jsonl")
        assert [t.question_id for t in run.read("traces.jsonl", Trace)] == ["q1"]
        run.append("traces.jsonl", trace("q2"))
        assert [t.question_id for t in run.read("traces.jsonl", Trace)] == ["q1", "q2"]


def test_stage_settings_must_match_to_resume(tmp_path):
    with RunDir(tmp_path) as run:
        run.start_stage("generate", {"model": "a", "budget": 10})
        run.start_stage("generate", {"model": "a", "budget": 10})  # same settings: fine
        with pytest.raises(RunDirError, match="different settings \\(budget\\)"):
            run.start_stage("generate", {"model": "a", "budget": 20})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["stages"]["generate"]["versions"]["torch"]
    assert not list(tmp_path.glob("*.tmp"))
