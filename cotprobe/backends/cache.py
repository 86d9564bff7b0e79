"""The request cache: compact answers to deterministic completions requests, in one SQLite file.

What the client reads from each answer (see `answers.compact`: text, token ids, finish reason,
the top log-probabilities), not whole responses, bounded in size (least recently used entries
go first). The key leaves out the fields that only ask for log-probabilities, so an entry with
k top log-probabilities also answers the same request asking for fewer or none.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

# Fields that ask for log-probabilities: a greedy answer does not depend on them, so one cache
# entry answers the same request with fewer or no log-probabilities.
LOGPROB_FIELDS = ("logprobs", "n_probs", "return_tokens_as_token_ids")


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def asked_k(body: dict[str, Any]) -> int | None:
    """How many top log-probabilities a request asks for (None: none)."""
    k = body.get("logprobs")
    return None if k is None or k is False else int(k)


class RequestCache:
    """Compact answers to deterministic requests in ROOT/requests.sqlite (ROOT None: in memory).

    An entry answers a request with the same fields apart from LOGPROB_FIELDS if it holds at
    least as many top log-probabilities as asked. max_bytes bounds the stored bytes."""

    def __init__(self, root: str | Path | None, max_bytes: int = 4 * 1024**3):
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        if root is None:
            self._db, self._bytes = self._open(":memory:")
            return
        root = Path(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file where the folder should be, or no permission
            raise ValueError(f"--cache-dir: cannot use {root} for the request cache ({exc.strerror})") from None
        target = root / "requests.sqlite"
        try:
            self._db, self._bytes = self._open(str(target))
        except sqlite3.DatabaseError as exc:
            if _read_only(exc):
                raise ValueError(f"--cache-dir: the request cache {target} cannot be written ({exc}); make it "
                                 "writable or give another --cache-dir") from None
            aside = target.with_name(f"{target.name}.corrupt-{int(time.time())}")
            target.replace(aside)  # a cache is derived: set it aside and start a new one, as metrics.json
            for tail in ("-wal", "-shm"):
                target.with_name(target.name + tail).unlink(missing_ok=True)
            print(f"cotprobe: {target}: not a readable request cache ({exc}); set aside as {aside.name}, "
                  "starting a new one", file=sys.stderr)
            self._db, self._bytes = self._open(str(target))

    @staticmethod
    def _open(target: str) -> tuple[sqlite3.Connection, int]:
        """The connection to the cache's file, checked by reading it whole once."""
        db = sqlite3.connect(target, check_same_thread=False, timeout=60, isolation_level=None)
        try:
            if target != ":memory:":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, k INTEGER, "
                       "value TEXT NOT NULL, used REAL NOT NULL)")
            stored = db.execute("SELECT COALESCE(SUM(LENGTH(key) + LENGTH(value)), 0) FROM answers").fetchone()[0]
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("database disk image is malformed")
            db.execute("INSERT OR REPLACE INTO answers VALUES ('', NULL, '', 0)")  # writable?
            db.execute("DELETE FROM answers WHERE key = ''")
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db, stored

    @staticmethod
    def key(path: str, body: dict[str, Any]) -> str:
        plain = {k: v for k, v in body.items() if k not in LOGPROB_FIELDS}
        return hashlib.sha256(canonical({"path": path, "body": plain}).encode("utf-8")).hexdigest()

    @property
    def bytes(self) -> int:
        """Bytes stored (keys and values)."""
        return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def get(self, key: str, k: int | None) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT k, value FROM answers WHERE key = ?", (key,)).fetchone()
            if row is None or (k is not None and (row[0] is None or row[0] < k)):
                return None
            self._db.execute("UPDATE answers SET used = ? WHERE key = ?", (time.time(), key))
        try:
            return json.loads(row[1])
        except json.JSONDecodeError:
            return None

    def put(self, key: str, k: int | None, value: dict[str, Any]) -> None:
        text = canonical(value)
        with self._lock:
            old = self._db.execute("SELECT k, LENGTH(value) FROM answers WHERE key = ?", (key,)).fetchone()
            if old is not None and (k is None or (old[0] is not None and old[0] >= k)):
                return  # what is there already answers more
            self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)", (key, k, text, time.time()))
            self._bytes += len(key) + len(text.encode("utf-8")) - (len(key) + old[1] if old else 0)
            if self._bytes > self.max_bytes:
                self._evict()

    def _evict(self) -> None:
        """Drop least recently used entries until a tenth under the bound."""
        goal = int(self.max_bytes * 0.9)
        for key, size in self._db.execute(
                "SELECT key, LENGTH(key) + LENGTH(value) FROM answers ORDER BY used").fetchall():
            if self._bytes <= goal:
                break
            self._db.execute("DELETE FROM answers WHERE key = ?", (key,))
            self._bytes -= size


def _read_only(exc: sqlite3.DatabaseError) -> bool:
    return "readonly" in str(exc) or "read-only" in str(exc) or "unable to open" in str(exc)
