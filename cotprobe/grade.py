"""Graders: decide whether a model's short answer to a Question is correct.

One grader per question kind, each a small class with a ``name`` and a ``version`` that go into
every graded record as ``"name@version"`` (bump the version whenever a rule changes, so old and new
grades are never mixed silently):

- ``alias`` (kind "open"): normalised exact match against the answer and its aliases, or an alias
  found as a whole-word span inside a short answer (see ``AliasGrader``).
- ``mc`` (kind "mc"): reads a choice letter ("C", "(C)", "C) Paris", "The answer is C", "**C**",
  "\\boxed{C}", "Paris (C)", "C, Paris", "I would say C", "C is correct") or the text of one option;
  "A/C" is no letter.
- ``numeric`` (kind "numeric"): reads the last number on the first non-empty line of the answer
  and compares it with a relative tolerance.

Every grader reads only the first non-empty line of the answer text (``answer_line``, with a
``\\boxed{...}`` opened), so a trailing "**Confidence**: ..." line or explanation does not leak
into the grade. An open answer that names several candidates ("Solon or Cleisthenes", "Solon and
Cleisthenes") is wrong; one that rejects a candidate is read for the one it names.
``grade(question, answer_text)`` dispatches on ``question.kind`` and never raises on a bad answer:
an empty or unparseable answer is simply incorrect, with ``parsed=None``.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Protocol

from cotprobe.records import Question

__all__ = [
    "AliasGrader",
    "answer_line",
    "Grade",
    "Grader",
    "Graders",
    "MCGrader",
    "NumericGrader",
    "extract_letter",
    "extract_number",
    "get_grader",
    "grade",
    "normalize_answer",
    "RULES",
]


@dataclass(frozen=True)
class Grade:
    """The verdict on one answer.

    correct: whether the answer matches the gold answer.
    grader: "name@version" of the grader that decided.
    parsed: what the grader read from the answer (normalised text, a letter, a number),
        or None when it could read nothing.
    """

    correct: bool
    grader: str
    parsed: str | None


class Grader(Protocol):
    """What every grader provides."""

    name: str
    version: str

    def __call__(self, question: Question, answer_text: str) -> Grade: ...


# --------------------------------------------------------------------------- normalisation

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation) | set("‘’“”´`–—…«»·")
_APOSTROPHES = re.compile(r"(?<=\w)['’](?=\w)")  # o'neill -> oneill
_ABBREV_DOTS = re.compile(r"(?<=[^\W\d])\.(?=[^\W\d])")  # u.s.a -> usa (not 3.5)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")  # 1,000 -> 1000


def strip_accents(text: str) -> str:
    """Decompose with NFKD and drop combining marks: 'Pelé' -> 'Pele'."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize_answer(text: str) -> str:
    """TriviaQA/SQuAD-style normalisation used for every text comparison.

    Strips accents (NFKD), lower-cases, joins abbreviations and contractions ("U.S." -> "us",
    "O'Neill" -> "oneill"), drops thousands separators, turns other punctuation into spaces,
    removes the articles a/an/the and collapses whitespace.
    """
    text = strip_accents(text).lower().replace("_", " ")
    text = _APOSTROPHES.sub("", text)
    text = _ABBREV_DOTS.sub("", text)
    text = _THOUSANDS.sub("", text)
    text = "".join(" " if ch in _PUNCT else ch for ch in text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_LATEX_WRAPPER = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")


def unbox(text: str) -> str:
    """The content of the last ``\\boxed{...}`` in text (LaTeX text wrappers and ``$`` removed),
    or text itself when it has none: ``$\\boxed{\\text{B}}$`` -> ``B``."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return text
    depth, begin = 1, starts[-1]
    for end in range(begin, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            break
    else:
        return text
    inner = text[begin:end]
    while _LATEX_WRAPPER.search(inner):
        inner = _LATEX_WRAPPER.sub(r"\1", inner)
    return inner.replace("$", "").strip()


def answer_line(answer_text: str | None) -> str:
    """The first non-empty line of an answer, stripped, its ``\\boxed{}`` opened: what every
    grader reads.

    A forced answer may run on ("Paris\n**Confidence**: Likely", or an explanation); only
    its first line is the answer.
    """
    for line in (answer_text or "").splitlines():
        if line.strip():
            return unbox(line.strip())
    return ""


_HEDGE = re.compile(r"\s+or\s+|\(\s*or\s+|(?<!\d)\s*/\s*(?!\d)|\s*;\s*|\s+and/or\s+", re.IGNORECASE)


def is_hedge(line: str) -> bool:
    """Whether an answer offers several candidates ("Solon or Cleisthenes", "Solon (or Cleisthenes)",
    "A/C", "(A) or (B)"): graded wrong, as the paper's judge grades it, unless it is a gold answer."""
    return len([part for part in _HEDGE.split(line) if part.strip(" .,*_()[]")]) >= 2


_REJECTED_FIRST = re.compile(r"^(?:it\s+(?:is|was)\s+)?not\s+.+?(?:,|;|\s+but)\s+(?:it\s+(?:is|was)\s+|rather\s+)?"
                             r"(?P<named>.+)$", re.IGNORECASE)  # "Not Cleisthenes, it was Solon", "not Lyon but Paris"
_REJECTED_AFTER = re.compile(r"^(?P<named>.+?)(?:,|\s+but|\s+and)\s+not\s+.+$", re.IGNORECASE)  # "Paris, not Lyon"
_REJECTS_ONLY = re.compile(r"^(?:it\s+(?:is|was)\s+)?not\s+", re.IGNORECASE)  # "Not Paris"


def named_part(line: str) -> str:
    """What an answer that rejects a candidate names: "Solon" of "Solon, not Cleisthenes" and of
    "Not Cleisthenes, it was Solon"; "" of "Not Paris"; any other answer, itself."""
    for pattern in (_REJECTED_FIRST, _REJECTED_AFTER):
        match = pattern.match(line)
        if match:
            return match.group("named").strip()
    return "" if _REJECTS_ONLY.match(line) else line


_COMMA = re.compile(r"\s*,\s*(?!\d{3}\b)")  # not a thousands separator
_AND = re.compile(r"\s+(?:and|&)\s+", re.IGNORECASE)
_PARTICLES = frozenset("of the de da di del der van von la le du y e and al bin ibn".split())
_PLACE_QUESTION = re.compile(r"^\s*where\b|\b(?:city|town|country|state|province|county|capital|island|place)\b", re.I)


def _looks_like_a_name(part: str) -> bool:
    """Every word capitalised but particles ("Leonardo da Vinci"); "the Athenian lawgiver" describes."""
    words = [w.strip("\"'“”‘’()[]*_.") for w in part.split()]
    return bool(words) and words[0][:1].isupper() and all(w[:1].isupper() or w.lower() in _PARTICLES for w in words)


def names_others(line: str, gold: str, question: Question) -> bool:
    """Whether an answer holding the (normalised) gold names other candidates ("Solon and Cleisthenes",
    "Solon, Cleisthenes"); not a part that describes ("Solon, the lawgiver"), repeats the question
    ("Paris, France" for "the capital of France") or, after a comma, places a place ("Where is the Louvre?")."""
    asked = set(normalize_answer(question.question).split())
    for separator in (_COMMA, _AND):
        parts = [p for p in separator.split(line) if normalize_answer(p)]
        holding = [p for p in parts if _contains_span(normalize_answer(p).split(), gold.split())]
        if len(parts) < 2 or not holding or (separator is _COMMA and _PLACE_QUESTION.search(question.question)):
            continue
        if any(_looks_like_a_name(p) and not set(normalize_answer(p).split()) <= asked
               for p in parts if p not in holding):
            return True
    return False


# --------------------------------------------------------------------------- alias grader

# Normalised aliases this short, or in this list, are never matched as a span inside a longer
# answer (they would match almost anything); they still count on an exact match.
_TRIVIAL_ALIASES = frozenset(
    "i it is of in on at to and or no yes not by as be we he she they you his her its".split()
)


def _contains_span(haystack: list[str], needle: list[str]) -> bool:
    """Whether the token list `needle` occurs contiguously in `haystack`."""
    width = len(needle)
    return any(haystack[i : i + width] == needle for i in range(len(haystack) - width + 1))


class AliasGrader:
    """Normalised alias match for open questions.

    Correct when the normalised answer equals the normalised gold answer or any alias, or when
    the answer is short (at most ``max_span_tokens`` tokens after normalisation, 10 by default)
    and contains a gold alias as a whole-word span: "Paris, France" is correct for "Paris", a
    long sentence mentioning Paris in passing is not. Aliases shorter than ``min_span_chars``
    (2) or made only of function words ("it", "no", ...) are used for exact matches only.
    An answer naming several candidates ("Solon or Cleisthenes", "Solon and Cleisthenes", "Solon,
    Cleisthenes") is wrong (``is_hedge``, ``names_others``); one rejecting a candidate is read for
    the one it names (``named_part``). Known limit: where the question asks for a place, a name after
    a comma passes as the answer's place ("Paris, Lyon" reads like "Paris, France").
    """

    name = "alias"
    version = "3"

    def __init__(self, max_span_tokens: int = 10, min_span_chars: int = 2):
        self.max_span_tokens = max_span_tokens
        self.min_span_chars = min_span_chars

    def _spannable(self, alias: str) -> bool:
        return len(alias) >= self.min_span_chars and alias not in _TRIVIAL_ALIASES

    def __call__(self, question: Question, answer_text: str) -> Grade:
        tag = f"{self.name}@{self.version}"
        line = answer_line(answer_text)
        response = normalize_answer(line)
        if not response:
            return Grade(False, tag, None)
        golds = {normalize_answer(a) for a in [question.answer, *question.aliases]} - {""}
        if response in golds:
            return Grade(True, tag, response)
        named = named_part(line)
        if normalize_answer(named) in golds:
            return Grade(True, tag, response)
        if not named or is_hedge(named):
            return Grade(False, tag, response)
        tokens = normalize_answer(named).split()
        if len(tokens) <= self.max_span_tokens:
            for gold in sorted(golds, key=len, reverse=True):
                if self._spannable(gold) and _contains_span(tokens, gold.split()):
                    return Grade(not names_others(named, gold, question), tag, response)
        return Grade(False, tag, response)


# --------------------------------------------------------------------------- mc grader

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

_BARE_LETTER = re.compile(r"^\W*([A-Za-z])\W*$")  # "C", "(C)", "C.", "**C**", "c"
_LEADING_LETTER = re.compile(r"^[\s*_(\[]*([A-Z])\s*[).:\],]")  # "C) Paris", "(C) Paris", "C. x", "C, Paris"
_STATED_LETTER = re.compile(  # "The answer is C", "Option **C**", "it's C", "I would say C", "Definitely C"
    r"(?i:\b(?:answer|option|choice)\b|\bit(?:['’]s|\s+is)\b|\bI(?:\s+would|['’]d|['’]ll)?\s+"
    r"(?:say|go\s+with|pick|choose)\b|\b(?:definitely|certainly|surely|clearly|obviously|probably|likely)\b)"
    r"\s*(?i:is|would be|should be)?\s*:?\s*[*_(\[]*([A-Z])\b(?!['’]\w)")
_LETTER_IS_RIGHT = re.compile(  # "C is correct", "(C) is the right answer"
    r"(?<![A-Za-z])\(?([A-Z])\)?\s+is\s+(?:correct|right|the\s+(?:(?:correct|right)\s+)?answer)\b")
_LETTER_THEN_TEXT = re.compile(r"^[\s*_\[]*([A-Z])\s+\(")  # "B (Paris)"
_PAREN_LETTER = re.compile(r"\(([A-Z])\)")  # "Paris (B)", "It's (B) Paris"
_LETTER_HEDGE = re.compile(r"(?<![A-Za-z])\(?([A-Z])\)?\s*(?:(?:/|\bor\b|\band/or\b)\s*\(?([A-Z])\)?(?![A-Za-z])"
                           r"|,\s*\(?([A-Z])\)?\W*$)")  # "A/C", "A or C", "A, C"


def _option_index(text: str, choices: list[str], canon) -> int | None:
    """Index of the one option whose canonical text equals the answer's, else None."""
    hits = [i for i, choice in enumerate(choices) if canon(choice.strip()) == canon(text)]
    return hits[0] if len(hits) == 1 and hits[0] < len(LETTERS) else None


def _in_options(letter: str, choices: list[str]) -> bool:
    return not choices or LETTERS.index(letter) < len(choices)


def extract_letter(answer_text: str, choices: list[str]) -> str | None:
    """Read a choice letter from an answer, or None.

    Tried in order (after opening a ``\\boxed{}``): the answer's text equal to exactly one
    option (case-folded; not for a single-letter answer, which is read as a letter); two
    letters offered as alternatives ("A/C", "(A) or (B)", "A, C": a hedge, read as no letter); a
    bare letter ("C", "(C)", "**C**"); a leading letter with a delimiter ("C) Paris", "C. Paris",
    "C, Paris", "C (Paris)"); a stated letter ("The answer is C", "Option (C)", "I think it's C",
    "I would say C", "Definitely C"); a letter said to be right ("C is correct"); one
    parenthesised letter ("Paris (C)", "It's (C) Paris"); the answer equal to exactly one
    option after ``normalize_answer``. A letter past the last option ("I, for one, ...") is none.
    """
    text = answer_line(answer_text)
    if not text:
        return None
    is_letter = len(text) == 1 and text.isalpha()
    index = None if is_letter else _option_index(text, choices, str.casefold)
    if index is None:
        hedge = _LETTER_HEDGE.search(text)
        if hedge and hedge.group(1) != (hedge.group(2) or hedge.group(3)):
            return None
        for pattern in (_BARE_LETTER, _LEADING_LETTER, _LETTER_THEN_TEXT):
            match = pattern.match(text)
            if match and _in_options(match.group(1).upper(), choices):
                return match.group(1).upper()
        for pattern in (_STATED_LETTER, _LETTER_IS_RIGHT):
            match = pattern.search(text)
            if match and _in_options(match.group(1), choices):
                return match.group(1)
        letters = set(_PAREN_LETTER.findall(text))
        if len(letters) == 1:
            return letters.pop()
        index = _option_index(text, choices, normalize_answer)
    return None if index is None else LETTERS[index]


class MCGrader:
    """Multiple choice: the letter read from the answer must equal the gold letter."""

    name = "mc"
    version = "3"

    def __call__(self, question: Question, answer_text: str) -> Grade:
        tag = f"{self.name}@{self.version}"
        letter = extract_letter(answer_text, question.choices)
        gold = question.answer.strip().upper()
        return Grade(letter is not None and letter == gold, tag, letter)


# --------------------------------------------------------------------------- numeric grader

_NUMBER = re.compile(
    r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?![\d.]))?"
    r"|(?<![\w.])-?\.\d+"
)
_SMALL = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
).split()
_TENS = {"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90, "hundred": 100, "thousand": 1000}
_WORD_NUMBERS = {word: i for i, word in enumerate(_SMALL)} | _TENS
_WORD = re.compile(r"\b(" + "|".join(_WORD_NUMBERS) + r")\b", re.IGNORECASE)


def _to_fraction(token: str) -> Fraction:
    """'1,234' -> 1234, '-2.5' -> -5/2, '3 / 4' -> 3/4."""
    token = token.replace(",", "").replace(" ", "")
    if "/" in token:
        num, den = token.split("/")
        if Fraction(den) == 0:
            raise ZeroDivisionError(token)
        return Fraction(num) / Fraction(den)
    return Fraction(token)


def extract_number(answer_text: str) -> Fraction | None:
    """Read the number an answer gives, or None.

    Looks only at the first non-empty line (the answer itself, not any explanation after it)
    and takes the *last* number on it, so "3 + 4 = 7" reads 7 and "about 1,234 km" reads 1234.
    Handles thousands commas, negatives, decimals and fractions ("3/4"); when the line holds no
    digits, a single number word ("twelve", "zero" ... "twenty", tens, "hundred") is used.
    """
    line = answer_line(answer_text)
    matches = _NUMBER.findall(line)
    for token in reversed(matches):
        try:
            return _to_fraction(token)
        except (ValueError, ZeroDivisionError):
            continue
    words = _WORD.findall(line)
    if words:
        return Fraction(_WORD_NUMBERS[words[-1].lower()])
    return None


def _format_number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else str(float(value))


class NumericGrader:
    """Numeric answers: the number read from the answer must equal the gold number.

    Equality is ``math.isclose`` with ``rel_tol`` (1e-6 by default) and a tiny ``abs_tol`` so
    that a gold answer of 0 is matched by 0.0. The gold number is read from ``question.answer``
    with the same rules; a gold answer that holds no number never matches.
    """

    name = "numeric"
    version = "2"

    def __init__(self, rel_tol: float = 1e-6, abs_tol: float = 1e-12):
        self.rel_tol = rel_tol
        self.abs_tol = abs_tol

    def __call__(self, question: Question, answer_text: str) -> Grade:
        tag = f"{self.name}@{self.version}"
        value = extract_number(answer_text)
        if value is None:
            return Grade(False, tag, None)
        gold = extract_number(question.answer)
        correct = gold is not None and math.isclose(
            float(value), float(gold), rel_tol=self.rel_tol, abs_tol=self.abs_tol
        )
        return Grade(correct, tag, _format_number(value))


# --------------------------------------------------------------------------- graders by kind


@dataclass(frozen=True)
class Graders:
    """A grader for each question kind, dispatching on ``question.kind``: itself a `Grader`.

    An experiment grades with one of these (`cotprobe.forcing.Prober.grader`), passed to every
    stage that grades; there is no process-wide registry, so two experiments in one process (rules
    and an LLM judge, say) grade each with its own."""

    by_kind: Mapping[str, Grader]
    name: str = "rules"
    version: str = "1"

    @classmethod
    def every_kind(cls, grader: Grader) -> "Graders":
        """`grader` (an LLM judge, say) for every question kind the rules know."""
        return cls(MappingProxyType(dict.fromkeys(RULES.by_kind, grader)), grader.name, grader.version)

    def for_kind(self, kind: str) -> Grader:
        """The grader of a question kind; a ValueError names the known kinds."""
        try:
            return self.by_kind[kind]
        except KeyError:
            known = ", ".join(sorted(self.by_kind))
            raise ValueError(f"no grader for question kind {kind!r} (known kinds: {known})") from None

    def __call__(self, question: Question, answer_text: str) -> Grade:
        return self.for_kind(question.kind)(question, answer_text)


RULES = Graders(MappingProxyType({"open": AliasGrader(), "mc": MCGrader(), "numeric": NumericGrader()}))


def get_grader(kind: str) -> Grader:
    """The rule grader for a question kind; a ValueError names the known kinds."""
    return RULES.for_kind(kind)


def grade(question: Question, answer_text: str | None, grader: Grader = RULES) -> Grade:
    """Grade one answer with `grader` (by default the rules for ``question.kind``).

    Never raises on the answer: None, empty or unreadable text is incorrect with parsed=None.
    """
    return grader(question, answer_text or "")
