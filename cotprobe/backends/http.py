"""Talking to one or several completion servers: retries, fail-over, and a compact request cache.

`ServerPool` sends each request to one of several servers of the same model: to the server that
already answered a request sharing most of its prompt (so the server's prefix cache serves it),
else to the least busy one. A server that cannot be reached is set aside for a while and the
request tried on another; connection errors, timeouts, 429 and 5xx are retried with backoff.

`RequestCache` keeps what the client reads from each deterministic answer (text, token ids,
finish reason, the top log-probabilities), not whole responses, in one SQLite file, bounded in
size (least recently used entries go first).
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

# Fields that ask for log-probabilities: a greedy answer does not depend on them, so one cache
# entry answers the same request with fewer or no log-probabilities.
LOGPROB_FIELDS = ("logprobs", "n_probs", "return_tokens_as_token_ids")
ECHO_TAIL = 64  # echoed prompt log-probabilities kept: the last positions (where options are scored)
AFFINITY_BLOCK = 16  # prompts are matched to servers in blocks of this many tokens


class ServerError(RuntimeError):
    """The server could not be reached, or refused a request, after all retries.

    status: the HTTP status of the last answer, None when none came (refused, reset, timed out)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


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
        if root is None:
            target = ":memory:"
        else:
            Path(root).mkdir(parents=True, exist_ok=True)
            target = str(Path(root) / "requests.sqlite")
        self._lock = threading.Lock()
        self._db = sqlite3.connect(target, check_same_thread=False, timeout=60, isolation_level=None)
        if root is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, k INTEGER, "
                         "value TEXT NOT NULL, used REAL NOT NULL)")
        self._bytes = self._db.execute("SELECT COALESCE(SUM(LENGTH(key) + LENGTH(value)), 0) FROM answers").fetchone()[0]

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


def _token(tok: Any) -> int | str:
    """A token as servers name it: an id, or "token_id:123" (vLLM return_tokens_as_token_ids), or text."""
    if isinstance(tok, str) and tok.startswith("token_id:") and tok[9:].lstrip("-").isdigit():
        return int(tok[9:])
    return tok


def compact(resp: dict[str, Any], echo: bool = False) -> dict[str, Any]:
    """What the client reads from a completions answer (vLLM, SGLang, llama.cpp dialects).

    text, finish, stop (present when the server said which stop ended it: vLLM stop_reason,
    SGLang matched_stop), ids (generated token ids, where the server gave them), top (per
    generated position: [token, logprob] pairs, token an id where known), lp/off (the last
    ECHO_TAIL echoed prompt log-probabilities and text offsets)."""
    try:
        choice = resp["choices"][0]
    except (KeyError, IndexError, TypeError):
        raise ValueError("the answer has no choices[0]") from None
    if not isinstance(choice, dict) or not isinstance(choice.get("text", ""), (str, type(None))):
        raise ValueError(f"choices[0] is not a completion: {str(choice)[:100]!r}")
    # an echoed answer's text and top log-probabilities run over the whole prompt: not kept
    out: dict[str, Any] = {"text": "" if echo else choice.get("text") or "", "finish": choice.get("finish_reason")}
    for key in ("stop_reason", "matched_stop"):
        if key in choice:
            out["stop"] = choice[key]
            break
    lp = choice.get("logprobs") or {}
    ids = choice.get("token_ids")  # vLLM return_token_ids
    if not (isinstance(ids, list) and all(isinstance(i, int) for i in ids)):
        ids = choice.get("tokens")  # llama.cpp return_tokens
    if not (isinstance(ids, list) and all(isinstance(i, int) for i in ids)):
        toks = [] if echo else [_token(t) for t in lp.get("tokens") or []]
        ids = toks if toks and all(isinstance(t, int) for t in toks) else None
    if ids is not None:
        out["ids"] = ids
    if echo:
        pass
    elif lp.get("top_logprobs"):  # legacy completions format
        out["top"] = [[[_token(t), float(v)] for t, v in (d or {}).items()] for d in lp["top_logprobs"]]
    elif lp.get("content"):  # llama-server: [{"id", "token", "logprob", "top_logprobs": [{id, token, logprob}]}]
        out["top"] = [[[t["id"] if isinstance(t.get("id"), int) else t["token"], float(t["logprob"])]
                       for t in item.get("top_logprobs") or []] for item in lp["content"]]
    if lp.get("token_logprobs") is not None:
        out["lp"] = lp["token_logprobs"][-ECHO_TAIL:]
        if lp.get("text_offset") is not None:
            out["off"] = lp["text_offset"][-ECHO_TAIL:]
        out["n_lp"] = len(lp["token_logprobs"])
    return out


class Server:
    def __init__(self, url: str, client: httpx.Client):
        self.url, self.client = url, client
        self.in_flight = 0
        self.down_until = 0.0
        self.failures = 0


