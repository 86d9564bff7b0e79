"""A backend that drives OpenAI-compatible completions servers (vLLM, SGLang, llama.cpp).

The chat template is applied here, with the model's own tokenizer loaded locally, and raw
prompts go to `/v1/completions`: token-id lists where the server accepts them (so CoT cuts stay
exact), else the decoded text (`prompt_mode`). Generated token ids are the server's own where it
returns them (vLLM `return_token_ids` or `return_tokens_as_token_ids`, llama.cpp `tokens`), else
the text is encoded here (`ids_source`). Sessions keep their token list on the client.

Scoring (`score_mode` "topk", the default) asks only for next-token top-k log-probabilities, in
requests that extend a prompt the server has just seen (its prefix cache serves them): one greedy
request after "**Confidence**:" with top-k log-probabilities gives the written confidence and
the first label token of every label at once; labels that share a first token ("Almost ...",
"Highly ...") need one more request per shared token unless the greedy path already went there.
Each label is scored by its distinguishing prefix, the shortest start no other label shares.
"prompt" (echoed prompt log-probabilities over whole labels) is there on request only: vLLM
serves no prompt-log-prob request from its prefix cache.

Transport, fail-over over several servers and the compact request cache: `backends.http`.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from . import Completion, ScoringUnavailable, TokenizerOps, check_fits, cut_at_stop
from .http import RequestCache, ServerError, ServerPool, asked_k, compact

__all__ = ["OpenAIBackend", "ScoringUnavailable", "ServerError", "RequestCache", "distinguishing_prefixes"]

PROMPT_MODES = ("tokens", "text")
SCORE_MODES = ("topk", "prompt", "none")
TOPK_TRIES = (100, 20, 10, 5, 1)  # alternatives asked for, most first (vLLM's default --max-logprobs is 20)
# Ways servers return generated token ids, tried in this order at start-up.
ID_FIELDS = ({"return_token_ids": True}, {"return_tokens": True}, {"logprobs": 0, "return_tokens_as_token_ids": True})


def distinguishing_prefixes(options: list[list[int]]) -> list[list[int]]:
    """Each option's shortest prefix that is not a prefix of another option (whole option if none)."""
    out = []
    for i, o in enumerate(options):
        others = [p for j, p in enumerate(options) if j != i]
        n = next((n for n in range(1, len(o) + 1) if not any(p[:n] == o[:n] for p in others)), len(o))
        out.append(o[:n])
    return out


def _load_tokenizer(tokenizer: Any) -> Any:
    if isinstance(tokenizer, (str, Path)):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(tokenizer))
    return tokenizer


def split_urls(base_url: str | list[str]) -> list[str]:
    """Server roots from one address, a comma-separated list, a list, or @FILE (one per line)."""
    items = [base_url] if isinstance(base_url, str) else list(base_url)
    urls: list[str] = []
    for item in items:
        if item.startswith("@"):
            try:
                lines = Path(item[1:]).read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ValueError(f"--base-url {item}: cannot read the file ({exc.strerror})") from None
            urls += [u.strip() for line in lines for u in line.split("#")[0].split(",") if u.strip()]
        else:
            urls += [u.strip() for u in item.split(",") if u.strip()]
    if not urls:
        raise ValueError("--base-url: no server address given")
    for u in urls:
        if not u.startswith(("http://", "https://")):
            raise ValueError(f"--base-url {u!r}: not an http(s) address (e.g. http://localhost:8000/v1)")
    return [u.rstrip("/").removesuffix("/v1") for u in urls]


