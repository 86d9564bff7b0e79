"""Split a chain of thought into steps, losslessly.

A step is a sentence, a list item, a Markdown heading, a fenced code block or a display
math block. Steps never start or end with whitespace; the gap after each one (``sep``)
is whitespace only, so ``text[:steps[0].start] + "".join(s.text + s.sep for s in steps)``
is ``text`` again (the leading part is whitespace too).

How: fenced code (```` ``` ````/``~~~``) and display math (``$$..$$``, ``\\[..\\]``,
``\\begin{env}..\\end{env}``) are cut out first and each kept whole (an unclosed fence
runs to the end of the text, as in Markdown). The rest is cut at
blank lines (paragraphs), at the start of every list item line (``-``, ``*``, ``1.``,
``2)``, ``a)``, ``(iv)``, nested or not) and around Markdown headings, and each piece is
split into sentences with spaCy's rule-based sentencizer on a blank English pipeline.
Sentence cuts are then refined: never inside inline math (``$..$``, ``\\(..\\)``) or
inline code, not after abbreviations such as "Fig." or "approx." before a number,
opening brackets and quotes go with the sentence they open, and a period the tokenizer
leaves attached ("... is $x$. Then", "... is x. Then", "the answer is B. Wait") ends a
sentence before a capital, except after known abbreviations and initials ("George W.
Bush", "J. K. Rowling"); an abbreviation-like unit after a number ("101,325 Pa. So")
does end one. Chinese and Japanese sentences, which no space follows, end after 。, ！, ？
or ；, unless a closing quote or bracket follows (quoted speech goes on). A sentence never
ends on a comma or colon, and a "!" glued to a number, letter or bracket before a word that
is not capitalised is a factorial ("9! divided by (5! * 2!)", "(n-1)! ways"). Finally a piece that only leads into the next
(ending on a comma, as in "So," before an equation on its own line; a lone filler such as
"Hmm."; one connective word and a colon, "So:" or "Where:", before anything but code; a two-word
lead-in such as "I had:" before display math) is joined to it.

Token offsets (`token_char_starts`) come from one windowed batch decode, linear in the
number of tokens.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

from cotprobe.records import Step

__all__ = [
    "Span",
    "split_steps",
    "step_token_spans",
    "token_char_starts",
    "to_records",
]


@dataclass(frozen=True)
class Span:
    """One step: ``text == source[start:end]``; ``sep`` is the whitespace after it."""

    text: str
    start: int
    end: int
    sep: str


_BLOCKS = re.compile(
    r"^[^\S\n]*(?P<fence>```|~~~).*?(?:^[^\S\n]*(?P=fence)[^\n]*|\Z)"  # fenced code
    r"|\$\$.+?\$\$"  # display math
    r"|\\\[.+?\\\]"
    r"|\\begin\{(?P<env>[A-Za-z]+\*?)\}.*?\\end\{(?P=env)\}",
    re.DOTALL | re.MULTILINE,
)
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")
_LIST_MARKER = r"[^\S\n]*(?:[-*+•‣◦▪]|\d{1,3}[.)]|[A-Za-z][.)]|[ivxIVX]{1,4}[.)]|\(\w{1,4}\))[^\S\n]+(?=\S)"
_ITEM = re.compile(r"^" + _LIST_MARKER, re.MULTILINE)
_HEADING = re.compile(r"^[^\S\n]*#{1,6}[^\S\n][^\n]*$", re.MULTILINE)
# Inline math and code: opening $ followed by a non-space, closing $ after a non-space and
# not before a digit (Pandoc's rule, so "$5 and $10" is not math).
_INLINE = re.compile(r"(?<![\\$])\$(?=[^\s$])[^$\n]*?(?<=[^\s\\])\$(?!\d)|\\\(.*?\\\)|`[^`\n]+`")
_ABBREVIATIONS = {
    "al", "approx", "cf", "ch", "def", "eq", "eqn", "eqs", "ex", "fig", "figs", "lem",
    "no", "nos", "p", "pp", "prop", "ref", "refs", "resp", "sec", "thm", "vol", "vs",
}
_OPENERS = {"(", "[", "{", '"', "'", "“", "‘", "«"}
# Chinese and Japanese end a sentence with 。！？ (or ；) and no space, so the English tokenizer
# keeps the whole paragraph one token run and its sentencizer never splits it. A sentence mark
# inside quoted speech (before a closing quote or bracket: 「パリだ。」と言った) ends no sentence.
_CJK_END = re.compile(r"[。｡！？；]+(?![」』）】〕》〉”’\"')\]])(?=\s*\S)")


@lru_cache(maxsize=1)
def default_nlp():
    """The shared blank English pipeline with a sentencizer (built once, offline)."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.max_length = 10**8
    return nlp


