"""A backend that plays back fixed texts: end-to-end tests of everything downstream of a model.

`respond(context) -> str` says what the "model" writes after a given context (the decoded
prompt so far). Generation and greedy continuation play that text back token by token through a
real tokenizer; scoring gives the options the response starts with a log-probability of 0 and
every other option -20, so the scored confidence follows the scripted one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import Completion, TokenizerOps, cut_at_stop


class ScriptedBackend(TokenizerOps):
    samples = True  # a script may itself be random: sampling plays it like greedy
    def __init__(self, respond: Callable[[str], str], tokenizer: Any, name: str = "scripted",
                 context_length: int = 100_000):
        self.respond = respond
        self.tokenizer = tokenizer
        self.name = name
        self.context_length = context_length

    def _play(self, context: list[int], max_new_tokens: int, stop: list[str]) -> Completion:
        ids = self.encode(self.respond(self.decode(context)))
        text, stopped = cut_at_stop(self.decode(ids[:max_new_tokens]), stop)
        if stopped:
            n = next(k for k in range(1, len(ids) + 1) if cut_at_stop(self.decode(ids[:k]), stop)[1])
            return Completion(ids[:n], text, "stop")
        finish = "length" if len(ids) > max_new_tokens else "eos"
        return Completion(ids[:max_new_tokens], text, finish)

    def generate(self, prompts: list[list[int]], max_new_tokens: int, stop: list[str]) -> list[Completion]:
        return [self._play(ids, max_new_tokens, stop) for ids in prompts]

    def session(self, ids: list[int]) -> ScriptedSession:
        return ScriptedSession(self, ids)


class ScriptedSession:
    def __init__(self, backend: ScriptedBackend, ids: list[int]):
        self.backend = backend
        self.ids = list(ids)

    def extend(self, ids: list[int]) -> None:
        self.ids.extend(ids)

    def greedy(self, max_new_tokens: int, stop: list[str], nonblank: bool = False) -> Completion:
        # A script is a text, played as written (nonblank does not apply).
        completion = self.backend._play(self.ids, max_new_tokens, stop)
        self.ids.extend(completion.token_ids)
        return completion

    def sample(self, max_new_tokens: int, stop: list[str], temperature: float, seed: int) -> Completion:
        """A script's `respond` may itself be random: sampling plays it like greedy."""
        return self.greedy(max_new_tokens, stop)

    def rewind(self, n: int) -> None:
        if n > 0:
            del self.ids[-n:]

    def score(self, options: list[list[int]]) -> list[float]:
        said = self.backend.respond(self.backend.decode(self.ids)).strip().lower()
        texts = [self.backend.decode(o).strip().lower() for o in options]
        best = max((t for t in texts if said.startswith(t)), key=len, default=None)
        return [0.0 if t == best else -20.0 for t in texts]
