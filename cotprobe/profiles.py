"""Model profiles: how a model family thinks and how to force it to answer.

Profiles are chosen explicitly (`--profile NAME`, or `--profile auto`: read off the chat template
by `cotprobe.template_probe`), never guessed from a model's name. A reasoning profile has think
tags: generation runs until the end tag (or the thinking budget), and forcing closes the thought
the family's own way (`close_thought`: the end tag, then what opens the answer, e.g. harmony's
final channel). A non-reasoning profile has none: the chain of thought is the response before
`**Answer**:`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    reasoning: bool
    think_start: str = ""
    think_end: str = ""
    # Append think_start to the prompt when the chat template does not open the thought itself.
    prefill_think: bool = False
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    system_prompt: str | None = None
    # Inject the paper's confidence cue at the end of the thought and let the model think on.
    confidence_cue: bool = False
    # What cotprobe writes after think_start when it opens the thought itself.
    after_start: str = "\n"
    # What follows think_end before the answer: how the model opens its answer (harmony: the
    # final channel's header; Granite: <response>).
    answer_open: str = "\n\n"

    def open_thought(self) -> str:
        """What cotprobe appends to a prompt to open the thought (prefill_think profiles)."""
        return self.think_start + self.after_start

    def close_thought(self) -> str:
        """What closes a (cut) thought and opens the answer, before `**Answer**:`; the same at every cut."""
        return self.think_end + self.answer_open if self.reasoning else "\n\n"


PROFILES = {
    p.name: p
    for p in [
        Profile("plain", "non-reasoning chat model: CoT is the response before **Answer**:", reasoning=False),
        Profile(
            "think",
            "reasoning model with <think>...</think> opened by the chat template (R1 distills, QwQ)",
            reasoning=True, think_start="<think>", think_end="</think>",
        ),
        Profile(
            "think-prefill",
            "reasoning model with <think> tags that the chat template does not open: cotprobe opens it",
            reasoning=True, think_start="<think>", think_end="</think>", prefill_think=True,
        ),
        Profile(
            "qwen3-thinking", "Qwen3 with enable_thinking=True", reasoning=True,
            think_start="<think>", think_end="</think>", prefill_think=True,
            chat_template_kwargs={"enable_thinking": True},
        ),
        Profile(
            "qwen3-nothinking", "Qwen3 with enable_thinking=False (non-reasoning counterpart)",
            reasoning=False, chat_template_kwargs={"enable_thinking": False},
        ),
        Profile(
            "exaone-deep", "EXAONE Deep: <thought>...</thought>", reasoning=True,
            think_start="<thought>", think_end="</thought>", prefill_think=True,
        ),
        Profile(
            "think-cue",
            "reasoning model that does not assess its confidence unprompted: the paper's cue is "
            "injected at the end of the thought",
            reasoning=True, think_start="<think>", think_end="</think>", prefill_think=True,
            confidence_cue=True,
        ),
    ]
}

AUTO = "auto"  # --profile auto: the profile read off the chat template (cotprobe.template_probe)

HARMONY_FINAL = "<|start|>assistant<|channel|>final<|message|>"  # how gpt-oss opens its answer


def _thinking(name: str, family: str, switch: str) -> list[Profile]:
    """A <think> family with a chat-template switch: on (cotprobe opens the thought where the template
    does not) and off (the non-reasoning counterpart, as qwen3-nothinking)."""
    return [
        Profile(name, f"{family} with {switch}=True", reasoning=True, think_start="<think>",
                think_end="</think>", prefill_think=True, chat_template_kwargs={switch: True}),
        Profile(f"{name}-nothinking", f"{family} with {switch}=False (non-reasoning counterpart)", reasoning=False,
                chat_template_kwargs={switch: False}),
    ]


# The families of open reasoning models beyond R1, QwQ, Qwen3 and EXAONE Deep. The first five, with
# plain, think, think-prefill and exaone-deep, are the thought formats `--profile auto` chooses
# between (template_probe.FORMATS); the others pin a family's switch on or off.
FAMILIES = [
    Profile("harmony", "gpt-oss (harmony): the analysis channel, answer in the final channel; cotprobe opens "
            "the analysis channel (reasoning_effort low/medium/high: --chat-template-kwargs)", reasoning=True,
            think_start="<|channel|>analysis<|message|>", think_end="<|end|>", prefill_think=True,
            after_start="", answer_open=HARMONY_FINAL),
    Profile("seed-think", "Seed-OSS: <seed:think>...</seed:think>, opened by the model (cotprobe opens it)",
            reasoning=True, think_start="<seed:think>", think_end="</seed:think>", prefill_think=True),
    Profile("apriel", "Apriel Thinker: 'Here are my reasoning steps:' ... '[BEGIN FINAL RESPONSE]', opened by "
            "the template", reasoning=True, think_start="Here are my reasoning steps:",
            think_end="[BEGIN FINAL RESPONSE]", prefill_think=True, answer_open="\n"),
    Profile("hunyuan", "Hunyuan: <think:opensource>...</think:opensource> (thinking on: --chat-template-kwargs "
            "'{\"reasoning_effort\": \"high\"}')", reasoning=True, think_start="<think:opensource>",
            think_end="</think:opensource>", prefill_think=True),
    Profile("granite", "Granite 3.3 with thinking=True: <think>...</think> then the answer in <response>",
            reasoning=True, think_start="<think>", think_end="</think>", prefill_think=True,
            answer_open="\n<response>", chat_template_kwargs={"thinking": True}),
    Profile("seed-nothinking", "Seed-OSS with thinking_budget=0: the non-reasoning counterpart", reasoning=False,
            chat_template_kwargs={"thinking_budget": 0}),
    *_thinking("glm", "GLM-4.5 / 4.6", "enable_thinking"),
    *_thinking("deepseek-v3.1", "DeepSeek-V3.1", "thinking"),
    *_thinking("deepseek-v3.2", "DeepSeek-V3.2", "enable_thinking"),
    *_thinking("exaone4", "EXAONE 4.0", "enable_thinking"),
    *_thinking("smollm3", "SmolLM3", "enable_thinking"),
    Profile("nemotron", "Nemotron (Nano v2, Super v1.5) with /think in the system prompt", reasoning=True,
            think_start="<think>", think_end="</think>", prefill_think=True, system_prompt="/think"),
    Profile("nemotron-nothinking", "Nemotron with /no_think in the system prompt (non-reasoning counterpart)",
            reasoning=False, system_prompt="/no_think"),
    Profile("kimi", "Kimi-K2-Thinking: <think>, opened by the model (cotprobe opens it)", reasoning=True,
            think_start="<think>", think_end="</think>", prefill_think=True),
    Profile("minimax", "MiniMax-M2: <think>, opened by the template", reasoning=True, think_start="<think>",
            think_end="</think>", prefill_think=True),
]
PROFILES.update({p.name: p for p in FAMILIES})


# Styles whose prompt makes a non-reasoning model think inside think tags (see prompts.FEW_SHOT).
THINKING_STYLES = ("slow-think",)
SLOW_THINK = Profile(
    "slow-think",
    "non-reasoning chat model made to think in <think> tags by few-shot exemplars (--style slow-think); "
    "cotprobe opens the thought",
    reasoning=True, think_start="<think>", think_end="</think>", prefill_think=True,
)
PROFILES[SLOW_THINK.name] = SLOW_THINK


def style_base(name: str) -> str:
    """The profile that `for_style` derived a profile name from ("slow-think" -> "plain",
    "X+slow-think" -> "X"); any other name is its own base."""
    if name == SLOW_THINK.name:
        return "plain"
    for style in THINKING_STYLES:
        name = name.removesuffix(f"+{style}")
    return name


def for_style(profile: Profile, style: str) -> Profile:
    """The profile to generate with for a prompt style.

    A thinking style (slow-think) turns a non-reasoning profile into a reasoning one with
    <think> tags opened by cotprobe: "plain" becomes "slow-think", any other keeps its template
    options and system prompt under the name "<name>+slow-think". Reasoning profiles, and every
    other style, are returned unchanged.
    """
    if style not in THINKING_STYLES or profile.reasoning:
        return profile
    if profile == PROFILES["plain"]:
        return SLOW_THINK
    return replace(profile, name=f"{profile.name}+{style}", description=f"{profile.description}; {SLOW_THINK.description}",
                   reasoning=True, think_start="<think>", think_end="</think>", prefill_think=True)


def get_profile(name: str) -> Profile:
    base, plus, style = name.partition("+")
    if plus and style in THINKING_STYLES and base in PROFILES:
        return for_style(PROFILES[base], style)
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}") from None
