"""An LLM as behaviour tagger: ask a model, through any backend, which behaviours a step shows.

The prompt is data (cotprobe/_data/judge_prompt.json). The judge answers greedily after the prompt's
`open` text, up to its `close` text; the answer must be a comma-separated list of behaviour names
or "none". Anything else is recorded as unparsed (Judgement.error), never guessed. Judgements
are keyed by the judge (model name and a hash of the prompt file), so several judges can share
one run directory and an interrupted judging run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .backends import cut_at_stop
from .records import Judgement, Step, Tag
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
    path = Path(path) if path else data_path("judge_prompt.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the judge prompt: {exc}") from None
    for key in ("instruction", "open", "close"):
        if not isinstance(data.get(key), str):
            raise ValueError(f"{path}: the judge prompt needs a string {key!r}")
    if "{step}" not in data["instruction"]:
        raise ValueError(f"{path}: the instruction has no {{step}} placeholder")
    if not data["close"]:
        raise ValueError(f"{path}: 'close' must not be empty (it ends the judge's answer)")
    return JudgePrompt(data["instruction"], data["open"], data["close"], int(data.get("max_tokens", 16)),
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
