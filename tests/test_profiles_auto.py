"""--profile auto, --chat-template, --chat-template-kwargs and the families' profiles (issue #25).

The templates under tests/templates/ are short ones written here, each reproducing one family's
behaviour (its tags, who opens the thought, its switches, what it does with earlier thoughts);
no real template is copied into the repository."""

import json
from pathlib import Path

import pytest

from cotprobe.backends.scripted import ScriptedBackend
from cotprobe.cli import run_main
from cotprobe.config import RunConfig
from cotprobe.forcing import ForceSettings, Prober, closing_for
from cotprobe.profiles import PROFILES, for_style, get_profile
from cotprobe.prompts import few_shot_exemplars
from cotprobe.scales import VERBAL_10
from cotprobe.store import RunDir, read_manifest, stage_settings
from cotprobe.template_probe import TemplateProbeError, detect
from cotprobe.tracing import GenerationSettings, build_prompt, generate

TEMPLATES = Path(__file__).parent / "templates"
FINAL = "<|start|>assistant<|channel|>final<|message|>"

# template, options -> profile chosen, its open and close tags, who opens the thought (None: no thought)
FAMILIES = [
    ("r1", {}, "think", "<think>", "</think>", "template"),
    ("qwq", {}, "think", "<think>", "</think>", "template"),
    ("qwen3", {}, "think-prefill", "<think>", "</think>", "cotprobe"),
    ("qwen3", {"enable_thinking": False}, "plain", "", "", None),
    ("harmony", {}, "harmony", "<|channel|>analysis<|message|>", "<|end|>", "cotprobe"),
    ("harmony", {"reasoning_effort": "high"}, "harmony", "<|channel|>analysis<|message|>", "<|end|>", "cotprobe"),
    ("deepseek-v31", {}, "plain", "", "", None),
    ("deepseek-v31", {"thinking": True}, "think", "<think>", "</think>", "template"),
    ("deepseek-v32", {}, "think", "<think>", "</think>", "template"),
    ("deepseek-v32", {"enable_thinking": False}, "plain", "", "", None),
    ("glm", {}, "think-prefill", "<think>", "</think>", "cotprobe"),
    ("glm", {"enable_thinking": False}, "plain", "", "", None),
    ("nemotron-nano", {}, "think", "<think>", "</think>", "template"),
    ("nemotron-super", {}, "think-prefill", "<think>", "</think>", "cotprobe"),
    ("seed-oss", {}, "seed-think", "<seed:think>", "</seed:think>", "cotprobe"),
    ("seed-oss", {"thinking_budget": 0}, "plain", "", "", None),
    ("kimi", {}, "think-prefill", "<think>", "</think>", "cotprobe"),
    ("minimax", {}, "think", "<think>", "</think>", "template"),
    ("apriel", {}, "apriel", "Here are my reasoning steps:", "[BEGIN FINAL RESPONSE]", "template"),
    ("hunyuan", {}, "plain", "", "", None),
    ("hunyuan", {"reasoning_effort": "high"}, "hunyuan", "<think:opensource>", "</think:opensource>", "template"),
    ("smollm3", {}, "think-prefill", "<think>", "</think>", "cotprobe"),
    ("smollm3", {"enable_thinking": False}, "plain", "", "", None),
    ("exaone4", {}, "plain", "", "", None),
    ("exaone4", {"enable_thinking": True}, "think", "<think>", "</think>", "template"),
    ("granite", {}, "plain", "", "", None),
    ("granite", {"thinking": True}, "granite", "<think>", "</think>", "cotprobe"),
    ("chatml", {}, "plain", "", "", None),
]


def backend_with(tokenizer, template: str) -> ScriptedBackend:
    backend = ScriptedBackend(lambda context: "", tokenizer, name="tiny-random")
    backend.chat_template = (TEMPLATES / f"{template}.jinja").read_text(encoding="utf-8")
    return backend


@pytest.mark.parametrize("template, options, name, start, end, opened_by", FAMILIES,
                         ids=[f"{f[0]}{'-' + '-'.join(f'{k}={v}' for k, v in f[1].items()) if f[1] else ''}"
                              for f in FAMILIES])
def test_auto_reads_the_family_off_its_template(tiny_parts, questions, template, options, name, start, end,
                                                opened_by):
    backend = backend_with(tiny_parts[1], template)
    found = detect(backend.chat_prompt, backend.template_source(), options)
    profile = found.profile
    assert (profile.name, profile.think_start, profile.think_end, found.opened_by) == (name, start, end, opened_by)
    assert profile.chat_template_kwargs == options and profile.reasoning == (opened_by is not None)
    assert profile.prefill_think == (opened_by == "cotprobe")
    assert found.record()["profile"] == name and name in found.line()
    prompt = build_prompt(backend, profile, VERBAL_10, "cot", questions[0])
    tail = prompt[prompt.rindex(questions[0].question):]
    if profile.reasoning:  # the prompt ends inside a thought opened exactly once
        assert tail.count(start) == 1 and prompt.rstrip().endswith(start), tail
        assert end not in tail[tail.rindex(start):], tail
    else:  # the non-reasoning counterpart: the template's own prompt, nothing opened by cotprobe
        assert prompt.endswith(found.generation_prompt), tail


