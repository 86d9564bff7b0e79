"""Question sets: bundled ones, the paper's benchmarks, generated arithmetic and user files.

Whom it serves: every stage that needs questions calls ``load_dataset(spec, n, seed)``:

- bundled sets shipped in ``data/``: ``trivia``, ``mc``, ``mc-math``, ``mc-nonmath``;
- ``arithmetic`` (optionally ``arithmetic:1`` ... ``arithmetic:5`` or ``:easy/medium/hard``),
  generated on the fly by ``arithmetic()``;
- the paper's benchmarks ``triviaqa``, ``triviaqa-unfiltered``, ``mmlu-pro`` (``-math``,
  ``-nonmath``) and ``supergpqa`` (``-math``, ``-nonmath``; ``:middle`` by default), read from
  local files in their native formats (see ``data/README.md`` for what to download);
- a path to a user ``.jsonl``/``.json``/``.csv``/``.parquet`` file, with ``columns`` mapping
  Question fields to the file's column names.

Every problem is a ``DatasetError`` whose one-line message names the file and line or row.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import math
import random
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterable

from cotprobe.records import Question, RecordError, read_jsonl, to_dict
from cotprobe.resources import data_path

__all__ = [
    "BENCHMARKS",
    "DATASETS",
    "DatasetError",
    "KINDS",
    "arithmetic",
    "dataset_hash",
    "default_data_dir",
    "load_dataset",
    "parse_mmlu_pro",
    "parse_supergpqa",
    "parse_triviaqa",
    "read_user_file",
    "sample_questions",
    "validate_questions",
]


class DatasetError(ValueError):
    """A question set that cannot be loaded; the message names the problem and the place."""


KINDS = ("open", "mc", "numeric")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DEFAULT_ARITHMETIC_N = 100

DATASETS: dict[str, str] = {
    "trivia": "bundled open-domain trivia (cotprobe/_data/trivia.jsonl), easy to obscure, alias-graded; "
    "'trivia:easy|medium|hard' for one level",
    "mc": "bundled multiple choice, 4-10 options, many subjects (cotprobe/_data/mc.jsonl)",
    "mc-math": "the math-heavy half of 'mc' (meta.math true)",
    "mc-nonmath": "the knowledge half of 'mc' (meta.math false)",
    "arithmetic": "generated integer arithmetic and word problems; "
    "'arithmetic:1'..'arithmetic:5' or ':easy/:medium/:hard' (default medium = 3)",
    "triviaqa": "TriviaQA rc.nocontext validation (local files; see data/README.md)",
    "triviaqa-unfiltered": "TriviaQA unfiltered(.nocontext) validation (local files)",
    "mmlu-pro": "MMLU-Pro test set, all categories (local files)",
    "mmlu-pro-math": "MMLU-Pro math, physics, chemistry, engineering",
    "mmlu-pro-nonmath": "MMLU-Pro other categories",
    "supergpqa": "SuperGPQA, middle difficulty by default ('supergpqa:easy|middle|hard|all')",
    "supergpqa-math": "SuperGPQA questions that need calculation (is_calculation)",
    "supergpqa-nonmath": "SuperGPQA questions that need no calculation",
}

_USER_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


# =========================================================================== entry point


def load_dataset(
    spec: str | Path,
    n: int | None = None,
    seed: int = 0,
    *,
    data_dir: str | Path | None = None,
    columns: dict[str, str] | None = None,
    difficulty: int | str | None = None,
    hub: bool = True,
) -> list[Question]:
    """Load a question set by name or path, validate it and take a seeded sample of `n`.

    spec: a name from DATASETS (with an optional ':option', e.g. 'arithmetic:hard',
        'supergpqa-math:all') or a path to a .jsonl/.json/.csv/.parquet file.
    n: number of questions; None keeps all. A sample is random under `seed` but keeps file
        order, and the sample of n is contained in the sample of any larger n (same seed).
        For 'arithmetic' it is the number generated (default 100).
    data_dir: where a benchmark's files are (the folder or one file); default
        ~/.cache/cotprobe/datasets/<name>/.
    columns: for user files, Question field -> file column (identity by default).
    difficulty: arithmetic level (1-5 or easy/medium/hard) or SuperGPQA difficulty
        (easy/middle/hard/all); the ':option' of the spec wins if both are given.
    hub: for benchmarks without local files, try the `datasets` package (if installed).
    """
    if _looks_like_path(spec):
        questions = read_user_file(spec, columns)
        return sample_questions(questions, n, seed, where=str(spec))
    name, _, option = str(spec).partition(":")
    option = option or (str(difficulty) if difficulty is not None else "")
    if name not in DATASETS:
        known = ", ".join(DATASETS)
        raise DatasetError(
            f"unknown dataset {name!r}: known datasets are {known} (or give a path to a "
            f".jsonl/.csv file)"
        )
    if name == "arithmetic":
        return arithmetic(DEFAULT_ARITHMETIC_N if n is None else n, option or "medium", seed)
    if name in BENCHMARKS:
        questions = load_benchmark(name, option, data_dir=data_dir, hub=hub)
    else:
        questions = _load_bundled(name, option)
    return sample_questions(questions, n, seed, where=name)


def _looks_like_path(spec: str | Path) -> bool:
    text = str(spec)
    if isinstance(spec, Path) or text.lower().endswith(_USER_SUFFIXES):
        return True
    return "/" in text or "\\" in text or Path(text).is_file()


def sample_questions(
    questions: list[Question], n: int | None, seed: int = 0, where: str = "dataset"
) -> list[Question]:
    """A seeded random sample of `n` questions in their original order (all if n is None)."""
    if n is None:
        return list(questions)
    if n < 0 or n > len(questions):
        raise DatasetError(f"{where}: asked for n={n} questions but it has {len(questions)}")
    order = list(range(len(questions)))
    random.Random(seed).shuffle(order)
    return [questions[i] for i in sorted(order[:n])]


def dataset_hash(questions: Iterable[Question]) -> str:
    """SHA-256 (hex) of the canonical JSON of the questions, in order: for run manifests."""
    payload = json.dumps(
        [to_dict(q) for q in questions], sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# =========================================================================== validation


def validate_questions(questions: list[Question], wheres: list[str] | None = None) -> None:
    """Check each question (see `_check_question`) and that ids are unique."""
    wheres = wheres or [f"item {i}" for i in range(1, len(questions) + 1)]
    seen: dict[str, str] = {}
    for question, where in zip(questions, wheres):
        _check_question(question, where)
        if question.id in seen:
            raise DatasetError(
                f"{where}: duplicate id {question.id!r} (first used at {seen[question.id]})"
            )
        seen[question.id] = where


_NUMERIC_ANSWER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")


def _check_question(q: Question, where: str) -> None:
    """Non-empty id, question and answer; a known kind; an mc letter within its choices."""
    if not q.id.strip():
        raise DatasetError(f"{where}: empty id")
    if not q.question.strip():
        raise DatasetError(f"{where}: empty question")
    if not q.answer.strip():
        raise DatasetError(f"{where}: empty answer")
    if q.kind not in KINDS:
        raise DatasetError(f"{where}: unknown kind {q.kind!r} (expected one of {', '.join(KINDS)})")
    if q.kind == "numeric" and not _NUMERIC_ANSWER.fullmatch(q.answer.strip()):
        raise DatasetError(f"{where}: field 'answer': a numeric question's answer must be a number "
                           f"(e.g. 42, -3.5, 1,234 or 3/4), got {q.answer!r}")
    if q.kind == "mc":
        if len(q.choices) < 2:
            raise DatasetError(f"{where}: an mc question needs at least 2 choices")
        last = LETTERS[len(q.choices) - 1]
        if q.answer not in LETTERS[: len(q.choices)]:
            raise DatasetError(
                f"{where}: mc answer letter {q.answer!r} out of range for "
                f"{len(q.choices)} choices (A-{last})"
            )


# =========================================================================== bundled sets


TRIVIA_LEVELS = ("easy", "medium", "hard")


def _load_bundled(name: str, option: str = "") -> list[Question]:
    """trivia / mc / mc-math / mc-nonmath: cotprobe/_data/trivia.jsonl and cotprobe/_data/mc.jsonl.

    'trivia:easy|medium|hard' keeps one difficulty level; the mc sets take no option.
    """
    if option and not (name == "trivia" and option in TRIVIA_LEVELS):
        allowed = f"use {', '.join(TRIVIA_LEVELS)}" if name == "trivia" else "it takes none"
        raise DatasetError(f"{name}: unknown option {option!r} ({allowed})")
    try:
        path = data_path("trivia.jsonl" if name == "trivia" else "mc.jsonl")
    except FileNotFoundError as exc:
        raise DatasetError(f"bundled dataset {name!r} is missing: {exc}") from None
    try:
        questions = read_jsonl(path, Question)
    except RecordError as exc:
        raise DatasetError(str(exc)) from None
    validate_questions(questions, [f"{path} item {i}" for i in range(1, len(questions) + 1)])
    if name in ("mc-math", "mc-nonmath"):
        want = name == "mc-math"
        questions = [q for q in questions if bool(q.meta.get("math")) == want]
    if option:
        questions = [q for q in questions if q.meta.get("difficulty") == option]
    return questions


# =========================================================================== raw rows


def read_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Raw rows of a .jsonl/.json/.csv/.parquet file, each with its place ('F line k')."""
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    suffix = path.suffix.lower()
    readers = {".jsonl": _rows_jsonl, ".json": _rows_json, ".csv": _rows_csv,
               ".parquet": _rows_parquet}
    if suffix not in readers:
        raise DatasetError(f"{path}: unsupported file type {suffix!r} (use .jsonl, .json, .csv)")
    return readers[suffix](path)


