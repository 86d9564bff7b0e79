"""How completions requests are spelled for the servers at hand (what `capabilities` found).

Servers differ in what they accept: token-id prompts or text only; the field that makes them
return the generated token ids; how many top log-probabilities they hand out, and whether
they want llama.cpp's `n_probs` beside `logprobs`. A `Dialect` holds those findings and builds
the request bodies from them, so the rest of the backend never spells a field itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PROMPT_MODES = ("tokens", "text")


@dataclass
class Dialect:
    """decode: token ids to text (prompts in text mode). prompt_mode: "tokens" or "text".
    id_fields: the request fields that return generated token ids (None: none do). topk: the
    alternatives asked for in scoring requests; n_probs: llama-server wants "n_probs" beside
    "logprobs"."""

    decode: Callable[[list[int]], str]
    prompt_mode: str = "tokens"
    id_fields: dict[str, Any] | None = None
    topk: int = 100
    n_probs: bool = False

    @property
    def ids_by_logprobs(self) -> bool:
        """Whether the token ids come with per-token log-probabilities (vLLM return_tokens_as_token_ids)."""
        return bool(self.id_fields) and "logprobs" in self.id_fields

    def prompt_body(self, ids: list[int]) -> dict[str, Any]:
        return {"prompt": list(ids) if self.prompt_mode == "tokens" else self.decode(ids)}

    def greedy_body(self, ids: list[int], max_new_tokens: int, stop: list[str], min_tokens: int = 0,
                    with_ids: bool = False) -> dict[str, Any]:
        """A greedy completion of ids. min_tokens: no end-of-sequence before this many tokens.
        with_ids: ask for the generated ids even where that costs per-token log-probabilities."""
        # llama.cpp's servers apply a repetition penalty unless told not to (llama-cpp-python: 1.1 by
        # default), which makes temperature 0 no longer greedy; vLLM and SGLang ignore the field.
        body = {**self.prompt_body(ids), "max_tokens": max_new_tokens, "temperature": 0, "repeat_penalty": 1.0}
        if min_tokens:  # vLLM, SGLang and llama-cpp-python's server: no end-of-sequence before this many
            body["min_tokens"] = min_tokens
        stops = [s for s in stop if s]
        if stops:
            body["stop"] = stops
        if self.id_fields and (with_ids or not self.ids_by_logprobs):
            body.update(self.id_fields)
        return body

    def topk_body(self, ids: list[int], max_tokens: int, min_tokens: int = 0) -> dict[str, Any]:
        """A greedy completion asking for the top `topk` log-probabilities of each generated token."""
        extra = {"n_probs": self.topk} if self.n_probs else {}
        fields = {"return_tokens_as_token_ids": True} if self.ids_by_logprobs else {}
        return {**self.greedy_body(ids, max_tokens, [], min_tokens), "logprobs": self.topk, **extra, **fields}

    def echo_body(self, ids: list[int]) -> dict[str, Any]:
        """The prompt's own log-probabilities, echoed (one token generated)."""
        return {**self.prompt_body(ids), "max_tokens": 1, "temperature": 0, "echo": True, "logprobs": 1}
