"""Removing hedges from a step's text while keeping its grammar (the `no-hedging` ablation):
"I think (that) it is X" -> "It is X", "it is probably X" -> "it is X", "X, I think." -> "X.",
"it might be X" -> "it is X", "it seems correct" -> "it is correct"; a sentence of pure doubt
("I'm not sure.") is dropped; a cue that no rule covers is kept (and counted)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

HEDGE_RULES_VERSION = "1.0"  # bump when the rules below change what they produce

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
