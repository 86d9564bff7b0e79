"""Rule-based tagging of reasoning behaviours in chain-of-thought steps.

Five behaviours ship in ``cotprobe/_data/behaviours.json``: backtracking ("Wait, that's not
right"), alternative ("Alternatively, ..."), verification ("Let me double-check"),
hedging ("I think", "probably") and conclusion ("So the answer is"). Matching uses
spaCy's ``Matcher`` and ``PhraseMatcher`` over lower-cased tokens of a blank English
tokenizer (curly apostrophes are read as straight ones), then applies each pattern's
position and context constraints, drops hits that overlap an exception of the same
behaviour, and keeps the longest of overlapping hits of one behaviour (trailing
or leading punctuation a pattern needed, as in "Actually," or ", right?", is left out of
the cue).

Lexicon format (JSON; the file's ``"_format"`` key says the same)::

    {"version": "1.0",                      # tags record tagger "rules@1.0"
     "openers": ["okay", "hmm", "but", ...],  # may precede a sentence-initial cue
     "behaviours": {
       "backtracking": {
         "description": "...",
         "patterns": [
           {"phrases": ["wait", "hold on"], "position": "clause_initial"},
           {"tokens": [{"LOWER": "actually"}, {"LOWER": {"IN": [",", "no"]}}]},
           {"phrase": "let me check", "context": ["me"]}],
         "exceptions": [{"phrase": "wait time"}]}}}

An entry has exactly one of ``phrase``/``phrases`` (strings, tokenised and matched on
lower case) or ``tokens`` (a spaCy Matcher token pattern), and optionally ``position``
(``"any"``, ``"sentence_initial"``: only openers, commas, quotes, brackets, Markdown
marks or a list marker precede it in its sentence; ``"clause_initial"``: that, or right
after , ; : ( a dash or an opener word), ``context`` (lower-case tokens of which one
must occur in the same sentence), ``without`` (lower-case tokens none of which may follow
the cue before its sentence ends, line breaks not ending it: "Therefore" before an equation
is a computation, not a conclusion), ``unless`` (lower-case tokens that, following the cue
in its sentence, let it stand despite ``without``: "the number is 318 - 31 + 1 = 288" is a
result) and ``note``. Keys starting with "_" are ignored.

``tag_texts`` tags one trace's steps in order: each step alone as above, then the context rules
of `cotprobe.tag_context`, whose cues are the lexicon's ``context`` section (its ``signals`` are
entries in the same format). Every hit names what fired in ``TagHit.rule``.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from cotprobe.records import Step, Tag
from cotprobe.resources import data_path
from cotprobe.segment import default_nlp
from cotprobe.tag_context import ContextError, ContextRules

__all__ = [
    "BEHAVIOURS",
    "Lexicon",
    "LexiconError",
    "TagHit",
    "behaviour_counts",
    "load_lexicon",
    "tag_step",
    "tag_steps",
    "tag_texts",
]

BEHAVIOURS = ("backtracking", "alternative", "verification", "hedging", "conclusion")
POSITIONS = ("any", "sentence_initial", "clause_initial")
_ENTRY_KEYS = {"phrase", "phrases", "tokens", "position", "context", "without", "unless", "note"}
_DECOR = {'"', "'", "“", "‘", "(", "[", "*", "**", "_", "#", "-", ">", "•", "`"}
_BULLETS = {"-", "*", "+", "•", "‣", "◦", "▪"}
_CLAUSE_PUNCT = {",", ";", ":", "(", "—", "–", "-", "--", "...", "…"}


class LexiconError(ValueError):
    """A malformed lexicon; the message names the file, behaviour and pattern."""


@dataclass(frozen=True)
class TagHit:
    """A behaviour cue found in a text: ``text[start:end] == cue``.

    ``rule`` says what fired: the lexicon entry ("conclusion/patterns/5") or a context rule of
    `tag_texts` ("context:check_run", see `cotprobe.tag_context`); it is left out of equality.
    """

    behaviour: str
    cue: str
    start: int
    end: int
    rule: str = field(default="", compare=False)


@dataclass(frozen=True)
class _Rule:
    behaviour: str
    exception: bool
    position: str
    context: frozenset[str]
    without: frozenset[str]
    unless: frozenset[str]


class Lexicon:
    """A validated, compiled behaviour lexicon (see the module docstring for the format)."""

    def __init__(self, data: Mapping[str, Any], source: str = "<lexicon>"):
        from spacy.matcher import Matcher, PhraseMatcher

        self.source = source
        if not isinstance(data, Mapping) or not isinstance(data.get("behaviours"), Mapping):
            raise LexiconError(f"{source}: expected an object with a 'behaviours' object")
        self.version = str(data.get("version", "0"))
        openers = data.get("openers", [])
        if not isinstance(openers, list) or not all(isinstance(o, str) for o in openers):
            raise LexiconError(f"{source}: 'openers' must be a list of strings")
        self.openers = frozenset(o.lower() for o in openers)
        self.nlp = default_nlp()
        self._special = frozenset(self.nlp.tokenizer.rules or {})
        self._matcher = Matcher(self.nlp.vocab, validate=True)
        self._phrases = PhraseMatcher(self.nlp.vocab, attr="LOWER")
        self._rules: dict[str, _Rule] = {}
        self.behaviours: list[str] = []
        for name, spec in data["behaviours"].items():
            if name.startswith("_"):
                continue
            if not isinstance(spec, Mapping) or not isinstance(spec.get("patterns"), list):
                raise LexiconError(f"{source}: behaviour {name!r}: needs a 'patterns' list")
            self.behaviours.append(name)
            for section in ("patterns", "exceptions"):
                entries = spec.get(section, [])
                if not isinstance(entries, list):
                    raise LexiconError(f"{source}: behaviour {name!r}: {section!r} must be a list")
                for i, entry in enumerate(entries):
                    where = f"{source}: behaviour {name!r}, {section} pattern {i}"
                    self._add(f"{name}/{section}/{i}", name, section == "exceptions", entry, where)
        self.context, self.signals = None, None
        context = data.get("context")
        if context is not None:
            if not isinstance(context, Mapping) or not isinstance(context.get("signals", {}), Mapping):
                raise LexiconError(f"{source}: 'context' must be an object with a 'signals' object")
            try:
                self.context = ContextRules.from_data(context, source)
            except ContextError as exc:
                raise LexiconError(str(exc)) from None
            self.signals = Lexicon({"openers": openers, "behaviours": context.get("signals", {})},
                                   f"{source} (context signals)")

    def _add(self, key: str, behaviour: str, exception: bool, entry: Any, where: str) -> None:
        if not isinstance(entry, Mapping):
            raise LexiconError(f"{where}: expected an object, got {entry!r}")
        unknown = sorted(set(entry) - _ENTRY_KEYS)
        if unknown:
            raise LexiconError(f"{where}: unknown key(s) {', '.join(unknown)}")
        kinds = [k for k in ("phrase", "phrases", "tokens") if k in entry]
        if len(kinds) != 1:
            raise LexiconError(f"{where}: needs exactly one of 'phrase', 'phrases', 'tokens'")
        position = entry.get("position", "any")
        if position not in POSITIONS:
            raise LexiconError(f"{where}: position {position!r} is not one of {POSITIONS}")
        words = {}
        for option in ("context", "without", "unless"):
            value = entry.get(option, [])
            if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
                raise LexiconError(f"{where}: {option!r} must be a list of strings")
            words[option] = frozenset(c.lower() for c in value)
        self._rules[key] = _Rule(behaviour, exception, position, words["context"], words["without"], words["unless"])
        if kinds[0] == "tokens":
            tokens = entry["tokens"]
            if not isinstance(tokens, list) or not tokens or not all(isinstance(t, dict) for t in tokens):
                raise LexiconError(f"{where}: 'tokens' must be a non-empty list of token objects")
            try:
                self._matcher.add(key, [tokens])
            except (ValueError, KeyError, TypeError) as exc:  # spaCy's MatchPatternError is a ValueError
                raise LexiconError(f"{where}: invalid token pattern: {exc}") from None
        else:
            phrases = entry[kinds[0]]
            phrases = [phrases] if kinds[0] == "phrase" else phrases
            if not isinstance(phrases, list) or not phrases or not all(
                isinstance(p, str) and p.strip() for p in phrases
            ):
                raise LexiconError(f"{where}: {kinds[0]!r} must be non-empty string(s)")
            self._phrases.add(key, [self.nlp.make_doc(_normalise(p)) for p in phrases])

    def tag(self, text: str) -> list[TagHit]:
        """All behaviour cues in ``text``."""
        return self._tag_doc(text, self.nlp.make_doc(_normalise(text)))

    def tag_many(self, texts: Sequence[str]) -> list[list[TagHit]]:
        docs = self.nlp.tokenizer.pipe(_normalise(t) for t in texts)
        return [self._tag_doc(t, d) for t, d in zip(texts, docs)]

    def _tag_doc(self, text: str, doc) -> list[TagHit]:
        sent = self._sentence_ids(doc)
        words: dict[int, set[str]] = defaultdict(set)
        for tok in doc:
            words[sent[tok.i]].add(tok.lower_)
        hits: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
        blocked: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
        strings = self.nlp.vocab.strings
        matches = list(self._phrases(doc)) if len(self._phrases) else []
        matches += list(self._matcher(doc)) if len(self._matcher) else []
        for match_id, start, end in matches:
            rule = self._rules[strings[match_id]]
            if rule.context and not rule.context & words[sent[start]]:
                continue
            if rule.position != "any" and not self._initial(doc, start, rule.position):
                continue
            if rule.without and self._followed_by(doc, end, rule.without) and not (
                rule.unless and self._followed_by(doc, end, rule.unless)
            ):
                continue
            (blocked if rule.exception else hits)[rule.behaviour].append((start, end, strings[match_id]))
        out = []
        for behaviour, spans in hits.items():
            kept: list[tuple[int, int, str]] = []
            for s, e, key in sorted(set(spans), key=lambda se: (se[0] - se[1], se[0], se[2])):
                if not any(s < ke and ks < e for ks, ke, _ in kept + blocked[behaviour]):
                    kept.append((s, e, key))
            for s, e, key in kept:
                while e - s > 1 and doc[e - 1].is_punct:  # cue "actually", not "actually,"
                    e -= 1
                while e - s > 1 and doc[s].is_punct:  # cue "right", not ", right"
                    s += 1
                a, b = doc[s:e].start_char, doc[s:e].end_char
                out.append(TagHit(behaviour, text[a:b], a, b, key))
        order = {b: i for i, b in enumerate(self.behaviours)}
        return sorted(out, key=lambda h: (h.start, order[h.behaviour], h.end))

    def tag_texts(self, texts: Sequence[str]) -> list[list[TagHit]]:
        """The hits of one trace's steps, in order, with the context rules applied."""
        texts = list(texts)
        hits = self.tag_many(texts)
        if self.context is None or not texts:
            return hits
        adds, drops = self.context.apply(texts, hits, self.signals.tag_many(texts))
        order = {b: i for i, b in enumerate(self.behaviours)}
        out = []
        for text, own, add, drop in zip(texts, hits, adds, drops):
            own = [h for h in own if h.behaviour not in drop]
            have = {h.behaviour for h in own}
            own += [TagHit(b, text[s:e], s, e, rule) for b, s, e, rule in add if b not in have]
            out.append(sorted(own, key=lambda h: (h.start, order.get(h.behaviour, len(order)), h.end)))
        return out

    def _ends_sentence(self, doc, j: int) -> bool:
        tok = doc[j]
        if tok.is_space:
            return "\n" in tok.text
        text = tok.text
        if text[-1] in ".!?…":
            return len(text) == 1 or text not in self._special or bool(re.fullmatch(r"[A-Za-z]\.", text))
        # the ")" of a list marker such as "a)" at the start of a line
        return text == ")" and 0 < j and len(doc[j - 1].text) <= 3 and (
            j == 1 or (doc[j - 2].is_space and "\n" in doc[j - 2].text)
        )

    def _followed_by(self, doc, j: int, words: frozenset[str]) -> bool:
        """Whether one of ``words`` occurs from token j to the end of its sentence.

        Only . ! ? … end the sentence here, and a line break only before a list item, so an
        equation on the next line counts ("Thus, the rate is:\\n1.06 - 1 = 0.06") but a list
        that sums up does not; a "!" is itself a token to look for (a factorial) before it ends
        anything; the "*" of Markdown bold ("**42**") and a dash or slash not spaced on both
        sides (a range "400-488", a list marker, "m/s") are no operators.
        """
        for tok in doc[j:]:
            if tok.is_space and "\n" in tok.text and tok.i + 1 < len(doc) and doc[tok.i + 1].text in _BULLETS:
                return False
            if tok.lower_ in words and not _bold_mark(doc, tok.i) and not _unspaced_dash(doc, tok.i):
                return True
            if not tok.is_space and self._ends_sentence(doc, tok.i):
                return False
        return False

    def _sentence_ids(self, doc) -> list[int]:
        ids, current = [], 0
        for j in range(len(doc)):
            ids.append(current)
            current += self._ends_sentence(doc, j)
        return ids

    def _initial(self, doc, i: int, position: str) -> bool:
        j = i - 1
        while j >= 0:  # sentence-initial: only openers and decoration since the last boundary
            tok = doc[j]
            if self._ends_sentence(doc, j):
                return True
            if not (tok.is_space or tok.text in _DECOR or tok.text == "," or tok.lower_ in self.openers):
                break
            j -= 1
        else:
            return True
        if position == "sentence_initial":
            return False
        j = i - 1
        while j >= 0 and (doc[j].is_space or doc[j].text in {'"', "'", "“", "‘", "*", "**"}):
            j -= 1
        return j >= 0 and (doc[j].text in _CLAUSE_PUNCT or doc[j].lower_ in self.openers)


