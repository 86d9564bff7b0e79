"""The run directory: manifest, append-only record files, a writer lock, and resume.

A run directory holds plain files (manifest.json, traces.jsonl, probes.jsonl, ...). Records are
appended one line at a time and flushed, so an interrupted run loses at most the record being
written; on reopening, a torn last line is cut off and finished items are skipped. One writer at
a time: a second process opening the same directory for writing is refused.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import sys
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, TypeVar

from .records import read_jsonl, to_dict

RecordT = TypeVar("RecordT")


class RunDirError(RuntimeError):
    """A run directory that cannot be used as asked; the message says why."""


def package_versions(names: Iterable[str] = ("cotprobe", "torch", "transformers", "numpy", "spacy")) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _jsonable(value: Any) -> Any:
    return asdict(value) if is_dataclass(value) else value


class RunDir:
    """A run directory opened for writing (use as a context manager to hold the lock)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = None

    # -- locking -----------------------------------------------------------------------------
    def __enter__(self) -> "RunDir":
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.path / ".lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise RunDirError(f"{self.path}: another cotprobe process is writing this run directory") from None
        self._lock.write(str(os.getpid()))
        self._lock.flush()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    # -- manifest ----------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any]:
        path = self.path / "manifest.json"
        if not path.exists():
            return {}
        return json.loads(path.read_text())

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Atomically write manifest.json (sibling file, then rename)."""
        tmp = self.path / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, default=_jsonable, ensure_ascii=False) + "\n")
        tmp.replace(self.path / "manifest.json")

    def start_stage(self, stage: str, settings: dict[str, Any]) -> None:
        """Record a stage's settings in the manifest, or refuse to resume under different ones."""
        manifest = self.read_manifest()
        settings = json.loads(json.dumps(settings, default=_jsonable))
        stages = manifest.setdefault("stages", {})
        previous = stages.get(stage)
        if previous is not None and previous["settings"] != settings:
            changed = sorted(k for k in set(previous["settings"]) | set(settings)
                             if previous["settings"].get(k) != settings.get(k))
            raise RunDirError(
                f"{self.path}: stage '{stage}' was started with different settings "
                f"({', '.join(changed)}); use a new --out directory or the original options"
            )
        if previous is None:
            stages[stage] = {
                "settings": settings,
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "versions": package_versions(),
                "command": " ".join(sys.argv),
            }
            self.write_manifest(manifest)

    # -- records -----------------------------------------------------------------------------
    def repair(self, name: str) -> None:
        """Cut a torn last line left by an interrupted append."""
        path = self.path / name
        if not path.exists() or path.stat().st_size == 0:
            return
        with path.open("rb+") as fh:
            data = fh.read()
            if data.endswith(b"\n"):
                return
            keep = data.rfind(b"\n") + 1
            fh.truncate(keep)
            print(f"cotprobe: {path}: dropped an incomplete last record from an interrupted run",
                  file=sys.stderr)

    def read(self, name: str, cls: type[RecordT]) -> list[RecordT]:
        path = self.path / name
        return read_jsonl(path, cls) if path.exists() else []

    def append(self, name: str, record: Any) -> None:
        """Append one record as one line, flushed to disk before returning."""
        line = json.dumps(to_dict(record), ensure_ascii=False) + "\n"
        with (self.path / name).open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


def open_existing(path: str | Path) -> Path:
    """A run directory that must exist and hold a manifest (for stages that read a run)."""
    path = Path(path)
    if not (path / "manifest.json").exists():
        raise RunDirError(f"{path}: not a cotprobe run directory (no manifest.json)")
    return path
