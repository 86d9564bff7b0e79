"""Confidence scales: the labels a model may answer with and the value each stands for.

`VERBAL_10` is the paper's ten-class verbal scale scored at band midpoints; `NUMERIC_100`
accepts a percentage. A scale parses what a model wrote (`parse`) and lists the labels that
the scored path asks the model's probability of (`labels`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .jsonfile import read_json

__all__ = [
    "Scale",
    "NumericScale",
    "VERBAL_10",
    "NUMERIC_100",
    "SCALES",
    "get_scale",
]


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


@dataclass(frozen=True)
class Scale:
    """A finite set of labels, each with a confidence value in [0, 1]."""

    name: str
    labels: tuple[str, ...]
    values: tuple[float, ...]
    # The probability range each label stands for, as shown in prompts; () shows the values.
    ranges: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        where = f"scale {self.name!r}"
        if len(self.labels) != len(self.values) or len(self.labels) < 2:
            raise ValueError(f"{where}: need one value per label, and at least two labels "
                             f"(got {len(self.labels)} labels, {len(self.values)} values)")
        seen: dict[str, str] = {}
        for label in self.labels:
            if not isinstance(label, str):
                raise ValueError(f"{where}: label {label!r} is not text")  # noqa: TRY004 - every bad scale is a ValueError
            if not _norm(label):
                raise ValueError(f"{where}: label {label!r} has no letters or digits")
            if _norm(label) in seen:
                raise ValueError(f"{where}: labels {seen[_norm(label)]!r} and {label!r} are the same "
                                 "(case and punctuation are ignored)")
            seen[_norm(label)] = label
        for label, value in zip(self.labels, self.values):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{where}: the value of {label!r} must be a number in [0, 1], got {value!r}")
        if self.ranges and (len(self.ranges) != len(self.labels)
                            or any(len(r) != 2 or not 0 <= r[0] <= r[1] <= 1 for r in self.ranges)):
            raise ValueError(f"{where}: 'ranges' needs one [low, high] within [0, 1] per label")

    def value(self, label: str) -> float:
        return dict(zip(self.labels, self.values))[label]

    def parse(self, text: str) -> str | None:
        """The label the text states, or None. Case, markdown and punctuation are ignored;
        when several labels occur, the earliest (longest at a tie) wins."""
        norm = f" {_norm(text)} "
        best: tuple[int, int, str] | None = None
        for label in self.labels:
            pos = norm.find(f" {_norm(label)} ")
            if pos >= 0 and (best is None or (pos, -len(label)) < best[:2]):
                best = (pos, -len(label), label)
        return best[2] if best else None

    def describe(self) -> str:
        """The label list as written into prompts."""
        return ", ".join(f'"{label}"' for label in self.labels)

    def describe_classes(self) -> str:
        """One line per label with the probability range it stands for (or its value)."""
        if self.ranges:
            return "\n".join(f'- "{label}" ({low:.1f}\u2013{high:.1f})' for label, (low, high) in zip(self.labels, self.ranges))
        return "\n".join(f'- "{label}" (about {value:g})' for label, value in zip(self.labels, self.values))

    def confidence_format(self) -> str:
        """What the confidence line holds, as the prompt asks for it."""
        return "the class name only"


VERBAL_10 = Scale(
    name="verbal10",
    labels=(
        "Almost no chance",
        "Highly unlikely",
        "Chances are slight",
        "Unlikely",
        "Less than even",
        "Better than even",
        "Likely",
        "Very good chance",
        "Highly likely",
        "Almost certain",
    ),
    values=(0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95),
    ranges=tuple((k / 10, (k + 1) / 10) for k in range(10)),
)


@dataclass(frozen=True)
class NumericScale(Scale):
    """A 0-100 percentage. Scored over the multiples of `step`; parses any number in range."""

    def parse(self, text: str) -> str | None:
        match = re.search(r"(\d+(?:\.\d+)?)\s*%?", text)
        if not match or float(match.group(1)) > 100:
            return None
        return match.group(1)

    def value(self, label: str) -> float:
        return float(label) / 100.0

    def describe_classes(self) -> str:
        return ("- a whole number from 0 to 100: the probability, in percent, that your answer is correct "
                "(0 = certainly wrong, 100 = certainly right)")

    def confidence_format(self) -> str:
        return "a number from 0 to 100 only"


NUMERIC_100 = NumericScale(
    name="numeric100",
    labels=tuple(str(v) for v in range(0, 101, 10)),
    values=tuple(v / 100 for v in range(0, 101, 10)),
)

SCALES = {s.name: s for s in (VERBAL_10, NUMERIC_100)}


def get_scale(spec: str) -> Scale:
    """A built-in scale by name, or a custom one from a JSON file
    {"name": ..., "labels": [text, ...], "values": [number in [0, 1], ...]} (name optional;
    labels distinct ignoring case and punctuation)."""
    if spec in SCALES:
        return SCALES[spec]
    path = Path(spec)
    if not path.exists():
        raise ValueError(f"unknown confidence scale {spec!r}: use one of {', '.join(SCALES)} or a JSON file")
    if not path.is_file():
        raise ValueError(f"{path}: not a file (a custom --scale is a JSON file)")
    data = read_json(path, "a scale file has 'labels' and 'values'")
    missing = [k for k in ("labels", "values") if k not in data]
    if missing:
        raise ValueError(f"{path}: a scale file needs 'labels' and 'values' (missing {', '.join(missing)})")
    unknown = sorted(set(data) - {"name", "labels", "values", "ranges"})
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {', '.join(unknown)} (a scale has name, labels, values, ranges)")
    for key in [k for k in ("labels", "values", "ranges") if k in data]:
        if not isinstance(data[key], list):
            raise ValueError(f"{path}: '{key}' must be a JSON list, got {type(data[key]).__name__}")  # noqa: TRY004
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{path}: 'name' must be non-empty text")
    try:
        ranges = tuple(tuple(r) if isinstance(r, list) else r for r in data.get("ranges", ()))
        return Scale(name=name, labels=tuple(data["labels"]), values=tuple(data["values"]), ranges=ranges)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
