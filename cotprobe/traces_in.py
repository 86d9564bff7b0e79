"""Reading reasoning traces made elsewhere (vLLM or API runs, public trace sets).

Each format is read into `ExternalTrace` rows: the question (with its gold answer), the
thought alone (no think tags, no answer), the text written after the thought, and how the
thought ended. Formats:

- ``jsonl``: one object a line with ``question`` (or ``problem``/``prompt``), the gold
  ``answer`` (or ``gold``/``gold_answer``/``correct_answer``/``gt_answer``), optional ``id``
  (or ``question_id``), ``aliases``, ``choices``, ``kind``, ``model``, and the output as one
  ``response`` (or ``output``/``completion``) text with the thought in think tags before the
  answer, or as separate ``reasoning_content`` and ``content`` fields (what OpenAI-compatible
  servers return for reasoning models).
- ``openai-chat``: chat-completion dumps, one object a line holding a ``request`` (its last
  user message is the question) and a ``response`` (a chat completion, or a batch-API line's
  ``{"body": completion}``), the gold ``answer`` at the top level or in the request's
  ``metadata``, optional ``id``/``custom_id``.
- ``thought-anchors``: a folder of problem folders, each with ``base_solution.json``
  (``solution``: the model's output) and ``problem.json`` (``problem``, ``gt_answer``).
- ``reasoningflow``: ReasoningFlow's ``data_raw`` JSONL (``question_id``, ``question``,
  ``correct_answer``, ``response``).

Think tags: ``<think>``/``</think>``, ``<thought>``/``</thought>`` and any pair given. A
response with an end tag but no start tag had its start tag in the prompt (R1 templates).
A thought whose end tag never comes is recorded as ``thinking_ended = "unclosed"`` (the whole
rest is thought, there is no answer); a response without any thought as ``"none"`` (empty
thought, the response is the answer text). Errors name the file, line and field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data import DatasetError
from .data.readers import jsonl_objects
from .data.questions import check_question
from .data.user_files import IDENTITY, row_to_question
from .jsonfile import JSONFileError, read_json
from .prompts import ANSWER_PREFIX, CONFIDENCE_PREFIX
from .records import Question

FORMATS = ("auto", "jsonl", "openai-chat", "thought-anchors", "reasoningflow")
DEFAULT_TAGS = (("<think>", "</think>"), ("<thought>", "</thought>"))
ENDED = ("stop", "unclosed", "none")  # thinking_ended values of ingested traces


class TraceFormatError(ValueError):
    """A row that cannot be read; the message names the file, line and field."""


@dataclass
class ExternalTrace:
    question: Question
    thought: str
    after: str  # what the model wrote after the thought (answer, confidence, ...)
    ended: str  # one of ENDED
    response: str  # the output as read (think tags included)
    model: str
    where: str  # file:line


# ----------------------------------------------------------------------------- the output


def split_thought(response: str, tags=DEFAULT_TAGS) -> tuple[str, str, str]:
    """(thought, text after it, ended) of one response; see the module docstring."""
    for start, end in tags:
        s, first_end = response.find(start), response.find(end)
        if s < 0 and first_end < 0:
            continue
        if first_end >= 0 and (s < 0 or first_end < s):  # the start tag was in the prompt
            return response[:first_end].strip(), response[first_end + len(end):].strip(), "stop"
        e = response.find(end, s + len(start))
        if e < 0:
            return response[s + len(start):].strip(), "", "unclosed"
        return response[s + len(start):e].strip(), response[e + len(end):].strip(), "stop"
    return "", response.strip(), "none"


_BOXED = re.compile(r"\\boxed\s*\{")


def _boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (balanced braces), or None."""
    found = None
    for m in _BOXED.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            found = text[m.end():i - 1].strip()
    return found


def _after_marker(text: str, marker: str) -> str | None:
    """The rest of the line after the last ``**Answer**:``-style marker (also ``**Answer:**``)."""
    word = re.escape(marker.strip("*: "))
    hits = list(re.finditer(rf"\*\*{word}\*\*\s*:|\*\*{word}:\*\*|^{word}\s*:", text, re.MULTILINE | re.IGNORECASE))
    if not hits:
        return None
    rest = text[hits[-1].end():].strip()
    return rest.splitlines()[0].strip() if rest else ""


def parse_answer(after: str) -> tuple[str, str]:
    """(answer, written confidence text) from the text after the thought.

    The answer is the line after ``**Answer**:`` (or ``Answer:``), else the last ``\\boxed{}``,
    else the first non-empty line; the confidence is the line after ``**Confidence**:``.
    """
    confidence = _after_marker(after, CONFIDENCE_PREFIX) or ""
    answer = _after_marker(after, ANSWER_PREFIX)
    if answer is None or not answer:
        answer = _boxed(after)
    if answer is None:
        answer = next((line.strip() for line in after.splitlines() if line.strip()), "")
    boxed = _boxed(answer)
    return (boxed if boxed is not None else answer), confidence


