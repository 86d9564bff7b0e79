"""Records every stage reads and writes: typed dataclasses and their JSONL form.

Each record type maps one-to-one onto one line of a run-directory file
(questions -> traces.jsonl, steps.jsonl, tags.jsonl, judgements.jsonl, probes.jsonl). Reading validates
field names and value types and names the file and line of anything malformed.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar


class RecordError(ValueError):
    """A record that does not match its schema; the message says where and why."""


@dataclass
class Question:
    """One item of a question set.

    kind: "open" (free text, graded by aliases), "mc" (answer is a letter among choices)
    or "numeric" (answer is a number, graded with tolerance).
    """

    id: str
    question: str
    answer: str
    kind: str = "open"
    aliases: list[str] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    subject: str = ""
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


# Where a confidence value comes from: what the model wrote after "**Confidence**:", the scored
# label distribution's most likely label, or that distribution's expected value.
SOURCES = ("sampled", "scored", "expected")


@dataclass
class Confidence:
    """Confidence elicited two ways after a forced answer.

    sampled_*: what the model wrote after "**Confidence**:" (label None when unparsed).
    scored_*: the model's normalised probability of each scale label (never unparsed; absent
        where the backend could not score every label exactly: `scored_exact`).
    """

    sampled_text: str = ""
    sampled_label: str | None = None
    sampled_value: float | None = None
    scored_probs: list[float] = field(default_factory=list)
    scored_label: str | None = None
    scored_value: float | None = None  # argmax label's value
    expected_value: float | None = None  # sum_k p_k * value_k
    label_mass: float | None = None  # sum of the labels' unnormalised probabilities (None: not scored)
    # True: the distribution is the model's own; False: a server's top-k left out a token of some
    # label, so no distribution was recorded (never a bound); None: not scored at all
    scored_exact: bool | None = None
    scored_misses: int = 0  # label sequences left unscored (a token of theirs, or of another label, beyond the top-k)


@dataclass
class Trace:
    """One model run on one question: the chain of thought, the forced answer and confidence."""

    question_id: str
    model: str
    prompt: str
    cot: str
    answer: str
    confidence: Confidence
    prompt_tokens: int
    cot_token_ids: list[int]
    # "stop" (the model closed it), "eos", "budget" (forced closed at the budget); ingested traces
    # (cotprobe.ingest): "stop", "unclosed" (the thought never closed) or "none" (no thought)
    thinking_ended: str
    raw_output: str = ""
    correct: bool | None = None
    grader: str = ""
    style: str = ""


@dataclass
class Step:
    """One step of a CoT: cot[start:end] == text; sep is the gap up to the next step."""

    question_id: str
    index: int
    text: str
    start: int
    end: int
    sep: str
    token_start: int
    token_end: int


@dataclass
class Tag:
    """A behaviour found in one step; start/end are character offsets inside the step text."""

    question_id: str
    step_index: int
    behaviour: str
    cue: str
    start: int
    end: int
    tagger: str = "rules"


@dataclass
class Judgement:
    """An LLM judge's answer on the behaviours of one step (cotprobe.judge).

    judge: "judge:MODEL@PROMPT_HASH"; answer: what it wrote; behaviours: the parsed names
    (empty for "none"); error: why the answer did not parse ('' when it did).
    """

    question_id: str
    step_index: int
    judge: str
    answer: str
    behaviours: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class Verdict:
    """An LLM judge's verdict on one answer (cotprobe.judge.AnswerJudge), kept in verdicts.jsonl.

    verdict: "correct", "incorrect", "not_attempted", or None when the judge's output did not parse
    (error says why; graded incorrect and counted)."""

    question_id: str
    answer: str
    judge: str
    output: str
    verdict: str | None = None
    error: str = ""


@dataclass
class Probe:
    """A forced answer and confidence after a (truncated or modified) CoT."""

    question_id: str
    condition: str  # "cut" for truncation, or an ablation condition name
    fraction_requested: float
    fraction_realised: float
    step_index: int  # number of whole steps kept
    token_index: int  # number of CoT tokens kept
    answer: str
    confidence: Confidence
    correct: bool | None = None
    grader: str = ""
    cot: str | None = None  # the modified CoT, for ablations
    removed: list[str] = field(default_factory=list)  # what an ablation removed
    error: str = ""  # why a probe could not be made (e.g. a rewrite failed)


@dataclass
class Resample:
    """K sampled continuations of the thought from one cut, each forced to an answer and graded
    (truncate --resample): the empirical P(correct | prefix) and its Wilson 95% interval."""

    question_id: str
    fraction_requested: float
    token_index: int  # CoT tokens kept before the continuations start
    temperature: float
    answers: list[str]
    correct: list[bool | None]
    continuation_tokens: list[int]  # thought tokens each continuation added
    n_correct: int
    n_graded: int
    p_correct: float | None  # n_correct / n_graded (None when nothing could be graded)
    low: float | None
    high: float | None


@dataclass
class HiddenState:
    """One row of hidden_states.f16: the hidden state of the last token before a cut (the
    position whose next token the forcing suffix replaces), at the layers in the manifest."""

    question_id: str
    condition: str  # "cut" (truncate) or an ablation condition
    token_index: int  # CoT tokens before the position
    row: int  # row of hidden_states.f16


@dataclass
class LatentPrediction:
    """A linear probe's calibrated P(correct) for one probe, predicted out of fold (cotprobe.latent)."""

    question_id: str
    condition: str
    fraction_requested: float
    token_index: int
    layer: int
    confidence: float
    fold: int


