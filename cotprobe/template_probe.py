"""--profile auto: the profile a chat template calls for, read off the template itself.

The template is rendered with a probe conversation under the user's template options: the user
message alone (as cotprobe's prompts are sent) and a system and a user message, each with the
generation prompt and without it, so that what the template writes for the assistant to start
(the generation prompt) is known exactly. It is rendered again under every thinking switch its
source names (`enable_thinking`, `thinking`, `reasoning_effort`, `thinking_budget`; `/think`
and `/no_think` in the system message). From the generation prompts and the thought tags the
source holds, never from the model's name, it reads:

- the thought format (`FORMATS`: the tags of harmony, Seed-OSS, Hunyuan, Apriel, EXAONE Deep,
  Granite, or `<think>`); a template holding none is not a reasoning template (`plain`);
- who opens the thought: the template (its generation prompt ends with the open tag) or the
  model (cotprobe then opens it); a generation prompt that closes the thought (an empty block,
  DeepSeek-V3.1's bare `</think>`) or opens it only to write markup of its own into it
  (Seed-OSS's budget reflection at budget 0) means thinking is off: `plain`, the
  non-reasoning counterpart, with the same options. So does a generation prompt with no tag
  where a switch would turn the thought on (Granite without `thinking`);
- what each switch does, for the manifest and the line printed.

A template whose source holds the tags of two formats, whose generation prompt holds an open tag
it neither ends with nor closes, or which opens the thought twice after the user message (once
with the message and once more in the generation prompt, as llama.cpp's DeepSeek-V3.2 copy does),
is refused in one line naming the profiles to choose from.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .profiles import AUTO, PROFILES, Profile

PROBE_SYSTEM = "You are a helpful assistant."
PROBE_USER = "What is the capital of France?"


@dataclass(frozen=True)
class Format:
    """A thought format auto can choose: the profile it stands for and the marks in a template's
    source that say the template uses it (all of them must be there)."""

    profile: str
    marks: tuple[str, ...]
    within: str | None = None  # a format whose marks this one's include (granite's <think> is think's)


FORMATS = [
    Format("harmony", ("<|channel|>", "analysis", "final")),
    Format("seed-think", ("<seed:think>",)),
    Format("hunyuan", ("<think:opensource>",)),
    Format("apriel", ("[BEGIN FINAL RESPONSE]",)),
    Format("exaone-deep", ("<thought>",)),
    Format("granite", ("<think>", "<response></response>"), within="think"),
    Format("think", ("</think>",)),
    Format("think", ("<think>",)),
]
SWITCHES = {  # template options that turn thinking on or off, and the values probed
    "enable_thinking": (True, False), "thinking": (True, False),
    "reasoning_effort": ("low", "medium", "high"), "thinking_budget": (0, 1024),
}
SYSTEM_SWITCHES = ("/think", "/no_think")  # written in the system message
CHOICES = ["plain", "think", "think-prefill", *(f.profile for f in FORMATS if f.profile != "think")]  # said on refusal


class TemplateProbeError(ValueError):
    """A chat template --profile auto cannot read: refused in one line naming the profiles to choose from."""


@dataclass(frozen=True)
class Detection:
    """What --profile auto read off the template: the profile chosen (the template options it was
    read under as its own), and the evidence, recorded in the manifest (`record`)."""

    profile: Profile
    format: str | None  # the thought format found in the source (a profile name), None: no tags
    opened_by: str | None  # "template", "cotprobe" (the model would open it), None: no thought
    generation_prompt: str  # what the template writes for the assistant to start (user message alone)
    switches: dict[str, str] = field(default_factory=dict)  # "option=value" -> what it did

    def record(self) -> dict[str, Any]:
        return {"profile": self.profile.name, "format": self.format, "opened_by": self.opened_by,
                "generation_prompt": self.generation_prompt, "switches": self.switches}

    def line(self) -> str:
        """One line for stderr: the choice and why."""
        p = self.profile
        if p.reasoning:
            what = (f"{p.think_start!r} ... {p.think_end!r}, opened by "
                    f"{'the chat template' if self.opened_by == 'template' else 'cotprobe (the model would open it)'}")
        elif self.format:
            what = "the chat template's thinking is off under these options (non-reasoning counterpart)"
        else:
            what = "no thought tags in the chat template (a non-reasoning template)"
        said = "; ".join(f"{k}: {v}" for k, v in self.switches.items())
        return f"--profile auto: {p.name} ({what}){'; ' + said if said else ''}"


Render = Callable[..., str]  # backend.chat_prompt: (messages, **template options) -> text


def generation_prompt(render: Render, messages: list[dict[str, str]], options: dict[str, Any]) -> str:
    """What the template adds for the assistant to start: the rendering with the generation prompt
    past the rendering without it (where that is not its start, or the template ignores the
    option, as Apriel's does: past the last message's content)."""
    full = render(messages, **options)
    bare = render(messages, **{**options, "add_generation_prompt": False})
    if full.startswith(bare) and full != bare:
        return full[len(bare):]
    last = messages[-1]["content"]
    return full[full.rindex(last) + len(last):] if last in full else full


def thought_state(prompt: str, profile: Profile) -> str:
    """Where a generation prompt leaves the profile's thought: "opened" (ends with the open tag),
    "closed" (holds the end tag: thinking off), "steered" (the open tag followed by markup of the
    template's own, no words: Seed-OSS's budget reflection at thinking_budget=0, which the model
    closes at once: thinking off), "none" (no tag: the model opens it, or never thinks),
    "unclear" (an open tag followed by text)."""
    start, end = profile.think_start.rstrip(), profile.think_end
    if start and prompt.rstrip().endswith(start):
        return "opened"
    if end and end in prompt:
        return "closed"
    if start and start in prompt:
        after = prompt[prompt.rindex(start) + len(start):]
        return "steered" if re.fullmatch(r"(\s*<[^<>\s]+>)+\s*", after) else "unclear"
    return "none"


def find_format(source: str) -> str | None:
    """The thought format whose marks the template source holds; refused where two do."""
    found = [f for f in FORMATS if all(m in source for m in f.marks)]
    names = list(dict.fromkeys(f.profile for f in found if not any(g.within == f.profile for g in found)))
    if len(names) > 1:
        raise TemplateProbeError(f"--profile auto: the chat template holds the thought tags of "
                                 f"{' and '.join(names)}; {_choose()}")
    return names[0] if names else None


def _choose() -> str:
    families = sorted(set(PROFILES) - set(CHOICES))
    return f"choose one with --profile ({', '.join(CHOICES)}, or a family's: {', '.join(families)})"


def _probes(source: str, system_role: bool) -> list[tuple[str, dict[str, Any], str | None]]:
    """(label, options, system text) of every switch the source names."""
    found = [(f"{name}={value!r}", {name: value}, None) for name, values in SWITCHES.items()
             if re.search(rf"\b{name}\b", source) for value in values]
    return found + [(f"system {text}", {}, text) for text in SYSTEM_SWITCHES if system_role and text in source]


def _with_system(text: str, messages: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"role": "system", "content": text}] + messages


def _describe(state: str) -> str:
    return {"opened": "the template opens the thought", "closed": "the template closes the thought (thinking off)",
            "none": "no thought tag (the model opens it, or thinks not at all)",
            "steered": "the template opens the thought and writes markup into it (thinking off)",
            "unclear": "an open tag not at the end", "error": "the template refused these options"}[state]


def detect(render: Render, source: str, options: dict[str, Any] | None = None) -> Detection:
    """The profile for a chat template (its Jinja `source`, rendered by `render`) under `options`
    (--chat-template-kwargs). See the module's docstring for what is read and what is refused."""
    options = dict(options or {})
    user = [{"role": "user", "content": PROBE_USER}]
    try:
        base = generation_prompt(render, user, options)
    except Exception as exc:  # noqa: BLE001  (a template fails in many ways: each is one line)
        raise TemplateProbeError(f"--profile auto: the chat template cannot render a user message "
                                 f"({type(exc).__name__}: {exc}); {_choose()}") from None
    try:
        with_system = generation_prompt(render, _with_system(PROBE_SYSTEM, user), options)
    except Exception:  # noqa: BLE001  (no system role, as Gemma 2: cotprobe's prompts have none either)
        with_system = None
    name = find_format(source)
    if name is None:
        return Detection(replace(PROFILES["plain"], chat_template_kwargs=options), None, None, base)
    tags = PROFILES[name]
    state = thought_state(base, tags)
    switches: dict[str, str] = {}
    turns_on = False
    for label, extra, system in _probes(source, system_role=with_system is not None):
        messages, reference = (_with_system(system, user), _with_system(PROBE_SYSTEM, user)) if system else (user, user)
        try:
            probed = generation_prompt(render, messages, {**options, **extra})
            shown = tags.think_start in render(messages, **{**options, **extra})
        except Exception:  # noqa: BLE001
            switches[label] = _describe("error")
            continue
        shown_before = tags.think_start in render(reference, **options)
        if probed == (with_system if system else base) and shown == shown_before:
            continue  # the switch changes nothing here
        probed_state = thought_state(probed, tags)
        switches[label] = _describe(probed_state)
        # a switch that opens the thought, or writes its tags (an instruction) where they were not
        turns_on |= probed_state == "opened" or (probed_state == "none" and shown and not shown_before)
    if state == "unclear":
        raise TemplateProbeError(f"--profile auto: the chat template's generation prompt {base!r} holds "
                                 f"{tags.think_start!r} but does not end with it; {_choose()}")
    if state in ("closed", "steered") or (state == "none" and turns_on):
        off = replace(PROFILES["plain"], chat_template_kwargs=options)
        return Detection(off, name, None, base, switches)
    after_user = render(user, **options).rpartition(PROBE_USER)[2]
    if after_user.count(tags.think_start.rstrip()) > 1:
        raise TemplateProbeError(f"--profile auto: the chat template opens {tags.think_start!r} twice after the user "
                                 f"message ({after_user!r}); pass a corrected one with --chat-template, or {_choose()}")
    opened_by = "template" if state == "opened" else "cotprobe"
    if name == "think":
        chosen = PROFILES["think" if opened_by == "template" else "think-prefill"]
    else:
        chosen = replace(tags, prefill_think=opened_by == "cotprobe")
    chosen = replace(chosen, chat_template_kwargs=options,
                     description=f"{chosen.description} (chosen by --profile {AUTO})")
    return Detection(chosen, name, opened_by, base, switches)