def _bold_mark(doc, i: int) -> bool:
    """Whether doc[i] is one "*" of a Markdown "**" (no space between the two)."""
    if doc[i].text != "*":
        return False
    return (i + 1 < len(doc) and doc[i + 1].text == "*" and not doc[i].whitespace_) or (
        i > 0 and doc[i - 1].text == "*" and not doc[i - 1].whitespace_
    )


def _unspaced_dash(doc, i: int) -> bool:
    """Whether doc[i] is a dash or slash that is not spaced as an operator ("5 - 3", "6 / 2"):
    a range "400-488", a list marker "- item", a unit "m/s"."""
    if doc[i].text not in {"-", "−", "/"}:
        return False
    return i == 0 or not doc[i].whitespace_ or not doc[i - 1].whitespace_ or doc[i - 1].is_space


def _normalise(text: str) -> str:
    """Straight apostrophes for curly ones (same length, so offsets are unchanged)."""
    return text.replace("’", "'")


def load_lexicon(path: str | Path | None = None) -> Lexicon:
    """Load and compile a lexicon file (default: the shipped ``behaviours.json``).

    Cached per path and modification time, so edits to the file are picked up.
    """
    path = Path(path) if path is not None else data_path("behaviours.json")
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise FileNotFoundError(f"{path}: no such lexicon file") from None
    return _load(str(path.resolve()), mtime)


