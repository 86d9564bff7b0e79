"""The run directory: manifest, append-only record files, a writer lock, and resume.

A run directory holds plain files (manifest.json, traces.jsonl, probes.jsonl, ...). Records are
appended one line at a time and flushed, so an interrupted run loses at most the record being
written; on reopening, finished items are skipped. One writer at a time: a second process opening
the same directory for writing is refused (the lock is reentrant within one process, so a stage
that holds it may call helpers that take it too).

One reading rule for every stage (`read_records`): a last line without its newline is an
interrupted append; it is kept if it is a whole record, else skipped with a note (a writer
holding the lock cuts it off, `RunDir.repair`). A record whose key (`RECORD_KEYS`) was already
read is a duplicate and is skipped with a note, so nothing is counted twice. The steps of one
trace are written in one append (`RunDir.append_many`) and checked whole on reading
(`steps_complete`).
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

from .jsonfile import JSONFileError, read_json
from .records import (Judgement, LatentPrediction, Probe, RecordError, Resample, Step, Tag, Trace, Verdict,
                      iter_jsonl, to_dict, write_jsonl)

__all__ = [
    "MANIFEST",
    "METRICS_FILE",
    "QUESTIONS",
    "RECORD_FILES",
    "RunDir",
    "RunDirError",
    "open_existing",
    "read_manifest",
    "read_records",
    "stage_settings",
]

RecordT = TypeVar("RecordT")

# What identifies one record in a run-directory file: a second record with the same key is a
# duplicate (a line appended twice) and is not read.
RECORD_KEYS: dict[type, tuple[str, ...]] = {
    Trace: ("question_id",),
    Step: ("question_id", "index"),
    Probe: ("question_id", "condition", "fraction_requested"),
    Judgement: ("question_id", "step_index", "judge"),
}

# The file of each record type in a run directory (ablation probes share probes.jsonl with the
# cut probes; their `condition` tells them apart).
RECORD_FILES: dict[type, str] = {
    Trace: "traces.jsonl",
    Step: "steps.jsonl",
    Probe: "probes.jsonl",
    Tag: "tags.jsonl",
    Judgement: "judgements.jsonl",
    Verdict: "verdicts.jsonl",
    Resample: "resamples.jsonl",
    LatentPrediction: "latent.jsonl",
}
MANIFEST = "manifest.json"
METRICS_FILE = "metrics.json"
QUESTIONS = "questions.jsonl"  # the questions of an ingested run (cotprobe.ingest)

_HELD: dict[Path, list] = {}  # run directories this process holds the lock of: [file, depth]


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


def _stage_entry(settings: dict[str, Any]) -> dict[str, Any]:
    return {"settings": settings, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": package_versions(), "command": " ".join(sys.argv)}


def _jsonable(value: Any) -> Any:
    return asdict(value) if is_dataclass(value) else value


class RunDir:
    """A run directory opened for writing (use as a context manager to hold the lock)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = None
        self._created = False
        self._started: list[tuple[str, int]] = []  # stages this session added, records appended before
        self._appended = 0  # records this session appended
        self._recorded: list[tuple[str, Any, int]] = []  # record_stage: the entry it replaced, records before

    # -- locking -----------------------------------------------------------------------------
    def __enter__(self) -> "RunDir":
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.path}: exists and is not a directory; choose another --out")
        self._created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"{self.path}: cannot create the run directory ({exc.strerror})") from None
        key = self.path.resolve()
        held = _HELD.get(key)
        if held is not None:  # this process already holds it: reentrant
            held[1] += 1
            self._key = key
            return self
        _refuse_links(self.path)
        try:
            lock = open(self.path / ".lock", "a+")  # never truncate: the holder's pid stays
        except OSError as exc:
            raise RunDirError(f"{self.path}: cannot write in the run directory ({exc.strerror}); "
                              "make it writable or copy it elsewhere") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            pid = lock.read().strip()
            lock.close()
            raise RunDirError(f"{self.path}: another cotprobe process is writing this run directory"
                              f"{f' (pid {pid})' if pid else ''}; wait for it to finish") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        _HELD[key] = [lock, 1]
        self._key = key
        self._lock = lock
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        key = getattr(self, "_key", None)
        if key is None or key not in _HELD:
            return
        held = _HELD[key]
        held[1] -= 1
        if held[1] > 0:
            return
        if exc_type is not None and not issubclass(exc_type, KeyboardInterrupt):
            try:
                self._undo()
            except OSError:  # the disk that failed the stage fails this too: the claim stays
                pass
        del _HELD[key]
        fcntl.flock(held[0], fcntl.LOCK_UN)
        held[0].close()
        self._lock = None
        if exc_type is not None and self._created and not issubclass(exc_type, KeyboardInterrupt):
            self._remove_if_empty()

    def _undo(self) -> None:
        """After a failure: forget the stages this session started but wrote nothing for, so
        the corrected rerun is not refused for 'different settings'."""
        idle = [stage for stage, appended in self._started if appended == self._appended]
        replaced = [(stage, old) for stage, old, appended in self._recorded if appended == self._appended]
        if not idle and not replaced:
            return
        manifest = self.read_manifest()
        stages = manifest.get("stages", {})
        for stage in idle:
            stages.pop(stage, None)
        for stage, old in reversed(replaced):  # a record_stage entry that nothing was written under
            if old is None:
                stages.pop(stage, None)
            else:
                stages[stage] = old
        self.write_manifest(manifest)

    def _remove_if_empty(self) -> None:
        """A directory this session created and wrote no record into is removed again."""
        names = {p.name for p in self.path.iterdir()}
        if names <= {".lock", MANIFEST, MANIFEST + ".tmp"}:
            for name in names:
                (self.path / name).unlink()
            self.path.rmdir()

    # -- manifest ----------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any]:
        return read_manifest(self.path)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Atomically write manifest.json (sibling file, then rename)."""
        tmp = self.path / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, default=_jsonable, ensure_ascii=False) + "\n")
        tmp.replace(self.path / MANIFEST)

    def start_stage(self, stage: str, settings: dict[str, Any]) -> None:
        """Record a stage's settings in the manifest, or refuse to resume under different ones."""
        manifest = self.read_manifest()
        settings = json.loads(json.dumps(settings, default=_jsonable))
        stages = manifest.setdefault("stages", {})
        previous = stages.get(stage)
        before = (previous or {}).get("settings", {})
        if previous is not None and before != settings:
            changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
            raise RunDirError(
                f"{self.path}: stage '{stage}' was started with different settings "
                f"({', '.join(changed)}); use a new --out directory or the original options"
            )
        if previous is None:
            stages[stage] = _stage_entry(settings)
            self.write_manifest(manifest)
            self._started.append((stage, self._appended))

    def record_stage(self, stage: str, settings: dict[str, Any]) -> None:
        """Record a stage that replaces its output on every run (tagging): its latest settings
        replace any earlier ones, with no resume check."""
        manifest = self.read_manifest()
        stages = manifest.setdefault("stages", {})
        self._recorded.append((stage, stages.get(stage), self._appended))
        stages[stage] = _stage_entry(settings)
        self.write_manifest(manifest)

    def stage_settings(self, stage: str) -> dict[str, Any]:
        """The settings recorded for `stage` ({} if it has not run)."""
        return stage_settings(self.read_manifest(), stage)

    # -- typed records -----------------------------------------------------------------------
    def records(self, cls: type[RecordT]) -> list[RecordT]:
        """Every record of type `cls` in the run (its file in RECORD_FILES; [] if absent)."""
        return self.read(RECORD_FILES[cls], cls)

    def traces(self) -> list[Trace]:
        return self.records(Trace)

    def steps(self) -> list[Step]:
        return self.records(Step)

    def probes(self) -> list[Probe]:
        return self.records(Probe)

    def tags(self) -> list[Tag]:
        return self.records(Tag)

    def resamples(self) -> list[Resample]:
        return self.records(Resample)

    def add(self, record: Any) -> None:
        """Append one record to the file of its type."""
        self.append(RECORD_FILES[type(record)], record)

    def add_many(self, records: list[Any]) -> None:
        """Append records of one type in one write (nothing if empty)."""
        if records:
            self.append_many(RECORD_FILES[type(records[0])], records)

    def rewrite(self, cls: type, records: Iterable[Any]) -> None:
        """Replace the file of `cls` with `records`, atomically."""
        write_jsonl(self.path / RECORD_FILES[cls], records)
        self._appended += 1  # a write: the stages started before it are not idle

    def repair_records(self, *classes: type) -> None:
        """`repair` the files of these record types."""
        for cls in classes:
            self.repair(RECORD_FILES[cls])

    # -- records by file name ----------------------------------------------------------------
    def repair(self, name: str) -> None:
        """Mend a last line left without its newline by an interrupted append: a whole record
        gets its newline, a torn one is cut off (the same rule readers apply)."""
        path = self.path / name
        if not path.exists() or path.stat().st_size == 0:
            return
        with path.open("rb+") as fh:
            data = fh.read()
            if data.endswith(b"\n"):
                return
            keep = data.rfind(b"\n") + 1
            if _whole_json(data[keep:]):
                fh.write(b"\n")
                return
            fh.truncate(keep)
            print(f"cotprobe: {path}: dropped an incomplete last record from an interrupted run",
                  file=sys.stderr)

    def read(self, name: str, cls: type[RecordT]) -> list[RecordT]:
        return read_records(self.path / name, cls)

    def append(self, name: str, record: Any) -> None:
        """Append one record as one line, flushed to disk before returning."""
        self.append_many(name, [record])

    def append_many(self, name: str, records: Iterable[Any]) -> None:
        """Append records as lines in one write, flushed to disk before returning (the steps of
        one trace go together: all or nothing, short of a crash inside the write itself)."""
        data = "".join(json.dumps(to_dict(r), ensure_ascii=False) + "\n" for r in records)
        if not data:
            return
        with (self.path / name).open("a", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        self._appended += 1


def _refuse_links(path: Path) -> None:
    """One rule for every file a stage writes (records are appended, manifest.json and
    metrics.json replaced): a symbolic link there is refused, so that nothing is ever written
    outside the run directory nor a link silently replaced by a file."""
    for name in (MANIFEST, METRICS_FILE, QUESTIONS, *RECORD_FILES.values()):
        if (path / name).is_symlink():
            raise RunDirError(f"{path / name}: is a symbolic link; cotprobe writes only files inside the run "
                              "directory: replace the link with a copy of the file")


def _whole_json(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def read_records(path: str | Path, cls: type[RecordT], quiet: bool = False) -> list[RecordT]:
    """The records of one run-directory file, by the rule every stage shares ([] if absent):
    a torn last line (no newline, not a whole record) is skipped, and so is any record whose
    key (RECORD_KEYS) came before; each skip is noted on stderr. Any other malformed line is
    a RecordError naming the file and line."""
    path = Path(path)
    if not path.exists():
        return []
    key_fields = RECORD_KEYS.get(cls)
    seen: set[tuple] = set()
    out: list[RecordT] = []
    duplicates = 0
    try:
        for record in iter_jsonl(path, cls, torn_ok=True):
            if key_fields is not None:
                key = tuple(getattr(record, f) for f in key_fields)
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
            out.append(record)
    except UnicodeDecodeError as exc:
        raise RecordError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if duplicates and not quiet:
        print(f"cotprobe: {path}: skipped {duplicates} duplicate record(s) (same {', '.join(key_fields)})",
              file=sys.stderr)
    return out


def steps_complete(trace: Trace, steps: list[Step]) -> bool:
    """Whether `steps` are the whole segmentation of the trace's CoT (indices 0..k-1 that tile
    it losslessly), not what an interrupted append left."""
    if not steps:
        return not trace.cot.strip()
    steps = sorted(steps, key=lambda s: s.index)
    if [s.index for s in steps] != list(range(len(steps))):
        return False
    return trace.cot[:steps[0].start] + "".join(s.text + s.sep for s in steps) == trace.cot


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """manifest.json of a run directory ({} if absent), checked: an object whose 'stages' is an
    object of stages, each an object with object 'settings'. Anything else is a RunDirError
    naming the file."""
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        return {}
    try:
        manifest = read_json(path, "a run manifest")
    except JSONFileError as exc:
        raise RunDirError(f"{path}: {exc.reason}") from None
    stages = manifest.get("stages", {})
    if not isinstance(stages, dict):
        raise RunDirError(f"{path}: 'stages' should be an object of stages, got {type(stages).__name__}")
    for name, stage in stages.items():
        if not isinstance(stage, dict) or not isinstance(stage.get("settings", {}), dict):
            raise RunDirError(f"{path}: stage {name!r} should be an object with an object 'settings'")
    return manifest


def stage_settings(manifest: dict[str, Any], stage: str) -> dict[str, Any]:
    """The settings a manifest records for `stage` ({} if it has not run)."""
    return ((manifest.get("stages") or {}).get(stage) or {}).get("settings") or {}


def open_existing(path: str | Path) -> Path:
    """A run directory that must exist and hold a readable manifest (for stages that read a run)."""
    path = Path(path)
    if not (path / MANIFEST).exists():
        raise RunDirError(f"{path}: not a cotprobe run directory (no manifest.json)")
    read_manifest(path)
    return path