def _structural_cuts(text: str) -> tuple[set[int], list[tuple[int, int, int]]]:
    """Cut points from blocks, paragraphs, list items and headings; plus prose pieces.

    Returns (cuts, prose) where prose holds (start, end, content_start) for each piece to
    sentence-split; content_start skips a list marker so "1." is not read as a sentence.
    """
    cuts = {0, len(text)}
    prose_regions, pos = [], 0
    for m in _BLOCKS.finditer(text):
        prose_regions.append((pos, m.start()))
        cuts.update((m.start(), m.end()))
        pos = m.end()
    prose_regions.append((pos, len(text)))

    prose = []
    for start, end in prose_regions:
        part = text[start:end]
        local = {0, len(part)}
        local.update(m.start() for m in _BLANK_LINE.finditer(part))
        local.update(m.start() for m in _ITEM.finditer(part))
        for m in _HEADING.finditer(part):
            local.update((m.start(), m.end()))
        bounds = sorted(local)
        for a, b in pairwise(bounds):
            item = _ITEM.match(part, a)
            prose.append((start + a, start + b, start + (item.end() if item else a)))
        cuts.update(start + c for c in local)
    return cuts, prose


def _glued_end(toks, k: int, special: frozenset[str]) -> bool:
    """Whether toks[k] ends a sentence with a period the tokenizer left attached.

    "$x$." and "B." are single tokens, so the sentencizer does not split after them.
    Abbreviations spaCy knows ("Dr.", "e.g.") and initials ("W." in "George W. Bush",
    "J. K."; a single capital after a capitalised word or at the start) do not end one.
    """
    text = toks[k].text
    if len(text) < 2 or text[-1] not in ".!?" or re.fullmatch(r"(?:[A-Za-z]\.){2,}", text):
        return False
    if re.fullmatch(r"[A-Za-z]\.", text):
        if text[0].islower():
            return True
        before = toks[k - 1].text if k else ""
        after = toks[k + 1].text if k + 1 < len(toks) else ""
        if not before or before[:1].isupper() or before[-1] in ".!?:":
            return False
        return not re.fullmatch(r"[A-Z]\.", after)
    if text in special:  # "Pa." after a number is a unit ending a sentence, "Dr." is a title
        return k > 0 and toks[k - 1].like_num and text[:-1].isalpha()
    return True


def _false_end(doc, k: int, nxt: int) -> bool:
    """Whether spaCy's sentence end at token k (last non-space before the start nxt) is none.

    A sentence does not end on a comma or colon ("etc.), the ..."), and a "!" glued
    to a number, letter or closing bracket before a word that is not capitalised is a factorial
    ("9! divided by (5! * 2!)", "(n-1)! ways"), not an exclamation.
    """
    if doc[k].text in {",", ":"}:
        return True
    while k > 0 and doc[k].is_punct and doc[k].text not in {".", "!", "?"}:  # ")", "*", quotes
        k -= 1
    if doc[k].text != "!" or k == 0 or doc[k - 1].whitespace_:
        return False
    before = doc[k - 1].text[-1]
    return (before.isalnum() or before in ")]}") and not doc[nxt].text[:1].isupper()


