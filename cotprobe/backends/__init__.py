"""Backends run a model: batched free generation, and sessions for forcing and scoring.

A backend offers `encode`, `decode`, `chat_prompt`, `generate` (batched greedy decoding of
token-id prompts) and `session(ids)`: a growing token sequence that can be extended, greedily
continued, and asked the log-probability of candidate continuations. `fork(backend, ids, lengths)`
gives rows for several prefixes of one sequence with the same operations applied to every row:
that is what forcing and truncation probing use. The Hugging Face backend encodes the shared
prefix once and decodes all rows as one batch; other backends run one session per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class PromptTooLong(ValueError):
    """A prompt (plus what must be generated) that does not fit the model's context."""


class ScoringUnavailable(RuntimeError):
    """The backend returns no log-probabilities: scored confidence cannot be computed.

    Forcing then records the sampled (written) confidence only (see `probe.force_answers`)."""


@dataclass
class Completion:
    token_ids: list[int]
    text: str
    finish: str  # "stop" (a stop string), "eos" (end-of-sequence token) or "length" (token limit)


class TokenizerOps:
    """encode / decode / chat_prompt through `self.tokenizer` (a Hugging Face tokenizer)."""

    tokenizer: Any

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def chat_prompt(self, messages: list[dict[str, str]], **template_kwargs: Any) -> str:
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, **template_kwargs
        )


def check_fits(n_prompt: int, n_new: int, context: int, what: str = "prompt") -> None:
    if n_prompt + n_new > context:
        raise PromptTooLong(
            f"{what} of {n_prompt} tokens plus {n_new} tokens to generate exceeds the model's context "
            f"of {context} tokens; lower the budget or shorten the input (cotprobe never truncates it)"
        )


def cut_at_stop(text: str, stops: list[str], nonblank: bool = False) -> tuple[str, bool]:
    """Text up to (and including) the earliest stop string, and whether one occurred. With
    nonblank, stop strings count only after the first non-blank character (a forced answer's
    leading newlines do not end it empty)."""
    start = len(text) - len(text.lstrip()) if nonblank else 0
    hits = [(pos, s) for s in stops if s and (pos := text.find(s, start)) >= 0]
    if not hits:
        return text, False
    pos, stop = min(hits)
    return text[: pos + len(stop)], True


TINY_MODEL = "tiny-random"  # a few-layer random-weight model built in-process (tests, smoke checks)


def load_backend(model: str, kind: str = "hf", cache_root: str | None = None, reuse_cache: bool = True,
                 device: str | None = None, base_url: str | list[str] | None = None, **server_options):
    """A backend for a model name (see `cotprobe.models.resolve`; also "tiny-random").

    kind "openai": the model runs on an OpenAI-compatible server at `base_url`; only its tokenizer
    is loaded here (embedded model: from the converted folder; else the folder or hub id).
    Its requests are cached under <cache>/requests; `server_options` (timeout, concurrency,
    retries: see `OpenAIBackend`) go to it, None meaning its default.
    """
    if kind not in ("hf", "openai"):
        raise ValueError(f"unknown backend {kind!r}: use 'hf' or 'openai'")
    from .. import models

    if kind == "openai":
        if not base_url:
            raise ValueError("--backend openai needs --base-url (e.g. http://localhost:8000/v1)")
        from .openai import OpenAIBackend

        if model == TINY_MODEL:
            raise ValueError(f"{TINY_MODEL} runs in-process only; use --backend hf")
        given = {k: v for k, v in server_options.items() if v is not None}
        return OpenAIBackend(base_url, model, models.resolve(model, cache_root), name=model,
                             cache_dir=models.cache_dir(cache_root) / "requests", **given)
    from .hf import HFBackend

    if model == TINY_MODEL:
        from .tiny import tiny_model, tiny_tokenizer

        tokenizer = tiny_tokenizer()
        net, tokenizer = tiny_model(tokenizer), tokenizer
    else:
        net, tokenizer = models.load(model, root=cache_root, device=device)
    return HFBackend(net, tokenizer, name=model, reuse_cache=reuse_cache)


class SequentialRows:
    """Several prefixes of one sequence probed one after another, each in its own session.

    The generic form of `fork`: any backend with `session(ids)` gets it. Backends that can share
    work across rows (the Hugging Face one) provide a batched `fork` with the same interface.
    """

    def __init__(self, backend, ids: list[int], lengths: list[int]):
        self.sessions = [backend.session(ids[:n]) for n in lengths]

    def extend(self, rows: list[list[int]]) -> None:
        for session, ids in zip(self.sessions, rows, strict=True):
            session.extend(ids)

    def greedy(self, max_new_tokens: int, stop: list[str], nonblank: bool = False) -> list[Completion]:
        return [s.greedy(max_new_tokens, stop, nonblank) for s in self.sessions]

    def score(self, options: list[list[int]]) -> list[list[float]]:
        return [s.score(options) for s in self.sessions]

    def sample(self, max_new_tokens: int, stop: list[str], temperature: float, seed: int) -> list[Completion]:
        return [s.sample(max_new_tokens, stop, temperature, seed + k) for k, s in enumerate(self.sessions)]

    def rewind(self, counts: list[int]) -> None:
        for session, n in zip(self.sessions, counts, strict=True):
            session.rewind(n)


class NoHiddenStates(ValueError):
    """A backend that cannot give hidden states (a server returns tokens only)."""


def fork(backend, ids: list[int], lengths: list[int], hidden_layers: list[int] | None = None):
    """Rows holding ids[:n] for each n in lengths, batched where the backend can. With
    hidden_layers (HF backend only), `rows.hidden` holds each prefix's last hidden states."""
    if hidden_layers and not hasattr(backend, "hidden_states"):
        raise NoHiddenStates(
            f"the {type(backend).__name__} backend has no hidden states (a server returns tokens only); "
            "latent confidence needs the model run here: --backend hf")
    if hasattr(backend, "fork"):
        return backend.fork(ids, lengths, hidden_layers) if hidden_layers else backend.fork(ids, lengths)
    return SequentialRows(backend, ids, lengths)
