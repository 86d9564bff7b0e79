"""Questions from a user's own file, its columns mapped onto Question fields."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from cotprobe.records import Question

from .cells import as_list, as_object, cell, jsonable
from .questions import DatasetError, mc_letter, validate_questions
from .readers import read_rows

FIELDS = [f.name for f in fields(Question)]
IDENTITY = {name: name for name in FIELDS}


def read_user_file(path: str | Path, columns: dict[str, str] | None = None,
                   places: dict[str, str] | None = None) -> list[Question]:
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
        _check_columns(list(rows[0][1]), mapping, explicit, str(path))
    questions = [
        row_to_question(row, where, f"{path.stem}-{i:04d}", mapping, explicit)
        for i, (where, row) in enumerate(rows, 1)
    ]
    if not questions:
        raise DatasetError(f"{path}: no questions in file")
    validate_questions(questions, [where for where, _ in rows])
    if places is not None:
        places.update({q.id: where for q, (where, _) in zip(questions, rows)})
    return questions


def _column_mapping(columns: dict[str, str] | None, path: Path) -> dict[str, str]:
    unknown = sorted(set(columns or {}) - set(FIELDS))
    if unknown:
        raise DatasetError(
            f"{path}: columns= names unknown Question field(s) {', '.join(unknown)} "
            f"(fields: {', '.join(FIELDS)})"
        )
    return {name: (columns or {}).get(name, name) for name in FIELDS}


def _check_columns(available: list[str], mapping: dict[str, str], explicit: set[str], where: str) -> None:
    """Every declared column, and the question and answer columns, must be there."""
    for name in sorted(explicit | {"question", "answer"}):
        if mapping[name] not in available:
            raise DatasetError(
                f"{where}: missing declared column {mapping[name]!r} for {name} "
                f"(available columns: {', '.join(available)})"
            )


def row_to_question(row: dict[str, Any], where: str, default_id: str,
                    mapping: dict[str, str] = IDENTITY, explicit: frozenset[str] | set[str] = frozenset()) -> Question:
    """One row as a Question (not yet validated: see `validate_questions`).

    mapping: Question field -> the row's key (identity by default); explicit: the fields whose
    column was declared, which must be present. Keys no field maps to go into meta.
    """
    _check_columns(list(row), mapping, set(explicit), where)
    get = lambda name: row.get(mapping[name])
    text = lambda name, numbers=False: cell(get(name), where, mapping[name], numbers)
    choices = as_list(get("choices"), where, mapping["choices"])
    kind = text("kind") or ("mc" if choices else "open")
    answer = text("answer", numbers=True)
    if kind == "mc":
        answer = mc_letter(answer, choices)
    qid = text("id", numbers=True) if mapping["id"] in row else default_id
    if not qid:
        raise DatasetError(f"{where}: field {mapping['id']!r} is empty (give every row an id, "
                           "or leave the column out for automatic ids)")
    meta = {k: v for k, v in row.items() if k not in mapping.values()}
    meta.update(as_object(get("meta"), where, mapping["meta"]))
    return Question(
        id=qid,
        question=text("question"),
        answer=answer,
        kind=kind,
        aliases=as_list(get("aliases"), where, mapping["aliases"]),
        choices=choices,
        subject=text("subject"),
        source=text("source"),
        meta=jsonable(meta),
    )
