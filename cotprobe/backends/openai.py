"""A backend that drives OpenAI-compatible completions servers (vLLM, SGLang, llama.cpp).

The chat template is applied here, with the model's own tokenizer loaded locally, and raw
prompts go to `/v1/completions`: token-id lists where the server accepts them (so CoT cuts stay
exact), else the decoded text (`prompt_mode`). Generated token ids are the server's own where it
returns them (vLLM `return_token_ids` or `return_tokens_as_token_ids`, llama.cpp `tokens`), else
the text is encoded here (`ids_source`). Sessions keep their token list on the client.

This module is the dialect: greedy requests, and where a completion ends (stop strings the server
cut off or kept, end-of-sequence, forced fields that must not end blank). The rest lies beside it:
`client` (transport over `http`, and the request cache), `dialect` (request bodies),
`capabilities` (what the servers offer, probed at start-up) and `scoring` (label log-probabilities).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import (
    Completion,
    ScoringUnavailable,
    ServerError,
    TokenizerOps,
    check_fits,
    cut_at_stop,
)
from .capabilities import (
    find_context_length,
    probe_id_fields,
    probe_prompt_mode,
    probe_topk,
    served_model,
)
from .client import CompletionsClient
from .dialect import PROMPT_MODES, Dialect
from .http import split_urls
from .scoring import SCORE_MODES, score_prompt, score_topk

__all__ = ["OpenAIBackend", "OpenAIRows", "OpenAISession", "ScoringUnavailable", "ServerError",
           "split_urls"]


def _load_tokenizer(tokenizer: Any) -> Any:
    if isinstance(tokenizer, (str, Path)):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(tokenizer))
    return tokenizer


def _delegated(part: str, name: str, doc: str) -> property:
    """A read-only attribute that is the same-meaning attribute of one of the backend's parts."""
    return property(lambda self: getattr(getattr(self, part), name), doc=doc)