RecordT = TypeVar("RecordT")
MAX_TOKEN_ID = 2**31 - 1  # what a tokenizer takes; no vocabulary is larger


def to_dict(record: Any) -> dict[str, Any]:
    return dataclasses.asdict(record)


def _check(value: Any, hint: Any, where: str) -> Any:
    """Validate (and build nested dataclasses for) one value against a type hint."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(value, arg, where)
            except RecordError as exc:
                errors.append(str(exc))
        raise RecordError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise RecordError(f"{where}: expected an object, got {type(value).__name__}")
        return from_dict(hint, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise RecordError(f"{where}: expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(hint) or (Any,)
        if item is int and all(type(v) is int for v in value):  # token ids (and counts): the long lists
            if value and (min(value) < 0 or max(value) > MAX_TOKEN_ID):
                i = next(i for i, v in enumerate(value) if not 0 <= v <= MAX_TOKEN_ID)
                raise RecordError(f"{where}[{i}]: {value[i]} is not a token id (0 to {MAX_TOKEN_ID})")
            return value
        return [_check(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise RecordError(f"{where}: expected an object, got {type(value).__name__}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecordError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecordError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint in (str, bool):
        if not isinstance(value, hint):
            raise RecordError(f"{where}: expected {hint.__name__}, got {value!r}")
        return value
    return value


@functools.lru_cache(maxsize=None)
def _schema(cls: type) -> tuple[dict[str, Any], frozenset[str], tuple[str, ...]]:
    """Type hints, field names and required field names of a record class (computed once)."""
    fields = dataclasses.fields(cls)
    required = tuple(f.name for f in fields
                     if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    return typing.get_type_hints(cls), frozenset(f.name for f in fields), required


def from_dict(cls: type[RecordT], data: dict[str, Any], where: str = "") -> RecordT:
    """Build a record from a dict, checking names, required fields and types."""
    where = where or cls.__name__
    hints, names, required = _schema(cls)
    unknown = sorted(set(data) - names)
    if unknown:
        raise RecordError(f"{where}: unknown field(s) {', '.join(unknown)} for {cls.__name__}")
    missing = [name for name in required if name not in data]
    if missing:
        raise RecordError(f"{where}: missing field(s) {', '.join(missing)} for {cls.__name__}")
    values = {k: _check(v, hints[k], f"{where}: field '{k}'") for k, v in data.items()}
    return cls(**values)


def read_jsonl(path: str | Path, cls: type[RecordT]) -> list[RecordT]:
    """Read and validate every line of a JSONL file; errors name the file and line."""
    return list(iter_jsonl(path, cls))


def iter_jsonl(path: str | Path, cls: type[RecordT], torn_ok: bool = False) -> Iterator[RecordT]:
    """Records of a JSONL file, validated; errors name the file and line. With torn_ok, a last
    line without its newline that is not valid JSON (an interrupted append) is skipped with a
    note on stderr instead of being an error."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                if torn_ok and not line.endswith("\n"):
                    print(f"cotprobe: {path}:{lineno}: skipped an incomplete last record "
                          "(an interrupted or ongoing write)", file=sys.stderr)
                    return
                raise RecordError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(data, dict):
                raise RecordError(f"{path}:{lineno}: expected a JSON object per line")
            yield from_dict(cls, data, f"{path}:{lineno}")


def write_jsonl(path: str | Path, records: Iterable[Any]) -> None:
    """Write records to a new file atomically (write a sibling, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(to_dict(record), ensure_ascii=False) + "\n")
    tmp.replace(path)
