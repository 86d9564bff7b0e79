"""Raw rows of question files: .jsonl, .json, .csv and .parquet, each row with its place.

A place is how messages name a row: 'FILE line K' (JSONL), 'FILE item K' (JSON),
'FILE row K (line L)' (CSV), 'FILE row K' (parquet). Every problem is an error naming it.
`jsonl_objects` is also the JSON-lines reader of `cotprobe.traces_in`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cotprobe.jsonfile import JSONFileError, read_text

from .questions import DatasetError

Row = tuple[str, dict[str, Any]]


def read_rows(path: Path) -> list[Row]:
    """Raw rows of a .jsonl/.json/.csv/.parquet file, each with its place ('F line k')."""
    if path.is_dir():
        raise DatasetError(f"{path}: a directory, not a dataset file")
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    suffix = path.suffix.lower()
    readers = {".jsonl": _rows_jsonl, ".json": _rows_json, ".csv": _rows_csv,
               ".parquet": _rows_parquet}
    if suffix not in readers:
        raise DatasetError(f"{path}: unsupported file type {suffix!r} (use .jsonl, .json, .csv)")
    return readers[suffix](path)


def text_of(path: Path, error: type[Exception] = DatasetError) -> str:
    """A file's UTF-8 text; a file that cannot be read or decoded is `error` naming it
    (and the line of the first bad byte)."""
    try:
        return read_text(path)
    except JSONFileError as exc:
        raise error(str(exc)) from None


def loads(text: str, where: str, error: type[Exception] = DatasetError,
          not_json: str = "malformed JSON") -> Any:
    """`text` parsed as JSON; else `error`: '<where>: <not_json> (<the parser's words>)'."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{where}: {not_json} ({exc.msg})") from None


def jsonl_objects(path: Path, place: str = "{path} line {line}", error: type[Exception] = DatasetError,
                  not_json: str = "malformed JSON") -> Iterator[Row]:
    """The JSON objects of a JSON-lines file, one per non-blank line, each with its place
    (`place` filled with the path and line number); read lazily, so a caller that wants the
    first row reads only that far. A line that is not a JSON object is `error` naming it."""
    for lineno, line in enumerate(text_of(path, error).split("\n"), 1):
        if not line.strip():
            continue
        where = place.format(path=path, line=lineno)
        row = loads(line, where, error, not_json)
        if not isinstance(row, dict):
            raise error(f"{where}: expected a JSON object")
        yield where, row


def _rows_jsonl(path: Path) -> list[Row]:
    return list(jsonl_objects(path))


def _rows_json(path: Path) -> list[Row]:
    """A JSON list of objects, or an object holding one under 'Data' (TriviaQA) or 'data'."""
    try:
        data = json.loads(text_of(path))
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


def _rows_csv(path: Path) -> list[Row]:
    """CSV rows (strict quoting: an unterminated or stray quote is an error naming the line
    where the row starts); every row must have as many fields as the header."""
    reader = csv.reader(io.StringIO(text_of(path), newline=""), strict=True)
    rows: list[Row] = []
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


def _rows_parquet(path: Path) -> list[Row]:
    try:
        import pandas as pd

        frame = pd.read_parquet(path)
    except ImportError as exc:
        raise DatasetError(
            f"{path}: reading parquet needs pyarrow (pip install pyarrow) ({exc})"
        ) from None
    records = frame.to_dict(orient="records")
    return [(f"{path} row {i}", row) for i, row in enumerate(records, 1)]
