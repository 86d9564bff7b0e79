"""An LLM as behaviour tagger: ask a model, through any backend, which behaviours a step shows.

The prompt is data (cotprobe/_data/judge_prompt.json). The judge answers greedily after the prompt's
`open` text, up to its `close` text; the answer must be a comma-separated list of behaviour names
or "none". Anything else is recorded as unparsed (Judgement.error), never guessed. Judgements
are keyed by the judge (model name and a hash of the prompt file), so several judges can share
one run directory and an interrupted judging run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backends import capabilities_of, cut_at_stop
from .jsonfile import JSONFileError, read_json
from .records import Judgement, Step, Tag, Verdict
from .resources import data_path
from .tags import BEHAVIOURS

FIRST_STEP = "(none: this is the first step)"


@dataclass(frozen=True)
class JudgePrompt:
    instruction: str
    open: str
    close: str
    max_tokens: int
    version: str
    sha256: str
    source: str


def load_judge_prompt(path: str | Path | None = None) -> JudgePrompt:
    """The tagging judge's prompt (cotprobe/_data/judge_prompt.json, or a file in its format)."""
    return _load_prompt(Path(path) if path else data_path("judge_prompt.json"), "the judge prompt",
                        ("{step}",), max_tokens=16, close_ends="the judge's answer")


def _load_prompt(path: Path, what: str, placeholders: tuple[str, ...], max_tokens: int,
                 close_ends: str) -> JudgePrompt:
    """A prompt file: strings 'instruction' (holding every placeholder), 'open' and a non-empty
    'close'; optional 'max_tokens' (default `max_tokens`) and 'version'. Any problem is a
    ValueError naming the file."""
    try:
        data = read_json(path, f"{what}: an object with 'instruction', 'open' and 'close'")
    except JSONFileError as exc:
        raise ValueError(f"{path}: cannot read {what}: {exc.reason}") from None
    for key in ("instruction", "open", "close"):
        if not isinstance(data.get(key), str):
            raise ValueError(f"{path}: {what} needs a string {key!r}")  # noqa: TRY004 - every bad prompt file is a ValueError
    for placeholder in placeholders:
        if placeholder not in data["instruction"]:
            raise ValueError(f"{path}: the instruction has no {placeholder} placeholder")
    if not data["close"]:
        raise ValueError(f"{path}: 'close' must not be empty (it ends {close_ends})")
    return JudgePrompt(data["instruction"], data["open"], data["close"], int(data.get("max_tokens", max_tokens)),
                       str(data.get("version", "")), hashlib.sha256(path.read_bytes()).hexdigest(), str(path))


def judge_key(model: str, prompt: JudgePrompt) -> str:
    """What identifies a judge in judgements.jsonl and in tags' `tagger` field."""
    return f"judge:{model}@{prompt.sha256[:12]}"


def parse_behaviours(text: str) -> tuple[list[str], str]:
    """Behaviours named in a judge's answer, and an error ('' when it parsed).

    Accepts names separated by commas, semicolons, "and" or newlines, in any case, with trailing
    punctuation; "none" alone means no behaviour. Any other word makes the answer unparsed.
    """
    words = [w.strip(" .*`'\"").lower() for w in re.split(r",|;|\n|\band\b", text)]
    words = [w for w in words if w]
    if words == ["none"]:
        return [], ""
    unknown = [w for w in words if w not in BEHAVIOURS]
    if not words:
        return [], "empty answer"
    if unknown:
        return [], f"not a behaviour: {', '.join(repr(w) for w in unknown)}"
    return sorted(set(words), key=BEHAVIOURS.index), ""


def judge_steps(backend, prompt: JudgePrompt, key: str, steps: Iterable[tuple[Step, str]],
                batch_size: int = 8) -> Iterable[Judgement]:
    """Judge (step, previous step text) pairs in batches; yields one Judgement per step, in order."""
    steps = list(steps)
    for begin in range(0, len(steps), batch_size):
        batch = steps[begin:begin + batch_size]
        prompts = []
        for step, previous in batch:
            message = prompt.instruction.replace("{previous}", previous or FIRST_STEP).replace("{step}", step.text)
            prompts.append(backend.encode(backend.chat_prompt([{"role": "user", "content": message}]) + prompt.open))
        for (step, _), completion in zip(batch, backend.generate(prompts, prompt.max_tokens, [prompt.close])):
            answer = cut_at_stop(completion.text, [prompt.close])[0]
            if completion.finish == "stop":
                answer = answer[: len(answer) - len(prompt.close)]
            behaviours, error = parse_behaviours(answer)
            if not error and completion.finish == "length":
                behaviours, error = [], f"hit the token limit ({prompt.max_tokens}) before {prompt.close!r}"
            yield Judgement(step.question_id, step.index, key, answer.strip(), behaviours, error)


def judgement_tags(judgements: Iterable[Judgement], steps: dict[str, list[Step]]) -> list[Tag]:
    """Tags from judgements: a judged behaviour covers its whole step (the judge names no cue)."""
    text = {(s.question_id, s.index): s.text for rows in steps.values() for s in rows}
    return [Tag(j.question_id, j.step_index, b, "(judge)", 0, len(text[(j.question_id, j.step_index)]), j.judge)
            for j in judgements for b in j.behaviours]


def describe(model: str, backend_kind: str, prompt: JudgePrompt) -> dict[str, Any]:
    return {"tagger": "judge", "judge": judge_key(model, prompt), "judge_model": model, "judge_backend": backend_kind,
            "prompt": prompt.source, "version": prompt.version, "prompt_sha256": prompt.sha256,
            "max_tokens": prompt.max_tokens, "decoding": "greedy"}


