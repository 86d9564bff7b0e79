"""Model profiles: how a model family thinks and how to force it to answer.

Profiles are chosen explicitly (`--profile`), never guessed from a model's name.
A reasoning profile has think tags: generation runs until the end tag (or the thinking
budget), and forcing closes the thought with the model's own end tag. A non-reasoning
profile has none: the chain of thought is the response before `**Answer**:`.
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

    def close_thought(self) -> str:
        return f"{self.think_end}\n\n" if self.reasoning else "\n\n"


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
    if profile.name == "plain":
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