@lru_cache(maxsize=16)
def _load(path: str, mtime: int) -> Lexicon:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LexiconError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    return Lexicon(data, source=path)


def _lexicon(lexicon: Lexicon | Mapping | str | Path | None) -> Lexicon:
    if isinstance(lexicon, Lexicon):
        return lexicon
    if isinstance(lexicon, Mapping):
        return Lexicon(lexicon)
    return load_lexicon(lexicon)


def tag_step(text: str, lexicon: Lexicon | Mapping | str | Path | None = None) -> list[TagHit]:
    """Behaviour cues in one step's text, sorted by position.

    ``lexicon``: a ``Lexicon``, a lexicon dict, a path, or None for the shipped one. A dict
    is compiled on every call; compile it once with ``Lexicon(data)`` for repeated use.
    """
    return _lexicon(lexicon).tag(text)


def tag_texts(texts: Sequence[str], lexicon: Lexicon | Mapping | str | Path | None = None) -> list[list[TagHit]]:
    """Behaviour hits of one trace's steps, tagged in order with what came before available to the
    context rules (`cotprobe.tag_context`: a recomputation after an announced check is
    verification, a sub-result that ends a computation a conclusion, ...); one list per step."""
    return _lexicon(lexicon).tag_texts(texts)


def tag_steps(
    question_id: str,
    steps: Sequence[Step],
    lexicon: Lexicon | Mapping | str | Path | None = None,
) -> list[Tag]:
    """``records.Tag`` rows for the steps of one CoT, in order (`tag_texts`: context rules apply;
    offsets inside each step's text)."""
    lex = _lexicon(lexicon)
    tagger = f"rules@{lex.version}"
    return [
        Tag(question_id, step.index, h.behaviour, h.cue, h.start, h.end, tagger)
        for step, hits in zip(steps, lex.tag_texts([s.text for s in steps]))
        for h in hits
    ]


def behaviour_counts(
    tags: Iterable[Tag], question_ids: Iterable[str] = (), behaviours: Sequence[str] = BEHAVIOURS
) -> dict[str, dict[str, int]]:
    """Number of tags per question and behaviour, zeros included.

    Questions listed in ``question_ids`` appear even without tags; every row has all of
    ``behaviours`` plus any other behaviour found in ``tags``.
    """
    tags = list(tags)
    names = list(behaviours) + sorted({t.behaviour for t in tags} - set(behaviours))
    counts = {q: dict.fromkeys(names, 0) for q in question_ids}
    for tag in tags:
        counts.setdefault(tag.question_id, dict.fromkeys(names, 0))[tag.behaviour] += 1
    return counts
