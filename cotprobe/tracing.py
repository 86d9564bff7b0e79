"""Making reasoning traces: build each question's chat prompt, let the model think (reasoning
profiles: until its think end tag or the thinking budget; non-reasoning: until it starts
`**Answer**`), force the answer and the confidence (both sampled and scored), grade, and append
one Trace per question to the run directory; interrupted runs resume where they stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tqdm import tqdm

from .backends import PromptTooLong, capabilities_of
from .config import RunConfig
from .forcing import ForceSettings, Prober, force_cuts, forcing_suffix
from .profiles import Profile, for_style
from .prompts import (ANSWER_MARKERS, CONFIDENCE_PREFIX, confidence_cue, few_shot_block, few_shot_messages,
                      get_template, prompt_spec)
from .records import Question, Trace
from .scales import Scale
from .store import RunDir


@dataclass(frozen=True)
class GenerationSettings:
    """How traces are made; each field is the `RunConfig` option of the same meaning, with its
    default (`from_config` takes them from a configuration)."""

    style: str = RunConfig.style
    budget: int = RunConfig.budget  # thinking tokens
    cue_budget: int = RunConfig.cue_budget  # extra thinking after the confidence cue (profiles with confidence_cue)
    batch_size: int = RunConfig.batch_size
    prompt_template: str = RunConfig.prompt_template  # a name (cotprobe/_data/prompt_templates.json) or a JSON file

    @classmethod
    def from_config(cls, config: RunConfig) -> "GenerationSettings":
        return cls(style=config.style, budget=config.budget, cue_budget=config.cue_budget,
                   batch_size=config.batch_size, prompt_template=config.prompt_template)

    @property
    def force(self) -> ForceSettings:
        """The template's forcing (the restating turn for non-reasoning models, or none)."""
        return ForceSettings(restate=get_template(self.prompt_template).restate)


class ThinkTagError(ValueError):
    """A profile whose think tags do not fit the chat template."""


def _ends_with(ids: list[int], tail: list[int], backend) -> int | None:
    """Where `tail` starts if ids end with it (ignoring trailing blank tokens), else None."""
    end = len(ids)
    while end > 0 and not backend.decode(ids[end - 1:end]).strip():
        end -= 1
    start = end - len(tail)
    return start if tail and start >= 0 and ids[start:end] == tail else None


def open_thought(backend, profile: Profile, text: str) -> str:
    """Check, on token ids, whether the rendered prompt opened the profile's think tag; open it
    for profiles that prefill it, refuse for one that expects the template to.

    A template that opens and at once closes an empty thought (Qwen3 with enable_thinking=False)
    has that empty block replaced by an open one for prefilling profiles (slow-think)."""
    if not profile.reasoning:
        return text
    ids = backend.encode(text)
    start, end = backend.encode(profile.think_start), backend.encode(profile.think_end)
    # on token ids (a special tag), or on the text (a tag of words, which merges with what precedes it)
    opened = _ends_with(ids, start, backend) is not None or text.rstrip().endswith(profile.think_start.rstrip())
    closed_at = _ends_with(ids, end, backend)
    if closed_at is not None and _ends_with(ids[:closed_at], start, backend) is not None:
        body = text.rstrip().removesuffix(profile.think_end).rstrip()
        text = body[:body.rfind(profile.think_start)]
        opened = False
        if not profile.prefill_think:
            raise ThinkTagError(f"--profile {profile.name}: the chat template closes the thought before the model "
                                f"starts (an empty {profile.think_start}{profile.think_end}); use a non-reasoning "
                                f"profile, or chat-template options that turn thinking on")
    if opened:
        return text
    if not profile.prefill_think:
        raise ThinkTagError(
            f"--profile {profile.name}: the chat template does not open {profile.think_start!r} at the end of the "
            f"prompt; use --profile think-prefill (cotprobe opens it) for this model")
    return text + profile.open_thought()


def build_prompt(backend, profile: Profile, scale: Scale, style: str, question: Question,
                 template: str = RunConfig.prompt_template) -> str:
    """The chat prompt for one question, ending where the model starts (inside an open thought
    for reasoning profiles). Few-shot exemplars go in prior turns where the chat template keeps
    their thoughts, else (a template that strips, empties or refuses them) into the user message."""
    spec = prompt_spec(style, scale, template, profile.reasoning)
    system = [{"role": "system", "content": profile.system_prompt}] if profile.system_prompt else []
    shots = few_shot_messages(style, scale, profile.think_start, profile.think_end, spec.template,
                              profile.reasoning)  # [] for most styles
    user = {"role": "user", "content": spec.user_message(question)}
    try:
        text = backend.chat_prompt(system + shots + [user], **profile.chat_template_kwargs)
    except Exception:  # noqa: BLE001  (a template that refuses thought tags in earlier turns: gpt-oss)
        if not shots:
            raise
        text = ""
    if shots and not all(m["content"] in text for m in shots if m["role"] == "assistant"):
        user = {"role": "user", "content": few_shot_block(shots) + "\n\n" + user["content"]}
        text = backend.chat_prompt(system + [user], **profile.chat_template_kwargs)
    return open_thought(backend, profile, text)


def thought_ids(backend, completion, stop: list[str]) -> list[int]:
    """The generated tokens before the stop string: the longest prefix of whole tokens whose text
    ends before the stop string starts (a stop string may span several tokens). An answer-line
    marker's line begins with any markdown before it ("## **Answer**" is cut before the "##")."""
    if completion.finish != "stop":
        return completion.token_ids
    ids = completion.token_ids
    text = backend.decode(ids)
    begin = min(text.find(s) for s in stop if s and s in text)
    if any(s in ANSWER_MARKERS for s in stop):
        while begin > 0 and text[begin - 1] in " \t*_#":
            begin -= 1
    keep = len(ids)
    while keep > 0 and len(backend.decode(ids[:keep])) > begin:
        keep -= 1
    return ids[:keep]


