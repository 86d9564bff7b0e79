"""Question sets: bundled files, arithmetic generator, sampling, user files, native benchmark
formats, and the DatasetError message of every failure."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from cotprobe.data import (
    DATASETS,
    DatasetError,
    arithmetic,
    dataset_hash,
    load_dataset,
    sample_questions,
)

LETTERS = "ABCDEFGHIJ"


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# --------------------------------------------------------------------------- bundled sets


def test_trivia_is_large_open_and_balanced():
    questions = load_dataset("trivia")
    assert len(questions) >= 320
    assert {q.kind for q in questions} == {"open"}
    assert {q.source for q in questions} == {"cotprobe-trivia"}
    levels = Counter(q.meta["difficulty"] for q in questions)
    assert set(levels) == {"easy", "medium", "hard"}
    assert min(levels.values()) >= len(questions) // 4
    assert len({q.subject for q in questions}) >= 6
    assert all(re.fullmatch(r"trivia-\d{4}", q.id) for q in questions)


def test_trivia_aliases_are_clean():
    for q in load_dataset("trivia"):
        assert q.answer.strip() == q.answer and q.question.endswith("?")
        assert all(alias.strip() for alias in q.aliases), q.id
        assert q.answer not in q.aliases and len(set(q.aliases)) == len(q.aliases), q.id


def test_trivia_difficulties_are_interleaved():
    first = load_dataset("trivia")[:20]
    assert set(Counter(q.meta["difficulty"] for q in first)) == {"easy", "medium", "hard"}


def test_trivia_difficulty_option():
    hard = load_dataset("trivia:hard")
    assert hard and {q.meta["difficulty"] for q in hard} == {"hard"}
    with pytest.raises(DatasetError, match="trivia: unknown option 'expert'"):
        load_dataset("trivia:expert")
    with pytest.raises(DatasetError, match="mc: unknown option 'hard'"):
        load_dataset("mc:hard")


def test_mc_is_large_with_valid_letters_and_varied_options():
    questions = load_dataset("mc")
    assert len(questions) >= 160
    assert {q.kind for q in questions} == {"mc"}
    sizes = Counter(len(q.choices) for q in questions)
    assert min(sizes) >= 4 and max(sizes) == 10 and len(sizes) >= 4
    for q in questions:
        assert q.answer in LETTERS[: len(q.choices)], q.id
        assert len(set(q.choices)) == len(q.choices), q.id
        assert isinstance(q.meta["math"], bool)
    assert len({q.subject for q in questions}) >= 8
    assert len({q.subject for q in questions[:10]}) >= 4  # subjects interleaved


def test_mc_math_split_partitions_mc():
    math_ids = {q.id for q in load_dataset("mc-math")}
    other_ids = {q.id for q in load_dataset("mc-nonmath")}
    all_ids = {q.id for q in load_dataset("mc")}
    assert math_ids and other_ids and not math_ids & other_ids
    assert math_ids | other_ids == all_ids
    assert 0.35 <= len(math_ids) / len(all_ids) <= 0.65


def test_every_registered_name_has_a_description():
    assert {"trivia", "mc", "mc-math", "mc-nonmath", "arithmetic", "triviaqa", "mmlu-pro",
            "supergpqa"} <= set(DATASETS)
    assert all(isinstance(text, str) and text for text in DATASETS.values())


# --------------------------------------------------------------------------- arithmetic


def _expression_value(question: str) -> int | None:
    match = re.fullmatch(r"What is ([\d ()+\-×]+)\?", question)
    if not match:
        return None
    return eval(match.group(1).replace("×", "*"), {"__builtins__": {}})


def _largest_number(question: str) -> int:
    return max(int(n) for n in re.findall(r"\d+", question))


def test_arithmetic_is_deterministic_per_seed():
    assert arithmetic(30, 3, seed=1) == arithmetic(30, 3, seed=1)
    assert arithmetic(30, 3, seed=1) != arithmetic(30, 3, seed=2)
    assert arithmetic(10, 4, seed=5) == arithmetic(40, 4, seed=5)[:10]


def test_arithmetic_answers_are_exact_integers():
    for level in range(1, 6):
        for q in arithmetic(40, level, seed=0):
            assert q.kind == "numeric" and re.fullmatch(r"-?\d+", q.answer)
            value = _expression_value(q.question)
            if value is not None:
                assert value == int(q.answer), q.question


def test_arithmetic_difficulty_changes_sizes():
    median_answer = [
        sorted(abs(int(q.answer)) for q in arithmetic(61, level))[30] for level in range(1, 6)
    ]
    assert median_answer == sorted(median_answer)
    assert max(_largest_number(q.question) for q in arithmetic(30, 1)) <= 9
    assert sorted(_largest_number(q.question) for q in arithmetic(31, 5))[15] >= 1000
    assert all(q.question.count("+") == 1 for q in arithmetic(20, 1))
    words = [q for q in arithmetic(40, 5) if q.meta["form"] == "word"]
    assert words and all(_expression_value(q.question) is None for q in words)


def test_arithmetic_named_levels_and_spec_option():
    assert arithmetic(5, "easy") == arithmetic(5, 1)
    assert arithmetic(5, "hard") == arithmetic(5, 5)
    questions = load_dataset("arithmetic:hard", n=7, seed=2)
    assert len(questions) == 7 and {q.meta["difficulty"] for q in questions} == {5}
    assert load_dataset("arithmetic:2", n=3) == arithmetic(3, 2)


def test_arithmetic_unknown_difficulty():
    with pytest.raises(DatasetError, match="unknown difficulty 'extreme'"):
        load_dataset("arithmetic:extreme")


# --------------------------------------------------------------------------- sampling and hash


def test_seeded_sample_is_deterministic_ordered_and_nested():
    full = load_dataset("trivia")
    position = {q.id: i for i, q in enumerate(full)}
    small = load_dataset("trivia", n=15, seed=3)
    assert small == load_dataset("trivia", n=15, seed=3)
    assert small != load_dataset("trivia", n=15, seed=4)
    assert small != full[:15]
    indexes = [position[q.id] for q in small]
    assert indexes == sorted(indexes)
    assert {q.id for q in small} <= {q.id for q in load_dataset("trivia", n=40, seed=3)}


def test_sample_larger_than_set_is_an_error():
    with pytest.raises(DatasetError, match="n=1000.*has 171|n=1000"):
        load_dataset("mc", n=1000)
    assert sample_questions([], None) == []


def test_dataset_hash_is_stable_and_content_sensitive():
    questions = load_dataset("mc", n=10)
    assert dataset_hash(questions) == dataset_hash(load_dataset("mc", n=10))
    assert re.fullmatch(r"[0-9a-f]{64}", dataset_hash(questions))
    questions[0].answer = "A" if questions[0].answer != "A" else "B"
    assert dataset_hash(questions) != dataset_hash(load_dataset("mc", n=10))


# --------------------------------------------------------------------------- user files


def test_user_jsonl_with_declared_columns(tmp_path):
    path = write_jsonl(tmp_path / "qs.jsonl", [
        {"qid": "a", "Q": "Capital of France?", "A": "Paris", "alts": ["Paris, France"],
         "level": 1},
        {"qid": "b", "Q": "2 + 2?", "A": 4, "alts": "four|IV", "level": 2},
    ])
    questions = load_dataset(str(path), columns={"id": "qid", "question": "Q", "answer": "A",
                                                 "aliases": "alts"})
    assert [q.id for q in questions] == ["a", "b"]
    assert questions[0].aliases == ["Paris, France"] and questions[0].kind == "open"
    assert questions[1].answer == "4" and questions[1].aliases == ["four", "IV"]
    assert questions[1].meta == {"level": 2}


def test_user_csv_with_declared_columns(tmp_path):
    path = write_csv(tmp_path / "qs.csv", ["qid", "Q", "A", "alts", "opts"], [
        ["1", "Who wrote Hamlet?", "Shakespeare", '["William Shakespeare", "the Bard"]', ""],
        ["2", "Largest planet?", "C", "", "Mars|Venus|Jupiter|Saturn"],
        ["3", "Smallest prime?", "2", "two", ""],
    ])
    questions = load_dataset(path, columns={"id": "qid", "question": "Q", "answer": "A",
                                            "aliases": "alts", "choices": "opts"})
    assert [q.kind for q in questions] == ["open", "mc", "open"]
    assert questions[0].aliases == ["William Shakespeare", "the Bard"]
    assert questions[1].choices == ["Mars", "Venus", "Jupiter", "Saturn"]
    assert questions[1].answer == "C" and questions[2].aliases == ["two"]


def test_user_csv_identity_columns_kind_and_default_ids(tmp_path):
    path = write_csv(tmp_path / "maths.csv", ["question", "answer", "kind", "choices"], [
        ["What is 6 x 7?", "42", "numeric", ""],
        ["Pick the even number", "4", "mc", "3|4|5|7"],
    ])
    questions = load_dataset(str(path))
    assert [q.id for q in questions] == ["maths-0001", "maths-0002"]
    assert questions[0].kind == "numeric"
    assert questions[1].answer == "B"  # an mc answer given as the option text


# --------------------------------------------------------------------------- errors


def test_unknown_dataset_lists_known_names():
    with pytest.raises(DatasetError, match=r"unknown dataset 'trivai'.*trivia, mc"):
        load_dataset("trivai")


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match=r"not found: .*nope\.jsonl"):
        load_dataset(str(tmp_path / "nope.jsonl"))


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "a?", "answer": "b"}\n\n{"question": "c?", "answer": \n')
    with pytest.raises(DatasetError, match=r"bad\.jsonl line 3: malformed JSON"):
        load_dataset(str(path))


def test_missing_declared_csv_column_lists_available(tmp_path):
    path = write_csv(tmp_path / "qs.csv", ["question", "answer"], [["a?", "b"]])
    with pytest.raises(DatasetError, match=r"missing declared column 'alts'.*question, answer"):
        load_dataset(str(path), columns={"aliases": "alts"})


def test_missing_declared_jsonl_column_names_line(tmp_path):
    path = write_jsonl(tmp_path / "qs.jsonl", [{"Q": "a?", "A": "b"}, {"Q": "c?"}])
    with pytest.raises(DatasetError, match=r"line 2: missing declared column 'A'.*Q"):
        load_dataset(str(path), columns={"question": "Q", "answer": "A"})


def test_unknown_field_in_columns(tmp_path):
    path = write_jsonl(tmp_path / "qs.jsonl", [{"question": "a?", "answer": "b"}])
    with pytest.raises(DatasetError, match="unknown Question field.*prompt"):
        load_dataset(str(path), columns={"prompt": "question"})


def test_empty_question_names_row(tmp_path):
    path = write_csv(tmp_path / "qs.csv", ["question", "answer"],
                     [["a?", "b"], ["c?", "d"], ["  ", "e"]])
    with pytest.raises(DatasetError, match=r"qs\.csv row 3 \(line 4\): empty question"):
        load_dataset(str(path))


def test_duplicate_ids(tmp_path):
    path = write_jsonl(tmp_path / "qs.jsonl", [
        {"id": "x", "question": "a?", "answer": "b"},
        {"id": "x", "question": "c?", "answer": "d"},
    ])
    with pytest.raises(DatasetError, match=r"line 2: duplicate id 'x' \(first used at .*line 1\)"):
        load_dataset(str(path))


def test_mc_letter_out_of_range_names_row(tmp_path):
    path = write_csv(tmp_path / "mc.csv", ["question", "answer", "choices"],
                     [["a?", "A", "x|y"], ["b?", "E", "p|q|r|s"]])
    with pytest.raises(DatasetError, match=r"row 2 \(line 3\): mc answer letter 'E' out of range.*A-D"):
        load_dataset(str(path))


# --------------------------------------------------------------------------- native benchmarks


def test_triviaqa_original_json(tmp_path):
    path = tmp_path / "wikipedia-dev.json"
    path.write_text(json.dumps({"Version": 1.0, "Data": [
        {"Question": "Which planet is red?", "QuestionId": "tc_1",
         "Answer": {"Value": "Mars", "Aliases": ["Mars", "Planet Mars"],
                    "NormalizedAliases": ["mars", "planet mars"]}},
        {"Question": "Who wrote Emma?", "QuestionId": "tc_2",
         "Answer": {"Value": "Jane Austen", "Aliases": [], "NormalizedAliases": ["austen"]}},
    ]}))
    questions = load_dataset("triviaqa", data_dir=tmp_path, hub=False)
    assert [q.id for q in questions] == ["triviaqa-tc_1", "triviaqa-tc_2"]
    assert questions[0].answer == "Mars" and questions[0].aliases == ["Planet Mars"]
    assert questions[1].aliases == ["austen"] and questions[1].kind == "open"


def test_triviaqa_hf_jsonl_and_data_dir_root(tmp_path):
    folder = tmp_path / "triviaqa"
    folder.mkdir()
    write_jsonl(folder / "validation.jsonl", [
        {"question": "Largest ocean?", "question_id": "qz_9", "question_source": "web",
         "answer": {"value": "Pacific", "aliases": ["Pacific", "Pacific Ocean"],
                    "normalized_value": "pacific"}},
        {"question": "Capital of Peru?", "answers": ["Lima", "Lima, Peru"]},
    ])
    questions = load_dataset("triviaqa", data_dir=tmp_path, hub=False)
    assert questions[0].id == "triviaqa-qz_9" and questions[0].aliases == ["Pacific Ocean"]
    assert questions[1].answer == "Lima" and questions[1].aliases == ["Lima, Peru"]


MMLU_ROWS = [
    {"question_id": 70, "question": "2 + 2 = ?", "options": ["3", "4", "5", "6", "7"],
     "answer": "B", "answer_index": 1, "category": "math", "src": "ori_mmlu"},
    {"question_id": 71, "question": "Capital of Italy?", "options": ["Rome", "Milan", "Turin"],
     "answer": "A", "answer_index": 0, "category": "history", "src": "ori_mmlu"},
    {"question_id": 72, "question": "F = ma. m = 2, a = 3. F?", "options": ["5", "6", "1", "8"],
     "answer": "", "answer_index": 1, "category": "physics", "src": "stemez"},
]


def test_mmlu_pro_rows_and_math_split(tmp_path):
    path = write_jsonl(tmp_path / "test.jsonl", MMLU_ROWS)
    questions = load_dataset("mmlu-pro", data_dir=path, hub=False)
    assert [q.id for q in questions] == ["mmlu-pro-70", "mmlu-pro-71", "mmlu-pro-72"]
    assert [q.answer for q in questions] == ["B", "A", "B"]  # letter from answer_index
    assert questions[0].choices == ["3", "4", "5", "6", "7"] and questions[0].kind == "mc"
    math = load_dataset("mmlu-pro-math", data_dir=path, hub=False)
    other = load_dataset("mmlu-pro-nonmath", data_dir=path, hub=False)
    assert [q.subject for q in math] == ["math", "physics"]
    assert [q.subject for q in other] == ["history"]


def test_mmlu_pro_letter_out_of_range(tmp_path):
    rows = [dict(MMLU_ROWS[1], answer="J")]
    path = write_jsonl(tmp_path / "test.jsonl", rows)
    with pytest.raises(DatasetError, match=r"line 1: mc answer letter 'J' out of range.*A-C"):
        load_dataset("mmlu-pro", data_dir=path, hub=False)


def _supergpqa_row(uuid, difficulty, calc, letter="A"):
    return {"uuid": uuid, "question": f"Question {uuid}?", "options": ["x", "y", "z", "w"],
            "answer": "x", "answer_letter": letter, "discipline": "Science",
            "field": "Physics", "subfield": "Optics", "difficulty": difficulty,
            "is_calculation": calc}


def test_supergpqa_difficulty_and_math_split(tmp_path):
    folder = tmp_path / "supergpqa"
    folder.mkdir()
    write_jsonl(folder / "SuperGPQA-all.jsonl", [
        _supergpqa_row("u1", "middle", True), _supergpqa_row("u2", "middle", False, "C"),
        _supergpqa_row("u3", "hard", True), _supergpqa_row("u4", "easy", False),
    ])
    default = load_dataset("supergpqa", data_dir=folder, hub=False)
    assert [q.id for q in default] == ["supergpqa-u1", "supergpqa-u2"]  # middle only
    assert default[1].answer == "C" and default[0].meta["math"] is True
    assert len(load_dataset("supergpqa:all", data_dir=folder, hub=False)) == 4
    assert [q.id for q in load_dataset("supergpqa-math", data_dir=folder, hub=False)] == [
        "supergpqa-u1"]
    hard_math = load_dataset("supergpqa-math:hard", data_dir=folder, hub=False)
    assert [q.id for q in hard_math] == ["supergpqa-u3"]
    with pytest.raises(DatasetError, match="unknown difficulty 'medium'"):
        load_dataset("supergpqa:medium", data_dir=folder, hub=False)


def test_missing_benchmark_says_what_to_download(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_dataset("mmlu-pro", data_dir=tmp_path / "empty", hub=False)
    message = str(info.value)
    assert "\n" not in message
    assert "huggingface.co/datasets/TIGER-Lab/MMLU-Pro" in message
    assert "test-00000-of-00001.parquet" in message and str(tmp_path / "empty") in message


def test_default_benchmark_folder_is_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(DatasetError, match=r"\.cache/cotprobe/datasets/triviaqa.*trivia_qa"):
        load_dataset("triviaqa", hub=False)


def test_several_candidate_files_is_an_error(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", MMLU_ROWS[:1])
    write_jsonl(tmp_path / "b.jsonl", MMLU_ROWS[1:])
    with pytest.raises(DatasetError, match=r"several candidate files \(a\.jsonl, b\.jsonl\)"):
        load_dataset("mmlu-pro", data_dir=tmp_path, hub=False)


def test_mmlu_pro_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    import pandas as pd

    (tmp_path / "data").mkdir()
    pd.DataFrame(MMLU_ROWS).to_parquet(tmp_path / "data" / "test-00000-of-00001.parquet")
    questions = load_dataset("mmlu-pro", data_dir=tmp_path, hub=False)
    assert [q.answer for q in questions] == ["B", "A", "B"]


def test_parquet_shaped_rows_with_numpy_arrays():
    """pandas.read_parquet gives structs as dicts and lists as numpy arrays."""
    np = pytest.importorskip("numpy")
    from cotprobe.data import parse_mmlu_pro, parse_triviaqa

    trivia = parse_triviaqa([("f row 1", {
        "question": "Red planet?", "question_id": "t1",
        "answer": {"value": "Mars", "aliases": np.array(["Mars", "Red Planet"]),
                   "normalized_aliases": np.array(["mars", "red planet"])}})])
    assert trivia[0].aliases == ["Red Planet"]
    mmlu = parse_mmlu_pro([("f row 1", dict(MMLU_ROWS[0], options=np.array(["3", "4", "5"]),
                                            answer_index=np.int64(1)))])
    assert mmlu[0].choices == ["3", "4", "5"] and mmlu[0].answer == "B"


# --------------------------------------------------------------------------- package modules


def test_every_registered_set_is_listed_and_only_arithmetic_is_generated():
    from cotprobe.data import REGISTRY

    assert list(REGISTRY) == list(DATASETS)
    assert [name for name, spec in REGISTRY.items() if spec.generated] == ["arithmetic"]


def test_jsonl_objects_is_lazy_and_names_lines_its_callers_way(tmp_path):
    from cotprobe.data.readers import jsonl_objects

    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"b": 2}\n[3]\n')
    rows = jsonl_objects(path, "{path}:{line}", KeyError)
    assert next(rows) == (f"{path}:1", {"a": 1})
    assert next(rows) == (f"{path}:3", {"b": 2})
    with pytest.raises(KeyError, match=re.escape(f"{path}:4: expected a JSON object")):
        next(rows)


def test_row_to_question_maps_fields_by_name_and_keeps_other_keys_in_meta():
    from cotprobe.data.user_files import row_to_question

    question = row_to_question({"question": "Pick", "answer": "(b)", "choices": ["x", "y"], "extra": 1},
                               "f line 1", "f-0001")
    assert (question.id, question.kind, question.answer, question.meta) == ("f-0001", "mc", "B", {"extra": 1})
    with pytest.raises(DatasetError, match=r"f line 1: field 'meta' is not a valid JSON object"):
        row_to_question({"question": "q", "answer": "a", "meta": "{oops"}, "f line 1", "f-0001")
