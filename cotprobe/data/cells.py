"""One cell of a question file as the value a Question field holds: text, a list of texts, an
object. Nothing is turned into text it did not hold; a cell of the wrong type is a
DatasetError naming the row and the column."""

from __future__ import annotations

import json
import math
from typing import Any

from .questions import DatasetError
from .readers import loads


def _plain_value(value: Any) -> Any:
    """numpy scalars and arrays (from parquet) as Python values."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    return value


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def show(value: Any) -> str:
    """A value as short JSON, for messages."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def cell(value: Any, where: str, column: str, numbers: bool = True) -> str:
    """One cell as text: text as is (stripped), a finite number (where allowed) without a
    spurious '.0', None/NaN as ''. A list, an object or true/false is an error."""
    value = _plain_value(value)
    if _missing(value):
        return ""
    if isinstance(value, str):
        return _unicode(value, where, column).strip()
    if numbers and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return as_text(value)
    kind = "text or a number" if numbers else "text"
    raise DatasetError(f"{where}: field {column!r} should be {kind}, got {show(value)}")


def _unicode(text: str, where: str, column: str) -> str:
    """text, refused if it cannot be written as UTF-8 (a lone surrogate from a \\udXXX escape)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DatasetError(f"{where}: field {column!r} is not valid Unicode text (a lone surrogate "
                           f"{text[exc.start]!r} at character {exc.start})") from None
    return text


def as_list(value: Any, where: str, column: str) -> list[str]:
    """A list of strings from a list/array, a JSON list string or a '|'-separated string; each
    item text or a number."""
    value = _plain_value(value)
    if _missing(value):
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("["):
            return [part.strip() for part in text.split("|") if part.strip()]
        value = loads(text, where, not_json=f"field {column!r} is not a valid JSON list")
    if not isinstance(value, (list, tuple)):
        raise DatasetError(f"{where}: field {column!r} should be a list, got {show(value)}")
    items = [cell(v, where, f"{column}[{i}]") for i, v in enumerate(value)]
    return [item for item in items if item]


def as_text(value: Any) -> str:
    """A cell as text: None/NaN -> '', numbers without a spurious '.0'."""
    value = _plain_value(value)
    if _missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def as_object(value: Any, where: str, column: str) -> dict[str, Any]:
    """An object cell (in CSV, a JSON object as text); absent/empty -> {}."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        value = loads(value, where, not_json=f"field {column!r} is not a valid JSON object")
    if not isinstance(value, dict):
        raise DatasetError(f"{where}: field {column!r} should be an object, got {show(value)}")
    return value


def jsonable(meta: dict[str, Any]) -> dict[str, Any]:
    """Meta values made JSON-safe (numpy scalars/arrays from parquet, NaN -> None)."""
    out = {}
    for key, value in meta.items():
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, float) and math.isnan(value):
            value = None
        out[str(key)] = value
    return out
