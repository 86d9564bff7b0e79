"""Prompt templates and forcing strings, in one place, as data.

Defaults follow the paper's protocol: the model reasons, then writes
`**Answer**: ...` and `**Confidence**: <class>`. Forcing strings are what cotprobe appends
after a (possibly truncated) chain of thought to make the model commit to an answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from .records import Question
from .scales import Scale

ANSWER_PREFIX = "**Answer**:"
CONFIDENCE_PREFIX = "**Confidence**:"

FORMAT = (
    "After your reasoning, finish with exactly these two lines:\n"
    "**Answer**: <your final answer, as short as possible>\n"
    "**Confidence**: <one of {labels}>"
)

STYLES = {
    # style -> instruction placed before the question
    "cot": "Think step by step about the question below, then answer it. " + FORMAT,
    "direct": (
        "Answer the question below directly, without explanation, in exactly these two lines:\n"
        "**Answer**: <your final answer, as short as possible>\n"
        "**Confidence**: <one of {labels}>"
    ),
    # In-context slow thinking: the few-shot exemplars of FEW_SHOT come first as prior chat turns
    # and show the thought inside think tags (the generation profile becomes a reasoning one).
    "slow-think": (
        "Think about the question below slowly and carefully before you answer: question your first "
        "idea, consider alternatives, check what you recall, and correct yourself when something does "
        "not fit. " + FORMAT
    ),
}

# style -> data file of few-shot exemplars, shown as prior (user, assistant) turns (see few_shot_messages)
FEW_SHOT = {"slow-think": "slow_think_exemplars.json"}

KIND_HINTS = {
    "open": "",
    "mc": "Answer with the letter of the correct option.",
    "numeric": "Answer with a single number.",
}

# The paper's cue for reasoning models that do not assess their confidence unprompted:
# appended inside the thought, after which the model thinks on before answering.
CONFIDENCE_CUE = (
    "\n\nNow, let me assess my overall thinking process so far and how confident I am in my answer, "
    "expressing my confidence using one of the provided class names."
)


def question_text(question: Question) -> str:
    """The question as shown to the model, with lettered options for multiple choice."""
    text = question.question.strip()
    if question.choices:
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        text += "\n" + "\n".join(f"{letters[i]}. {c}" for i, c in enumerate(question.choices))
    return text


@dataclass(frozen=True)
class PromptSpec:
    """Everything that decides the user message: style and scale."""

    style: str = "cot"
    scale_labels: str = ""

    def user_message(self, question: Question) -> str:
        if self.style not in STYLES:
            raise ValueError(f"unknown prompt style {self.style!r}: use one of {', '.join(STYLES)}")
        instruction = STYLES[self.style].format(labels=self.scale_labels)
        hint = KIND_HINTS.get(question.kind, "")
        parts = [instruction, f"Question: {question_text(question)}"]
        if hint:
            parts.append(hint)
        return "\n\n".join(parts)


def prompt_spec(style: str, scale: Scale) -> PromptSpec:
    return PromptSpec(style=style, scale_labels=scale.describe())


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


def few_shot_messages(style: str, scale: Scale, think_start: str = "<think>",
                      think_end: str = "</think>") -> list[dict[str, str]]:
    """Prior chat turns for a style: per exemplar, its user message, then the assistant's thought
    in think tags, its answer and the scale label nearest to its confidence."""
    spec = prompt_spec(style, scale)
    messages = []
    for ex in few_shot_exemplars(style):
        label = min(zip(scale.labels, scale.values), key=lambda lv: abs(lv[1] - ex["confidence"]))[0]
        thought = f"{think_start}\n{ex['reasoning']}\n{think_end}\n\n" if think_start else f"{ex['reasoning']}\n\n"
        messages.append({"role": "user", "content": spec.user_message(exemplar_question(ex))})
        messages.append({"role": "assistant", "content": f"{thought}{ANSWER_PREFIX} {ex['final_answer']}\n"
                                                         f"{CONFIDENCE_PREFIX} {label}"})
    return messages
