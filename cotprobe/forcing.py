"""Forcing an answer and a confidence out of a model after a (partial) chain of thought.

`Prober` is how one experiment asks its model: the backend, the profile (style applied), the
confidence scale, the forcing settings and the grader, built once by `experiment.setup` and
passed whole to generation, the cut sweep, resampling, ablation and hidden states.

Used identically by generation (after the full CoT), truncation (after each cut, all cuts of a
trace as rows of one batch) and ablation (after each modified CoT). Confidence is elicited two ways: the text the model writes after
`**Confidence**:` (parsed, may fail) and the model's probability of every scale label there
(scored, never fails).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

from .backends import Backend, ScoringUnavailable, fork
from .grade import RULES, Grade, Grader, grade
from .profiles import Profile
from .prompts import ANSWER_PREFIX, CONFIDENCE_PREFIX
from .records import Confidence, Question
from .scales import Scale

__all__ = [
    "Closing",
    "ForceSettings",
    "Prober",
    "answer_and_confidence",
    "close_at",
    "closing_for",
    "exclusive_logprobs",
    "force_answers",
    "force_cuts",
    "forcing_suffix",
    "label_distribution",
    "label_options",
    "scored_confidence",
]


@dataclass(frozen=True)
class ForceSettings:
    answer_max_tokens: int = 24
    confidence_max_tokens: int = 8
    # Non-reasoning profiles: a second user turn asking to restate answer and confidence after the
    # chain of thought (the paper's protocol; {confidence_format} is filled from the scale), or
    # None to force the answer in the same turn right after the chain of thought.
    restate: str | None = None


@dataclass(frozen=True)
class Prober:
    """How one experiment asks its model: the backend (a `backends.Backend`), the profile with the
    prompt style already applied, the confidence scale, how answers and confidences are forced,
    and the grader of the answers (`grade.Graders`: the rules, or an LLM judge)."""

    backend: Backend
    profile: Profile
    scale: Scale
    force: ForceSettings = ForceSettings()
    grader: Grader = RULES

    def grade(self, question: Question, answer: str | None) -> Grade:
        return grade(question, answer, self.grader)


SENTINEL = "\u2063cotprobe-cot\u2063"  # stands for the chain of thought when rendering a turn


def restate_turn(backend, profile: Profile, scale: Scale, restate: str) -> str:
    """What the chat template puts after an assistant message (the CoT) and the restating user
    turn, up to the next assistant message: rendered with the model's own template."""
    text = restate.replace("{confidence_format}", scale.confidence_format())
    messages = [{"role": "user", "content": "?"}, {"role": "assistant", "content": SENTINEL},
                {"role": "user", "content": text}]
    rendered = backend.chat_prompt(messages, **profile.chat_template_kwargs)
    if SENTINEL not in rendered:
        raise ValueError("the chat template drops earlier assistant turns: the restating turn cannot be built "
                         "(use --prompt-template compact to force the answer in the same turn)")
    return rendered[rendered.index(SENTINEL) + len(SENTINEL):]


@dataclass(frozen=True)
class Closing:
    """What follows a (cut) chain of thought: the prefix, stripped of trailing blanks, then `lead`
    (unless the text before already ends in a newline), then `body`, which ends in the answer
    prefix. The same at every cut, so the format never changes with the cut level."""

    lead: str
    body: str


def closing_for(prober: Prober) -> Closing:
    """Reasoning: a newline, the profile's end tag (one special token where the tokenizer has it),
    what opens the answer (`Profile.answer_open`: a blank line, or the family's own opener such as
    harmony's final channel), **Answer**:. Non-reasoning: the restating turn, or a blank line in
    the same turn."""
    profile, restate = prober.profile, prober.force.restate
    if profile.reasoning:
        return Closing("\n", profile.close_thought() + ANSWER_PREFIX)
    if restate is not None:
        return Closing("", restate_turn(prober.backend, profile, prober.scale, restate) + ANSWER_PREFIX)
    return Closing("\n\n", ANSWER_PREFIX)


