"""Context rules of the rule tagger: a trace's steps tagged in order, with what came before.

`cotprobe.tags.tag_texts` tags every step alone with the lexicon, finds the "signals" of the
lexicon's ``context`` section in every step (an announced check, a verdict, the answer, moving on,
a retraction), and hands both to `ContextRules.apply`, which adds and drops hits by these rules
(issue 27; the definitions are the codebook's, real_traces/codebook/CODEBOOK.md):

- ``announced_check``: a step that announces a check ("Wait, let me double-check that.") opens a
  check. If the step also checks something (a number and a result word after the announcement:
  "let me check if n = 3 gives 9", or a verdict cue after the announcement: "Let me double-check:
  it is indeed in Paris.") it is verification; if not, it is planning, and any verification hit
  of its own is dropped ("an announced check with no check in it").
- ``check_run``: the steps after an announced check are verification (the recomputations done to
  check, which carry no cue word) until the check closes: at a step that states the answer or the
  quantity the question asks for without a verdict ("So, the number of x-intercepts is 2865."),
  at one that moves on ("Now, ..."), after one that retracts ("I made a mistake"), or after
  ``max_check_steps`` steps. A step that announces a further check is planning, not verification.
- ``doubt_check``: after a doubtful question ("Wait, is that right?"), steps that recompute a
  quantity stated earlier (a number seen before, with a result word) are verification, until a
  step does not.
- ``restated_result``: a step without arithmetic of its own whose last number is the value the
  step before computed ("... = 48." then "Total 4's in units place: 48.") is a conclusion: a
  sub-result that ends a run of computation.

Nothing here imports `cotprobe.tags`: hits come in as objects with behaviour/cue/start/end and
additions go out as (behaviour, start, end, rule) tuples.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_NUMBER = re.compile(r"(?<![\w.])\d+(?:,\d{3})*(?:\.\d+)?(?![\w])")
_WORD = re.compile(r"[a-z][a-z'-]*[a-z]")


class ContextError(ValueError):
    """A malformed ``context`` section of a lexicon."""


@dataclass(frozen=True)
class ContextRules:
    result_words: frozenset[str]
    operators: frozenset[str]
    stop_words: frozenset[str]
    max_check_steps: int

    @classmethod
    def from_data(cls, data: Mapping[str, Any], source: str) -> ContextRules:
        lists = {}
        for key in ("result_words", "operators", "stop_words"):
            value = data.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ContextError(f"{source}: context {key!r} must be a list of strings")
            lists[key] = frozenset(v.lower() for v in value)
        most = data.get("max_check_steps", 30)
        if not isinstance(most, int) or isinstance(most, bool) or most < 1:
            raise ContextError(f"{source}: context 'max_check_steps' must be a positive integer")
        return cls(lists["result_words"], lists["operators"], lists["stop_words"], most)

    def _tokens(self, text: str) -> list[str]:
        return re.findall(r"\\[a-z]+|[a-z]+(?:'[a-z]+)?|'s|\d+(?:\.\d+)?|[^\sa-z\d]", text.lower())

    def _has_result(self, text: str) -> bool:
        """A number and a word that introduces a computed value ('= 6', 'gives 9', 'is 2864')."""
        return bool(_NUMBER.search(text)) and any(t in self.result_words for t in self._tokens(text))

    def _has_arithmetic(self, text: str) -> bool:
        toks = self._tokens(text)
        return any(t in self.operators and (t not in {"-", "/"} or f" {t} " in text) for t in toks)

    def _result_value(self, text: str) -> str | None:
        """The value a step computed: the number after its last '=' / result word, if any."""
        words = "|".join(rf"\b{re.escape(w)}\b" if w.isalpha() else re.escape(w)
                         for w in sorted(self.result_words, key=len, reverse=True))
        found = re.findall(rf"(?:{words})\s*[\\(\s$*]*(\d+(?:,\d{{3}})*(?:\.\d+)?)(?![\w.]\d)", text.lower())
        return found[-1] if found else None

    def apply(self, texts: Sequence[str], hits: Sequence[Sequence[Any]], signals: Sequence[Sequence[Any]]
              ) -> tuple[list[list[tuple[str, int, int, str]]], list[set[str]]]:
        """Per step: hits to add, as (behaviour, start, end, rule), and behaviours to drop."""
        adds: list[list[tuple[str, int, int, str]]] = [[] for _ in texts]
        drops: list[set[str]] = [set() for _ in texts]
        question = set()
        for text in texts[:2]:
            question |= set(_WORD.findall(text.lower()))
        seen: set[str] = set()
        mode, left = None, 0  # None, "check" (after an announcement) or "doubt" (after a doubtful question)
        for i, text in enumerate(texts):
            own = {h.behaviour for h in hits[i]}
            sig: dict[str, list[Any]] = {}
            for s in signals[i]:
                sig.setdefault(s.behaviour, []).append(s)
            numbers = set(_NUMBER.findall(text))
            span = _span(text)
            if "check_announcement" in sig:
                end = max(s.end for s in sig["check_announcement"])
                if self._has_result(text[end:]):
                    cue = sig["check_announcement"][0]
                    adds[i].append(("verification", cue.start, cue.end, "context:announced_check"))
                elif not any(h.behaviour == "verification" and h.start >= end for h in hits[i]):
                    drops[i].add("verification")
                mode, left = "check", self.max_check_steps
            elif mode == "check":
                if self._closes(sig, own, hits[i], question):
                    mode = None
                else:
                    adds[i].append(("verification", *span, "context:check_run"))
                    left -= 1
                    if "retraction" in sig or left <= 0:
                        mode = None
            elif mode == "doubt":
                if numbers & seen and self._has_result(text):
                    adds[i].append(("verification", *span, "context:doubt_check"))
                else:
                    mode = None
            if mode is None and own & {"backtracking", "hedging"} and text.rstrip().endswith("?"):
                mode = "doubt"
            if "conclusion" not in own and i and not self._has_arithmetic(text):
                value = self._result_value(texts[i - 1])
                mine = list(_NUMBER.finditer(text))
                if value and mine and mine[-1].group() == value and len(_WORD.findall(text.lower())) >= 2:
                    adds[i].append(("conclusion", mine[-1].start(), mine[-1].end(), "context:restated_result"))
            seen |= numbers
        return adds, drops

    def _closes(self, sig: Mapping[str, list], own: set[str], hits: Sequence[Any], question: set[str]) -> bool:
        """Whether a step ends a check: it moves on, or states the answer (or the quantity the
        question asks for) with no verdict."""
        if "moving_on" in sig:
            return True
        if "verdict" in sig or "verification" in own:
            return False
        if "answer" in sig:
            return True
        for h in hits:
            if h.behaviour == "conclusion":
                words = set(_WORD.findall(h.cue.lower())) - self.stop_words
                if words and words <= question:
                    return True
        return False


def _span(text: str, most: int = 40) -> tuple[int, int]:
    """The start of a step's text (up to ``most`` characters, cut at a space): the cue of a
    hit that the step's place in the trace, not a word in it, gave."""
    start = len(text) - len(text.lstrip())
    end = len(text.rstrip())
    if end - start > most:
        cut = text.rfind(" ", start, start + most)
        end = cut if cut > start else start + most
    return start, max(start, end)