def _read_text(path: Path) -> str:
    """A file's text as UTF-8 (a leading byte-order mark is dropped); anything else is a
    DatasetError naming the file and the line of the first bad byte."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetError(
            f"{path} line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
        ) from None


def _rows_jsonl(path: Path) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path} line {lineno}: malformed JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{path} line {lineno}: expected a JSON object")
        rows.append((f"{path} line {lineno}", row))
    return rows


def _rows_json(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """A JSON list of objects, or an object holding one under 'Data' (TriviaQA) or 'data'."""
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} line {exc.lineno}: malformed JSON ({exc.msg})") from None
    if isinstance(data, dict):
        data = data.get("Data", data.get("data"))
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a JSON list of objects or an object with 'Data'")
    rows = []
    for i, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise DatasetError(f"{path} item {i}: expected a JSON object")
        rows.append((f"{path} item {i}", row))
    return rows


def _rows_csv(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """CSV rows (strict quoting: an unterminated or stray quote is an error naming the line
    where the row starts); every row must have as many fields as the header."""
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), strict=True)
    rows: list[tuple[str, dict[str, Any]]] = []
    header: list[str] | None = None
    while True:
        line = reader.line_num + 1
        try:
            fields_ = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            what = "a quoted field is not closed" if "end of data" in str(exc) else str(exc)
            raise DatasetError(f"{path} line {line}: malformed CSV ({what})") from None
        if not fields_ or not any(f.strip() for f in fields_):
            continue
        if header is None:
            header = [f.strip() for f in fields_]
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes:
                raise DatasetError(f"{path} line {line}: duplicate column name(s) {', '.join(map(repr, dupes))}")
            continue
        where = f"{path} row {len(rows) + 1} (line {line})"
        if len(fields_) != len(header):
            raise DatasetError(f"{where}: {len(fields_)} fields but the header has {len(header)} "
                               f"({', '.join(header)}); quote fields that contain commas")
        rows.append((where, dict(zip(header, fields_))))
    if header is None:
        raise DatasetError(f"{path}: empty CSV file (no header row)")
    return rows


def _rows_parquet(path: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        import pandas as pd

        frame = pd.read_parquet(path)
    except ImportError as exc:
        raise DatasetError(
            f"{path}: reading parquet needs pyarrow (pip install pyarrow) ({exc})"
        ) from None
    records = frame.to_dict(orient="records")
    return [(f"{path} row {i}", row) for i, row in enumerate(records, 1)]


def _plain_value(value: Any) -> Any:
    """numpy scalars and arrays (from parquet) as Python values."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    return value


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _cell(value: Any, where: str, column: str, numbers: bool = True) -> str:
    """One cell as text: text as is (stripped), a finite number (where allowed) without a
    spurious '.0', None/NaN as ''. A list, an object or true/false is an error: nothing is
    turned into text it did not hold."""
    value = _plain_value(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str):
        return value.strip()
    if numbers and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return _as_text(value)
    kind = "text or a number" if numbers else "text"
    raise DatasetError(f"{where}: field {column!r} should be {kind}, got {_show(value)}")