def test_switches_are_recorded(tiny_parts):
    backend = backend_with(tiny_parts[1], "qwen3")
    found = detect(backend.chat_prompt, backend.template_source())
    assert found.switches == {"enable_thinking=False": "the template closes the thought (thinking off)"}
    backend = backend_with(tiny_parts[1], "exaone4")
    found = detect(backend.chat_prompt, backend.template_source())
    assert found.switches["enable_thinking=True"] == "the template opens the thought"
    assert "thinking is off" in found.line()
    backend = backend_with(tiny_parts[1], "smollm3")
    assert "system /no_think" in detect(backend.chat_prompt, backend.template_source()).switches


def test_ambiguous_and_broken_templates_are_refused_naming_the_profiles(tiny_parts):
    backend = backend_with(tiny_parts[1], "chatml")
    both = "{# mentions <seed:think> and <think:opensource> #}" + backend.chat_template
    with pytest.raises(TemplateProbeError, match=r"seed-think and hunyuan; choose one with --profile \(plain, think"):
        detect(backend.chat_prompt, both)
    backend.chat_template = "{{ raise_exception('no') }}"
    with pytest.raises(TemplateProbeError, match="cannot render a user message .* choose one with --profile"):
        detect(backend.chat_prompt, backend.chat_template)
    backend.chat_template = ("{% for m in messages %}{{ m['content'] }}{% endfor %}"
                             "{% if add_generation_prompt %}<think> and then{% endif %}{# </think> #}")
    with pytest.raises(TemplateProbeError, match="does not end with it"):
        detect(backend.chat_prompt, backend.chat_template)
    backend.chat_template = ("{% for m in messages %}{{ m['content'] }}<think>{% endfor %}"  # opened with the message
                             "{% if add_generation_prompt %}\n<think>{% endif %}{# </think> #}")  # and once more
    with pytest.raises(TemplateProbeError, match="opens '<think>' twice after the user message"):
        detect(backend.chat_prompt, backend.chat_template)


def test_every_profile_closes_its_own_way(tiny_parts):
    closing = {name: closing_for(Prober(backend_with(tiny_parts[1], "chatml"), PROFILES[name], VERBAL_10,
                                        ForceSettings())).body for name in ("think", "harmony", "apriel", "granite")}
    assert closing == {"think": "</think>\n\n**Answer**:", "harmony": f"<|end|>{FINAL}**Answer**:",
                       "apriel": "[BEGIN FINAL RESPONSE]\n**Answer**:", "granite": "</think>\n<response>**Answer**:"}
    assert PROFILES["harmony"].open_thought() == "<|channel|>analysis<|message|>"
    assert PROFILES["think"].close_thought() == "</think>\n\n" and PROFILES["plain"].close_thought() == "\n\n"


def test_a_cut_closes_with_the_tokenizers_own_special_tokens():
    from cotprobe.backends.tiny import tiny_tokenizer
    from cotprobe.forcing import close_at

    tok = tiny_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<|start|>", "<|end|>", "<|channel|>", "<|message|>"]})
    backend = ScriptedBackend(lambda context: "", tok)
    ids = backend.encode("<|start|>assistant<|channel|>analysis<|message|>So it is Paris.")
    keep, new = close_at(backend, ids, 0, closing_for(Prober(backend, PROFILES["harmony"], VERBAL_10, ForceSettings())))
    special = {t: tok.convert_tokens_to_ids(t) for t in ("<|start|>", "<|end|>", "<|channel|>", "<|message|>")}
    assert [new.count(special[t]) for t in ("<|end|>", "<|start|>", "<|channel|>", "<|message|>")] == [1, 1, 1, 1]
    assert backend.decode(ids[:keep] + new).endswith(f"So it is Paris.\n<|end|>{FINAL}**Answer**:")