def close_at(backend, ids: list[int], floor: int, closing: Closing) -> tuple[int, list[int]]:
    """(keep, new): the row for the cut ids holds ids[:keep] + new, where new encodes the end of
    the cut (from its last words on, trailing blanks stripped) together with the closing as the
    tokenizer encodes that text whole: a cut after "." followed by "\n</think>" gets the tokens
    ".\n" would naturally have, not "." then "\n". Tokens before `floor` (the prompt) are kept."""
    cut = len(ids)
    special = backend.special_ids
    back = cut
    while back > floor and ids[back - 1] not in special and not backend.decode(ids[back - 1:back]).strip():
        back -= 1  # trailing blank tokens
    for _ in range(2):  # and the last words, which a merge across the boundary may change
        if back > floor and ids[back - 1] not in special:
            back -= 1
    while back > floor and ids[back - 1] not in special and "\ufffd" in backend.decode(ids[back:cut]):
        back -= 1  # do not split a multi-byte character
    tail = backend.decode(ids[back:cut])
    if "\ufffd" in tail:
        back, tail = cut, ""
    stripped = tail.rstrip()
    before = stripped or (backend.decode(ids[back - 1:back]) if back > 0 else "")
    lead = "" if before.endswith("\n") else closing.lead  # an empty CoT after a prompt ending in a newline
    new = backend.encode(stripped + lead + closing.body)
    old = ids[back:cut]
    same = 0
    while same < min(len(old), len(new)) and old[same] == new[same]:
        same += 1
    return back + same, new[same:]


def forcing_suffix(profile: Profile, cot: str, closing: Closing | None = None) -> str:
    """What is appended after a CoT whose tokens are kept as they are (see `force_answers`)."""
    closing = closing or (Closing("\n", profile.close_thought() + ANSWER_PREFIX) if profile.reasoning
                          else Closing("\n\n", ANSWER_PREFIX))
    if not cot.strip():
        return closing.body
    trailing = cot[len(cot.rstrip()):]
    if trailing and closing.lead.startswith(trailing):
        return closing.lead[len(trailing):] + closing.body
    return ("" if trailing.endswith("\n") else closing.lead) + closing.body


def label_options(backend, scale: Scale) -> tuple[list[list[int]], list[list[int]]]:
    """Token sequences to score and, per label, the indices of the sequences that continue it
    into a longer label.

    A label whose tokens are a prefix of another's (" 10" of " 100" on Qwen or Llama-2
    tokenizers) is scored exclusively: P(label) minus P(label followed by the next token of
    every longer label it begins), so a model certain of 100 does not also count as certain of 10.
    The continuations are usually labels themselves (" 100"); other ones are scored as well."""
    options = [backend.encode(" " + label) for label in scale.labels]
    sequences = [list(o) for o in options]
    continued: list[list[int]] = []
    for label in options:
        nexts = {tuple(other[:len(label) + 1]) for other in options
                 if len(other) > len(label) and other[:len(label)] == label}
        indices = []
        for seq in sorted(nexts):
            if list(seq) not in sequences:
                sequences.append(list(seq))
            indices.append(sequences.index(list(seq)))
        continued.append(indices)
    return sequences, continued


def exclusive_logprobs(logprobs: list[float], continued: list[list[int]]) -> list[float]:
    """Per label: log(P(label) - sum of P(label + the next token of a longer label))."""
    out = []
    for k, indices in enumerate(continued):
        lp = logprobs[k]
        if not indices:
            out.append(lp)
            continue
        taken = sum(math.exp(logprobs[j] - lp) for j in indices) if lp > -math.inf else 1.0
        out.append(lp + math.log1p(-taken) if taken < 1.0 else -math.inf)
    return out