def _as_list(value: Any, where: str, column: str) -> list[str]:
    """A list of strings from a list/array, a JSON list string or a '|'-separated string; each
    item text or a number."""
    value = _plain_value(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DatasetError(
                    f"{where}: field {column!r} is not a valid JSON list ({exc.msg})"
                ) from None
        else:
            return [part.strip() for part in text.split("|") if part.strip()]
    if not isinstance(value, (list, tuple)):
        raise DatasetError(f"{where}: field {column!r} should be a list, got {_show(value)}")
    items = [_cell(v, f"{where}", f"{column}[{i}]") for i, v in enumerate(value)]
    return [item for item in items if item]


def _as_text(value: Any) -> str:
    """A cell as text: None/NaN -> '', numbers without a spurious '.0'."""
    value = _plain_value(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


# =========================================================================== user files

_FIELDS = [f.name for f in fields(Question)]


def read_user_file(path: str | Path, columns: dict[str, str] | None = None) -> list[Question]:
    """Questions from a user file whose columns are mapped by `columns` (field -> column).

    Required: question and answer. Optional: id (default '<file stem>-<row>'), aliases and
    choices (a list, a JSON list string or 'a|b|c'), kind (default 'mc' when there are choices,
    else 'open'), subject, source, meta. Unmapped columns go into meta. An mc answer may be a
    letter or the exact text of one choice.
    """
    path = Path(path)
    mapping = _column_mapping(columns, path)
    explicit = set(columns or {})
    rows = read_rows(path)
    if path.suffix.lower() == ".csv" and rows:
        _check_header(list(rows[0][1]), mapping, explicit, path)
    questions = [
        _row_to_question(row, mapping, explicit, where, f"{path.stem}-{i:04d}")
        for i, (where, row) in enumerate(rows, 1)
    ]
    if not questions:
        raise DatasetError(f"{path}: no questions in file")
    validate_questions(questions, [where for where, _ in rows])
    return questions


def _column_mapping(columns: dict[str, str] | None, path: Path) -> dict[str, str]:
    unknown = sorted(set(columns or {}) - set(_FIELDS))
    if unknown:
        raise DatasetError(
            f"{path}: columns= names unknown Question field(s) {', '.join(unknown)} "
            f"(fields: {', '.join(_FIELDS)})"
        )
    return {name: (columns or {}).get(name, name) for name in _FIELDS}


def _check_header(header: list[str], mapping: dict[str, str], explicit: set[str], path: Path):
    """Every declared column, and the question and answer columns, must be in the header."""
    for name in sorted(explicit | {"question", "answer"}):
        if mapping[name] not in header:
            raise DatasetError(
                f"{path}: missing declared column {mapping[name]!r} for {name} "
                f"(available columns: {', '.join(header)})"
            )


def _row_to_question(
    row: dict[str, Any], mapping: dict[str, str], explicit: set[str], where: str, default_id: str
) -> Question:
    for name in sorted(explicit | {"question", "answer"}):
        if mapping[name] not in row:
            raise DatasetError(
                f"{where}: missing declared column {mapping[name]!r} for {name} "
                f"(available columns: {', '.join(row)})"
            )
    get = lambda name: row.get(mapping[name])  # noqa: E731
    text = lambda name, numbers=False: _cell(get(name), where, mapping[name], numbers)  # noqa: E731
    choices = _as_list(get("choices"), where, mapping["choices"])
    kind = text("kind") or ("mc" if choices else "open")
    answer = text("answer", numbers=True)
    if kind == "mc":
        answer = _mc_letter(answer, choices)
    qid = text("id", numbers=True) if mapping["id"] in row else default_id
    if not qid:
        raise DatasetError(f"{where}: field {mapping['id']!r} is empty (give every row an id, "
                           "or leave the column out for automatic ids)")
    meta = {k: v for k, v in row.items() if k not in mapping.values()}
    meta.update(_meta(get("meta"), where, mapping["meta"]))
    question = Question(
        id=qid,
        question=text("question"),
        answer=answer,
        kind=kind,
        aliases=_as_list(get("aliases"), where, mapping["aliases"]),
        choices=choices,
        subject=text("subject"),
        source=text("source"),
        meta=_jsonable(meta),
    )
    return question


def _meta(value: Any, where: str, column: str) -> dict[str, Any]:
    """The meta field: an object (in CSV, a JSON object as text); absent/empty -> {}."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: field {column!r} is not a valid JSON object ({exc.msg})") from None
    if not isinstance(value, dict):
        raise DatasetError(f"{where}: field {column!r} should be an object, got {_show(value)}")
    return value


def _mc_letter(answer: str, choices: list[str]) -> str:
    """'c', 'C', '(C)' -> 'C'; the exact text of a choice -> its letter; else unchanged."""
    bare = answer.strip("()[]. ").upper()
    if len(bare) == 1 and bare in LETTERS:
        return bare
    if answer in choices:
        return LETTERS[choices.index(answer)]
    return answer


def _jsonable(meta: dict[str, Any]) -> dict[str, Any]:
    """Meta values made JSON-safe (numpy scalars/arrays from parquet, NaN -> None)."""
    out = {}
    for key, value in meta.items():
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, float) and math.isnan(value):
            value = None
        out[str(key)] = value
    return out


# =========================================================================== native parsers


def _first(row: dict[str, Any], *names: str) -> Any:
    """The value of the first of `names` present in the row (None if none is)."""
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    return None


def _dedupe(values: Iterable[str], exclude: str) -> list[str]:
    out: list[str] = []
    for value in values:
        if value and value != exclude and value not in out:
            out.append(value)
    return out


def parse_triviaqa(rows: list[tuple[str, dict[str, Any]]], source: str = "triviaqa") -> list[Question]:
    """TriviaQA rows in the original release layout or the Hugging Face layout.

    Original: {"Question", "QuestionId", "Answer": {"Value", "Aliases", "NormalizedAliases"}}.
    Hugging Face: {"question", "question_id", "answer": {"value", "aliases", ...}}.
    Also accepted: {"question", "answers": [...]} (the paper's released 1k subsets).
    """
    questions = []
    for where, row in rows:
        answer_obj = _first(row, "Answer", "answer")
        if isinstance(answer_obj, dict):
            value = _as_text(_first(answer_obj, "Value", "value"))
            aliases = _as_list(_first(answer_obj, "Aliases", "aliases"), where, "aliases")
            if not aliases:
                aliases = _as_list(
                    _first(answer_obj, "NormalizedAliases", "normalized_aliases"), where, "aliases"
                )
        else:
            answers = _as_list(_first(row, "answers"), where, "answers")
            if not answers:
                raise DatasetError(f"{where}: no 'Answer'/'answer'/'answers' field for TriviaQA")
            value, aliases = answers[0], answers[1:]
        qid = _as_text(_first(row, "QuestionId", "question_id", "id")) or where.rsplit(" ", 1)[-1]
        question = Question(
            id=f"{source}-{qid}",
            question=_as_text(_first(row, "Question", "question")),
            answer=value,
            kind="open",
            aliases=_dedupe(aliases, value),
            subject="trivia",
            source=source,
            meta={"question_source": _as_text(_first(row, "QuestionSource", "question_source"))},
        )
        _check_question(question, where)
        questions.append(question)
    return questions


MMLU_PRO_MATH_CATEGORIES = frozenset({"math", "physics", "chemistry", "engineering"})


def parse_mmlu_pro(rows: list[tuple[str, dict[str, Any]]]) -> list[Question]:
    """MMLU-Pro rows: question, options (list), answer (letter), answer_index, category,
    question_id, src. meta.math is True for categories in MMLU_PRO_MATH_CATEGORIES."""
    questions = []
    for where, row in rows:
        options = _as_list(row.get("options"), where, "options")
        letter = _as_text(row.get("answer")).upper()
        if not letter and row.get("answer_index") is not None:
            index = int(row["answer_index"])
            letter = LETTERS[index] if 0 <= index < len(LETTERS) else str(index)
        category = _as_text(row.get("category"))
        question = Question(
            id=f"mmlu-pro-{_as_text(row.get('question_id')) or where.rsplit(' ', 1)[-1]}",
            question=_as_text(row.get("question")),
            answer=letter,
            kind="mc",
            choices=options,
            subject=category,
            source="mmlu-pro",
            meta={"category": category, "src": _as_text(row.get("src")),
                  "math": category.lower() in MMLU_PRO_MATH_CATEGORIES},
        )
        _check_question(question, where)
        questions.append(question)
    return questions


def parse_supergpqa(rows: list[tuple[str, dict[str, Any]]]) -> list[Question]:
    """SuperGPQA rows: uuid, question, options, answer (text), answer_letter, discipline,
    field, subfield, difficulty, is_calculation. meta.math is is_calculation (the paper's
    'calc' split); rows without it fall back to discipline/field in Science/Engineering math."""
    questions = []
    for where, row in rows:
        options = _as_list(row.get("options"), where, "options")
        letter = _mc_letter(_as_text(row.get("answer_letter")) or _as_text(row.get("answer")),
                            options)
        calc = row.get("is_calculation")
        field_name = _as_text(row.get("field"))
        math_flag = bool(calc) if calc is not None else field_name in ("Mathematics", "Physics")
        question = Question(
            id=f"supergpqa-{_as_text(row.get('uuid')) or where.rsplit(' ', 1)[-1]}",
            question=_as_text(row.get("question")),
            answer=letter,
            kind="mc",
            choices=options,
            subject=field_name or _as_text(row.get("discipline")),
            source="supergpqa",
            meta={"discipline": _as_text(row.get("discipline")), "field": field_name,
                  "subfield": _as_text(row.get("subfield")),
                  "difficulty": _as_text(row.get("difficulty")), "math": math_flag},
        )
        _check_question(question, where)
        questions.append(question)
    return questions


# =========================================================================== benchmarks


@dataclass(frozen=True)
class Benchmark:
    """Where a paper benchmark's files live and how to read them.

    patterns: file globs inside the folder, tried in order; the first that matches wins
    (several matches are allowed only for shards named '-0000k-of-0000n').
    hub_file: the file to download from the Hugging Face dataset `hf_id` (for messages).
    """

    folder: str
    hf_id: str
    hf_config: str | None
    hf_split: str
    hub_file: str
    patterns: tuple[str, ...]
    parser: Callable[[list[tuple[str, dict[str, Any]]]], list[Question]]

    @property
    def url(self) -> str:
        return f"https://huggingface.co/datasets/{self.hf_id}/resolve/main/{self.hub_file}"


_GENERIC = ("*.jsonl", "*.json", "*.parquet")

BENCHMARKS: dict[str, Benchmark] = {
    "triviaqa": Benchmark(
        "triviaqa", "mandarjoshi/trivia_qa", "rc.nocontext", "validation",
        "rc.nocontext/validation-00000-of-00001.parquet",
        ("rc.nocontext/validation-*.parquet", "validation-*.parquet", "qa/wikipedia-dev.json",
         "wikipedia-dev.json", *_GENERIC),
        parse_triviaqa,
    ),
    "triviaqa-unfiltered": Benchmark(
        "triviaqa-unfiltered", "mandarjoshi/trivia_qa", "unfiltered.nocontext", "validation",
        "unfiltered.nocontext/validation-00000-of-00001.parquet",
        ("unfiltered.nocontext/validation-*.parquet", "validation-*.parquet",
         "triviaqa-unfiltered/unfiltered-web-dev.json", "unfiltered-web-dev.json", *_GENERIC),
        lambda rows: parse_triviaqa(rows, "triviaqa-unfiltered"),
    ),
    "mmlu-pro": Benchmark(
        "mmlu-pro", "TIGER-Lab/MMLU-Pro", None, "test", "data/test-00000-of-00001.parquet",
        ("data/test-*.parquet", "test-*.parquet", "test*.jsonl", *_GENERIC),
        parse_mmlu_pro,
    ),
    "supergpqa": Benchmark(
        "supergpqa", "m-a-p/SuperGPQA", None, "train", "SuperGPQA-all.jsonl",
        ("SuperGPQA-all.jsonl", *_GENERIC),
        parse_supergpqa,
    ),
}
BENCHMARKS["mmlu-pro-math"] = BENCHMARKS["mmlu-pro-nonmath"] = BENCHMARKS["mmlu-pro"]
BENCHMARKS["supergpqa-math"] = BENCHMARKS["supergpqa-nonmath"] = BENCHMARKS["supergpqa"]

SUPERGPQA_DIFFICULTIES = ("easy", "middle", "hard", "all")


def default_data_dir(name: str) -> Path:
    """~/.cache/cotprobe/datasets/<folder>/ for a benchmark name."""
    return Path.home() / ".cache" / "cotprobe" / "datasets" / BENCHMARKS[name].folder


def load_benchmark(
    name: str, option: str = "", data_dir: str | Path | None = None, hub: bool = True
) -> list[Question]:
    """A paper benchmark from local files (or the hub), with its math/difficulty filters."""
    bench = BENCHMARKS[name]
    if name.startswith("supergpqa") and option not in ("", *SUPERGPQA_DIFFICULTIES):
        raise DatasetError(
            f"{name}: unknown difficulty {option!r} (use {', '.join(SUPERGPQA_DIFFICULTIES)})"
        )
    if not name.startswith("supergpqa") and option:
        raise DatasetError(f"{name}: takes no ':{option}' option")
    rows = _benchmark_rows(name, bench, data_dir, hub)
    questions = bench.parser(rows)
    if name.startswith("supergpqa") and (option or "middle") != "all":
        questions = [q for q in questions if q.meta.get("difficulty") == (option or "middle")]
    if name.endswith("-math") or name.endswith("-nonmath"):
        want = name.endswith("-math")
        questions = [q for q in questions if bool(q.meta.get("math")) == want]
    validate_questions(questions, [f"{name} item {i}" for i in range(1, len(questions) + 1)])
    return questions


def _benchmark_rows(
    name: str, bench: Benchmark, data_dir: str | Path | None, hub: bool
) -> list[tuple[str, dict[str, Any]]]:
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir(name)
    if folder.is_file():
        return read_rows(folder)
    if (folder / bench.folder).is_dir():
        folder = folder / bench.folder
    files = _find_files(folder, bench.patterns) if folder.is_dir() else []
    if files:
        return [row for path in files for row in read_rows(path)]
    hub_note = _try_hub(bench) if hub else None
    if isinstance(hub_note, list):
        return hub_note
    raise DatasetError(
        f"{name}: no data file in {folder}; download {bench.url} and put it in that folder "
        f"(or pass data_dir=<folder or file>); formats and alternatives: data/README.md"
        + (f" [hub: {hub_note}]" if hub_note else "")
    )


_SHARD = re.compile(r"-\d{5}-of-\d{5}")


def _find_files(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    """The files of the first pattern that matches in `folder` (shards together)."""
    for pattern in patterns:
        matches = sorted(p for p in folder.glob(pattern) if p.is_file())
        if len(matches) > 1 and not all(_SHARD.search(p.name) for p in matches):
            names = ", ".join(p.name for p in matches)
            raise DatasetError(
                f"{folder}: several candidate files ({names}); pass data_dir=<one file>"
            )
        if matches:
            return matches
    return []


def _try_hub(bench: Benchmark) -> list[tuple[str, dict[str, Any]]] | str | None:
    """Rows from the `datasets` package if installed and the hub answers, else why not."""
    if importlib.util.find_spec("datasets") is None:
        return None
    try:
        import datasets

        table = datasets.load_dataset(bench.hf_id, bench.hf_config, split=bench.hf_split)
    except Exception as exc:  # the hub is optional: any failure falls back to local files
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
    return [(f"{bench.hf_id} row {i}", dict(row)) for i, row in enumerate(table, 1)]


# =========================================================================== arithmetic

_LEVEL_NAMES = {"easy": 1, "medium": 3, "hard": 5}
_NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jun", "Kofi",
          "Lena", "Mateo", "Nia", "Omar", "Priya"]
_ITEMS = ["apples", "pencils", "marbles", "books", "stickers", "cookies", "bottles", "cards",
          "shells", "tickets"]


@dataclass(frozen=True)
class _Level:
    """How hard one arithmetic level is."""

    terms: tuple[int, int]  # number of operands in an expression (min, max)
    lo: int  # operand range
    hi: int
    ops: str  # allowed operators among '+-*'
    factor_hi: int  # the right operand of a multiplication is 2..factor_hi
    words: float  # share of word problems
    steps: int  # steps of a word problem (1-4)


_LEVELS = {
    1: _Level((2, 2), 1, 9, "+", 9, 0.0, 1),
    2: _Level((2, 2), 10, 99, "+-", 9, 0.0, 1),
    3: _Level((3, 3), 2, 99, "+-*", 9, 0.3, 1),
    4: _Level((3, 4), 10, 999, "+-*", 19, 0.5, 2),
    5: _Level((4, 4), 100, 9999, "+-*", 99, 0.7, 4),
}


def _parse_level(difficulty: int | str) -> int:
    text = str(difficulty).strip().lower()
    level = _LEVEL_NAMES.get(text) or (int(text) if text.isdigit() else 0)
    if level not in _LEVELS:
        raise DatasetError(
            f"arithmetic: unknown difficulty {difficulty!r} (use 1-5 or easy/medium/hard)"
        )
    return level


def arithmetic(n: int, difficulty: int | str = 3, seed: int = 0) -> list[Question]:
    """`n` generated arithmetic questions with exact integer answers (kind 'numeric').

    Level 1: single-digit addition. 2: two-digit addition/subtraction. 3: three operands with
    multiplication, some one-step word problems. 4: three-digit numbers, 3-4 operands,
    parentheses, two-step word problems. 5: multi-step word problems and long expressions with
    3-4 digit numbers. Deterministic for a given (n, difficulty, seed); the first k questions
    do not depend on n.
    """
    level = _parse_level(difficulty)
    if n < 0:
        raise DatasetError(f"arithmetic: n must be >= 0, got {n}")
    spec = _LEVELS[level]
    rng = random.Random(f"cotprobe-arithmetic/{level}/{seed}")
    questions = []
    for i in range(1, n + 1):
        is_word = rng.random() < spec.words
        text, value = _word_problem(rng, spec) if is_word else _expression(rng, spec)
        questions.append(
            Question(
                id=f"arith-{level}-{seed}-{i:04d}",
                question=text,
                answer=str(value),
                kind="numeric",
                subject="arithmetic",
                source="cotprobe-arithmetic",
                meta={"difficulty": level, "seed": seed, "form": "word" if is_word else "expr"},
            )
        )
    return questions


def _expression(rng: random.Random, spec: _Level) -> tuple[str, int]:
    """'What is 23 × 4 + 57?' with a non-negative integer value (Python precedence)."""
    while True:
        count = rng.randint(*spec.terms)
        parts = [str(rng.randint(spec.lo, spec.hi))]
        ops = spec.ops
        for _ in range(count - 1):
            op = rng.choice(ops)
            ops = ops.replace("*", "") if op == "*" else ops  # at most one multiplication
            hi = spec.factor_hi if op == "*" else spec.hi
            parts += [op, str(rng.randint(2 if op == "*" else spec.lo, hi))]
        if count >= 3 and parts[1] in "+-" and parts[3] == "*" and spec.hi >= 999:
            parts = ["(", *parts[:3], ")", *parts[3:]]
        source = " ".join(parts)
        value = eval(source, {"__builtins__": {}})  # noqa: S307 - digits and + - * ( ) only
        if value >= 0:
            shown = source.replace("*", "×").replace("( ", "(").replace(" )", ")")
            return f"What is {shown}?", value


def _word_problem(rng: random.Random, spec: _Level) -> tuple[str, int]:
    """A short story problem with `spec.steps` operations on numbers in the level's range."""
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    lo, hi = max(spec.lo, 10), spec.hi
    num = lambda: rng.randint(lo, hi)  # noqa: E731
    small = lambda: rng.randint(2, min(spec.factor_hi, 12) if spec.steps < 4 else 25)  # noqa: E731
    if spec.steps == 1:
        a, b = sorted((num(), num()), reverse=True)
        return _one_step(rng, name, item, a, b, small())
    if spec.steps == 2:
        return _two_step(rng, name, item, num(), num(), small())
    return _multi_step(rng, name, item, num, small)


def _one_step(rng: random.Random, name: str, item: str, a: int, b: int, k: int):
    """One operation: take away, add, multiply or share (a >= b)."""
    choice = rng.randrange(4)
    if choice == 0:
        return f"{name} has {a} {item} and gives away {b}. How many {item} are left?", a - b
    if choice == 1:
        return (f"{name} has {a} {item} and finds {b} more. How many {item} does {name} "
                f"have now?", a + b)
    if choice == 2:
        return f"{name} buys {k} bags with {b} {item} in each bag. How many {item} is that?", k * b
    return (f"{name} shares {k * b} {item} equally among {k} friends. How many {item} does "
            f"each friend get?", b)


def _two_step(rng: random.Random, name: str, item: str, a: int, b: int, k: int):
    """Two operations on three-digit numbers."""
    choice = rng.randrange(3)
    if choice == 0:
        return (f"{name} buys {k} boxes of {a} {item} each, then buys {b} loose {item}. "
                f"How many {item} does {name} have in total?", k * a + b)
    if choice == 1:
        a, b = max(a, b), min(a, b)
        c = rng.randint(10, 999)
        return (f"{name} has {a} {item}, sells {b} of them and then buys {c} more. How many "
                f"{item} does {name} have now?", a - b + c)
    return (f"{name} splits {k * a} {item} into {k} equal piles and then adds {b} {item} to "
            f"one pile. How many {item} are in that pile?", a + b)


def _multi_step(rng: random.Random, name: str, item: str, num, small) -> tuple[str, int]:
    """Three- or four-step problems with 3-4 digit numbers."""
    choice = rng.randrange(4)
    if choice == 0:
        per_day, days, crate = rng.randint(100, 999), small(), small()
        crates = rng.randint(10, per_day * days // crate - 1)
        shipped = per_day * days - crates * crate
        return (f"A factory makes {per_day} {item} a day for {days} days. It sends {shipped} "
                f"of them to a shop and packs the rest into crates of {crate}. How many crates "
                f"does it fill?", crates)
    if choice == 1:
        wage, weeks, rent, food = rng.randint(300, 2500), small(), num(), num()
        while wage * weeks - rent - food < 0:
            wage += 500
        return (f"{name} earns {wage} dollars a week for {weeks} weeks, then pays {rent} "
                f"dollars of rent and {food} dollars for food. How many dollars are left?",
                wage * weeks - rent - food)
    if choice == 2:
        s1, h1, s2, h2 = rng.randint(40, 130), small(), rng.randint(40, 130), small()
        back = rng.randint(10, s1 * h1)
        return (f"A truck drives {h1} hours at {s1} km per hour and {h2} hours at {s2} km per "
                f"hour, then drives {back} km back the way it came. How far is it from where it "
                f"started?", s1 * h1 + s2 * h2 - back)
    rows, seats, empty, late = small() + 10, small() + 10, rng.randint(10, 99), rng.randint(1, 9)
    return (f"A theatre has {rows} rows of {seats} seats. At the start {empty} seats are empty; "
            f"then {late} latecomers take seats. How many seats are filled now?",
            rows * seats - empty + late)