def _sentence_cuts(doc, offset: int, special: frozenset[str]) -> list[int]:
    """Sentence starts (char offsets into the full text) in one spaCy doc, refined."""
    toks = [t for t in doc if not t.is_space]
    starts = {t.i for t in doc if t.is_sent_start and t.i > 0}
    for k, tok in enumerate(toks[1:], 1):
        if tok.text[:1].isupper() and _glued_end(toks, k - 1, special):
            starts.add(tok.i)
    cuts = []
    for i in sorted(starts):
        j = i
        while j < len(doc) and doc[j].is_space:  # the sentencizer may start on "\n"
            j += 1
        if j == len(doc):
            continue
        k = j - 1
        while k > 0 and doc[k].is_space:
            k -= 1
        if _false_end(doc, k, j):
            continue
        if k > 0 and doc[k].text == "." and doc[k - 1].lower_ in _ABBREVIATIONS:
            nxt = doc[j].text[:1]
            if nxt.isdigit() or nxt.islower() or nxt == "(":
                continue
        while j > 0 and doc[j - 1].text in _OPENERS and not doc[j - 1].whitespace_:
            j -= 1  # an opening bracket or quote belongs to the sentence it opens
        cuts.append(offset + doc[j].idx)
    return cuts


def _cjk_cuts(text: str, start: int, end: int) -> list[int]:
    """Sentence cuts after Chinese or Japanese sentence marks in text[start:end] (see _CJK_END)."""
    return [start + m.end() for m in _CJK_END.finditer(text[start:end])]


_DISPLAY_START = re.compile(r"\$\$|\\\[|\\begin\{")
_FENCE_START = re.compile(r"```|~~~")


_FILLER = re.compile(r"(?:hmm+|hm|um+|uh+|uhm|ah+|oh|huh)[.,!…]*", re.IGNORECASE)


def _lead_in(piece: str, nxt: str) -> bool:
    """Whether ``piece`` only leads into ``nxt`` and so is no step of its own.

    One connective word ending on a colon ("So:", "Where:") leads into anything but fenced
    code (a label such as "Output:" stays on its own). Otherwise a
    list item or heading is never led into, and a lead-in is a piece ending on a comma ("So,",
    "And,"), a lone filler ("Hmm.", "Um,") or two words ending on a colon before display math
    ("I had:" then ``\\[ .. \\]``).
    """
    words = len(piece.split())
    if piece[-1] == ":" and words == 1 and not _FENCE_START.match(nxt):
        return True
    if _ITEM.match(nxt) or _HEADING.match(nxt):
        return False
    if piece[-1] == "," or _FILLER.fullmatch(piece):
        return True
    return piece[-1] == ":" and words <= 2 and bool(_DISPLAY_START.match(nxt))


def split_steps(text: str, nlp=None) -> list[Span]:
    """Split ``text`` into steps (see the module docstring); ``[]`` if it is blank.

    ``nlp`` is any spaCy pipeline that sets sentence starts (default: a cached blank
    English pipeline with a sentencizer).
    """
    if not text or text.isspace():
        return []
    nlp = nlp or default_nlp()
    cuts, prose = _structural_cuts(text)
    prose = [p for p in prose if text[p[2] : p[1]].strip()]
    inline = [(m.start(), m.end()) for m in _INLINE.finditer(text)]
    inline_starts = [a for a, _ in inline]
    docs = nlp.pipe(text[c:b] for _, b, c in prose)
    special = frozenset(nlp.tokenizer.rules or {})
    for (_, end, content), doc in zip(prose, docs):
        for cut in _sentence_cuts(doc, content, special) + _cjk_cuts(text, content, end):
            k = bisect_left(inline_starts, cut) - 1  # the last inline span starting before
            if k < 0 or cut >= inline[k][1]:
                cuts.add(cut)

    bounds = sorted(cuts)
    pieces: list[tuple[int, int]] = []
    for a, b in pairwise(bounds):
        piece = text[a:b]
        stripped = piece.strip()
        if not stripped:
            continue
        start = a + (len(piece) - len(piece.lstrip()))
        if pieces and _lead_in(text[pieces[-1][0] : pieces[-1][1]], stripped):
            pieces[-1] = (pieces[-1][0], start + len(stripped))
        else:
            pieces.append((start, start + len(stripped)))
    ends = [s for s, _ in pieces[1:]] + [len(text)]
    return [Span(text[s:e], s, e, text[e:nxt]) for (s, e), nxt in zip(pieces, ends)]


