"""Row parsers for the paper's benchmarks in their native layouts (the release files and the
Hugging Face tables): TriviaQA, MMLU-Pro and SuperGPQA rows to Questions."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from cotprobe.records import Question

from .cells import as_list, as_text
from .questions import LETTERS, DatasetError, check_question, mc_letter
from .readers import Row

MMLU_PRO_MATH_CATEGORIES = frozenset({"math", "physics", "chemistry", "engineering"})


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


def parse_triviaqa(rows: list[Row], source: str = "triviaqa") -> list[Question]:
    """TriviaQA rows in the original release layout or the Hugging Face layout.

    Original: {"Question", "QuestionId", "Answer": {"Value", "Aliases", "NormalizedAliases"}}.
    Hugging Face: {"question", "question_id", "answer": {"value", "aliases", ...}}.
    Also accepted: {"question", "answers": [...]} (the paper's released 1k subsets).
    """
    return _checked(rows, lambda where, row: _triviaqa_question(where, row, source))


def _triviaqa_question(where: str, row: dict[str, Any], source: str) -> Question:
    answer_obj = _first(row, "Answer", "answer")
    if isinstance(answer_obj, dict):
        value = as_text(_first(answer_obj, "Value", "value"))
        aliases = as_list(_first(answer_obj, "Aliases", "aliases"), where, "aliases")
        if not aliases:
            aliases = as_list(_first(answer_obj, "NormalizedAliases", "normalized_aliases"), where, "aliases")
    else:
        answers = as_list(_first(row, "answers"), where, "answers")
        if not answers:
            raise DatasetError(f"{where}: no 'Answer'/'answer'/'answers' field for TriviaQA")
        value, aliases = answers[0], answers[1:]
    qid = as_text(_first(row, "QuestionId", "question_id", "id")) or where.rsplit(" ", 1)[-1]
    return Question(
        id=f"{source}-{qid}",
        question=as_text(_first(row, "Question", "question")),
        answer=value,
        kind="open",
        aliases=_dedupe(aliases, value),
        subject="trivia",
        source=source,
        meta={"question_source": as_text(_first(row, "QuestionSource", "question_source"))},
    )


def parse_mmlu_pro(rows: list[Row]) -> list[Question]:
    """MMLU-Pro rows: question, options (list), answer (letter), answer_index, category,
    question_id, src. meta.math is True for categories in MMLU_PRO_MATH_CATEGORIES."""
    return _checked(rows, _mmlu_pro_question)


def _mmlu_pro_question(where: str, row: dict[str, Any]) -> Question:
    options = as_list(row.get("options"), where, "options")
    letter = as_text(row.get("answer")).upper()
    if not letter and row.get("answer_index") is not None:
        index = int(row["answer_index"])
        letter = LETTERS[index] if 0 <= index < len(LETTERS) else str(index)
    category = as_text(row.get("category"))
    meta = {"category": category, "src": as_text(row.get("src")),
            "math": category.lower() in MMLU_PRO_MATH_CATEGORIES}
    return _mc_question("mmlu-pro", _row_id(row, "question_id", where), row, letter, options, category, meta)


def parse_supergpqa(rows: list[Row]) -> list[Question]:
    """SuperGPQA rows: uuid, question, options, answer (text), answer_letter, discipline,
    field, subfield, difficulty, is_calculation. meta.math is is_calculation (the paper's
    'calc' split); rows without it fall back to discipline/field in Science/Engineering math."""
    return _checked(rows, _supergpqa_question)


def _supergpqa_question(where: str, row: dict[str, Any]) -> Question:
    options = as_list(row.get("options"), where, "options")
    letter = mc_letter(as_text(row.get("answer_letter")) or as_text(row.get("answer")), options)
    calc = row.get("is_calculation")
    field_name = as_text(row.get("field"))
    meta = {"discipline": as_text(row.get("discipline")), "field": field_name,
            "subfield": as_text(row.get("subfield")), "difficulty": as_text(row.get("difficulty")),
            "math": bool(calc) if calc is not None else field_name in ("Mathematics", "Physics")}
    subject = field_name or as_text(row.get("discipline"))
    return _mc_question("supergpqa", _row_id(row, "uuid", where), row, letter, options, subject, meta)


def _checked(rows: list[Row], parse_row: Callable[[str, dict[str, Any]], Question]) -> list[Question]:
    """Each row parsed by `parse_row(where, row)` and checked; a bad one is named by its place."""
    questions = []
    for where, row in rows:
        question = parse_row(where, row)
        check_question(question, where)
        questions.append(question)
    return questions


def _row_id(row: dict[str, Any], key: str, where: str) -> str:
    """The row's own id, else its number (the end of its place)."""
    return as_text(row.get(key)) or where.rsplit(" ", 1)[-1]


def _mc_question(source: str, qid: str, row: dict[str, Any], letter: str, options: list[str],
                 subject: str, meta: dict[str, Any]) -> Question:
    return Question(id=f"{source}-{qid}", question=as_text(row.get("question")), answer=letter,
                    kind="mc", choices=options, subject=subject, source=source, meta=meta)
