"""Names every backend module shares: errors, the completion record, tokenizer operations, stops.

A leaf module (it imports no other part of cotprobe), so that the backends and the package's
`__init__` can all import it without import cycles.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

TINY_MODEL = "tiny-random"  # a few-layer random-weight model built in-process (tests, smoke checks)


class PromptTooLong(ValueError):
    """A prompt (plus what must be generated) that does not fit the model's context."""


class ScoringUnavailable(RuntimeError):
    """The backend returns no log-probabilities: scored confidence cannot be computed.

    Forcing then records the sampled (written) confidence only (see `forcing.answer_and_confidence`)."""


class NoHiddenStates(ValueError):
    """A backend that cannot give hidden states (a server returns tokens only)."""


class ServerError(RuntimeError):
    """The server could not be reached, or refused a request, after all retries.

    status: the HTTP status of the last answer, None when none came (refused, reset, timed out)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass
class Completion:
    token_ids: list[int]
    text: str
    finish: str  # "stop" (a stop string), "eos" (end-of-sequence token) or "length" (token limit)


class TokenizerOps:
    """encode / decode / chat_prompt through `self.tokenizer` (a Hugging Face tokenizer)."""

    tokenizer: Any
    name: str
    chat_template: str | None = None  # a Jinja chat template used instead of the tokenizer's own (--chat-template)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def chat_prompt(self, messages: list[dict[str, str]], **template_kwargs: Any) -> str:
        """The messages rendered by the chat template, ending where the assistant starts
        (add_generation_prompt=False among the options: ending after the last message)."""
        generation = template_kwargs.pop("add_generation_prompt", True)
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=generation, tokenize=False, chat_template=self.chat_template,
            **template_kwargs,
        )

    def template_source(self) -> str:
        """The Jinja text of the chat template `chat_prompt` renders ("" when there is none)."""
        if self.chat_template is not None:
            return self.chat_template
        source = self.tokenizer.chat_template or ""
        return source.get("default", "") if isinstance(source, dict) else source

    def describe(self) -> dict[str, Any]:
        """What a run's manifest records of the backend."""
        return {"backend": type(self).__name__, "name": self.name}

    def decode_many(self, pieces: list[list[int]]) -> list[str]:
        return self.tokenizer.batch_decode(pieces, skip_special_tokens=False) if pieces else []

    @cached_property
    def vocab_size(self) -> int:
        """Token ids lie in [0, vocab_size): the tokenizer's vocabulary with its added tokens."""
        return len(self.tokenizer)

    @cached_property
    def special_ids(self) -> frozenset[int]:
        """The tokenizer's added (special) tokens: a cut is never re-encoded across one."""
        return frozenset(self.tokenizer.added_tokens_decoder or {})


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
