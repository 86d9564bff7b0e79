import re
from dataclasses import replace

import pytest

from cotprobe.forcing import Prober
from cotprobe.backends.scripted import ScriptedBackend
from cotprobe.data import load_dataset
from cotprobe.tracing import GenerationSettings, build_prompt, generate
from cotprobe.config import RunConfig
from cotprobe.experiment import setup
from cotprobe.grade import grade
from cotprobe.profiles import for_style, get_profile
from cotprobe.prompts import (
    STYLES,
    exemplar_question,
    few_shot_exemplars,
    few_shot_messages,
    prompt_spec,
)
from cotprobe.scales import VERBAL_10
from cotprobe.segment import split_steps
from cotprobe.store import RunDir
from cotprobe.tags import tag_step

EXEMPLARS = few_shot_exemplars("slow-think")


def test_three_exemplars_each_correct_and_ending_at_its_answer():
    assert len(EXEMPLARS) == 3
    for ex in EXEMPLARS:
        question = exemplar_question(ex)
        assert grade(question, ex["final_answer"]).correct, ex["id"]
        last = split_steps(ex["reasoning"])[-1].text
        assert ex["final_answer"] in last and grade(question, last).correct, last
        # nothing after the answer but the full stop
        assert ex["reasoning"].rstrip().endswith(ex["final_answer"] + "."), ex["id"]
        assert 0 <= ex["confidence"] <= 1


def test_exemplars_think_slowly():
    found = {h.behaviour for ex in EXEMPLARS for h in tag_step(ex["reasoning"])}
    assert {"backtracking", "alternative", "verification", "hedging", "conclusion"} <= found
    for ex in EXEMPLARS:  # every exemplar corrects or questions itself
        assert {"backtracking", "alternative"} & {h.behaviour for h in tag_step(ex["reasoning"])}, ex["id"]


def test_exemplars_do_not_give_away_bundled_answers():
    text = " ".join(ex["question"] + " " + ex["reasoning"] for ex in EXEMPLARS).lower()
    for q in load_dataset("trivia") + load_dataset("mc"):
        answers = [q.choices[ord(q.answer) - 65]] if q.kind == "mc" else [q.answer, *q.aliases]
        for a in answers:
            if len(a) >= 4:
                assert not re.search(r"\b" + re.escape(a.lower()) + r"\b", text), (q.id, a)


def test_slow_think_prompt_has_exemplar_turns_and_opens_the_thought(tiny_parts, questions):
    profile = for_style(get_profile("plain"), "slow-think")
    assert profile.name == "slow-think" and profile.reasoning and profile.prefill_think
    backend = ScriptedBackend(lambda c: "", tiny_parts[1])
    prompt = build_prompt(backend, profile, VERBAL_10, "slow-think", questions[0])
    assert prompt.count("<think>") == 4 and prompt.count("</think>") == 3 and prompt.endswith("<think>\n")
    assert prompt.count("**Confidence**: Almost certain") == 2 and "**Confidence**: Highly likely" in prompt
    assert prompt.rindex("The Mayor of Casterbridge") < prompt.rindex("capital of France")
    messages = few_shot_messages("slow-think", VERBAL_10)
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    assert prompt_spec("slow-think", VERBAL_10, reasoning=True).instruction().split(".")[0] in messages[0]["content"]
    assert "slow-think" in STYLES
    # other styles are untouched
    assert few_shot_messages("cot", VERBAL_10) == []
    assert for_style(get_profile("plain"), "cot") is get_profile("plain")
    assert for_style(get_profile("think"), "slow-think") is get_profile("think")


def test_derived_profiles_round_trip_by_name():
    derived = for_style(get_profile("qwen3-nothinking"), "slow-think")
    assert derived.name == "qwen3-nothinking+slow-think" and derived.reasoning
    assert derived.chat_template_kwargs == {"enable_thinking": False}
    assert get_profile(derived.name) == derived
    assert get_profile("slow-think") == for_style(get_profile("plain"), "slow-think")
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("plain+fast")


def test_slow_think_generation_records_thought_and_settings(tiny_parts, questions, tmp_path):
    thought = "Paris? Wait, let me check. Yes, Paris is the capital. So the answer is Paris."
    def respond(context):
        if context.endswith("**Confidence**:"):
            return " Highly likely\n"
        if context.endswith("**Answer**:"):
            return " Paris\n"
        return thought + "</think>\n\n**Answer**: Paris"
    backend = ScriptedBackend(respond, tiny_parts[1])
    with RunDir(tmp_path) as run:  # a plain profile is switched to slow-think by generate itself
        (trace,) = generate(Prober(backend, get_profile("plain"), VERBAL_10, GenerationSettings(style="slow-think").force), questions[:1], run, GenerationSettings(style="slow-think"))
    assert trace.cot == thought and trace.thinking_ended == "stop" and trace.correct
    assert trace.style == "slow-think" and trace.prompt.endswith("<think>\n")
    config = RunConfig(model="tiny-random", scale="verbal10", dataset="trivia", limit=2, seed=0,
                       style="slow-think", budget=8, batch_size=2)
    ex = setup(config, tmp_path)
    assert ex.prober.profile.name == "slow-think" and ex.recorded["profile"]["name"] == "slow-think"
    assert [e["id"] for e in ex.recorded["few_shot"]] == [e["id"] for e in EXEMPLARS]
    assert "few_shot" not in setup(replace(config, style="cot"), tmp_path).recorded


# A Qwen3-like template: drops the thought of earlier assistant turns and, with thinking off,
# opens and closes an empty thought for the model.
QWEN3_LIKE = (
    "{% for m in messages %}{% set content = m['content'] %}"
    "{% if m['role'] == 'assistant' and '</think>' in content %}{% set content = content.split('</think>')[-1].lstrip('\\n') %}{% endif %}"
    "<|im_start|>{{ m['role'] }}\n{{ content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)


def test_slow_think_survives_templates_that_strip_thoughts_and_close_empty_ones(tiny_parts, questions):
    from cotprobe.backends.hf import HFBackend

    backend = HFBackend(*tiny_parts)
    original = backend.tokenizer.chat_template
    backend.tokenizer.chat_template = QWEN3_LIKE
    try:
        profile = for_style(get_profile("qwen3-nothinking"), "slow-think")
        prompt = build_prompt(backend, profile, VERBAL_10, "slow-think", questions[0])
        plain = build_prompt(backend, get_profile("qwen3-nothinking"), VERBAL_10, "cot", questions[0])
    finally:
        backend.tokenizer.chat_template = original
    for ex in EXEMPLARS:
        assert ex["reasoning"] in prompt, ex["id"]  # moved into the user message, where the template keeps it
    tail = prompt[prompt.rindex("<|im_start|>assistant"):]
    assert tail == "<|im_start|>assistant\n<think>\n"  # one open thought, not the template's empty one as well
    assert plain.endswith("<think>\n\n</think>\n\n")  # the non-reasoning profile keeps the template's own
