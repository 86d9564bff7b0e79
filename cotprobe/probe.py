"""Forcing an answer and a confidence out of a model after a (partial) chain of thought.

Used identically by generation (after the full CoT), truncation (after each cut, all cuts of a
trace as rows of one batch) and ablation (after each modified CoT). Confidence is elicited two ways: the text the model writes after
`**Confidence**:` (parsed, may fail) and the model's probability of every scale label there
(scored, never fails).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

from .backends import ScoringUnavailable
from .profiles import Profile
from .prompts import ANSWER_PREFIX, CONFIDENCE_PREFIX
from .records import Confidence
from .scales import Scale


@dataclass(frozen=True)
class ForceSettings:
    answer_max_tokens: int = 24
    confidence_max_tokens: int = 8


def forcing_suffix(profile: Profile, cot: str) -> str:
    """What is appended after the CoT to close the thought and ask for the answer."""
    if profile.reasoning:
        return f"{profile.think_end}\n\n{ANSWER_PREFIX}"
    if not cot.strip():
        return ANSWER_PREFIX
    return ("" if cot.endswith("\n\n") else "\n" if cot.endswith("\n") else "\n\n") + ANSWER_PREFIX


def scored_confidence(logprobs: list[float], scale: Scale) -> dict:
    """Normalise label log-probabilities into a distribution; argmax and expected value."""
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    total = sum(weights)
    probs = [w / total for w in weights]
    best = max(range(len(probs)), key=probs.__getitem__)
    return {
        "scored_probs": probs,
        "scored_label": scale.labels[best],
        "scored_value": scale.values[best],
        "expected_value": sum(p * v for p, v in zip(probs, scale.values)),
        "label_mass": math.fsum(math.exp(lp) for lp in logprobs),
    }


_SAID: set[str] = set()


def _say_once(message: str) -> None:
    if message not in _SAID:
        _SAID.add(message)
        print(f"cotprobe: {message}", file=sys.stderr)


def force_answers(rows, backend, profile: Profile, scale: Scale, cots: list[str],
                  settings: ForceSettings = ForceSettings()) -> list[tuple[str, Confidence]]:
    """From rows positioned right after each CoT (see `backends.fork`), force the answer, then
    the confidence; one (answer, Confidence) per row."""
    rows.extend([backend.encode(forcing_suffix(profile, cot)) for cot in cots])
    # A forced field does not end while it is blank, by end-of-sequence or by a newline: small
    # models often put one right after "**Answer**:", which would grade as an empty wrong answer.
    answers = rows.greedy(settings.answer_max_tokens, stop=["\n"], nonblank=True)
    # A newline the model wrote stays; otherwise start the confidence line ourselves.
    rows.extend([backend.encode(("" if a.finish == "stop" else "\n") + CONFIDENCE_PREFIX) for a in answers])
    options = [backend.encode(" " + label) for label in scale.labels]
    try:
        scored = [scored_confidence(lps, scale) for lps in rows.score(options)]
    except ScoringUnavailable as exc:  # a server without log-probabilities: sampled confidence only
        _say_once(str(exc))
        scored = [{} for _ in answers]
    written = rows.greedy(settings.confidence_max_tokens, stop=["\n"], nonblank=True)
    results = []
    for answer, text, distribution in zip(answers, written, scored):
        label = scale.parse(text.text)
        confidence = Confidence(
            sampled_text=text.text.strip(),
            sampled_label=label,
            sampled_value=scale.value(label) if label is not None else None,
            **distribution,
        )
        first_line = next((line.strip() for line in answer.text.split("\n") if line.strip()), "")
        results.append((first_line, confidence))
    return results