class OpenAIBackend(TokenizerOps):
    """A model served over HTTP by one or several servers, with its tokenizer here.

    base_url: a server root (".../v1" accepted), several (list or comma-separated) or @FILE.
    model: the served model id (None: the first that /v1/models lists). tokenizer: a tokenizer
    object or a folder/hub id. concurrency: requests in flight at once (None: 16 per server). timeout: seconds a
    request may take. retries: further tries after a connection error, timeout, 429 or 5xx.
    cache_dir: where the request cache lives (None: in memory only). prompt_mode / score_mode:
    force a mode instead of probing. topk: the most alternatives asked for (fewer if refused).
    label_tokens: length of the scoring request's greedy continuation (the forced confidence's
    token limit, so that request also answers the written confidence).
    """

    def __init__(self, base_url: str | list[str], model: str | None, tokenizer: Any, concurrency: int | None = None,
                 timeout: float = 1800, retries: int = 3, cache_dir: str | Path | None = None, *,
                 name: str | None = None, context_length: int | None = None, api_key: str | None = None,
                 prompt_mode: str | None = None, score_mode: str | None = None, topk: int = 100,
                 backoff: float = 0.5, label_tokens: int = 8):
        if prompt_mode is not None and prompt_mode not in PROMPT_MODES:
            raise ValueError(f"prompt_mode {prompt_mode!r}: use one of {', '.join(PROMPT_MODES)}")
        if score_mode is not None and score_mode not in SCORE_MODES:
            raise ValueError(f"score_mode {score_mode!r}: use one of {', '.join(SCORE_MODES)}")
        urls = split_urls(base_url)
        self.base_url = urls[0] if len(urls) == 1 else ",".join(urls)
        self.tokenizer = _load_tokenizer(tokenizer)
        self.concurrency = max(1, int(concurrency or 16 * len(urls)))
        self.timeout, self.retries, self.topk, self.label_tokens = timeout, retries, topk, label_tokens
        self.reuse_cache = True  # sessions cost nothing to cut; the server caches prefixes itself
        self.cache = RequestCache(cache_dir)
        self.cache_hits = 0
        self.topk_misses = 0  # label tokens outside the top k (scored by the k-th: an upper bound)
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.pool = ServerPool(urls, concurrency=self.concurrency, timeout=timeout, retries=retries,
                               backoff=backoff, api_key=key)
        self._threads = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="cotprobe-http")
        self._warned: set[str] = set()

        entry = self._check_servers(model)
        self.model = entry["id"]
        self.name = name or self.model
        self.context_length, self.context_source = self._context(entry, context_length)
        eos = self.tokenizer.eos_token_id
        self.eos_ids = {eos} if eos is not None else set()
        self.prompt_mode = prompt_mode or self._probe_prompt_mode()
        self._id_fields = self._probe_ids()
        self.ids_source = "server" if self._id_fields is not None else "re-encoded"
        self._score_mode = score_mode
        self._extra_topk = False  # llama-server wants "n_probs" beside "logprobs"

    # -- requests ------------------------------------------------------------------------------
    @property
    def requests_sent(self) -> int:
        """HTTP requests that reached a server and got an answer."""
        return self.pool.requests_sent

    def close(self) -> None:
        self._threads.shutdown(wait=False)
        self.pool.close()

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None,
                 retries: int | None = None, server: int | None = None) -> dict[str, Any]:
        return self.pool.request(method, path, body, retries, server)

    def _complete(self, body: dict[str, Any], probing: bool = False, keep_top: int | None = None) -> dict[str, Any] | None:
        """POST /v1/completions through the request cache; the compact answer (see http.compact).
        probing: a refused request gives None instead of an error. keep_top: top log-probabilities
        are kept for this many generated positions (None: all)."""
        body = {"model": self.model, **body}
        path, k = "/v1/completions", asked_k(body)
        key = RequestCache.key(path, body)
        hit = self.cache.get(key, k)
        if hit is not None:
            with self.pool._lock:
                self.cache_hits += 1
            return hit
        try:
            answer = compact(self._request("POST", path, body), bool(body.get("echo")))
            if keep_top is not None and "top" in answer:
                answer["top"] = answer["top"][:keep_top]
        except ServerError as exc:
            if probing and exc.status is not None:
                return None  # the feature is missing (a server that is gone still raises)
            raise
        except ValueError as exc:
            if probing:
                return None
            raise ServerError(f"POST {path} to {self.base_url}: malformed answer ({exc})") from None
        self.cache.put(key, k, answer)
        return answer

    def _map(self, fn: Callable[[Any], Any], items: list[Any], size: Callable[[Any], int]) -> list[Any]:
        """fn over items, up to `concurrency` at once, in order; the largest goes first, alone, so
        that the others (prefixes of one trace) find its prefix in the server's cache."""
        if len(items) <= 1:
            return [fn(x) for x in items]
        first = max(range(len(items)), key=lambda i: size(items[i]))
        head = fn(items[first])
        rest = list(self._threads.map(fn, items[:first] + items[first + 1:]))
        return rest[:first] + [head] + rest[first:]

    def _complete_many(self, bodies: list[dict[str, Any]], keep_top: int | None = None) -> list[dict[str, Any]]:
        return self._map(lambda b: self._complete(b, keep_top=keep_top), bodies, lambda b: len(b["prompt"]))

    def _say_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            print(f"cotprobe: {message}", file=sys.stderr)

    # -- what the servers offer ------------------------------------------------------------------
    def _check_servers(self, model: str | None) -> dict[str, Any]:
        """Every server must serve `model` (or exactly one model); its /v1/models entry."""
        entry, up = None, 0
        for index, srv in enumerate(self.pool.servers):
            try:
                info = self._request("GET", "/v1/models", retries=1, server=index).get("data") or []
            except ServerError as exc:
                if len(self.pool.servers) == 1 or exc.status is not None:
                    raise ServerError(f"cannot use the server at {srv.url}: {exc}") from None
                print(f"cotprobe: {srv.url} does not answer now; it gets requests once it does", file=sys.stderr)
                continue
            up += 1
            ids = [m.get("id") for m in info if isinstance(m, dict)]
            want = model
            if want is None:
                if not ids:
                    raise ServerError(f"{srv.url}/v1/models lists no model; pass the model id")
                want = model = ids[0]
            elif want not in ids:
                if len(ids) != 1:
                    raise ServerError(f"{srv.url} does not serve {want!r} (it serves: {', '.join(map(str, ids))})")
                print(f"cotprobe: {srv.url} serves one model, {ids[0]!r}; using it for {want!r}", file=sys.stderr)
                want = ids[0]
            found = next(m for m in info if isinstance(m, dict) and m.get("id") == want)
            if entry is not None and found["id"] != entry["id"]:
                raise ServerError(f"{srv.url} serves {found['id']!r}, another server {entry['id']!r}: one model per run")
            entry = entry or {**found, "_server": index}
        if entry is None:
            raise ServerError(f"none of the servers answers ({self.base_url})")
        return entry

    def _context(self, entry: dict[str, Any], given: int | None) -> tuple[int, str]:
        if given:
            return int(given), "argument"
        meta = entry.get("meta") or {}
        for where, key in [(entry, "max_model_len"), (entry, "context_length"), (entry, "context_window"),
                           (entry, "n_ctx"), (meta, "n_ctx")]:
            if isinstance(where.get(key), int) and where[key] > 0:
                return where[key], f"server ({key})"
        try:  # llama.cpp's llama-server tells its per-slot context on /props
            props = self._request("GET", "/props", retries=0, server=entry["_server"])
            n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx")
            if isinstance(n_ctx, int) and n_ctx > 0:
                return n_ctx, "server (/props n_ctx)"
        except (ServerError, ValueError, AttributeError):
            pass
        config_len = None
        try:
            from transformers import AutoConfig

            config_len = getattr(AutoConfig.from_pretrained(self.tokenizer.name_or_path), "max_position_embeddings", None)
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

    def _probe_prompt_mode(self) -> str:
        ok = self._complete({"prompt": self.encode("Hello"), "max_tokens": 1, "temperature": 0}, probing=True)
        return "tokens" if ok is not None else "text"

    def _probe_ids(self) -> dict[str, Any] | None:
        """The request fields that make the server return generated token ids (None: none do)."""
        prompt = self._prompt_body(self.encode("The capital of France is"))
        for fields in ID_FIELDS:
            got = self._complete({**prompt, "max_tokens": 2, "temperature": 0, **fields}, probing=True)
            if got is not None and got.get("ids") and self.decode(self._strip_eos(got["ids"])) == got["text"]:
                return fields
        return None

    @property
    def score_mode(self) -> str:
        """How `score` gets log-probabilities; probed with a few tiny requests on first use."""
        if self._score_mode is None:
            self._score_mode = self._probe_topk()
        elif self._score_mode == "topk" and not hasattr(self, "_topk_probed"):
            self._topk_probed = True
            if self._probe_topk() == "none":
                self._score_mode = "none"
        return self._score_mode

    def _probe_topk(self) -> str:
        """"topk" with the most alternatives (up to self.topk) the server hands out, else "none"."""
        self._topk_probed = True
        ids = self.encode("The capital of France is")
        for k in sorted({self.topk, *(k for k in TOPK_TRIES if k < self.topk)}, reverse=True):
            for extra in ({}, {"n_probs": k}):  # llama.cpp's llama-server spells it n_probs
                got = self._complete({**self._prompt_body(ids), "max_tokens": 1, "temperature": 0, "logprobs": k,
                                      **extra}, probing=True)
                if got is not None and got.get("top") and got["top"][0]:
                    self.topk, self._extra_topk = k, bool(extra)
                    return "topk"
        return "none"

    def describe(self) -> dict[str, Any]:
        """What a run manifest should record about the servers."""
        return {"backend": "openai", "base_url": self.base_url, "model": self.model,
                "prompt_mode": self.prompt_mode, "score_mode": self.score_mode, "topk": self.topk,
                "ids_source": self.ids_source, "context_length": self.context_length,
                "context_source": self.context_source, "tokenizer": getattr(self.tokenizer, "name_or_path", "")}

    # -- greedy decoding -------------------------------------------------------------------------
    def _prompt_body(self, ids: list[int]) -> dict[str, Any]:
        return {"prompt": list(ids) if self.prompt_mode == "tokens" else self.decode(ids)}

    def _greedy_body(self, ids: list[int], max_new_tokens: int, stop: list[str], min_tokens: int = 0) -> dict[str, Any]:
        # llama.cpp's servers apply a repetition penalty unless told not to (llama-cpp-python: 1.1 by
        # default), which makes temperature 0 no longer greedy; vLLM and SGLang ignore the field.
        body = {**self._prompt_body(ids), "max_tokens": max_new_tokens, "temperature": 0, "repeat_penalty": 1.0}
        if min_tokens:  # vLLM, SGLang and llama-cpp-python's server: no end-of-sequence before this many
            body["min_tokens"] = min_tokens
        stops = [s for s in stop if s]
        if stops:
            body["stop"] = stops
        if self._id_fields and "logprobs" not in self._id_fields:
            body.update(self._id_fields)
        return body

    def generate(self, prompts: list[list[int]], max_new_tokens: int, stop: list[str]) -> list[Completion]:
        """Greedy completions of a batch of token-id prompts, sent concurrently, in order."""
        for ids in prompts:
            check_fits(len(ids), max_new_tokens, self.context_length)
        return self._greedy_many(prompts, max_new_tokens, stop)

    def _greedy_one(self, ids: list[int], max_new_tokens: int, stop: list[str], nonblank: bool = False) -> Completion:
        if nonblank:
            return self._greedy_nonblank(ids, max_new_tokens, stop)
        body = self._greedy_body(ids, max_new_tokens, stop)
        if self._id_fields and "logprobs" in self._id_fields:
            body.update(self._id_fields)  # the ids come with the per-token log-probabilities
        return self._finish(ids, self._complete(body), max_new_tokens, stop)

    def _greedy_nonblank(self, ids: list[int], max_new_tokens: int, stop: list[str]) -> Completion:
        """As in the local backend: while the text is blank, neither end-of-sequence nor a stop
        string ends it. One request without stop strings (min_tokens holds back an immediate
        end-of-sequence); the stop is looked for here, after the first non-blank character."""
        stops = [s for s in stop if s]
        done = self._finish(ids, self._complete(self._greedy_body(ids, max_new_tokens, [], 1)), max_new_tokens, [])
        text, stopped = cut_at_stop(done.text, stops, nonblank=True)
        if stopped:
            return Completion(self._ids_for(done.token_ids, text), text, "stop")
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
        return self._map(lambda ids: self._greedy_one(ids, max_new_tokens, stop, nonblank), rows, len)

    def _strip_eos(self, ids: list[int]) -> list[int]:
        while ids and ids[-1] in self.eos_ids:
            ids = ids[:-1]
        return ids

    def _ids_for(self, server_ids: list[int] | None, text: str) -> list[int]:
        """The token ids of `text`: the server's generated ids through it where they spell it
        exactly, else the text encoded here."""
        if server_ids:
            ids = self._strip_eos(list(server_ids))
            lo, hi = 0, len(ids)  # the fewest ids whose text is at least as long as `text`
            while lo < hi:
                mid = (lo + hi) // 2
                if len(self.decode(ids[:mid])) >= len(text):
                    hi = mid
                else:
                    lo = mid + 1
            if self.decode(ids[:lo]) == text:
                return ids[:lo]
        return self.encode(text)

    def _finish(self, prompt: list[int], got: dict[str, Any], max_new_tokens: int, stop: list[str]) -> Completion:
        """A Completion as the HF backend makes it: on a stop string, the text runs through it."""
        text, server_ids = got["text"], got.get("ids")
        stops = [s for s in stop if s]
        cut, stopped = cut_at_stop(text, stops)  # servers that keep the stop string in the text
        if stopped:
            return Completion(self._ids_for(server_ids, cut), cut, "stop")
        if got.get("finish") == "length":
            return Completion(self._ids_for(server_ids, text), text, "length")
        if not stops:
            return Completion(self._ids_for(server_ids, text), text, "eos")
        # finish_reason "stop" is a stop string (cut off by the server) or end-of-sequence.
        if "stop" in got:  # vLLM (stop_reason), SGLang (matched_stop) say which
            matched = got["stop"]
            if isinstance(matched, str) and matched in stops:
                return Completion(self._ids_for(server_ids, text + matched), text + matched, "stop")
            if matched is None or matched in self.eos_ids:
                return Completion(self._ids_for(server_ids, text), text, "eos")
        # Others do not: ask greedily for what comes next (a few tokens, prefix-cached).
        ids = self._ids_for(server_ids, text)
        room = max(len(self.encode(s)) for s in stops) + 1
        if len(prompt) + len(ids) + room > self.context_length:
            return Completion(ids, text, "eos")
        joined = text + self._complete(self._greedy_body(prompt + ids, room, []))["text"]
        for s in stops:  # the server cut the text where the stop string began
            pos = joined.find(s)
            if 0 <= pos <= len(text):
                full = joined[: pos + len(s)]
                return Completion(self.encode(full), full, "stop")
        return Completion(ids, text, "eos")

    def session(self, ids: list[int]) -> "OpenAIRows":
        return OpenAIRows(self, [ids], single=True)

    def fork(self, ids: list[int], lengths: list[int]) -> "OpenAIRows":
        """Rows for the prefixes ids[:n], n in lengths (see `backends.fork`); their requests go out
        together (the longest first), so a server that batches runs them at once."""
        return OpenAIRows(self, [ids[:n] for n in lengths])

    # -- scoring -----------------------------------------------------------------------------------
    def _score_rows(self, rows: list[list[int]], options: list[list[int]]) -> list[list[float]]:
        """totals[row][option]: each option's log-probability after each row (unnormalised)."""
        for ids in rows:
            check_fits(len(ids), max(max(len(o) for o in options) + 1, self.label_tokens), self.context_length,
                       "sequence")
        mode = self.score_mode
        if mode == "topk":
            return self._score_topk(rows, options)
        if mode == "prompt":
            return self._score_prompt(rows, options)
        raise ScoringUnavailable(
            f"{self.base_url} ({self.model}) returns no log-probabilities: scored confidence is unavailable "
            "and only the sampled (written) confidence is recorded (use --source sampled)")

    def _topk_body(self, ids: list[int], max_tokens: int, min_tokens: int = 0) -> dict[str, Any]:
        extra = {"n_probs": self.topk} if self._extra_topk else {}
        fields = {"return_tokens_as_token_ids": True} if self._id_fields and "logprobs" in self._id_fields else {}
        return {**self._greedy_body(ids, max_tokens, [], min_tokens), "logprobs": self.topk, **extra, **fields}

    def _score_topk(self, rows: list[list[int]], options: list[list[int]]) -> list[list[float]]:
        """Distinguishing prefixes through next-token top-k: the first token from the greedy
        confidence request (`label_tokens` long, so the written confidence needs no request of
        its own), deeper tokens from its greedy path where it went there, else from one-token
        requests that extend the row. A token outside the top k gets the k-th log-probability (an
        upper bound); `topk_misses` counts them."""
        prefixes = distinguishing_prefixes(options)
        tops: dict[tuple[int, tuple[int, ...]], dict] = {}
        depth = max(len(p) for p in prefixes)  # the greedy path's top-k is of use this deep
        first = self._complete_many([self._topk_body(ids, self.label_tokens, 1) for ids in rows], keep_top=depth)
        for r, got in enumerate(first):
            per = got.get("top") or []
            if not per or not per[0]:
                raise ScoringUnavailable(f"{self.base_url}: the server returned no top log-probabilities")
            path = got.get("ids") or []
            for depth, alts in enumerate(per[: len(path) + 1] if path else per[:1]):
                tops.setdefault((r, tuple(path[:depth])), dict(map(tuple, alts)))
        wanted = sorted({(r, tuple(p[:d])) for r in range(len(rows)) for p in prefixes for d in range(1, len(p))}
                        - tops.keys())
        answers = self._complete_many([self._topk_body(rows[r] + list(p), 1) for r, p in wanted])
        for key, got in zip(wanted, answers):
            if not got.get("top") or not got["top"][0]:
                raise ScoringUnavailable(f"{self.base_url}: the server returned no top log-probabilities")
            tops[key] = dict(map(tuple, got["top"][0]))
        totals = []
        for r in range(len(rows)):
            row = []
            for p in prefixes:
                total = 0.0
                for d, tok in enumerate(p):
                    alts = tops[(r, tuple(p[:d]))]
                    if tok not in alts and not any(isinstance(t, int) for t in alts):
                        tok = self.decode([tok])  # servers that name tokens by their text only
                    if tok in alts:
                        total += float(alts[tok])
                    else:
                        total += min(float(v) for v in alts.values())
                        with self.pool._lock:
                            self.topk_misses += 1
                        break
                row.append(total)
            totals.append(row)
        return totals

    def _score_prompt(self, rows: list[list[int]], options: list[list[int]]) -> list[list[float]]:
        """Echo each row + option with prompt log-probabilities; sum the option's tokens. Every
        request recomputes its whole prompt on vLLM (no prefix cache for prompt log-probs)."""
        pairs = [(ids, o) for ids in rows for o in options]
        bodies = [{**self._prompt_body(ids + o), "max_tokens": 1, "temperature": 0, "echo": True, "logprobs": 1}
                  for ids, o in pairs]
        flat = []
        for (ids, option), got in zip(pairs, self._complete_many(bodies)):
            values, shift = got.get("lp") or [], got.get("n_lp", 0) - len(got.get("lp") or [])
            if self.prompt_mode == "tokens":
                n = len(ids) + len(option) - shift
                chosen = values[n - len(option): n] if n - len(option) >= 0 else []
            else:  # the server tokenized the text itself: the option's tokens start after the context
                start = len(self.decode(ids))
                end = start + len(self.decode(option))
                chosen = [v for v, off in zip(values, got.get("off") or []) if start <= off < end]
            if not chosen or any(v is None for v in chosen):
                raise ScoringUnavailable(f"{self.base_url}: no prompt log-probabilities for the option tokens")
            flat.append(float(sum(chosen)))
        return [flat[r * len(options):(r + 1) * len(options)] for r in range(len(rows))]


