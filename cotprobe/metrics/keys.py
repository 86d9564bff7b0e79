"""The computed keys of metrics.json rows: a value with its interval is stored flat as `name`,
`name_low`, `name_high`, a paired difference under `diff_vs_<reference>`; written with
`interval_fields` / `diff_key`, read with `interval` / `has_interval` (re-exported by `sections`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple


class Interval(NamedTuple):
    """A value and its interval as a row stores them (low, high None where the row has none)."""

    estimate: float
    low: float | None
    high: float | None


def interval_fields(name: str, estimate: float, bounds: tuple[float, float]) -> dict[str, float]:
    """The keys of one value with its (low, high) interval, for a row being built."""
    low, high = bounds
    return {name: estimate, f"{name}_low": low, f"{name}_high": high}


def has_interval(row: Mapping[str, Any], name: str) -> bool:
    """Whether the row holds the value `name` (a row without usable data holds none)."""
    return name in row


def interval(row: Mapping[str, Any], name: str) -> Interval:
    """The value `name` of a row with its interval (KeyError if the row has no such value)."""
    return Interval(row[name], row.get(f"{name}_low"), row.get(f"{name}_high"))


def diff_key(reference: str) -> str:
    """The key of a condition's paired difference to the reference condition."""
    return f"diff_vs_{reference}"
