"""Prompt templates and forcing strings, in one place, as data.

Defaults follow the paper's protocol: the model reasons, then writes
`**Answer**: ...` and `**Confidence**: <class>`. Forcing strings are what cotprobe appends
after a (possibly truncated) chain of thought to make the model commit to an answer.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .records import Question
from .scales import VERBAL_10, Scale

ANSWER_PREFIX = "**Answer**:"
CONFIDENCE_PREFIX = "**Confidence**:"

# Where a non-reasoning model starts its own answer lines: its chain of thought ends before any of
# these (generation stops there), so a CoT never holds the model's own answer and confidence.
ANSWER_MARKERS = ("**Answer", "**Final Answer", "Final Answer:", "Answer:", "**Confidence")

STYLES = ("cot", "direct", "slow-think")
TEMPLATES_FILE = "prompt_templates.json"

# style -> data file of few-shot exemplars, shown as prior (user, assistant) turns (see few_shot_messages)
FEW_SHOT = {"slow-think": "slow_think_exemplars.json"}


def answer_line_start(text: str) -> int | None:
    """Where the first answer-line marker (with any markdown or blanks before it on its line)
    starts in text, or None."""
    positions = [text.find(m) for m in ANSWER_MARKERS if m in text]
    if not positions:
        return None
    begin = min(positions)
    while begin > 0 and text[begin - 1] in " \t*_#":
        begin -= 1
    return begin


@dataclass(frozen=True)
class PromptTemplate:
    """A set of instructions (see cotprobe/_data/prompt_templates.json)."""

    name: str
    description: str
    styles: dict[str, Any]
    restate: str | None
    kind_hints: dict[str, str]

    def instruction(self, style: str, reasoning: bool) -> str:
        if style not in self.styles:
            raise ValueError(f"prompt template {self.name!r} has no style {style!r} (it has {', '.join(self.styles)})")
        entry = self.styles[style]
        return entry if isinstance(entry, str) else entry["reasoning" if reasoning else "non_reasoning"]


@functools.lru_cache(maxsize=None)
def _templates_data() -> dict:
    from .resources import data_path

    return json.loads(data_path(TEMPLATES_FILE).read_text(encoding="utf-8"))


def _template(name: str, entry: dict, where: str) -> PromptTemplate:
    for key in ("styles",):
        if not isinstance(entry.get(key), dict):
            raise ValueError(f"{where}: a prompt template needs an object {key!r}")
    for style, value in entry["styles"].items():
        texts = [value] if isinstance(value, str) else [value.get("reasoning"), value.get("non_reasoning")]
        if not all(isinstance(t, str) for t in texts):
            raise ValueError(f"{where}: style {style!r} needs a string, or strings 'reasoning' and 'non_reasoning'")
    restate = entry.get("restate")
    if restate is not None and not isinstance(restate, str):
        raise ValueError(f"{where}: 'restate' must be a string or null")
    return PromptTemplate(name, str(entry.get("description", "")), dict(entry["styles"]), restate,
                          dict(entry.get("kind_hints", {})))


TEMPLATE_NAMES = tuple(_templates_data()["templates"])
DEFAULT_TEMPLATE = _templates_data()["default"]


def get_template(spec: str = DEFAULT_TEMPLATE) -> PromptTemplate:
    """A bundled template by name, or one from a JSON file (an entry of prompt_templates.json)."""
    templates = _templates_data()["templates"]
    if spec in templates:
        return _template(spec, templates[spec], f"{TEMPLATES_FILE} template {spec!r}")
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"unknown prompt template {spec!r}: use one of {', '.join(templates)} or a JSON file")
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: a prompt template file holds one JSON object")
    return _template(path.stem, entry, str(path))


def confidence_cue() -> str:
    """The paper's cue for reasoning models that do not assess their confidence unprompted:
    appended inside the thought (it ends with a blank line), after which the model thinks on."""
    return _templates_data()["confidence_cue"]


CONFIDENCE_CUE = confidence_cue()


def question_text(question: Question) -> str:
    """The question as shown to the model, with lettered options for multiple choice."""
    text = question.question.strip()
    if question.choices:
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        text += "\n" + "\n".join(f"{letters[i]}. {c}" for i, c in enumerate(question.choices))
    return text


@dataclass(frozen=True)
class PromptSpec:
    """Everything that decides the user message: template, style, reasoning or not, and scale."""

    style: str = "cot"
    template: PromptTemplate | None = None
    reasoning: bool = False
    scale: Scale | None = None

    def _fill(self, text: str) -> str:
        scale = self.scale or VERBAL_10
        return (text.replace("{classes}", scale.describe_classes()).replace("{labels}", scale.describe())
                .replace("{confidence_format}", scale.confidence_format()))

    def instruction(self) -> str:
        template = self.template or get_template()
        if self.style not in STYLES:
            raise ValueError(f"unknown prompt style {self.style!r}: use one of {', '.join(STYLES)}")
        return self._fill(template.instruction(self.style, self.reasoning))

    def user_message(self, question: Question) -> str:
        template = self.template or get_template()
        hint = template.kind_hints.get(question.kind, "")
        parts = [self.instruction(), f"Question: {question_text(question)}"]
        if hint:
            parts.append(hint)
        return "\n\n".join(parts)

    def restate_message(self) -> str | None:
        """The second user turn for non-reasoning models, or None (answer forced in the same turn)."""
        template = self.template or get_template()
        return None if self.reasoning or template.restate is None else self._fill(template.restate)


def prompt_spec(style: str, scale: Scale, template: PromptTemplate | str | None = None,
                reasoning: bool = False) -> PromptSpec:
    if not isinstance(template, PromptTemplate):
        template = get_template(template or DEFAULT_TEMPLATE)
    return PromptSpec(style=style, template=template, reasoning=reasoning, scale=scale)


def few_shot_exemplars(style: str) -> list[dict]:
    """The exemplars of a style (data/<FEW_SHOT[style]>), or [] for a style without any."""
    if style not in FEW_SHOT:
        return []
    import json

    from .resources import data_path

    return json.loads(data_path(FEW_SHOT[style]).read_text(encoding="utf-8"))["exemplars"]


def exemplar_question(exemplar: dict) -> Question:
    return Question(id=exemplar["id"], question=exemplar["question"], answer=exemplar["answer"],
                    kind=exemplar.get("kind", "open"), aliases=list(exemplar.get("aliases", [])))


def few_shot_messages(style: str, scale: Scale, think_start: str = "<think>", think_end: str = "</think>",
                      template: PromptTemplate | str | None = None, reasoning: bool = True) -> list[dict[str, str]]:
    """Prior chat turns for a style: per exemplar, its user message, then the assistant's thought
    in think tags, its answer and the scale label nearest to its confidence."""
    spec = prompt_spec(style, scale, template, reasoning)
    messages = []
    for ex in few_shot_exemplars(style):
        label = min(zip(scale.labels, scale.values), key=lambda lv: abs(lv[1] - ex["confidence"]))[0]
        thought = f"{think_start}\n{ex['reasoning']}\n{think_end}\n\n" if think_start else f"{ex['reasoning']}\n\n"
        messages.append({"role": "user", "content": spec.user_message(exemplar_question(ex))})
        messages.append({"role": "assistant", "content": f"{thought}{ANSWER_PREFIX} {ex['final_answer']}\n"
                                                         f"{CONFIDENCE_PREFIX} {label}"})
    return messages


def few_shot_block(messages: list[dict[str, str]]) -> str:
    """The exemplar turns of `few_shot_messages` as one text for the user message, for chat
    templates that drop the thought of earlier assistant turns (R1, QwQ, Qwen3)."""
    parts = ["Here are worked examples of how to think and answer."]
    for k in range(0, len(messages), 2):
        parts.append(f"Example {k // 2 + 1}.\n\n{messages[k]['content']}\n\nResponse:\n{messages[k + 1]['content']}")
    parts.append("Now the question for you.")
    return "\n\n".join(parts)