class OpenAIBackend(TokenizerOps):
    """A model served over HTTP by one or several servers, with its tokenizer here.

    base_url: a server root (".../v1" accepted), several (list or comma-separated) or @FILE.
    model: the served model id (None: the first that /v1/models lists). tokenizer: a tokenizer
    object or a folder/hub id. concurrency: requests in flight at once (None: 16 per server). timeout: seconds a
    request may take. retries: further tries after a connection error, timeout, 429 or 5xx.
    cache_dir: where the request cache lives (None: in memory only). prompt_mode / score_mode:
    force a mode instead of probing. topk: the most alternatives asked for (fewer if refused).
    label_tokens: length of the scoring request's greedy continuation (the forced confidence's
    token limit, so that request also answers the written confidence). watch: given a server
    root, why that server is gone (`LocalServer.death` for a server started here): a request that
    cannot reach it then stops at once with that line, instead of retrying into "connection refused".
    """

    # the rows of a fork go to the servers as requests in flight together (`protocols.ForkingBackend`)
    shares_rows = True

    @property
    def in_flight(self) -> int:
        """Requests in flight at once (`--concurrency`), from any number of threads
        (`protocols.ConcurrentBackend`): the cut sweep keeps several traces in flight to fill them."""
        return self.client.concurrency

    def __init__(self, base_url: str | list[str], model: str | None, tokenizer: Any, concurrency: int | None = None,
                 timeout: float = 1800, retries: int = 3, cache_dir: str | Path | None = None, *,
                 name: str | None = None, context_length: int | None = None, api_key: str | None = None,
                 prompt_mode: str | None = None, score_mode: str | None = None, topk: int = 100,
                 backoff: float = 0.5, label_tokens: int = 8, watch: Callable[[str], str | None] | None = None):
        if prompt_mode is not None and prompt_mode not in PROMPT_MODES:
            raise ValueError(f"prompt_mode {prompt_mode!r}: use one of {', '.join(PROMPT_MODES)}")
        if score_mode is not None and score_mode not in SCORE_MODES:
            raise ValueError(f"score_mode {score_mode!r}: use one of {', '.join(SCORE_MODES)}")
        urls = split_urls(base_url)
        self.tokenizer = _load_tokenizer(tokenizer)
        self.label_tokens = label_tokens
        self.topk_misses = 0  # label sequences a top-k did not reach (left unscored: the row is inexact)
        self._misses_lock = threading.Lock()
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.client = CompletionsClient(urls, concurrency=max(1, int(concurrency or 16 * len(urls))),
                                        timeout=timeout, retries=retries, backoff=backoff, api_key=key,
                                        cache_dir=cache_dir, watch=watch)
        entry = served_model(self.client, model)
        self.model = self.client.model = entry["id"]
        self.name = name or self.model
        self.context_length, self.context_source = find_context_length(
            self.client, entry, context_length, self.tokenizer)
        eos = self.tokenizer.eos_token_id
        self.eos_ids = {eos} if eos is not None else set()
        self.dialect = Dialect(self.decode, prompt_mode or probe_prompt_mode(self.client, self.encode),
                               topk=topk)
        self.dialect.id_fields = probe_id_fields(
            self.client, self.dialect, self.encode, lambda ids, text: self.decode(self._strip_eos(ids)) == text)
        self.ids_source = "server" if self.dialect.id_fields is not None else "re-encoded"
        self._score_mode = score_mode
        self._topk_probed = False
        self._probe_lock = threading.Lock()  # traces in flight on several threads score at once

    # -- what the client and the servers offer --------------------------------------------------
    base_url = _delegated("client", "where", "The server root, or the roots joined by commas.")
    cache = _delegated("client", "cache", "The request cache (`cache.RequestCache`).")
    cache_hits = _delegated("client", "cache_hits", "Requests answered from the request cache.")
    requests_sent = _delegated("client", "requests_sent", "HTTP requests that reached a server and got an answer.")
    prompt_mode = _delegated("dialect", "prompt_mode", '"tokens" (token-id prompts) or "text".')
    topk = _delegated("dialect", "topk", "Top log-probabilities asked for in scoring requests.")

    def close(self) -> None:
        self.client.close()

    @property
    def score_mode(self) -> str:
        """How `score` gets log-probabilities; probed with a few tiny requests on first use."""
        with self._probe_lock:
            if self._score_mode in (None, "topk") and not self._topk_probed:
                found = probe_topk(self.client, self.dialect, self.encode, self.dialect.topk)
                if found is not None:
                    self.dialect.topk, self.dialect.n_probs = found
                self._score_mode = "topk" if found is not None else "none"
                self._topk_probed = True
            return self._score_mode

    def describe(self) -> dict[str, Any]:
        """What a run manifest should record about the servers."""
        return {"backend": "openai", "base_url": self.base_url, "model": self.model,
                "prompt_mode": self.prompt_mode, "score_mode": self.score_mode, "topk": self.topk,
                "ids_source": self.ids_source, "context_length": self.context_length,
                "context_source": self.context_source, "tokenizer": getattr(self.tokenizer, "name_or_path", "")}

    # -- greedy decoding -------------------------------------------------------------------------
    def generate(self, prompts: list[list[int]], max_new_tokens: int, stop: list[str]) -> list[Completion]:
        """Greedy completions of a batch of token-id prompts, sent concurrently, in order."""
        for ids in prompts:
            check_fits(len(ids), max_new_tokens, self.context_length)
        return self.greedy_many(prompts, max_new_tokens, stop)

    def greedy_many(self, rows: list[list[int]], max_new_tokens: int, stop: list[str],
                    nonblank: bool = False) -> list[Completion]:
        """Greedy continuations of several sequences, sent concurrently, in order."""
        return self.client.map(lambda ids: self._greedy_one(ids, max_new_tokens, stop, nonblank), rows, len)

    def _ask(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.client.complete(body)

    def _greedy_one(self, ids: list[int], max_new_tokens: int, stop: list[str], nonblank: bool = False) -> Completion:
        if nonblank:
            return self._greedy_nonblank(ids, max_new_tokens, stop)
        body = self.dialect.greedy_body(ids, max_new_tokens, stop, with_ids=True)
        return self._finish(ids, self._ask(body), max_new_tokens, stop)

    def _greedy_nonblank(self, ids: list[int], max_new_tokens: int, stop: list[str]) -> Completion:
        """As in the local backend: while the text is blank, neither end-of-sequence nor a stop
        string ends it. One request without stop strings (min_tokens holds back an immediate
        end-of-sequence); the stop is looked for here, after the first non-blank character."""
        stops = [s for s in stop if s]
        done = self._finish(ids, self._ask(self.dialect.greedy_body(ids, max_new_tokens, [], 1)), max_new_tokens, [])
        text, stopped = cut_at_stop(done.text, stops, nonblank=True)
        if stopped:
            return Completion(self._ids_for(done.token_ids, text), text, "stop")
        if done.text.strip() or done.finish == "length":
            return done
        # Blank text, then end-of-sequence (rare): go on one token at a time until it is not blank.
        head, text = list(done.token_ids), done.text
        while not text.strip() and len(head) < max_new_tokens:
            one = self._finish(ids + head, self._ask(self.dialect.greedy_body(ids + head, 1, [], 1)), 1, [])
            if not one.token_ids:  # a server that ignores min_tokens
                return Completion(head, text, "eos")
            head += one.token_ids
            text += one.text
        if len(head) >= max_new_tokens:
            return Completion(head, text, "length")
        tail = self._greedy_one(ids + head, max_new_tokens - len(head), stop)
        return Completion(head + tail.token_ids, text + tail.text, tail.finish)

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
        return self._find_cut_stop(prompt, self._ids_for(server_ids, text), text, stops)

    def _find_cut_stop(self, prompt: list[int], ids: list[int], text: str, stops: list[str]) -> Completion:
        """A server that cut off a stop string without saying which, or ended at end-of-sequence:
        ask greedily for what comes next (a few tokens, prefix-cached) and look for the stop."""
        room = max(len(self.encode(s)) for s in stops) + 1
        if len(prompt) + len(ids) + room > self.context_length:
            return Completion(ids, text, "eos")
        joined = text + self._ask(self.dialect.greedy_body(prompt + ids, room, []))["text"]
        for s in stops:  # the server cut the text where the stop string began
            pos = joined.find(s)
            if 0 <= pos <= len(text):
                full = joined[: pos + len(s)]
                return Completion(self.encode(full), full, "stop")
        return Completion(ids, text, "eos")

    # -- sessions, rows and scoring ----------------------------------------------------------------
    def session(self, ids: list[int]) -> OpenAISession:
        return OpenAISession(self, ids)

    def fork(self, ids: list[int], lengths: list[int]) -> OpenAIRows:
        """Rows for the prefixes ids[:n], n in lengths (see `backends.fork`); their requests go out
        together (the longest first), so a server that batches runs them at once."""
        return OpenAIRows(self, [ids[:n] for n in lengths])

    def score_rows(self, rows: list[list[int]], options: list[list[int]]) -> list[list[float]]:
        """totals[row][option]: each option's log-probability after each row (unnormalised)."""
        for ids in rows:
            check_fits(len(ids), max(max(len(o) for o in options) + 1, self.label_tokens), self.context_length,
                       "sequence")
        mode = self.score_mode
        if mode == "topk":
            totals, misses = score_topk(self.client, self.dialect, rows, options, self.label_tokens)
            with self._misses_lock:
                self.topk_misses += misses
            return totals
        if mode == "prompt":
            return score_prompt(self.client, self.dialect, rows, options)
        raise ScoringUnavailable(
            f"{self.base_url} ({self.model}) returns no log-probabilities: scored confidence is unavailable "
            "and only the sampled (written) confidence is recorded (use --source sampled)")


class OpenAIRows:
    """Sequences (prefixes of one trace) kept here, whose requests are sent together."""

    def __init__(self, backend: OpenAIBackend, rows: list[list[int]]):
        self.backend = backend
        self.ids = [list(r) for r in rows]

    def extend(self, rows: list[list[int]]) -> None:
        for ids, new in zip(self.ids, rows, strict=True):
            ids.extend(new)

    def greedy(self, max_new_tokens: int, stop: list[str], nonblank: bool = False) -> list[Completion]:
        for ids in self.ids:
            check_fits(len(ids), max_new_tokens, self.backend.context_length, "sequence")
        completions = self.backend.greedy_many(self.ids, max_new_tokens, stop, nonblank)
        for ids, completion in zip(self.ids, completions):
            ids.extend(completion.token_ids)
        return completions

    def score(self, options: list[list[int]]) -> list[list[float]]:
        """Total log-probability of each option as a continuation of each sequence."""
        return self.backend.score_rows(self.ids, options)


class OpenAISession:
    """One sequence kept here: the rows of one (greedy and score return one result)."""

    def __init__(self, backend: OpenAIBackend, ids: list[int]):
        self._rows = OpenAIRows(backend, [ids])

    @property
    def ids(self) -> list[int]:
        return self._rows.ids[0]

    def extend(self, ids: list[int]) -> None:
        self._rows.extend([ids])

    def greedy(self, max_new_tokens: int, stop: list[str], nonblank: bool = False) -> Completion:
        return self._rows.greedy(max_new_tokens, stop, nonblank)[0]

    def score(self, options: list[list[int]]) -> list[float]:
        return self._rows.score(options)[0]