def scored_confidence(logprobs: list[float], scale: Scale) -> dict:
    """Normalise label log-probabilities into a distribution; argmax, expected value, and the
    label mass (the labels' total unnormalised probability: how much of the model's next-token
    probability the scale's labels hold)."""
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
        "label_mass": math.exp(top) * total if top > -math.inf else 0.0,
    }


def label_distribution(logprobs: list[float], continued: list[list[int]], scale: Scale) -> dict:
    """The scored confidence of one row from its label sequences' log-probabilities (`label_options`),
    marked exact; a row where the backend could not score some sequence exactly (NaN: a server's
    top-k did not reach one of its tokens) gets no distribution at all, marked inexact with the
    count of sequences missed, rather than one made up from bounds."""
    misses = sum(math.isnan(lp) for lp in logprobs)
    if misses:
        return {"scored_exact": False, "scored_misses": misses}
    return {**scored_confidence(exclusive_logprobs(logprobs, continued), scale), "scored_exact": True}


_SAID: set[str] = set()


def _say_once(message: str) -> None:
    if message not in _SAID:
        _SAID.add(message)
        print(f"cotprobe: {message}", file=sys.stderr)


def answer_and_confidence(rows, prober: Prober) -> list[tuple[str, Confidence]]:
    """From rows that end in the answer prefix, force the answer, then the confidence."""
    backend, scale, settings = prober.backend, prober.scale, prober.force
    # A forced field does not end while it is blank, by end-of-sequence or by a newline: small
    # models often put one right after "**Answer**:", which would grade as an empty wrong answer.
    answers = rows.greedy(settings.answer_max_tokens, stop=["\n"], nonblank=True)
    # A newline the model wrote stays; otherwise start the confidence line ourselves.
    rows.extend([backend.encode(("" if a.finish == "stop" else "\n") + CONFIDENCE_PREFIX) for a in answers])
    sequences, continued = label_options(backend, scale)
    try:
        scored = [label_distribution(lps, continued, scale) for lps in rows.score(sequences)]
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


def force_cuts(prober: Prober, ids: list[int], floor: int, cuts: list[int], max_rows: int = 16,
               hidden_layers: list[int] | None = None, states: dict[int, Any] | None = None
               ) -> list[tuple[str, Confidence]]:
    """Force an answer and a confidence after ids[:c] for every cut c (floor: where the prompt
    ends). Every cut gets the same closing (`close_at`); the cuts run as rows of one fork of ids
    (at most max_rows at a time, to bound cache memory). One (answer, Confidence) per cut.

    hidden_layers: also fill `states` with c -> the hidden states (layers, hidden) of the cut's
    last token ids[c - 1], from the pass that encodes the cuts (no pass of their own)."""
    backend, closing = prober.backend, closing_for(prober)
    made: dict[int, tuple[str, Confidence]] = {}
    points = sorted(set(cuts), reverse=True)
    for start in range(0, len(points), max_rows):
        chunk = points[start:start + max_rows]
        plans = [close_at(backend, ids[:c], floor, closing) for c in chunk]
        hidden = {"hidden_layers": hidden_layers, "hidden_positions": [c - 1 for c in chunk]} if hidden_layers else {}
        rows = fork(backend, ids, [keep for keep, _ in plans], **hidden)
        if hidden_layers:
            states.update(zip(chunk, rows.hidden.numpy()))
        rows.extend([new for _, new in plans])
        made.update(zip(chunk, answer_and_confidence(rows, prober)))
    return [made[c] for c in cuts]


def force_answers(rows, prober: Prober, cots: list[str]) -> list[tuple[str, Confidence]]:
    """From rows positioned right after each CoT (see `backends.fork`), close the thought without
    re-encoding the CoT's last tokens, then force the answer and the confidence; one (answer,
    Confidence) per row. cotprobe itself runs `force_cuts`, which also re-encodes the cut's end."""
    closing = closing_for(prober)
    rows.extend([prober.backend.encode(forcing_suffix(prober.profile, cot, closing)) for cot in cots])
    return answer_and_confidence(rows, prober)
