"""python -m cotprobe.ablate [RUN_DIR]: remove behaviours from chains of thought and re-probe.

Each condition builds a modified CoT from a trace's steps (steps.jsonl) and behaviour tags
(tags.jsonl), then forces an answer and a confidence after it exactly as after a 100% cut
(`cotprobe.probe.force_answers`), grades it and appends a Probe(condition=...) to probes.jsonl
with the modified CoT (`cot`) and what was taken out (`removed`). The original traces are
never modified. Conditions:

- ``full``: the trace's own CoT, as its own token ids (the reference of the paired diffs).
- ``none``: an empty CoT (the thought closed at once).
- ``linear``: steps tagged backtracking, alternative or verification deleted.
- ``no-hedging``: hedging cue phrases removed inside steps by grammar-keeping rules (`dehedge`):
  "I think (that) it is X" -> "It is X", "it is probably X" -> "it is X", "X, I think." ->
  "X.", "it might be X" -> "it is X", "it seems correct" -> "it is correct", a sentence of pure
  doubt ("I'm not sure.") is dropped; a cue that no rule covers is kept (and counted).
- ``random-deletion``: random steps deleted (seeded per question) until the deleted tokens
  match what ``linear`` deleted from that trace to within one step (length control).
- ``rewrite-linear``, ``rewrite-no-uncertainty``: a language model rewrites the CoT (any
  backend; prompts in cotprobe/_data/rewrite_prompts.json). A rewrite that is empty or does not finish
  within its token limit is recorded as a failed probe (Probe.error), never replaced.

A CoT a condition leaves unchanged is probed on the trace's own token ids (so it equals
``full`` exactly); a changed one is re-encoded from its text. ``fraction_realised`` is the
modified CoT's token count over the original's; ``fraction_requested`` is 1 (0 for ``none``).

With no arguments: the default experiment on the embedded model (the traces of
``python -m cotprobe.truncate``'s default run, runs/default, generated if missing), all
rule-based conditions, the table, metrics.json section "ablate" and figures/ablation.png.
Interrupted runs resume: (question, condition) pairs already in probes.jsonl are skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .backends import PromptTooLong, cut_at_stop, fork
from .grade import grade
from .probe import ForceSettings, force_answers
from .profiles import Profile
from .records import Confidence, Probe, Question, Step, Tag, Trace
from .resources import data_path
from .scales import Scale
from .store import RunDir

RULE_CONDITIONS = ("full", "none", "linear", "no-hedging", "random-deletion")
REWRITE_CONDITIONS = ("rewrite-linear", "rewrite-no-uncertainty")
CONDITIONS = RULE_CONDITIONS + REWRITE_CONDITIONS
DEFAULT_CONDITIONS = ",".join(RULE_CONDITIONS)
LINEAR_BEHAVIOURS = ("backtracking", "alternative", "verification")
HEDGE_RULES_VERSION = "1.0"  # bump when the rules below change what they produce


# ------------------------------------------------------------------------------ no-hedging

_OPENERS = r"(?:okay|ok|so|hmm+|well|and|but|now|then|yes|no|alright|right|oh|ah|though|also)"


def at_sentence_start(before: str) -> bool:
    """Whether text ending in `before` is at the start of a sentence (or of a line / list item)."""
    stripped = before.rstrip()
    if not stripped or stripped[-1] in ".!?" or before[len(stripped):].count("\n"):
        return True
    line = before.rsplit("\n", 1)[-1]
    return re.fullmatch(r"\s*(?:[-*+•>#]+|\d{1,3}[.)]|\*\*)?\s*[\"“'(]*\s*", line) is not None


def at_clause_start(before: str) -> bool:
    """At a sentence start, possibly after opener words and commas ("Hmm, so ...")."""
    trimmed = re.sub(rf"(?:\b{_OPENERS}\b[ \t]*,?[ \t]*)+$", "", before, flags=re.IGNORECASE)
    return at_sentence_start(trimmed)


_AUX = {"would", "does", "did", "do", "to", "not", "n't", "may", "might", "could", "should", "will",
        "can", "must", "doesn't", "don't", "didn't", "wouldn't", "won't", "can't", "also", "just"}


def _prev_word(before: str) -> str:
    m = re.search(r"([\w']+)\W*$", before)
    return m.group(1).lower() if m else ""


@dataclass(frozen=True)
class HedgeRule:
    """A pattern around a hedging cue and what to do with what it matches.

    action: "frame" (delete; recapitalise at a sentence start), "adverbial" (delete with the
    commas and spaces that set it off), "sentence" (delete the whole sentence), "replace"
    (substitute `replace(match, before)`).
    """

    name: str
    pattern: re.Pattern
    action: str
    replace: Callable[[re.Match, str], str] | None = None
    guard: Callable[[re.Match, str], bool] | None = None  # (match, text before it) -> applies


def _rule(name, pattern, action, replace=None, guard=None) -> HedgeRule:
    return HedgeRule(name, re.compile(pattern, re.IGNORECASE), action, replace, guard)


def _not_after_aux(m: re.Match, before: str) -> bool:
    return _prev_word(before) not in _AUX


_SUBJECT = r"(?:\b(it|this|that|which|he|she|they|we|i)\s+)?"


def _subject_be(m: re.Match, before: str) -> str:
    """'(it) seem(s) to be' / 'seem(s) (like)' / 'appear(s)' -> (it) and the matching form of 'to be'."""
    subject = m.group(1)
    verb = m.group(0).split()[1 if subject else 0].lower()
    if verb in ("seems", "appears"):
        be = "is"
    else:
        be = "am" if (subject or _prev_word(before)).lower() == "i" else "are"
    return f"{subject} {be}" if subject else be


_DOUBT = r"(?:not\s+(?:[\w%]+\s+)?(?:sure|certain|confident)|unsure|uncertain)"
_SURE = r"(?:fairly|pretty|reasonably|quite|almost|somewhat|very)\s+(?:sure|certain|confident)"

# Order matters: the first rule whose match covers a cue decides.
HEDGE_RULES: tuple[HedgeRule, ...] = (
    _rule("doubt-but", rf"\b(?:i'?m|i\s+am)\s+{_DOUBT}\b[^.!?\n]*?,?\s*but\s+", "frame"),
    _rule("no-recall-but", r"\bi\s+(?:don't|do\s+not|can't|cannot)\s+(?:quite\s+)?(?:remember|recall)\b[^.!?\n]*?,?\s*but\s+", "frame"),
    _rule("doubt-sentence", rf"\b(?:i'?m|i\s+am)\s+{_DOUBT}\b", "sentence"),
    _rule("bare-doubt-sentence", rf"\b{_DOUBT}\b", "sentence", guard=lambda m, b: at_clause_start(b)),
    _rule("no-recall-sentence", r"\bi\s+(?:don't|do\s+not|can't|cannot)\s+(?:quite\s+)?(?:remember|recall)\b", "sentence"),
    _rule("sure-frame", rf"\b(?:i'?m|i\s+am)\s+{_SURE}(?:\s+that)?\b[ \t]*,?[ \t]*(?=\w)(?!(?:about|of|in|that)\b)", "frame"),
    _rule("sure-sentence", rf"\b(?:i'?m|i\s+am)\s+{_SURE}\b", "sentence"),
    _rule("it-seems-that", r"\bit\s+(?:seems|appears)(?:\s+to\s+me)?(?:\s+that|\s+like|\s+as\s+if|[ \t]*,)[ \t]*(?=\w)", "frame"),
    _rule("it-is-likely-that", r"\bit(?:'s|\s+is)\s+(?:(?:quite|very|highly|most|fairly|pretty)\s+)?(?:likely|possible|probable|almost\s+certain|fairly\s+certain|pretty\s+certain)\s+that\s+", "frame"),
    _rule("my-guess-that", r"\bmy\s+(?:best\s+)?guess\s+(?:is|would\s+be)\s+that\s+", "frame"),
    _rule("my-guess-start", r"\bmy\s+(?:best\s+)?guess\s+(?:is|would\s+be)[ \t]*:?[ \t]*(?=\w)", "frame",
          guard=lambda m, b: at_sentence_start(b)),
    _rule("my-guess", r"\bmy\s+(?:best\s+)?guess\s+(?:is|would\s+be)\b", "replace",
          replace=lambda m, b: "the answer is"),
    _rule("i-think-frame", r"\bi(?:'d|\s+would)?\s+(?:think|believe|guess|suppose|reckon)(?:\s+that)?[ \t]*,?[ \t]*(?!(?:so|not|of|about|through|it\s+over)\b)(?=[\w\"“'$])", "frame"),
    _rule("guessing-frame", r"\bi'?m\s+guessing(?:\s+that)?[ \t]*(?=\w)", "frame"),
    _rule("i-think-tail", r"\bi\s+(?:think|believe|guess|suppose)\b(?=[ \t]*(?:[.!?,;)]|$))", "adverbial"),
    _rule("recall", r"\b(?:if\s+i\s+(?:recall|remember)(?:\s+(?:correctly|rightly|right))?|iirc|as\s+far\s+as\s+i\s+(?:know|remember|recall|can\s+tell))\b", "adverbial"),
    _rule("vaguely", r"\bi\s+vaguely\s+(remember|recall)\b", "replace", replace=lambda m, b: f"I {m.group(1)}"),
    _rule("modal-have-been", r"\b(it|this|that|which|he|she|the\s+answer)\s+(?:might|may|could)\s+have\s+been\b", "replace",
          replace=lambda m, b: f"{m.group(1)} was"),
    _rule("modal-be", r"\b(it|this|that|which|he|she|the\s+answer)\s+(?:might|may|could)\s+(also\s+|well\s+)?be\b", "replace",
          replace=lambda m, b: f"{m.group(1)} is" + (" also" if (m.group(2) or "").lower().startswith("also") else "")),
    _rule("likely-to-be", r"\b(is|are|was|were|'s|'re)\s+(?:(?:most|very|quite|highly)\s+)?likely\s+to\s+be\b", "replace",
          replace=lambda m, b: m.group(1)),
    _rule("is-likely", r"\b(is|are|was|were|'s|'re)\s+(?:(?:most|very|quite|highly)\s+)?likely[ \t]+(?!(?:to|that)\b)(?=[\w\"“'$])", "replace",
          replace=lambda m, b: m.group(1) + " "),
    _rule("seems-to-be", rf"{_SUBJECT}\b(?:seems|appears|seem|appear)\s+to\s+be\b", "replace", replace=_subject_be,
          guard=_not_after_aux),
    _rule("seems-like", rf"{_SUBJECT}\b(?:seems|seem)\s+like\b", "replace", replace=_subject_be, guard=_not_after_aux),
    _rule("seems-adjective", rf"{_SUBJECT}\b(?:seems|appears|seem)\b(?=[ \t]+(?!(?:to|that|as|like|if)\b)[a-z])",
          "replace", replace=_subject_be, guard=_not_after_aux),
    _rule("maybe-not-tail", r"\b(?:maybe|perhaps|probably|possibly)\s+not\b(?=[ \t]*(?:[.!?;]|$))", "adverbial"),
    _rule("adverb", r"\b(?:most\s+likely|more\s+than\s+likely|in\s+all\s+likelihood|maybe|perhaps|probably|possibly|presumably|apparently|hopefully|conceivably|something\s+like)\b", "adverbial"),
    _rule("likely-adverb", r"\blikely\b(?![ \t]*(?:to|that)\b)(?![ \t]*[.!?,;:)]|[ \t]*$)", "adverbial",
          guard=lambda m, b: _prev_word(b) not in {"is", "are", "was", "were", "be", "been", "being", "seems", "seem",
                                                     "more", "less", "very", "quite", "highly", "most", "not",
                                                     "equally", "'s", "'re", "s", "re", "appears"}),
)


def _recapitalise(text: str, pos: int) -> str:
    m = re.compile(r"[\"“'(*_]*([a-z])([\w'’-]*)").match(text, pos)
    if not m:
        return text
    word = m.group(1) + m.group(2)
    if len(word) < 2 and word not in ("a", "i") or not word.replace("'", "").replace("’", "").replace("-", "").isalpha():
        return text  # a variable such as "x", or "x2": leave it
    k = m.start(1)
    return text[:k] + text[k].upper() + text[k + 1:]


def _join(left: str, right: str) -> str:
    """Glue two pieces after a deletion without doubled spaces or a space before punctuation."""
    if right[:1] in (",", ".", "!", "?", ";", ":", ")") or not right:
        return left.rstrip(" \t") + right if left.rstrip(" \t") else left + right.lstrip(" \t")
    if left.endswith((" ", "\t")) and right.startswith((" ", "\t")):
        return left + right.lstrip(" \t")
    if left and not left[-1].isspace() and left[-1] not in "(\"“" and right[:1].isalnum():
        return left + " " + right
    return left + right


def _adverbial_span(text: str, a: int, b: int) -> tuple[int, int, bool]:
    """What to delete for an adverbial phrase at [a, b): (start, end, at sentence start)."""
    before, after = text[:a], text[b:]
    if at_sentence_start(before):
        return a, b + re.match(r"[ \t]*,?[ \t]*", after).end(), True
    comma_before = re.search(r",[ \t]*$", before)
    comma_after = re.match(r"[ \t]*,", after)
    if comma_before and comma_after:  # "is, perhaps, the" -> "is the"
        return comma_before.start(), b + comma_after.end(), False
    if comma_before and re.match(r"[ \t]*(?:[.!?;:)]|$)", after):  # "Paris, I think." -> "Paris."
        return comma_before.start(), b, False
    if comma_after:  # "it is probably, Paris" -> "it is Paris"
        return a, b + comma_after.end(), False
    return a, b, False


def _sentence_span(text: str, a: int, b: int) -> tuple[int, int]:
    start = 0
    for m in re.finditer(r"[.!?](?=\s)|\n", text[:a]):
        start = m.end()
    start += len(text[start:a]) - len(text[start:a].lstrip())
    m = re.compile(r"[.!?]+(?=\s|$)|\n").search(text, b)
    end = m.end() if m else len(text)
    end += len(text[end:]) - len(text[end:].lstrip(" \t"))
    return start, end


@dataclass
class Dehedged:
    text: str
    removed: list[str]
    cues: int  # hedging cues in the text
    kept: list[str]  # cues no rule could remove (left in place)


def dehedge(text: str, cues: list[tuple[int, int]], rules: tuple[HedgeRule, ...] = HEDGE_RULES) -> Dehedged:
    """Remove the hedging cues at character spans `cues` of `text`, keeping it grammatical.

    Cues are handled from the last to the first, so the spans of the ones still to do stay
    valid; a cue inside something already removed counts as removed. A sentence left without
    words (or with only opener words such as "Okay,") is dropped.
    """
    original = text
    removed: list[str] = []
    kept: list[str] = []
    limit = len(text)
    for cs, ce in sorted(set(cues), reverse=True):
        if ce > limit:
            continue  # inside an earlier edit
        edit = None
        for rule in rules:
            for m in rule.pattern.finditer(text):
                if m.start() > cs:
                    break
                if m.end() < ce or (rule.guard and not rule.guard(m, text[:m.start()])):
                    continue
                edit = (rule, m)
                break
            if edit:
                break
        if edit is None:
            kept.append(text[cs:ce])
            continue
        rule, m = edit
        a, b = m.start(), m.end()
        recap = False
        replacement = ""
        if rule.action == "frame":
            recap = at_sentence_start(text[:a])
        elif rule.action == "adverbial":
            a, b, recap = _adverbial_span(text, a, b)
        elif rule.action == "sentence":
            a, b = _sentence_span(text, a, b)
        else:
            replacement = rule.replace(m, text[:a])
            if m.group(0)[:1].isupper():
                replacement = replacement[:1].upper() + replacement[1:]
        removed.append(text[a:b])
        right = replacement + text[b:]
        text = _join(text[:a], right)
        if recap:
            text = _recapitalise(text, len(text) - len(right.lstrip(" \t")))
        limit = a
    # drop sentences left without words (or with only openers and punctuation)
    pieces = re.findall(r"[^.!?\n]*(?:[.!?]+|\n|$)[ \t]*", text)
    out = []
    for piece in pieces:
        words = re.sub(rf"\b{_OPENERS}\b", "", piece, flags=re.IGNORECASE)
        if piece.strip() and not re.search(r"\w", words) and piece.strip() not in original:
            removed.append(piece)
            continue
        out.append(piece)
    text = "".join(out).strip()
    if text != original.strip() and text and not re.search(r"\w", re.sub(rf"\b{_OPENERS}\b", "", text, flags=re.IGNORECASE)):
        removed.append(text)
        text = ""
    return Dehedged(text, removed, len(set(cues)), kept)


# ------------------------------------------------------------------------------ conditions


@dataclass
class Variant:
    """A modified CoT for one condition (or why it could not be made)."""

    condition: str
    cot: str
    removed: list[str] = field(default_factory=list)
    steps_kept: int = 0
    ids: list[int] | None = None  # token ids to probe; None: encode `cot`
    error: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def _stronger(a: str, b: str) -> str:
    """The separator that breaks more: more newlines, then longer."""
    return max(a, b, key=lambda s: (s.count("\n"), len(s)))


def rebuild(cot: str, steps: list[Step], texts: dict[int, str]) -> tuple[str, int]:
    """The CoT with step i's text replaced by texts[i] ("" deletes it): (text, steps kept).

    Unchanged steps keep their separators; where steps are deleted the stronger of the
    separators around them is kept (a paragraph break survives), and the CoT keeps its own
    trailing whitespace. With no change this returns `cot` itself.
    """
    if not steps:
        return cot, 0
    parts: list[str] = []
    sep = ""
    for step in steps:
        text = texts.get(step.index, step.text)
        if text:
            if parts:
                parts.append(sep)
            parts.append(text)
            sep = step.sep
        elif parts:
            sep = _stronger(sep, step.sep)
    if not parts:
        return "", 0
    kept = sum(1 for s in steps if texts.get(s.index, s.text))
    return cot[:steps[0].start] + "".join(parts) + steps[-1].sep, kept


def _tokens(step: Step) -> int:
    return max(step.token_end - step.token_start, 0)


def _unchanged(variant: Variant, trace: Trace) -> Variant:
    if variant.cot == trace.cot:
        variant.ids = list(trace.cot_token_ids)
    return variant


def linear_variant(trace: Trace, steps: list[Step], tags: list[Tag],
                   behaviours: tuple[str, ...] = LINEAR_BEHAVIOURS) -> Variant:
    drop = {t.step_index for t in tags if t.behaviour in behaviours}
    deleted = [s for s in steps if s.index in drop]
    cot, kept = rebuild(trace.cot, steps, {s.index: "" for s in deleted})
    return _unchanged(Variant("linear", cot, [s.text for s in deleted], kept,
                              info={"deleted_steps": len(deleted), "deleted_tokens": sum(map(_tokens, deleted))}), trace)


def random_deletion_variant(trace: Trace, steps: list[Step], target_tokens: int, seed: int = 0) -> Variant:
    """Delete random steps (seeded by seed and question id) until the deleted tokens match
    `target_tokens` within one step: a greedy pass in shuffled order keeps every step that
    still fits under the target, then the one step that brings the total closest (if any)."""
    rng = random.Random(f"{seed}:{trace.question_id}")
    order = [s for s in steps if _tokens(s) > 0]
    rng.shuffle(order)
    chosen, total = [], 0
    for s in order:
        if total + _tokens(s) <= target_tokens:
            chosen.append(s)
            total += _tokens(s)
    rest = [s for s in order if s not in chosen]
    if rest and total < target_tokens:
        best = min(rest, key=lambda s: abs(total + _tokens(s) - target_tokens))
        if abs(total + _tokens(best) - target_tokens) < target_tokens - total:
            chosen.append(best)
            total += _tokens(best)
    chosen.sort(key=lambda s: s.index)
    cot, kept = rebuild(trace.cot, steps, {s.index: "" for s in chosen})
    return _unchanged(Variant("random-deletion", cot, [s.text for s in chosen], kept,
                              info={"deleted_steps": len(chosen), "deleted_tokens": total,
                                    "target_tokens": target_tokens}), trace)


def no_hedging_variant(trace: Trace, steps: list[Step], tags: list[Tag]) -> Variant:
    cues: dict[int, list[tuple[int, int]]] = {}
    for t in tags:
        if t.behaviour == "hedging":
            cues.setdefault(t.step_index, []).append((t.start, t.end))
    texts, removed, n_cues, kept_cues = {}, [], 0, []
    for step in steps:
        if step.index in cues:
            result = dehedge(step.text, cues[step.index])
            texts[step.index] = result.text
            removed += result.removed
            n_cues += result.cues
            kept_cues += result.kept
    cot, kept = rebuild(trace.cot, steps, texts)
    return _unchanged(Variant("no-hedging", cot, removed, kept,
                              info={"cues": n_cues, "cues_kept": len(kept_cues), "kept": kept_cues,
                                    "steps_emptied": sum(1 for t in texts.values() if not t)}), trace)


def rule_variants(trace: Trace, steps: list[Step], tags: list[Tag], conditions: list[str],
                  seed: int = 0) -> list[Variant]:
    """The rule-based conditions of one trace (cheap; no model)."""
    out = []
    linear = linear_variant(trace, steps, tags)
    for cond in conditions:
        if cond == "full":
            out.append(Variant("full", trace.cot, [], len(steps), list(trace.cot_token_ids)))
        elif cond == "none":
            out.append(Variant("none", "", [s.text for s in steps], 0, []))
        elif cond == "linear":
            out.append(linear)
        elif cond == "no-hedging":
            out.append(no_hedging_variant(trace, steps, tags))
        elif cond == "random-deletion":
            out.append(random_deletion_variant(trace, steps, linear.info["deleted_tokens"], seed))
    return out


# ------------------------------------------------------------------------------ rewrites


def load_rewrite_prompts(path: str | Path | None = None) -> dict[str, Any]:
    path = Path(path) if path else data_path("rewrite_prompts.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    for cond in REWRITE_CONDITIONS:
        spec = data.get("conditions", {}).get(cond)
        if not spec or not all(isinstance(spec.get(k), str) for k in ("instruction", "open", "close")):
            raise ValueError(f"{path}: condition {cond!r} needs 'instruction', 'open' and 'close' strings")
        if "{cot}" not in spec["instruction"]:
            raise ValueError(f"{path}: the instruction of {cond!r} has no {{cot}} placeholder")
    data["_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return data


def rewrite_variant(rewriter, spec: dict[str, str], condition: str, trace: Trace, steps: list[Step],
                    max_tokens: int) -> Variant:
    """Let `rewriter` (any backend) rewrite the CoT greedily; a failure is a Variant with error."""
    if not trace.cot.strip():
        return Variant(condition, trace.cot, [], 0, list(trace.cot_token_ids), info={"rewrite": "empty CoT"})
    prompt = rewriter.chat_prompt([{"role": "user", "content": spec["instruction"].replace("{cot}", trace.cot)}])
    prompt += spec["open"]
    try:
        completion = rewriter.session(rewriter.encode(prompt)).greedy(max_tokens, [spec["close"]])
    except PromptTooLong as exc:
        return Variant(condition, "", error=f"rewrite failed: {exc}")
    text = cut_at_stop(completion.text, [spec["close"]])[0]
    if completion.finish == "stop":
        text = text[: len(text) - len(spec["close"])]
    text = text.strip()
    excerpt = json.dumps(text[:160] + ("..." if len(text) > 160 else ""), ensure_ascii=False)
    if completion.finish == "length":
        return Variant(condition, "", error=f"rewrite failed: hit the token limit ({max_tokens} tokens) "
                                            f"before {spec['close']!r}; output began {excerpt}")
    if not text:
        return Variant(condition, "", error=f"rewrite failed: empty output (finish: {completion.finish})")
    removed = [s.text for s in steps if s.text not in text]
    return _unchanged(Variant(condition, text, removed, len(steps) - len(removed),
                              info={"finish": completion.finish}), trace)


# ------------------------------------------------------------------------------ probing


def probe_variants(backend, trace: Trace, question: Question, variants: list[Variant], profile: Profile,
                   scale: Scale, force: ForceSettings = ForceSettings()) -> list[Probe]:
    """Force an answer and a confidence after each variant's CoT, as after a 100% cut.

    Variants whose tokens are a prefix of the trace's own (full, none, unchanged CoTs) share
    one encoding of the trace (rows of one fork); every other variant is encoded on its own.
    """
    prompt_ids = backend.encode(trace.prompt)
    n_orig = len(trace.cot_token_ids)
    results: dict[tuple[int, ...], tuple[str, Confidence]] = {}
    ready = [v for v in variants if not v.error]
    for v in ready:
        if v.ids is None:
            v.ids = backend.encode(v.cot)
    prefixes = {tuple(v.ids): v for v in ready if v.ids == trace.cot_token_ids[:len(v.ids)]}
    if prefixes:
        keys = sorted(prefixes, key=len, reverse=True)
        rows = fork(backend, prompt_ids + trace.cot_token_ids, [len(prompt_ids) + len(k) for k in keys])
        results.update(zip(keys, force_answers(rows, backend, profile, scale, [prefixes[k].cot for k in keys], force)))
    for v in ready:
        key = tuple(v.ids)
        if key not in results:
            rows = fork(backend, prompt_ids + v.ids, [len(prompt_ids) + len(v.ids)])
            (results[key],) = force_answers(rows, backend, profile, scale, [v.cot], force)
    probes = []
    for v in variants:
        requested = 0.0 if v.condition == "none" else 1.0
        if v.error:
            probes.append(Probe(question_id=trace.question_id, condition=v.condition, fraction_requested=requested,
                                fraction_realised=0.0, step_index=0, token_index=0, answer="",
                                confidence=Confidence(), correct=None, grader="", cot=None, removed=[],
                                error=v.error))
            continue
        answer, confidence = results[tuple(v.ids)]
        result = grade(question, answer)
        probes.append(Probe(
            question_id=trace.question_id, condition=v.condition, fraction_requested=requested,
            fraction_realised=len(v.ids) / n_orig if n_orig else 1.0, step_index=v.steps_kept,
            token_index=len(v.ids), answer=answer, confidence=confidence, correct=result.correct,
            grader=result.grader, cot=v.cot, removed=list(v.removed),
        ))
    return probes


@dataclass
class Rewriting:
    backend: Any
    prompts: dict[str, Any]
    max_tokens: int | None = None  # None: twice the CoT's tokens plus 64


def ablate(backend, traces: list[Trace], questions: dict[str, Question], run: RunDir, profile: Profile,
           scale: Scale, conditions: list[str], steps: dict[str, list[Step]], tags: list[Tag],
           force: ForceSettings = ForceSettings(), seed: int = 0,
           rewriting: Rewriting | None = None) -> tuple[list[Probe], dict[str, Any]]:
    """Probe every (trace, condition) not yet in probes.jsonl; return all ablation probes and
    statistics of the edits (rule-based conditions: over every trace)."""
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise ValueError(f"unknown condition(s) {', '.join(unknown)}: choose from {', '.join(CONDITIONS)}")
    if any(c in REWRITE_CONDITIONS for c in conditions) and rewriting is None:
        raise ValueError("rewrite conditions need a rewriting backend")
    run.repair("probes.jsonl")
    done: dict[tuple[str, str], Probe] = {(p.question_id, p.condition): p
                                          for p in run.read("probes.jsonl", Probe) if p.condition != "cut"}
    tags_by_q: dict[str, list[Tag]] = {}
    for t in tags:
        tags_by_q.setdefault(t.question_id, []).append(t)
    made: list[Variant] = []
    rule_conds = [c for c in conditions if c in RULE_CONDITIONS]
    for trace in tqdm(traces, desc="ablate", unit="trace"):
        q_steps = steps.get(trace.question_id, [])
        q_tags = tags_by_q.get(trace.question_id, [])
        variants = rule_variants(trace, q_steps, q_tags, rule_conds, seed)
        made.extend(variants)
        todo = [v for v in variants if (trace.question_id, v.condition) not in done]
        for cond in conditions:
            if cond in REWRITE_CONDITIONS and (trace.question_id, cond) not in done:
                limit = rewriting.max_tokens or 2 * len(trace.cot_token_ids) + 64
                todo.append(rewrite_variant(rewriting.backend, rewriting.prompts["conditions"][cond], cond,
                                            trace, q_steps, limit))
        if not todo:
            continue
        order = {c: i for i, c in enumerate(conditions)}
        todo.sort(key=lambda v: order[v.condition])
        for probe in probe_variants(backend, trace, questions[trace.question_id], todo, profile, scale, force):
            run.append("probes.jsonl", probe)
            done[(probe.question_id, probe.condition)] = probe
    probes = [p for p in run.read("probes.jsonl", Probe) if p.condition != "cut"]
    return probes, edit_statistics(made)


def edit_statistics(variants: list[Variant]) -> dict[str, Any]:
    """Per rule-based condition: how much was taken out."""
    out: dict[str, Any] = {}
    by: dict[str, list[Variant]] = {}
    for v in variants:
        by.setdefault(v.condition, []).append(v)
    for cond, group in by.items():
        row: dict[str, Any] = {"traces": len(group), "changed": sum(1 for v in group if v.removed),
                               "mean_removed_items": float(np.mean([len(v.removed) for v in group]))}
        if cond in ("linear", "random-deletion"):
            row["mean_deleted_tokens"] = float(np.mean([v.info["deleted_tokens"] for v in group]))
            row["mean_deleted_steps"] = float(np.mean([v.info["deleted_steps"] for v in group]))
        if cond == "random-deletion":
            row["max_abs_token_gap_to_linear"] = int(max(abs(v.info["deleted_tokens"] - v.info["target_tokens"])
                                                         for v in group))
        if cond == "no-hedging":
            row["cues"] = int(sum(v.info["cues"] for v in group))
            row["cues_without_rule"] = int(sum(v.info["cues_kept"] for v in group))
            kept: dict[str, int] = {}
            for v in group:
                for cue in v.info["kept"]:
                    kept[cue.lower()] = kept.get(cue.lower(), 0) + 1
            row["kept_cues"] = dict(sorted(kept.items(), key=lambda kv: -kv[1]))
        out[cond] = row
    return out


def print_edits(edits: dict[str, Any]) -> None:
    for cond, row in edits.items():
        if cond in ("full", "none"):
            continue
        extra = ""
        if "mean_deleted_tokens" in row:
            extra = f"; mean {row['mean_deleted_steps']:.1f} steps / {row['mean_deleted_tokens']:.1f} tokens deleted"
        if "max_abs_token_gap_to_linear" in row:
            extra += f" (largest gap to linear: {row['max_abs_token_gap_to_linear']} tokens)"
        if "cues" in row:
            extra = f"; {row['cues']} hedging cues, {row['cues_without_rule']} left in place (no rule)"
        print(f"edits {cond:<16} changed {row['changed']}/{row['traces']} traces{extra}")


# ------------------------------------------------------------------------------ command line


def _tags_for(run: RunDir, backend) -> tuple[dict[str, list[Step]], list[Tag], dict[str, Any]]:
    """Steps and tags of the run, tagging first if tags.jsonl is missing or older than steps.jsonl."""
    from .tag import ensure_steps, tag_run, tags_are_current

    traces = run.read("traces.jsonl", Trace)
    recorded = run.read_manifest().get("stages", {}).get("tag", {}).get("settings", {})
    steps = ensure_steps(run, traces, backend)
    if not tags_are_current(run):
        if recorded.get("tagger") == "judge":
            raise ValueError(f"{run.path}: tags.jsonl came from the judge {recorded['judge_model']!r} but is "
                             f"older than steps.jsonl; re-run python -m cotprobe.tag {run.path} --judge ...")
        lexicon = recorded.get("lexicon")
        tagged = tag_run(run, None if lexicon in (None, "default") else lexicon, backend=backend)
        return tagged.steps, tagged.tags, tagged.settings
    return steps, run.read("tags.jsonl", Tag), recorded


def main(argv: list[str] | None = None) -> int:
    from .generate import (
        add_model_arguments,
        default_experiment,
        server_options,
        settings_from_run,
        setup_generation,
        traces_for,
    )
    from .plots import plot_conditions
    from .tag import tagger_name
    from .summary import condition_metrics, print_condition_summary, update_metrics

    parser = argparse.ArgumentParser(
        prog="python -m cotprobe.ablate",
        description=(
            "Remove behaviours (backtracking, alternatives, verification, hedging) from chains of thought, "
            "force an answer and a confidence after each modified CoT, and compare calibration with the full "
            "CoT. With no arguments: the default experiment on the embedded model (traces of runs/default, "
            "shared with python -m cotprobe.truncate; a few minutes on a CPU)."
        ),
    )
    parser.add_argument("run_dir", nargs="?", help="a run directory with traces (default: generate into --out)")
    add_model_arguments(parser)
    parser.set_defaults(limit=30, budget=192)  # the same traces as python -m cotprobe.truncate
    parser.add_argument("--out", default="runs/default", help="run directory when RUN_DIR is not given (default runs/default)")
    parser.add_argument("--conditions", default=DEFAULT_CONDITIONS,
                        help=f"comma list from {', '.join(CONDITIONS)} (default {DEFAULT_CONDITIONS})")
    parser.add_argument("--deletion-seed", type=int, default=0, help="seed of random-deletion (default 0)")
    parser.add_argument("--source", choices=("expected", "scored", "sampled"), default="expected",
                        help="confidence for the metrics (default expected)")
    parser.add_argument("--rewrite-model", default=None, help="model that rewrites CoTs (default: the run's model)")
    parser.add_argument("--rewrite-backend", choices=("hf", "openai"), default=None,
                        help="backend of the rewrite model (default: the run's backend)")
    parser.add_argument("--rewrite-base-url", default=None, help="server of --rewrite-backend openai")
    parser.add_argument("--rewrite-max-tokens", type=int, default=None,
                        help="token limit of a rewrite (default: twice the CoT's tokens plus 64)")
    parser.add_argument("--rewrite-prompts", default=None, help="rewrite prompts JSON (default cotprobe/_data/rewrite_prompts.json)")
    args = parser.parse_args(default_experiment(parser, argv))

    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown or not conditions:
        raise ValueError(f"--conditions: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(CONDITIONS)}")
    out = Path(args.run_dir or args.out)
    if args.run_dir:
        if not (out / "manifest.json").exists():
            raise ValueError(f"{out}: not a cotprobe run directory (no manifest.json)")
        settings_from_run(args, out)
    backend, questions, profile, scale, settings, recorded = setup_generation(args)
    rewriting = None
    if any(c in REWRITE_CONDITIONS for c in conditions):
        prompts = load_rewrite_prompts(args.rewrite_prompts)
        rewriter = backend
        kind = args.rewrite_backend or args.backend
        if (args.rewrite_model and args.rewrite_model != args.model) or kind != args.backend:
            from .backends import load_backend

            rewriter = load_backend(args.rewrite_model or args.model, kind=kind, cache_root=args.cache_dir,
                                    base_url=args.rewrite_base_url or args.base_url, **server_options(args))
        rewriting = Rewriting(rewriter, prompts, args.rewrite_max_tokens)
    with RunDir(out) as run:
        traces = traces_for(run, bool(args.run_dir), backend, questions, profile, scale, settings,
                            recorded, "ablate")
        by_id = {q.id: q for q in questions}
        steps, tags, tag_settings = _tags_for(run, backend)
        run.start_stage("ablate", {"tagger": tagger_name(tag_settings),
                                   "lexicon_sha256": tag_settings.get("lexicon_sha256"),
                                   "prompt_sha256": tag_settings.get("prompt_sha256"),
                                   "linear_behaviours": list(LINEAR_BEHAVIOURS),
                                   "hedge_rules": HEDGE_RULES_VERSION, "deletion_seed": args.deletion_seed,
                                   "force": asdict(settings.force)})
        if rewriting is not None:
            run.start_stage("ablate-rewrite", {"rewrite_model": args.rewrite_model or args.model,
                                               "rewrite_backend": args.rewrite_backend or args.backend,
                                               "prompts_sha256": rewriting.prompts["_sha256"],
                                               "max_tokens": args.rewrite_max_tokens, "decoding": "greedy"})
        probes, edits = ablate(backend, traces, by_id, run, profile, scale, conditions, steps, tags,
                               settings.force, args.deletion_seed, rewriting)
    result = condition_metrics(probes, source=args.source)
    result["edits"] = edits
    update_metrics(out, "ablate", result)
    print_condition_summary(result, out)
    print_edits(edits)
    failed = [p for p in probes if p.error]
    if failed:
        print(f"{len(failed)} probe(s) failed and were not scored, e.g. {failed[0].condition} on "
              f"{failed[0].question_id}: {failed[0].error}")
    figure = plot_conditions(result, out / "figures" / "ablation",
                             title=f"Calibration after ablating the CoT ({args.model}, confidence: {args.source})")
    print(f"figure: {figure}")
    return 0


if __name__ == "__main__":
    from .cli import run_main

    sys.exit(run_main(main))