class OpenAIRows:
    """Sequences (prefixes of one trace) kept here, whose requests are sent together. single: a
    session (one sequence; greedy and score return one result, not a list)."""

    def __init__(self, backend: OpenAIBackend, rows: list[list[int]], single: bool = False):
        self.backend, self.single = backend, single
        self.rows = [list(r) for r in rows]

    @property
    def ids(self):
        return self.rows[0] if self.single else self.rows

    def extend(self, rows) -> None:
        for ids, new in zip(self.rows, [rows] if self.single else rows, strict=True):
            ids.extend(new)

    def truncate_to(self, n: int) -> None:
        for ids in self.rows:
            del ids[n:]

    def greedy(self, max_new_tokens: int, stop: list[str], nonblank: bool = False):
        for ids in self.rows:
            check_fits(len(ids), max_new_tokens, self.backend.context_length, "sequence")
        completions = self.backend._greedy_many(self.rows, max_new_tokens, stop, nonblank)
        for ids, completion in zip(self.rows, completions):
            ids.extend(completion.token_ids)
        return completions[0] if self.single else completions

    def score(self, options: list[list[int]]):
        """Total log-probability of each option as a continuation of each sequence."""
        totals = self.backend._score_rows(self.rows, options)
        return totals[0] if self.single else totals
