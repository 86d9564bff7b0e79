"""Reading one text or JSON file, with errors that name the file and, where it helps, the line.

The low-level readers behind custom scales, run manifests, judge prompts and question files.
Every failure is a `JSONFileError` (a ValueError) whose message reads ``FILE line K: problem
(detail)`` or ``FILE: problem (detail)``; its fields let a caller word the message its own way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class JSONFileError(ValueError):
    """A file that cannot be read as UTF-8 text, as JSON, or as a JSON object.

    problem: what is wrong ('cannot be read', 'not UTF-8 text', 'not valid JSON',
        'expected a JSON object'); detail: the particulars (the OS's or the parser's words);
    line: the line where it went wrong (0 when no line applies).
    """

    def __init__(self, path: Path, problem: str, detail: str, line: int = 0):
        place = f"{path} line {line}" if line else str(path)
        super().__init__(f"{place}: {problem} ({detail})")
        self.path, self.problem, self.detail, self.line = path, problem, detail, line

    @property
    def reason(self) -> str:
        """The problem without the file, the line inside the brackets ('not valid JSON (line 3:
        Expecting value)'), for messages that name the file their own way."""
        return f"{self.problem} (line {self.line}: {self.detail})" if self.line else f"{self.problem} ({self.detail})"


def read_text(path: Path) -> str:
    """A file's text as UTF-8 (a leading byte-order mark is dropped)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JSONFileError(path, "cannot be read", exc.strerror or type(exc).__name__) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise JSONFileError(path, "not UTF-8 text", f"byte 0x{data[exc.start]:02x}", line) from None


def read_json(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in a file; `what` says what the file should be, for the message when
    it holds another JSON value (e.g. "a scale file with 'labels' and 'values'")."""
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise JSONFileError(path, "not valid JSON", exc.msg, exc.lineno) from None
    if not isinstance(data, dict):
        raise JSONFileError(path, "expected a JSON object", what)
    return data