def trace_question(prober: Prober, question: Question, prompt: str, completion, settings: GenerationSettings,
                   stop: list[str]) -> Trace:
    backend, profile = prober.backend, prober.profile
    prompt_ids = backend.encode(prompt)
    cot_ids = thought_ids(backend, completion, stop)
    ended = {"stop": "stop", "eos": "eos", "length": "budget"}[completion.finish]
    if profile.confidence_cue:
        cue_ids = backend.encode(confidence_cue())
        more = backend.session(prompt_ids + cot_ids + cue_ids).greedy(settings.cue_budget, stop)
        cot_ids = cot_ids + cue_ids + thought_ids(backend, more, stop)
        if more.finish == "length":
            ended = "budget"
    cot = backend.decode(cot_ids)
    ids = prompt_ids + cot_ids
    ((answer, confidence),) = force_cuts(prober, ids, len(prompt_ids), [len(ids)])
    result = prober.grade(question, answer)
    return Trace(
        question_id=question.id, model=backend.name, prompt=prompt, cot=cot, answer=answer,
        confidence=confidence, prompt_tokens=len(prompt_ids), cot_token_ids=cot_ids,
        thinking_ended=ended, raw_output=completion.text, correct=result.correct,
        grader=result.grader, style=settings.style,
    )


def generate(prober: Prober, questions: list[Question], run: RunDir, settings: GenerationSettings) -> list[Trace]:
    """Trace every question not yet in run/traces.jsonl; return all traces in question order."""
    prober = replace(prober, profile=for_style(prober.profile, settings.style))  # slow-think: reasoning
    backend, profile = prober.backend, prober.profile
    run.repair_records(Trace)
    done = {t.question_id: t for t in run.traces()}
    todo = [q for q in questions if q.id not in done]
    stop = [profile.think_end] if profile.reasoning else list(ANSWER_MARKERS)
    prompt_of = {q.id: build_prompt(backend, profile, prober.scale, settings.style, q, settings.prompt_template)
                 for q in todo}
    remember_shared_prompt(backend, list(prompt_of.values()))
    with tqdm(total=len(questions), initial=len(questions) - len(todo), desc="generate", unit="q") as bar:
        for start in range(0, len(todo), settings.batch_size):
            batch = todo[start:start + settings.batch_size]
            prompts = [prompt_of[q.id] for q in batch]
            completions = backend.generate([backend.encode(p) for p in prompts], settings.budget, stop)
            for question, prompt, completion in zip(batch, prompts, completions):
                trace = trace_question(prober, question, prompt, completion, settings, stop)
                run.add(trace)
                done[question.id] = trace
                bar.update()
    return [done[q.id] for q in questions]


MIN_SHARED_TOKENS = 64  # a shared prompt start shorter than this is not worth remembering


def remember_shared_prompt(backend, prompts: list[str]) -> None:
    """Let a backend that can (`PrefixRemembering`: the HF backend) keep the encoding of what
    every prompt starts with (system prompt, instructions, few-shot exemplars), so that each
    prompt's encoding, its forcing and its cut sweep run only its own tokens."""
    if len(prompts) < 2 or not capabilities_of(backend).remembers_prefix:
        return
    first, *others = [backend.encode(p) for p in prompts]
    n = len(first)
    for ids in others:
        n = next((i for i, (a, b) in enumerate(zip(first[:n], ids)) if a != b), min(n, len(ids)))
    if n >= MIN_SHARED_TOKENS:
        backend.remember_prefix(first[:n])


def forcing_room(prober: Prober) -> int:
    """Tokens that forcing adds after a CoT at most: the suffix, the answer, the confidence
    prefix, the longest label (scored) or the written confidence, whichever is longer."""
    backend, force = prober.backend, prober.force
    suffix = len(backend.encode(forcing_suffix(prober.profile, "x")))
    prefix = len(backend.encode("\n" + CONFIDENCE_PREFIX))
    longest = max(len(backend.encode(" " + label)) for label in prober.scale.labels)
    return suffix + force.answer_max_tokens + prefix + max(longest, force.confidence_max_tokens)


def check_prompts(prober: Prober, questions: list[Question], settings: GenerationSettings,
                  places: dict[str, str] | None = None) -> None:
    """Before anything is run or written: every question's prompt, plus the thinking budget
    (and the confidence cue's) and the forcing, must fit the model's context. Names the
    first question that does not (where it was read and its id) and how many do not."""
    backend, context = prober.backend, prober.backend.context_length
    if not context:
        return
    prober = replace(prober, profile=for_style(prober.profile, settings.style))
    profile = prober.profile
    extra = settings.budget + forcing_room(prober)
    if profile.confidence_cue:
        extra += len(backend.encode(confidence_cue())) + settings.cue_budget
    too_long = []
    for question in questions:
        n = len(backend.encode(build_prompt(backend, profile, prober.scale, settings.style, question,
                                            settings.prompt_template)))
        if n + extra > context:
            too_long.append((question, n))
    if too_long:
        question, n = too_long[0]
        where = (places or {}).get(question.id, "dataset")
        others = f"; {len(too_long)} of {len(questions)} questions are too long" if len(too_long) > 1 else ""
        raise PromptTooLong(
            f"{where} (id {question.id!r}): prompt of {n} tokens plus {extra} to think and answer "
            f"exceeds the model's context of {context} tokens{others}; lower --budget or leave the "
            "question out (cotprobe never truncates a prompt)"
        )
