"""The question sets shipped in cotprobe/_data/: trivia (by difficulty level) and mc (whole,
or its math-heavy and knowledge halves)."""

from __future__ import annotations

from cotprobe.records import Question, RecordError, read_jsonl
from cotprobe.resources import data_path

from .questions import DatasetError, validate_questions

TRIVIA_LEVELS = ("easy", "medium", "hard")


def load_bundled(name: str, option: str = "", places: dict[str, str] | None = None) -> list[Question]:
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
    wheres = [f"{path} item {i}" for i in range(1, len(questions) + 1)]
    validate_questions(questions, wheres)
    if places is not None:
        places.update({q.id: where for q, where in zip(questions, wheres)})
    if name in ("mc-math", "mc-nonmath"):
        want = name == "mc-math"
        questions = [q for q in questions if bool(q.meta.get("math")) == want]
    if option:
        questions = [q for q in questions if q.meta.get("difficulty") == option]
    return questions
