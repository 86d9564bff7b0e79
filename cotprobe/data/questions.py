"""What every loaded question must satisfy, and the error every loading problem raises."""

from __future__ import annotations

import re

from cotprobe.records import Question


class DatasetError(ValueError):
    """A question set that cannot be loaded; the message names the problem and the place."""


KINDS = ("open", "mc", "numeric")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

_NUMERIC_ANSWER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")


def validate_questions(questions: list[Question], wheres: list[str] | None = None) -> None:
    """Check each question (see `check_question`) and that ids are unique."""
    wheres = wheres or [f"item {i}" for i in range(1, len(questions) + 1)]
    seen: dict[str, str] = {}
    for question, where in zip(questions, wheres):
        check_question(question, where)
        if question.id in seen:
            raise DatasetError(
                f"{where}: duplicate id {question.id!r} (first used at {seen[question.id]})"
            )
        seen[question.id] = where


def check_question(q: Question, where: str) -> None:
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


def mc_letter(answer: str, choices: list[str]) -> str:
    """'c', 'C', '(C)' -> 'C'; the exact text of a choice -> its letter; else unchanged."""
    bare = answer.strip("()[]. ").upper()
    if len(bare) == 1 and bare in LETTERS:
        return bare
    if answer in choices:
        return LETTERS[choices.index(answer)]
    return answer