def step_token_spans(
    steps: Sequence, token_char_starts: Sequence[int], n_chars: int
) -> list[tuple[int, int]]:
    """Map steps (anything with ``.start``/``.end`` char offsets) to token index spans.

    ``token_char_starts[k]`` is the char offset where token k starts in a text of
    ``n_chars`` characters (non-decreasing). For each step, ``token_start`` is the token
    containing ``step.start`` (the last token starting at or before it) and
    ``token_end`` is the first token starting at or after ``step.end`` (``n_tokens`` if
    none). A token that straddles two steps goes to the later one (the one whose first
    character it holds), so spans never overlap::

        0 <= s0 <= e0 <= s1 <= e1 <= ... <= n_tokens

    and tokens in ``[e_i, s_{i+1})`` (and before ``s0``, after the last end) lie wholly in
    whitespace gaps. Keeping the first ``e_i`` tokens keeps steps 0..i whole, unless a
    token straddles steps i and i + 1 (possible only where no whitespace separates them).
    Starts past ``n_chars`` (a decoded text longer than the CoT) count as after its end.
    Raises ValueError for decreasing starts or a step outside ``[0, n_chars]``.
    """
    starts = list(token_char_starts)
    if any(b < a for a, b in pairwise(starts)):
        raise ValueError("token_char_starts must be non-decreasing")
    spans = []
    for step in steps:
        if not 0 <= step.start <= step.end <= n_chars:
            raise ValueError(f"step [{step.start}, {step.end}) is outside [0, {n_chars}]")
        spans.append([max(bisect_right(starts, step.start) - 1, 0), bisect_left(starts, step.end)])
    for prev, nxt in pairwise(spans):
        prev[1] = min(prev[1], nxt[0])
        prev[0] = min(prev[0], prev[1])
    return [(a, b) for a, b in spans]


_WINDOW = 8  # tokens of left context for each token's decode (merges, leading spaces, UTF-8)


def token_char_starts(backend, ids: Sequence[int], window: int = _WINDOW) -> list[int]:
    """Character offset at which each token starts in ``backend.decode(ids)``, in linear time.

    ``starts[k]`` is the length of the text of ``ids[:k]``. Rather than decode every prefix
    (quadratic), each token's length is read from a short window: the decode of ``ids[p:k+1]``
    minus that of ``ids[p:k]`` with ``p = k - window`` (0 near the start), so a token whose
    text depends on its neighbours (a SentencePiece leading space, clean-up of spaces before
    punctuation, a UTF-8 character split over byte tokens) is measured as it reads in context.
    All windows go through ``backend.decode_many`` in one call (the tokenizer's ``batch_decode``
    where the backend has a Hugging Face tokenizer). Starts never decrease (a byte token that
    completes a character adds nothing).
    """
    ids = list(ids)
    pieces = []
    for k in range(len(ids)):
        p = max(0, k - window)
        pieces += [ids[p:k], ids[p : k + 1]]
    texts = backend.decode_many(pieces)
    starts, pos = [], 0
    for k in range(len(ids)):
        starts.append(pos)
        pos += max(0, len(texts[2 * k + 1]) - len(texts[2 * k]))
    return starts


def to_records(
    question_id: str, text: str, token_char_starts: Sequence[int] | None = None
) -> list[Step]:
    """Segment ``text`` into ``records.Step`` rows (token spans -1 without token offsets)."""
    spans = split_steps(text)
    if token_char_starts is None:
        tokens = [(-1, -1)] * len(spans)
    else:
        tokens = step_token_spans(spans, token_char_starts, len(text))
    return [
        Step(question_id, i, s.text, s.start, s.end, s.sep, a, b)
        for i, (s, (a, b)) in enumerate(zip(spans, tokens))
    ]
