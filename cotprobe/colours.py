"""Behaviour colours and their display order, from the data file `_data/behaviour_colours.json`.

The figures and the HTML report read them here, so a behaviour has one colour everywhere."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache

from .resources import data_path


@cache
def _table() -> dict:
    return json.loads(data_path("behaviour_colours.json").read_text(encoding="utf-8"))


def shipped() -> tuple[str, ...]:
    """The behaviours with a fixed colour, in display order."""
    return tuple(_table()["behaviours"])


def in_order(names: Iterable[str]) -> list[str]:
    """Distinct names: the shipped behaviours first in display order, then the others as they come."""
    names = list(dict.fromkeys(names))
    return [b for b in shipped() if b in names] + [b for b in names if b not in shipped()]


def behaviour_colours(names: Iterable[str] = ()) -> dict[str, str]:
    """Hex colour of every shipped behaviour and of each other name (fallback colours in order)."""
    table = _table()
    colours = dict(table["behaviours"])
    fallback = table["fallback"]
    for name in names:
        if name not in colours:
            colours[name] = fallback[(len(colours) - len(table["behaviours"])) % len(fallback)]
    return colours
