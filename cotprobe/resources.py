"""Locate data files shipped with cotprobe (question sets, lexicons, prompts, exemplars).

They live in ``cotprobe/_data/`` so that every install (editable, wheel, git URL) carries them;
``docs/datasets.md`` describes them.
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "_data"


def data_path(name: str) -> Path:
    """Path of the shipped data file ``name`` (in ``cotprobe/_data/``)."""
    path = DATA_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"data file {name!r} not found in {DATA_DIR}: the installed cotprobe is incomplete; reinstall it"
        )
    return path