# ------------------------------------------------------------------------------ the formats


def _text(value: Any, where: str, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TraceFormatError(f"{where}: field '{field}' must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TraceFormatError(f"{where}: field '{field}' is not valid Unicode text (a lone surrogate "
                               f"{value[exc.start]!r} at character {exc.start})") from None
    return value


def _first_key(row: dict, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if row.get(n) is not None), None)


_QUESTION_KEYS = ("question", "problem", "prompt")
_GOLD_KEYS = ("answer", "gold", "gold_answer", "correct_answer", "gt_answer")
_ID_KEYS = ("id", "question_id", "custom_id")
_OUTPUT_KEYS = ("response", "output", "completion", "generated_text", "solution")


def _question(row: dict, where: str, default_id: str) -> Question:
    """A Question from a row's question, gold answer, id, aliases, choices and kind."""
    q, gold, qid = _first_key(row, _QUESTION_KEYS), _first_key(row, _GOLD_KEYS), _first_key(row, _ID_KEYS)
    if q is None:
        raise TraceFormatError(f"{where}: missing field 'question' (or {', '.join(_QUESTION_KEYS[1:])})")
    if gold is None:
        raise TraceFormatError(f"{where}: missing field 'answer' (the gold answer; or {', '.join(_GOLD_KEYS[1:])})")
    fields = {"question": row[q], "answer": row[gold]}  # a number is read by the dataset rule (4.0 -> "4")
    if qid is not None:
        fields["id"] = row[qid]
    for key in ("aliases", "choices", "kind", "subject", "source"):
        if row.get(key) is not None:
            fields[key] = row[key]
    mapping = {**IDENTITY, "question": q, "answer": gold, "id": qid or "id"}
    try:  # the dataset loader's rules, so every later stage accepts the run's questions.jsonl
        question = row_to_question({mapping[k]: v for k, v in fields.items()}, where, default_id, mapping)
        check_question(question, where)
    except DatasetError as exc:
        raise TraceFormatError(str(exc)) from None
    return question


def _trace(question: Question, row: dict, where: str, tags, model: str) -> ExternalTrace:
    """The thought and answer text of a row: reasoning_content + content, or one response."""
    if row.get("reasoning_content") is not None or row.get("reasoning") is not None:
        key = "reasoning_content" if row.get("reasoning_content") is not None else "reasoning"
        thought = _text(row[key], where, key)
        content = _text(row.get("content"), where, "content")
        finish = row.get("finish_reason")
        ended = "unclosed" if finish == "length" and not content.strip() else ("stop" if thought.strip() else "none")
        return ExternalTrace(question, thought.strip(), content.strip(), ended,
                             f"{thought}\n{content}" if thought else content, model, where)
    key = _first_key(row, _OUTPUT_KEYS + ("content",))
    if key is None:
        raise TraceFormatError(f"{where}: missing field 'response' (the model's output; or "
                               f"{', '.join(_OUTPUT_KEYS[1:])}, or reasoning_content and content)")
    response = _text(row[key], where, key)
    thought, after, ended = split_thought(response, tags)
    return ExternalTrace(question, thought, after, ended, response, model, where)


def _jsonl_rows(path: Path) -> Iterator[tuple[str, dict]]:
    """The objects of a JSON-lines file, each with its place 'FILE:LINE'."""
    return jsonl_objects(path, "{path}:{line}", TraceFormatError, not_json="not valid JSON")


def read_jsonl_traces(path: Path, tags=DEFAULT_TAGS) -> Iterator[ExternalTrace]:
    for i, (where, row) in enumerate(_jsonl_rows(path), 1):
        question = _question(row, where, f"{path.stem}-{i:04d}")
        yield _trace(question, row, where, tags, str(row.get("model") or ""))


def read_openai_chat(path: Path, tags=DEFAULT_TAGS) -> Iterator[ExternalTrace]:
    for i, (where, row) in enumerate(_jsonl_rows(path), 1):
        request, response = row.get("request"), row.get("response")
        if not isinstance(request, dict):
            raise TraceFormatError(f"{where}: missing field 'request' (the chat-completion request object)")
        if not isinstance(response, dict):
            raise TraceFormatError(f"{where}: missing field 'response' (the chat-completion response object)")
        response = response.get("body", response) if isinstance(response.get("body"), dict) else response
        messages = request.get("messages")
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"] if isinstance(messages, list) else []
        if not users:
            raise TraceFormatError(f"{where}: field 'request.messages' has no user message")
        content = users[-1].get("content")
        if isinstance(content, list):  # content parts
            content = "".join(_text(p.get("text"), where, f"request.messages[-1].content[{k}].text")
                              for k, p in enumerate(content) if isinstance(p, dict))
        meta = request.get("metadata") if isinstance(request.get("metadata"), dict) else {}
        fields = {**meta, **{k: v for k, v in row.items() if k not in ("request", "response")}}
        fields["question"] = content
        question = _question(fields, where, f"{path.stem}-{i:04d}")
        choices = response.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict) \
                or not isinstance(choices[0].get("message"), dict):
            raise TraceFormatError(f"{where}: field 'response.choices[0].message' is missing")
        if len(choices) > 1:
            raise TraceFormatError(f"{where}: field 'response.choices' holds {len(choices)} samples; a run keeps "
                                   f"one trace per question: write each sample on its own line with its own id")
        message = dict(choices[0]["message"])
        message.setdefault("finish_reason", choices[0].get("finish_reason"))
        if message.get("reasoning_content") is None and message.get("reasoning") is None:
            message = {"response": message.get("content") or "", "finish_reason": message.get("finish_reason")}
        yield _trace(question, message, where, tags, str(response.get("model") or request.get("model") or ""))