class ServerPool:
    """Several servers of one model; requests go to the one holding their prefix, else the least busy.

    A request whose token-id prompt, all but its last few tokens, was sent to (or generated by) a
    server goes to that server, so that its prefix cache serves it; others go round the servers.

    timeout: seconds a request may wait for its answer (read timeout); retries: further tries
    after a connection error, timeout, 429 or 5xx, on another server where one is up."""

    def __init__(self, urls: list[str], *, concurrency: int, timeout: float, retries: int,
                 backoff: float = 0.5, api_key: str | None = None):
        if not urls:
            raise ValueError("no server address given")
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.servers = [Server(u, httpx.Client(base_url=u, headers=headers, limits=limits,
                                               timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0))))
                        for u in urls]
        self.requests_sent = 0
        self._lock = threading.Lock()
        self._owner: dict[int, int] = {}  # hash of a prompt's first n*AFFINITY_BLOCK tokens -> server index
        self._owner_cap = 500_000
        self._turn = 0

    def close(self) -> None:
        for s in self.servers:
            s.client.close()

    @staticmethod
    def _blocks(prompt: Any) -> list[int]:
        if not isinstance(prompt, list):
            return []
        out, h = [], 0
        for end in range(AFFINITY_BLOCK, len(prompt) + 1, AFFINITY_BLOCK):
            h = hash((h, tuple(prompt[end - AFFINITY_BLOCK:end])))
            out.append(h)
        return out

    def _pick(self, blocks: list[int], avoid: set[int]) -> int:
        now = time.monotonic()
        live = [i for i, s in enumerate(self.servers) if s.down_until <= now and i not in avoid]
        if not live:
            live = [i for i in range(len(self.servers)) if i not in avoid] or list(range(len(self.servers)))
            live = [min(live, key=lambda i: self.servers[i].down_until)]
        if len(live) == 1:
            return live[0]
        matched = 0
        for n, h in enumerate(blocks, 1):
            if self._owner.get(h) is None:
                break
            matched = n
        if matched and matched >= len(blocks) - 2:  # all but its last few tokens are cached there
            owner = self._owner[blocks[matched - 1]]
            if owner in live:
                return owner
        self._turn += 1  # ties in load go round the servers
        return min(live, key=lambda i: (self.servers[i].in_flight, (i - self._turn) % len(self.servers)))

    def _own(self, blocks: list[int], index: int) -> None:
        if len(self._owner) > self._owner_cap:
            self._owner.clear()
        for h in blocks:
            self._owner.setdefault(h, index)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                retries: int | None = None, server: int | None = None) -> dict[str, Any]:
        """One request (to `server` if given) with retries; the JSON answer."""
        retries = self.retries if retries is None else retries
        blocks = self._blocks((body or {}).get("prompt"))
        last, status, avoid = "", None, set()
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 30) * (1 + 0.25 * random.random()))
            with self._lock:
                index = server if server is not None else self._pick(blocks, avoid)
                srv = self.servers[index]
                srv.in_flight += 1
            try:
                resp = srv.client.request(method, path, json=body)
            except httpx.TransportError as exc:  # refused, reset, timed out
                last, status = f"{srv.url}: {type(exc).__name__}: {exc or 'no answer'}", None
                self._set_aside(srv, avoid, index)
                continue
            finally:
                with self._lock:
                    srv.in_flight -= 1
            with self._lock:
                self.requests_sent += 1
            if resp.status_code == 429 or resp.status_code >= 500:
                last, status = f"{srv.url}: HTTP {resp.status_code}: {resp.text[:300]}", resp.status_code
                continue
            if resp.status_code >= 400:
                raise ServerError(f"{method} {srv.url}{path}: HTTP {resp.status_code}: {resp.text[:500]}",
                                  resp.status_code)
            try:
                answer = resp.json()
            except ValueError:
                raise ServerError(f"{method} {srv.url}{path}: the answer is not JSON: {resp.text[:200]!r}",
                                  resp.status_code) from None
            if not isinstance(answer, dict):
                raise ServerError(f"{method} {srv.url}{path}: the answer is not a JSON object: {resp.text[:200]!r}",
                                  resp.status_code)
            made = (answer.get("choices") or [{}])[0]
            made = made.get("token_ids") if isinstance(made, dict) else None
            if blocks and isinstance(made, list) and all(isinstance(t, int) for t in made):
                blocks = self._blocks(body["prompt"] + made)  # the server caches what it generated too
            with self._lock:
                srv.failures = 0
                self._own(blocks, index)
            return answer
        where = self.servers[server].url if server is not None else ", ".join(s.url for s in self.servers)
        raise ServerError(f"{method} {path} to {where} failed after {retries + 1} tries ({last}); "
                          "is the server running? Re-running resumes where this stopped", status)

    def _set_aside(self, srv: Server, avoid: set[int], index: int) -> None:
        with self._lock:
            srv.failures += 1
            if len(self.servers) > 1:
                srv.down_until = time.monotonic() + min(2.0 * 2 ** (srv.failures - 1), 60)
                avoid.add(index)
                if len(avoid) == len(self.servers):
                    avoid.clear()
                if srv.failures == 1:
                    print(f"cotprobe: {srv.url} does not answer; sending its requests to the others",
                          file=sys.stderr)
