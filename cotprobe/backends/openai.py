"""A backend that drives an OpenAI-compatible completions server (vLLM, SGLang, llama.cpp).

The chat template is applied here, with the model's own tokenizer loaded locally, and raw
prompts go to `/v1/completions`: token-id lists where the server accepts them (so CoT cuts stay
exact), else the decoded text (`prompt_mode` says which). Sessions keep their token list on the
client; `greedy` is one temperature-0 request, `score` reads log-probabilities: the prompt's own
(echo + logprobs, `score_mode == "prompt"`), else the next tokens' top-k (`"topk"`, one request per
option token), else it raises `ScoringUnavailable`.

Every request is deterministic (temperature 0), so identical requests (same endpoint, model,
prompt and decoding parameters) are answered from an on-disk cache when `cache_dir` is given:
one JSON file per request, named by the sha256 of the request's canonical JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from . import Completion, check_fits, cut_at_stop

PROMPT_MODES = ("tokens", "text")
SCORE_MODES = ("prompt", "topk", "none")


class ScoringUnavailable(RuntimeError):
    """The server returns no log-probabilities: scored confidence cannot be computed.

    The caller can fall back to the sampled (written) confidence and record that it did."""


class ServerError(RuntimeError):
    """The server could not be reached, or refused a request, after all retries.

    status: the HTTP status of the last answer, None when none came (refused, reset, timed out)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class RequestCache:
    """Responses to deterministic requests, one JSON file each: DIR/ab/abcdef....json."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(path: str, body: dict[str, Any]) -> str:
        return hashlib.sha256(_canonical({"path": path, "body": body}).encode("utf-8")).hexdigest()

    def _file(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._file(key).read_text(encoding="utf-8"))["response"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return None  # absent, or torn by a crash: ask the server again

    def put(self, key: str, path: str, body: dict[str, Any], response: dict[str, Any]) -> None:
        target = self._file(key)
        target.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"path": path, "request": body, "response": response}, fh, ensure_ascii=False)
        os.replace(tmp, target)  # atomic: readers never see half a file


def _load_tokenizer(tokenizer: Any) -> Any:
    if isinstance(tokenizer, (str, Path)):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(tokenizer))
    return tokenizer


class OpenAIBackend:
    """A model served over HTTP, with its tokenizer here.

    base_url: the server root (".../v1" is accepted too). model: the served model id (None: the
    first that /v1/models lists). tokenizer: a tokenizer object or a folder/hub id to load it from.
    concurrency: requests in flight at once. timeout: seconds per request. retries: further tries
    after a connection error, 429 or 5xx, with exponential backoff from `backoff` seconds.
    cache_dir: where the request cache lives (None: no cache). prompt_mode / score_mode: force a
    mode instead of probing the server. topk: alternatives asked for in "topk" scoring.
    """

    def __init__(self, base_url: str, model: str | None, tokenizer: Any, concurrency: int = 8,
                 timeout: float = 120, retries: int = 5, cache_dir: str | Path | None = None, *,
                 name: str | None = None, context_length: int | None = None, api_key: str | None = None,
                 prompt_mode: str | None = None, score_mode: str | None = None, topk: int = 20,
                 backoff: float = 0.5):
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.tokenizer = _load_tokenizer(tokenizer)
        self.concurrency = max(1, int(concurrency))
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.topk = topk
        self.reuse_cache = True  # sessions cost nothing to cut; the server caches prefixes itself
        self.cache = RequestCache(cache_dir) if cache_dir is not None else None
        self.requests_sent = 0  # HTTP requests that reached the server and got an answer
        self.cache_hits = 0
        self._count_lock = threading.Lock()
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout,
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
        )
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="cotprobe-http")

        info = self._server_models()
        ids = [m.get("id") for m in info]
        if model is None:
            if not ids:
                raise ServerError(f"{self.base_url}/v1/models lists no model; pass the model id")
            model = ids[0]
        elif ids and model not in ids:
            if len(ids) != 1:
                raise ServerError(f"{self.base_url} does not serve {model!r} (it serves: {', '.join(map(str, ids))})")
            print(f"cotprobe: {self.base_url} serves one model, {ids[0]!r}; using it for {model!r}",
                  file=sys.stderr)
            model = ids[0]
        self.model = model
        self.name = name or model
        entry = next((m for m in info if m.get("id") == model), {})
        self.context_length, self.context_source = self._context(entry, context_length)
        eos = self.tokenizer.eos_token_id
        self.eos_ids = {eos} if eos is not None else set()
        self.prompt_mode = prompt_mode or self._probe_prompt_mode()
        if self.prompt_mode not in PROMPT_MODES:
            raise ValueError(f"prompt_mode {self.prompt_mode!r}: use one of {', '.join(PROMPT_MODES)}")
        self._score_mode = score_mode
        if score_mode is not None and score_mode not in SCORE_MODES:
            raise ValueError(f"score_mode {score_mode!r}: use one of {', '.join(SCORE_MODES)}")

    # -- HTTP --------------------------------------------------------------------------------
    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._http.close()

    def _count(self, attr: str) -> None:
        with self._count_lock:
            setattr(self, attr, getattr(self, attr) + 1)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None,
                 retries: int | None = None) -> dict[str, Any]:
        """One request with retries on connection errors, timeouts, 429 and 5xx."""
        last, status = "", None
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 30) * (1 + 0.25 * random.random()))
            try:
                resp = self._http.request(method, path, json=body)
            except httpx.TransportError as exc:  # refused, reset, timed out
                last, status = f"{type(exc).__name__}: {exc}", None
                continue
            self._count("requests_sent")
            if resp.status_code == 429 or resp.status_code >= 500:
                last, status = f"HTTP {resp.status_code}: {resp.text[:300]}", resp.status_code
                continue
            if resp.status_code >= 400:
                raise ServerError(f"{method} {self.base_url}{path}: HTTP {resp.status_code}: {resp.text[:500]}",
                                  resp.status_code)
            return resp.json()
        raise ServerError(f"{method} {self.base_url}{path} failed after {retries + 1} tries ({last}); "
                          "is the server running? Re-running resumes where this stopped", status)

    def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/completions, through the request cache."""
        body = {"model": self.model, **body}
        path = "/v1/completions"
        if self.cache is None:
            return self._request("POST", path, body)
        key = RequestCache.key(path, body)
        hit = self.cache.get(key)
        if hit is not None:
            self._count("cache_hits")
            return hit
        response = self._request("POST", path, body)
        self.cache.put(key, path, body, response)
        return response

    def _complete_many(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Several requests at once (up to `concurrency` in flight); answers in order."""
        if len(bodies) == 1:
            return [self._complete(bodies[0])]
        return list(self._pool.map(self._complete, bodies))

    # -- what the server offers ----------------------------------------------------------------
    def _server_models(self) -> list[dict[str, Any]]:
        try:
            return list(self._request("GET", "/v1/models").get("data") or [])
        except ServerError as exc:
            raise ServerError(f"cannot use the server at {self.base_url}: {exc}") from None

    def _context(self, entry: dict[str, Any], given: int | None) -> tuple[int, str]:
        if given:
            return int(given), "argument"
        meta = entry.get("meta") or {}
        for where, key in [(entry, "max_model_len"), (entry, "context_length"), (entry, "context_window"),
                           (entry, "n_ctx"), (meta, "n_ctx")]:
            if isinstance(where.get(key), int) and where[key] > 0:
                return where[key], f"server ({key})"
        config_len = None
        try:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(self.tokenizer.name_or_path)
            config_len = getattr(config, "max_position_embeddings", None)
        except Exception:  # no config next to the tokenizer: fall through
            pass
        if config_len:
            return int(config_len), "config (max_position_embeddings)"
        tok_len = getattr(self.tokenizer, "model_max_length", None)
        if tok_len and tok_len < 10**7:
            return int(tok_len), "tokenizer (model_max_length)"
        if isinstance(meta.get("n_ctx_train"), int):
            return meta["n_ctx_train"], "server (n_ctx_train)"
        raise ValueError(f"{self.base_url}: the context length of {self.model!r} is unknown; pass context_length")

    def _try(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """A probing request: None if the server answers it with an error (feature missing)."""
        try:
            return self._request("POST", "/v1/completions", {"model": self.model, **body}, retries=0)
        except ServerError as exc:
            if exc.status is None:  # not an answer: the server is gone
                raise
            return None

    def _probe_prompt_mode(self) -> str:
        ok = self._try({"prompt": self.encode("Hello"), "max_tokens": 1, "temperature": 0})
        return "tokens" if ok is not None else "text"

    @property
    def score_mode(self) -> str:
        """How `score` gets log-probabilities; probed with one or two tiny requests on first use."""
        if self._score_mode is None:
            self._score_mode = self._probe_score_mode()
        return self._score_mode

    def _probe_score_mode(self) -> str:
        ids = self.encode("The capital of France is")
        base = {**self._prompt_body(ids), "max_tokens": 1, "temperature": 0}
        resp = self._try({**base, "echo": True, "logprobs": 1})
        try:
            values = resp["choices"][0]["logprobs"]["token_logprobs"]
            if len(values) > len(ids) and all(v is not None for v in values[1:len(ids)]):
                return "prompt"
        except (KeyError, IndexError, TypeError):
            pass
        resp = self._try({**base, "logprobs": 2})
        try:
            if resp is not None and self._top_alternatives(resp)[0]:
                return "topk"
        except (KeyError, IndexError, TypeError):
            pass
        return "none"

    def describe(self) -> dict[str, Any]:
        """What a run manifest should record about the server."""
        return {"backend": "openai", "base_url": self.base_url, "model": self.model,
                "prompt_mode": self.prompt_mode, "score_mode": self.score_mode,
                "context_length": self.context_length, "context_source": self.context_source,
                "tokenizer": getattr(self.tokenizer, "name_or_path", "")}

    # -- the Backend interface ---------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def chat_prompt(self, messages: list[dict[str, str]], **template_kwargs: Any) -> str:
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, **template_kwargs
        )

    def _prompt_body(self, ids: list[int]) -> dict[str, Any]:
        return {"prompt": list(ids) if self.prompt_mode == "tokens" else self.decode(ids)}

    def _greedy_body(self, ids: list[int], max_new_tokens: int, stop: list[str]) -> dict[str, Any]:
        body = {**self._prompt_body(ids), "max_tokens": max_new_tokens, "temperature": 0}
        stops = [s for s in stop if s]
        if stops:
            body["stop"] = stops
        return body

    def generate(self, prompts: list[list[int]], max_new_tokens: int, stop: list[str]) -> list[Completion]:
        """Greedy completions of a batch of token-id prompts, sent concurrently, in order."""
        for ids in prompts:
            check_fits(len(ids), max_new_tokens, self.context_length)
        bodies = [self._greedy_body(ids, max_new_tokens, stop) for ids in prompts]
        responses = self._complete_many(bodies)
        return [self._finish(ids, resp, max_new_tokens, stop) for ids, resp in zip(prompts, responses)]

    def _finish(self, prompt: list[int], resp: dict[str, Any], max_new_tokens: int, stop: list[str]) -> Completion:
        """A Completion as the HF backend makes it: on a stop string, the text runs through it."""
        choice = resp["choices"][0]
        text = choice.get("text") or ""
        stops = [s for s in stop if s]
        cut, stopped = cut_at_stop(text, stops)  # servers that keep the stop string in the text
        if stopped:
            return Completion(self.encode(cut), cut, "stop")
        if choice.get("finish_reason") == "length":
            return Completion(self.encode(text), text, "length")
        if not stops:
            return Completion(self.encode(text), text, "eos")
        # finish_reason "stop" is a stop string (cut off by the server) or end-of-sequence.
        for key in ("stop_reason", "matched_stop"):  # vLLM, SGLang say which
            if key in choice:
                matched = choice[key]
                if isinstance(matched, str) and matched in stops:
                    return Completion(self.encode(text + matched), text + matched, "stop")
                if matched is None or matched in self.eos_ids:
                    return Completion(self.encode(text), text, "eos")
        # Others do not: ask greedily for what comes next (a few tokens, prefix-cached).
        ids = self.encode(text)
        room = max(len(self.encode(s)) for s in stops) + 1
        if len(prompt) + len(ids) + room > self.context_length:
            return Completion(ids, text, "eos")
        after = self._complete(self._greedy_body(prompt + ids, room, []))["choices"][0].get("text") or ""
        joined = text + after
        for s in stops:  # the server cut the text where the stop string began
            pos = joined.find(s)
            if 0 <= pos <= len(text):
                full = joined[: pos + len(s)]
                return Completion(self.encode(full), full, "stop")
        return Completion(ids, text, "eos")

    def session(self, ids: list[int]) -> "OpenAISession":
        return OpenAISession(self, ids)

    # -- scoring -------------------------------------------------------------------------------
    @staticmethod
    def _top_alternatives(resp: dict[str, Any]) -> list[dict[str, float]]:
        """Per generated token: {token text: logprob} of its top alternatives (legacy or chat format)."""
        lp = resp["choices"][0].get("logprobs") or {}
        if lp.get("top_logprobs"):
            return [dict(d or {}) for d in lp["top_logprobs"]]
        if lp.get("content"):  # llama.cpp server: [{"token", "logprob", "top_logprobs": [{token, logprob}]}]
            return [{t["token"]: t["logprob"] for t in item.get("top_logprobs") or []} for item in lp["content"]]
        return []

    def _score_prompt(self, ids: list[int], options: list[list[int]]) -> list[float]:
        bodies = [{**self._prompt_body(ids + o), "max_tokens": 1, "temperature": 0, "echo": True, "logprobs": 1}
                  for o in options]
        totals = []
        context_chars = len(self.decode(ids))
        for option, resp in zip(options, self._complete_many(bodies)):
            lp = resp["choices"][0]["logprobs"]
            values = lp["token_logprobs"]
            if self.prompt_mode == "tokens":
                n = len(ids) + len(option)
                chosen = values[n - len(option): n]
            else:  # the server tokenized the text itself: the option's tokens start after the context
                offsets = lp["text_offset"]
                end = context_chars + len(self.decode(option))
                chosen = [v for v, off in zip(values, offsets) if context_chars <= off < end]
            if not chosen or any(v is None for v in chosen):
                raise ScoringUnavailable(f"{self.base_url}: no prompt log-probabilities for the option tokens")
            totals.append(float(sum(chosen)))
        return totals

    def _score_topk(self, ids: list[int], options: list[list[int]]) -> list[float]:
        """Walk each option token by token through the next-token top-k.

        Exact while every option token is among the top k; a token outside it is given the
        k-th log-probability (an upper bound) and the walk stops there."""
        prefixes = sorted({tuple(o[:i]) for o in options for i in range(len(o))}, key=len)
        bodies = [{**self._prompt_body(ids + list(p)), "max_tokens": 1, "temperature": 0, "logprobs": self.topk}
                  for p in prefixes]
        tops = {}
        for p, resp in zip(prefixes, self._complete_many(bodies)):
            alts = self._top_alternatives(resp)
            tops[p] = alts[0] if alts else {}
        totals = []
        for option in options:
            total = 0.0
            for i, tok in enumerate(option):
                alts = tops[tuple(option[:i])]
                if not alts:
                    raise ScoringUnavailable(f"{self.base_url}: the server returned no top log-probabilities")
                piece = self.decode([tok])
                if piece in alts:
                    total += float(alts[piece])
                else:
                    total += min(float(v) for v in alts.values())
                    break
            totals.append(total)
        return totals


class OpenAISession:
    """A token sequence kept here; every step is a request over the whole sequence."""

    def __init__(self, backend: OpenAIBackend, ids: list[int]):
        self.backend = backend
        self.ids = list(ids)

    def extend(self, ids: list[int]) -> None:
        self.ids.extend(ids)

    def truncate_to(self, n: int) -> None:
        del self.ids[n:]

    def greedy(self, max_new_tokens: int, stop: list[str]) -> Completion:
        b = self.backend
        check_fits(len(self.ids), max_new_tokens, b.context_length, "sequence")
        resp = b._complete(b._greedy_body(self.ids, max_new_tokens, stop))
        completion = b._finish(self.ids, resp, max_new_tokens, stop)
        self.ids.extend(completion.token_ids)
        return completion

    def score(self, options: list[list[int]]) -> list[float]:
        """Total log-probability of each option as a continuation of the current sequence."""
        b = self.backend
        check_fits(len(self.ids), max(len(o) for o in options) + 1, b.context_length, "sequence")
        mode = b.score_mode
        if mode == "prompt":
            return b._score_prompt(self.ids, options)
        if mode == "topk":
            return b._score_topk(self.ids, options)
        raise ScoringUnavailable(
            f"{b.base_url} ({b.model}) returns no log-probabilities, so the scored confidence cannot be "
            "computed; use the sampled confidence (--source sampled) or a server with logprobs"
        )
