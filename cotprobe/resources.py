"""Locate data files shipped with cotprobe (lexicons, evaluation sets)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DATA = Path(__file__).resolve().parent / "_data"
_REPO_DATA = Path(__file__).resolve().parent.parent / "data"


def data_path(name: str) -> Path:
    """Path of data file ``name``: ``cotprobe/_data/name`` (installed), else ``<repo>/data/name``."""
    for folder in (_PACKAGE_DATA, _REPO_DATA):
        path = folder / name
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"data file {name!r} not found in {_PACKAGE_DATA} (installed package data) "
        f"or {_REPO_DATA} (source checkout); reinstall cotprobe or pass an explicit path"
    )
