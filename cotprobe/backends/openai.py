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

from . import TokenizerOps, Completion, check_fits, cut_at_stop

PROMPT_MODES = ("tokens", "text")
SCORE_MODES = ("prompt", "topk", "none")
TOPK_TRIES = (100, 20, 5)  # alternatives asked for in "topk" scoring, most first


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


class OpenAIBackend(TokenizerOps):
    """A model served over HTTP, with its tokenizer here.

    base_url: the server root (".../v1" is accepted too). model: the served model id (None: the
    first that /v1/models lists). tokenizer: a tokenizer object or a folder/hub id to load it from.
    concurrency: requests in flight at once. timeout: seconds per request. retries: further tries
    after a connection error, 429 or 5xx, with exponential backoff from `backoff` seconds.
    cache_dir: where the request cache lives (None: no cache). prompt_mode / score_mode: force a
    mode instead of probing the server. topk: the most alternatives asked for in "topk" scoring
    (fewer if the server refuses that many).
    """

    def __init__(self, base_url: str, model: str | None, tokenizer: Any, concurrency: int = 8,
                 timeout: float = 120, retries: int = 5, cache_dir: str | Path | None = None, *,
                 name: str | None = None, context_length: int | None = None, api_key: str | None = None,
                 prompt_mode: str | None = None, score_mode: str | None = None, topk: int = 100,
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
        self.topk_misses = 0  # option tokens outside the top k ("topk" scoring: bounded, not exact)
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
        self._extra_topk = False  # llama-server wants "n_probs" beside "logprobs"
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
        try:  # llama.cpp's llama-server tells its per-slot context on /props
            props = self._request("GET", "/props", retries=0)
            n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx")
            if isinstance(n_ctx, int) and n_ctx > 0:
                return n_ctx, "server (/props n_ctx)"
        except (ServerError, ValueError, AttributeError):
            pass
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
        """A probing request (cached like any other): None if the server answers it with an error."""
        body = {"model": self.model, **body}
        path = "/v1/completions"
        key = RequestCache.key(path, body)
        hit = self.cache.get(key) if self.cache is not None else None
        if hit is not None:
            self._count("cache_hits")
            return hit
        try:
            response = self._request("POST", path, body, retries=0)
        except ServerError as exc:
            if exc.status is None:  # not an answer: the server is gone
                raise
            return None  # the feature is missing
        if self.cache is not None:
            self.cache.put(key, path, body, response)
        return response

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
        """"prompt" if echoed prompt log-probabilities are offered and line up with the next-token
        ones (llama-cpp-python's echo is off by one position: not used), else "topk", else "none"."""
        ids = self.encode("The capital of France is")
        base = {**self._prompt_body(ids), "max_tokens": 1, "temperature": 0, "logprobs": 5}
        nxt = self._try(base)
        top = self._top_alternatives(nxt)[0] if self._top_alternatives(nxt) else {}
        if not top:
            nxt = self._try({**base, "n_probs": 5})  # llama.cpp's llama-server spells it n_probs
            top = self._top_alternatives(nxt)[0] if self._top_alternatives(nxt) else {}
            if top:
                self._extra_topk = True
        if not top:
            return "none"
        # One next token whose log-probability we know, by id (or by text that is one token here) ...
        known = [(k if isinstance(k, int) else self.encode(k)[0], v) for k, v in top.items()
                 if isinstance(k, int) or len(self.encode(k)) == 1]
        if known:
            token, expected = max(known, key=lambda kv: kv[1])
            seq = ids + [token]
            echo = self._try({**self._prompt_body(seq), "max_tokens": 1, "temperature": 0, "echo": True,
                              "logprobs": 1})
            # ... must get the same log-probability as the last token of an echoed prompt.
            try:
                values = echo["choices"][0]["logprobs"]["token_logprobs"]
                if abs(values[len(seq) - 1] - expected) < 0.05 + 0.01 * abs(expected):
                    return "prompt"
            except (KeyError, IndexError, TypeError):
                pass
        for k in sorted({self.topk, *(k for k in TOPK_TRIES if k < self.topk)}, reverse=True):
            extra = {"n_probs": k} if self._extra_topk else {}
            resp = self._try({**self._prompt_body(ids), "max_tokens": 1, "temperature": 0, "logprobs": k, **extra})
            if resp is not None and self._top_alternatives(resp):
                self.topk = k  # the most alternatives the server hands out (vLLM: --max-logprobs, 20)
                break
        return "topk"

    def describe(self) -> dict[str, Any]:
        """What a run manifest should record about the server."""
        return {"backend": "openai", "base_url": self.base_url, "model": self.model,
                "prompt_mode": self.prompt_mode, "score_mode": self.score_mode,
                "context_length": self.context_length, "context_source": self.context_source,
                "tokenizer": getattr(self.tokenizer, "name_or_path", "")}

    # -- the Backend interface ---------------------------------------------------------------
    def _prompt_body(self, ids: list[int]) -> dict[str, Any]:
        return {"prompt": list(ids) if self.prompt_mode == "tokens" else self.decode(ids)}

    def _greedy_body(self, ids: list[int], max_new_tokens: int, stop: list[str],
                     min_tokens: int = 0) -> dict[str, Any]:
        # llama.cpp's servers apply a repetition penalty unless told not to (llama-cpp-python: 1.1 by
        # default), which makes temperature 0 no longer greedy; vLLM and SGLang ignore the field.
        body = {**self._prompt_body(ids), "max_tokens": max_new_tokens, "temperature": 0, "repeat_penalty": 1.0}
        if min_tokens:  # vLLM, SGLang and llama-cpp-python's server: no end-of-sequence before this many
            body["min_tokens"] = min_tokens
        stops = [s for s in stop if s]
        if stops:
            body["stop"] = stops
        return body

    def generate(self, prompts: list[list[int]], max_new_tokens: int, stop: list[str]) -> list[Completion]:
        """Greedy completions of a batch of token-id prompts, sent concurrently, in order."""
        for ids in prompts:
            check_fits(len(ids), max_new_tokens, self.context_length)
        return self._greedy_many(prompts, max_new_tokens, stop)

    def _greedy_one(self, ids: list[int], max_new_tokens: int, stop: list[str],
                    nonblank: bool = False) -> Completion:
        if nonblank:
            return self._greedy_nonblank(ids, max_new_tokens, stop)
        resp = self._complete(self._greedy_body(ids, max_new_tokens, stop))
        return self._finish(ids, resp, max_new_tokens, stop)

    def _greedy_nonblank(self, ids: list[int], max_new_tokens: int, stop: list[str]) -> Completion:
        """As in the local backend: while the text is blank, neither end-of-sequence nor a stop
        string ends it. One request without stop strings (min_tokens holds back an immediate
        end-of-sequence); the stop is looked for here, after the first non-blank character."""
        stops = [s for s in stop if s]
        done = self._finish(ids, self._complete(self._greedy_body(ids, max_new_tokens, [], 1)), max_new_tokens, [])
        text, stopped = cut_at_stop(done.text, stops, nonblank=True)
        if stopped:
            return Completion(self.encode(text), text, "stop")
        if done.text.strip() or done.finish == "length":
            return done
        # Blank text, then end-of-sequence (rare): go on one token at a time until it is not blank.
        head, text = list(done.token_ids), done.text
        while not text.strip() and len(head) < max_new_tokens:
            one = self._finish(ids + head, self._complete(self._greedy_body(ids + head, 1, [], 1)), 1, [])
            if not one.token_ids:  # a server that ignores min_tokens
                return Completion(head, text, "eos")
            head += one.token_ids
            text += one.text
        if len(head) >= max_new_tokens:
            return Completion(head, text, "length")
        tail = self._greedy_one(ids + head, max_new_tokens - len(head), stop)
        return Completion(head + tail.token_ids, text + tail.text, tail.finish)

    def _greedy_many(self, rows: list[list[int]], max_new_tokens: int, stop: list[str],
                     nonblank: bool = False) -> list[Completion]:
        if len(rows) == 1:
            return [self._greedy_one(rows[0], max_new_tokens, stop, nonblank)]
        return list(self._pool.map(lambda ids: self._greedy_one(ids, max_new_tokens, stop, nonblank), rows))

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

    def fork(self, ids: list[int], lengths: list[int]) -> "OpenAIRows":
        """Rows for the prefixes ids[:n], n in lengths (see `backends.fork`); their requests go out
        together, so a server that batches runs them at once."""
        return OpenAIRows(self, [ids[:n] for n in lengths])

    def _score_rows(self, rows: list[list[int]], options: list[list[int]]) -> list[list[float]]:
        """totals[row][option]: each option's log-probability after each row."""
        for ids in rows:
            check_fits(len(ids), max(len(o) for o in options) + 1, self.context_length, "sequence")
        mode = self.score_mode
        if mode == "prompt":
            return self._score_prompt(rows, options)
        if mode == "topk":
            return self._score_topk(rows, options)
        raise ScoringUnavailable(
            f"{self.base_url} ({self.model}) returns no log-probabilities, so the scored confidence cannot be "
            "computed; use the sampled confidence (--source sampled) or a server with logprobs"
        )

    # -- scoring -------------------------------------------------------------------------------
    @staticmethod
    def _top_alternatives(resp: dict[str, Any] | None) -> list[dict[str, float]]:
        """Per generated token: {token text: logprob} of its top alternatives (legacy or chat format)."""
        try:
            lp = resp["choices"][0].get("logprobs") or {}
        except (KeyError, IndexError, TypeError):
            return []
        if lp.get("top_logprobs"):
            return [dict(d or {}) for d in lp["top_logprobs"]]
        if lp.get("content"):  # llama-server: [{"id", "token", "logprob", "top_logprobs": [{id, token, logprob}]}]
            out = []
            for item in lp["content"]:
                alts: dict = {}
                for t in item.get("top_logprobs") or []:
                    alts[t["token"]] = t["logprob"]
                    if isinstance(t.get("id"), int):
                        alts[t["id"]] = t["logprob"]  # token ids: exact, where the server gives them
                out.append(alts)
            return out
        return []

    def _score_prompt(self, rows: list[list[int]], options: list[list[int]]) -> list[list[float]]:
        """Echo each row + option with prompt log-probabilities; sum the option's tokens."""
        pairs = [(ids, o) for ids in rows for o in options]
        bodies = [{**self._prompt_body(ids + o), "max_tokens": 1, "temperature": 0, "echo": True, "logprobs": 1}
                  for ids, o in pairs]
        flat = []
        for (ids, option), resp in zip(pairs, self._complete_many(bodies)):
            lp = resp["choices"][0]["logprobs"]
            values = lp["token_logprobs"]
            if self.prompt_mode == "tokens":
                n = len(ids) + len(option)
                chosen = values[n - len(option): n]
            else:  # the server tokenized the text itself: the option's tokens start after the context
                start = len(self.decode(ids))
                end = start + len(self.decode(option))
                chosen = [v for v, off in zip(values, lp["text_offset"]) if start <= off < end]
            if not chosen or any(v is None for v in chosen):
                raise ScoringUnavailable(f"{self.base_url}: no prompt log-probabilities for the option tokens")
            flat.append(float(sum(chosen)))
        return [flat[r * len(options):(r + 1) * len(options)] for r in range(len(rows))]

    def _score_topk(self, rows: list[list[int]], options: list[list[int]]) -> list[list[float]]:
        """Walk the options token by token through the next-token top-k, one level at a time
        (all rows together).

        Exact while every option token is among the top k; a token outside it is given the
        k-th log-probability (an upper bound) and that option's walk stops there."""
        extra = {"n_probs": self.topk} if self._extra_topk else {}
        totals = [[0.0] * len(options) for _ in rows]
        alive = [(r, k) for r in range(len(rows)) for k in range(len(options))]
        for depth in range(max(len(o) for o in options)):
            alive = [(r, k) for r, k in alive if depth < len(options[k])]
            prefixes = sorted({(r, tuple(options[k][:depth])) for r, k in alive})
            bodies = [{**self._prompt_body(rows[r] + list(p)), "max_tokens": 1, "temperature": 0,
                       "logprobs": self.topk, **extra} for r, p in prefixes]
            tops = {}
            for key, resp in zip(prefixes, self._complete_many(bodies)):
                alts = self._top_alternatives(resp)
                if not alts or not alts[0]:
                    raise ScoringUnavailable(f"{self.base_url}: the server returned no top log-probabilities")
                tops[key] = alts[0]
            still = []
            for r, k in alive:
                alts, tok = tops[(r, tuple(options[k][:depth]))], options[k][depth]
                if tok not in alts and not any(isinstance(key, int) for key in alts):
                    tok = self.decode([tok])  # servers that name tokens by their text only
                if tok in alts:
                    totals[r][k] += float(alts[tok])
                    still.append((r, k))
                else:
                    totals[r][k] += min(float(v) for v in alts.values())
                    self._count("topk_misses")
            alive = still
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

    def greedy(self, max_new_tokens: int, stop: list[str], nonblank: bool = False) -> Completion:
        check_fits(len(self.ids), max_new_tokens, self.backend.context_length, "sequence")
        completion = self.backend._greedy_one(self.ids, max_new_tokens, stop, nonblank)
        self.ids.extend(completion.token_ids)
        return completion

    def score(self, options: list[list[int]]) -> list[float]:
        """Total log-probability of each option as a continuation of the current sequence."""
        return self.backend._score_rows([self.ids], options)[0]


class OpenAIRows:
    """Several sequences (prefixes of one trace) whose requests are sent together."""

    def __init__(self, backend: OpenAIBackend, rows: list[list[int]]):
        self.backend = backend
        self.ids = [list(r) for r in rows]

    def extend(self, rows: list[list[int]]) -> None:
        for ids, new in zip(self.ids, rows, strict=True):
            ids.extend(new)

    def greedy(self, max_new_tokens: int, stop: list[str], nonblank: bool = False) -> list[Completion]:
        for ids in self.ids:
            check_fits(len(ids), max_new_tokens, self.backend.context_length, "sequence")
        completions = self.backend._greedy_many(self.ids, max_new_tokens, stop, nonblank)
        for ids, completion in zip(self.ids, completions):
            ids.extend(completion.token_ids)
        return completions

    def score(self, options: list[list[int]]) -> list[list[float]]:
        return self.backend._score_rows(self.ids, options)