# ------------------------------------------------------------------------------ answer grading


VERDICTS = {"a": "correct", "b": "incorrect", "c": "not_attempted", "correct": "correct",
            "incorrect": "incorrect", "not_attempted": "not_attempted", "not attempted": "not_attempted"}


def parse_verdict(text: str) -> tuple[str | None, str]:
    """(verdict, error) from a grading judge's output: A/B/C or the words, any case and markup."""
    word = re.sub(r"[*`'\"().:]", " ", text).strip().lower()
    first = word.split()[0] if word.split() else ""
    for candidate in (word, first, word.replace("_", " ")):
        if candidate in VERDICTS:
            return VERDICTS[candidate], ""
    return None, f"not a verdict: {text.strip()[:60]!r}" if text.strip() else "empty verdict"


def gold_text(question) -> str:
    """The gold answer as the grading judge reads it: the letter and its option for multiple
    choice; otherwise the answer, or, with aliases, every acceptable answer as the paper's
    authors present them: "Paris, or Paris, France (Any of these answers are acceptable.)"."""
    if question.kind == "mc" and question.choices:
        letter = question.answer.strip().upper()
        index = ord(letter) - ord("A")
        option = question.choices[index] if 0 <= index < len(question.choices) else ""
        return f"{letter}. {option}" if option else letter
    answers = list(dict.fromkeys([question.answer, *question.aliases]))
    return answers[0] if len(answers) == 1 else ", or ".join(answers) + " (Any of these answers are acceptable.)"


class AnswerJudge:
    """The paper's grader: an LLM judge (SimpleQA-style correct / incorrect / not attempted) through
    any backend. Only "correct" counts; an unparsed verdict is graded incorrect and counted.
    Verdicts are appended to `cache` (verdicts.jsonl) as they come and never asked again."""

    name = "judge"

    def __init__(self, backend, model: str, prompt: JudgePrompt, cache: str | Path | None = None):
        self.backend, self.model, self.prompt = backend, model, prompt
        self.key = judge_key(model, prompt)
        self.version = prompt.sha256[:12]
        self.cache = Path(cache) if cache else None
        self.verdicts: dict[tuple[str, str], Verdict] = {}
        if self.cache and self.cache.exists():
            from .store import RunDir, read_records

            RunDir(self.cache.parent).repair(self.cache.name)  # a torn last verdict (a kill) is cut off
            for v in read_records(self.cache, Verdict):
                if v.judge == self.key:
                    self.verdicts[(v.question_id, v.answer)] = v
        self.asked = 0
        self._lock = threading.Lock()
        self._asking = threading.Lock() if capabilities_of(backend).in_flight <= 1 else contextlib.nullcontext()

    def verdict(self, question, answer: str) -> Verdict:
        known = self.verdicts.get((question.id, answer))
        if known is not None:
            return known
        from .prompts import question_text

        message = (self.prompt.instruction.replace("{question}", question_text(question))
                   .replace("{gold}", gold_text(question)).replace("{answer}", answer or "(no answer)"))
        prompt = self.backend.chat_prompt([{"role": "user", "content": message}]) + self.prompt.open
        with self._asking:  # a local judge model runs one request at a time, whatever the threads
            (completion,) = self.backend.generate([self.backend.encode(prompt)], self.prompt.max_tokens,
                                                  [self.prompt.close])
        output = cut_at_stop(completion.text, [self.prompt.close])[0].removesuffix(self.prompt.close).strip()
        verdict, error = parse_verdict(output)
        record = Verdict(question.id, answer, self.key, output, verdict, error)
        with self._lock:  # traces in flight on a server are graded from several threads
            self.asked += 1
            self.verdicts[(question.id, answer)] = record
            if self.cache:
                self.cache.parent.mkdir(parents=True, exist_ok=True)
                with self.cache.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(dataclasses.asdict(record), ensure_ascii=False) + "\n")
                    fh.flush()
        return record

    def __call__(self, question, answer_text: str):
        from .grade import Grade, answer_line

        record = self.verdict(question, answer_line(answer_text))
        return Grade(record.verdict == "correct", self.key, record.verdict)

    def counts(self) -> dict[str, int]:
        """Verdicts known (cached and new), how many of them did not parse, how many asked now."""
        mine = list(self.verdicts.values())
        return {"verdicts": len(mine), "unparsed": sum(1 for v in mine if v.verdict is None), "asked": self.asked}

    def describe(self, backend_kind: str) -> dict[str, Any]:
        return {"grader": "judge", "judge": self.key, "judge_model": self.model, "judge_backend": backend_kind,
                "prompt": self.prompt.source, "version": self.prompt.version, "prompt_sha256": self.prompt.sha256,
                "max_tokens": self.prompt.max_tokens, "decoding": "greedy"}


def grading_section(judge: AnswerJudge) -> dict[str, Any]:
    """What metrics.json records of a run's grading judge: which judge (model and prompt hash),
    the prompt's version, and its `counts()`: the verdicts it holds for this run (verdicts.jsonl),
    how many did not parse (graded incorrect), and how many the stage that wrote it asked."""
    return {"judge": judge.key, "prompt_version": judge.prompt.version, **judge.counts()}


def load_grader_prompt(path: str | Path | None = None) -> JudgePrompt:
    """The grading judge's prompt (cotprobe/_data/grader_prompt.json, or a file in its format)."""
    return _load_prompt(Path(path) if path else data_path("grader_prompt.json"), "the grader prompt",
                        ("{question}", "{gold}", "{answer}"), max_tokens=8, close_ends="the verdict")