def test_harmony_generation_stops_at_the_end_of_the_analysis_and_answers_in_the_final_channel(tiny_parts, questions,
                                                                                             tmp_path):
    thought = "The capital of France is Paris."
    said = []

    def respond(context):
        said.append(context)
        if context.endswith("**Confidence**:"):
            return " Highly likely\n"
        if context.endswith("**Answer**:"):
            return " Paris\n"
        return thought + f"<|end|>{FINAL}**Answer**: Paris"
    backend = ScriptedBackend(respond, tiny_parts[1])
    backend.chat_template = (TEMPLATES / "harmony.jinja").read_text(encoding="utf-8")
    profile = detect(backend.chat_prompt, backend.template_source()).profile
    with RunDir(tmp_path) as run:
        (trace,) = generate(Prober(backend, profile, VERBAL_10, ForceSettings()), questions[:1], run,
                            GenerationSettings())
    assert trace.prompt.endswith("<|start|>assistant<|channel|>analysis<|message|>")
    assert trace.cot == thought and trace.thinking_ended == "stop" and trace.answer == "Paris" and trace.correct
    assert any(c.endswith(f"Paris.\n<|end|>{FINAL}**Answer**:") for c in said)  # the forced answer's context


@pytest.mark.parametrize("template", ["r1", "qwq", "deepseek-v32", "kimi", "harmony", "chatml", "qwen3"])
def test_slow_think_keeps_the_exemplars_thoughts_under_templates_that_strip_or_refuse_them(tiny_parts, questions,
                                                                                           template):
    backend = backend_with(tiny_parts[1], template)
    profile = for_style(detect(backend.chat_prompt, backend.template_source()).profile, "slow-think")
    prompt = build_prompt(backend, profile, VERBAL_10, "slow-think", questions[0])
    for ex in few_shot_exemplars("slow-think"):
        assert ex["reasoning"] in prompt, (template, ex["id"])
    tail = prompt[prompt.rindex(questions[0].question):]
    assert tail.count(profile.think_start) == 1 and prompt.rstrip().endswith(profile.think_start)


def test_chat_template_kwargs_are_merged_over_the_profile(tiny_parts, questions):
    from cotprobe.experiment import chosen_profile

    config = RunConfig(model="tiny-random", profile="qwen3-thinking", chat_template_kwargs={"extra": 1})
    profile, detected = chosen_profile(config, backend_with(tiny_parts[1], "qwen3"))
    assert profile.chat_template_kwargs == {"enable_thinking": True, "extra": 1} and detected is None
    assert chosen_profile(RunConfig(model="tiny-random", profile="think"), None)[0] is get_profile("think")


def generate_cli(argv):
    from cotprobe.generate import main

    return run_main(main, argv)


@pytest.mark.parametrize("template, options, start, end", [
    ("seed-oss", None, "<seed:think>", "</seed:think>"),
    ("hunyuan", '{"reasoning_effort": "high"}', "<think:opensource>", "</think:opensource>"),
    ("qwen3", '{"enable_thinking": false}', "", ""),
])
def test_generate_with_auto_records_the_family_in_the_manifest(tmp_path, template, options, start, end):
    out = tmp_path / "run"
    argv = ["--model", "tiny-random", "--chat-template", str(TEMPLATES / f"{template}.jinja"), "--profile", "auto",
            "-n", "1", "--budget", "8", "--out", str(out)] + (["--chat-template-kwargs", options] if options else [])
    assert generate_cli(argv) == 0
    made = stage_settings(read_manifest(out), "generate")
    assert (made["profile"]["think_start"], made["profile"]["think_end"]) == (start, end)
    assert made["profile_spec"] == "auto" and made["profile_auto"]["profile"] == made["profile"]["name"]
    assert made["chat_template"] == str(TEMPLATES / f"{template}.jinja") and len(made["chat_template_sha256"]) == 64
    assert made["chat_template_kwargs"] == (json.loads(options) if options else {})
    (trace,) = RunDir(out).traces()
    if start:
        assert trace.prompt.rstrip().endswith(start) and trace.prompt.count(start) == 1
    again = RunConfig().from_run(out)  # a later stage chooses the same way again
    assert (again.profile, again.chat_template, again.chat_template_kwargs) == (
        "auto", str(TEMPLATES / f"{template}.jinja"), made["chat_template_kwargs"])


def test_bad_template_options_are_refused_in_one_line(tmp_path, capsys):
    base = ["--model", "tiny-random", "-n", "1", "--out", str(tmp_path / "run")]
    with pytest.raises(SystemExit):
        generate_cli(base + ["--chat-template-kwargs", "{enable_thinking: false}"])
    assert "--chat-template-kwargs: not valid JSON" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        generate_cli(base + ["--chat-template-kwargs", "[1]"])
    assert "expected a JSON object" in capsys.readouterr().err
    assert generate_cli(base + ["--chat-template", str(tmp_path / "missing.jinja")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --chat-template {tmp_path / 'missing.jinja'}: no such file (give a Jinja chat template file)"]
    assert not (tmp_path / "run").exists()