def read_reasoningflow(path: Path, tags=DEFAULT_TAGS) -> Iterator[ExternalTrace]:
    for i, (where, row) in enumerate(_jsonl_rows(path), 1):
        for key in ("question_id", "question", "correct_answer", "response"):
            if key not in row:
                raise TraceFormatError(f"{where}: missing field '{key}' (ReasoningFlow data_raw row)")
        question = _question(row, where, f"{path.stem}-{i:04d}")
        yield _trace(question, row, where, tags, str(row.get("model") or ""))


def read_thought_anchors(path: Path, tags=DEFAULT_TAGS) -> Iterator[ExternalTrace]:
    files = [path] if path.is_file() else sorted(path.rglob("base_solution.json"))
    if not files:
        raise TraceFormatError(f"{path}: no base_solution.json under this folder")
    root = path.parent if path.is_file() else path
    for file in files:
        where = str(file)
        problem_file = file.parent / "problem.json"
        if not problem_file.exists():
            raise TraceFormatError(f"{problem_file}: missing (the problem and its gt_answer)")
        try:
            base = read_json(file, "a thought-anchors solution with 'solution'")
            problem = read_json(problem_file, "a thought-anchors problem with 'problem' and 'gt_answer'")
        except JSONFileError as exc:
            raise TraceFormatError(str(exc)) from None
        if "solution" not in base:
            raise TraceFormatError(f"{where}: missing field 'solution'")
        rel = file.parent.relative_to(root).as_posix() if file.parent != root else file.parent.name
        row = {"id": rel, "question": problem.get("problem"), "answer": problem.get("gt_answer"),
               "choices": problem.get("choices")}
        if row["answer"] is None and problem.get("answer_letter") is not None:
            row["answer"] = problem["answer_letter"]
        question = _question({k: v for k, v in row.items() if v is not None}, str(problem_file), rel)
        yield _trace(question, {"solution": base["solution"]}, where, tags, str(base.get("model") or ""))


READERS = {"jsonl": read_jsonl_traces, "openai-chat": read_openai_chat,
           "thought-anchors": read_thought_anchors, "reasoningflow": read_reasoningflow}


def detect_format(path: Path) -> str:
    """The format of a file or folder, from its layout and its first row's fields."""
    if path.is_dir() or path.name == "base_solution.json":
        return "thought-anchors"
    for _, row in _jsonl_rows(path):
        if "request" in row and "response" in row:
            return "openai-chat"
        if {"question_id", "question", "correct_answer", "response"} <= set(row):
            return "reasoningflow"
        return "jsonl"
    raise TraceFormatError(f"{path}: no rows")


def read_traces(path: str | Path, fmt: str = "auto", tags=DEFAULT_TAGS) -> list[ExternalTrace]:
    """Every trace of one file or folder; raises TraceFormatError at the first bad row."""
    path = Path(path)
    if not path.exists():
        raise TraceFormatError(f"{path}: no such file or folder")
    if fmt not in FORMATS:
        raise TraceFormatError(f"unknown --format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(path)
    if path.is_dir() and fmt != "thought-anchors":
        raise TraceFormatError(f"{path}: a folder is read only as --format thought-anchors")
    return list(READERS[fmt](path, tags))
