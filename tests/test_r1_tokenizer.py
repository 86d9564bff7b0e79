"""The R1 path end to end at the token level, with DeepSeek-R1-Distill-Qwen-7B's real tokenizer and
chat template (from the registry's first GGUF part, see cotprobe.reference) and a small
random-weight Qwen2 model of its 152k vocabulary."""

from __future__ import annotations

import math

import pytest
import torch

from cotprobe.backends.hf import HFBackend
from cotprobe.backends.scripted import ScriptedBackend
from cotprobe.tracing import GenerationSettings, ThinkTagError, build_prompt, generate, thought_ids
from cotprobe.forcing import ForceSettings, Prober, close_at, closing_for, exclusive_logprobs, force_cuts, label_options
from cotprobe.profiles import for_style, get_profile
from cotprobe.prompts import few_shot_exemplars
from cotprobe.records import Question
from cotprobe.reference import r1_tokenizer, random_qwen2
from cotprobe.scales import NUMERIC_100, VERBAL_10
from cotprobe.store import RunDir
from cotprobe.cuts import plan_cuts, probe_cuts
from cotprobe.steps import segment_trace

THINK, END = 151648, 151649  # <think>, </think> in R1's vocabulary
QUESTION = Question(id="q", question="What is the capital of France?", answer="Paris")
THOUGHT = ("Okay, so I need to find the capital of France. I think it's Paris.\n\nWait, could it be Lyon? "
           "No, Lyon is a large city, but the capital is Paris. Let me double-check: yes, Paris.\n")


@pytest.fixture(scope="module")
def r1():
    tokenizer = r1_tokenizer()
    return HFBackend(random_qwen2(tokenizer), tokenizer, name="random-qwen2-r1")


def test_real_tokenizer_and_template(r1):
    tok = r1.tokenizer
    assert len(tok) == 152064
    assert r1.encode("<think>") == [THINK] and r1.encode("</think>") == [END]
    assert tok.eos_token == "<｜end▁of▁sentence｜>" and tok.eos_token_id == 151643
    assert r1.encode("<｜User｜>hi<｜Assistant｜>") == [151644, 6023, 151645]
    assert tok.convert_ids_to_tokens(r1.encode(".\n\n**Answer**:"))[0] == ".ĊĊ"
    prompt = r1.chat_prompt([{"role": "user", "content": "Q"}])
    assert prompt == "<｜begin▁of▁sentence｜><｜User｜>Q<｜Assistant｜>"


def test_think_tag_check_on_token_ids(r1):
    # this template does not open <think>: --profile think is refused, naming the right profile
    with pytest.raises(ThinkTagError, match="--profile think-prefill"):
        build_prompt(r1, get_profile("think"), VERBAL_10, "cot", QUESTION)
    prompt = build_prompt(r1, get_profile("think-prefill"), VERBAL_10, "cot", QUESTION)
    assert r1.encode(prompt)[-2:] == [THINK, 198] and prompt.count("<think>") == 1
    assert '"Almost no chance" (0.0–0.1)' in prompt and '"Almost certain" (0.9–1.0)' in prompt
    # newer R1 templates open the thought themselves: accepted by think, not opened twice by think-prefill
    original = r1.tokenizer.chat_template
    r1.tokenizer.chat_template = original.replace("{{'<｜Assistant｜>'}}{% endif %}",
                                                  "{{'<｜Assistant｜><think>\\n'}}{% endif %}")
    try:
        for name in ("think", "think-prefill"):
            opened = build_prompt(r1, get_profile(name), VERBAL_10, "cot", QUESTION)
            assert opened.count("<think>") == 1 and r1.encode(opened)[-2:] == [THINK, 198], name
    finally:
        r1.tokenizer.chat_template = original


def test_slow_think_exemplars_survive_a_template_that_strips_thoughts(r1):
    profile = for_style(get_profile("plain"), "slow-think")
    prompt = build_prompt(r1, profile, VERBAL_10, "slow-think", QUESTION)
    for ex in few_shot_exemplars("slow-think"):
        assert ex["reasoning"] in prompt, ex["id"]  # R1's template drops thoughts of earlier assistant turns
    assert prompt.count("<think>") == 4 and prompt.endswith("<think>\n")


def test_generation_stops_at_the_end_tag(r1):
    """A forward hook makes the random model write </think> as its third token."""
    prompt_ids = r1.encode(build_prompt(r1, get_profile("think-prefill"), VERBAL_10, "cot", QUESTION))
    calls = []
    def push_end_tag(module, args, out):
        calls.append(1)
        if len(calls) >= 3:
            out[:, -1, END] += 1e4
        return out
    handle = r1.model.lm_head.register_forward_hook(push_end_tag)
    try:
        (completion,) = r1.generate([prompt_ids], 16, ["</think>"])
    finally:
        handle.remove()
    assert completion.finish == "stop" and completion.token_ids[-1] == END and len(completion.token_ids) == 3
    assert thought_ids(r1, completion, ["</think>"]) == completion.token_ids[:2]


def test_scripted_r1_trace_and_identical_closing_at_every_cut(r1, tmp_path):
    backend = ScriptedBackend(lambda c: " Paris\n" if c.endswith("**Answer**:") else " Likely\n"
                              if c.endswith("**Confidence**:") else THOUGHT + "</think>\n\n**Answer**: Paris",
                              r1.tokenizer)
    with RunDir(tmp_path) as run:
        (trace,) = generate(Prober(backend, get_profile("think-prefill"), VERBAL_10, GenerationSettings().force), [QUESTION], run, GenerationSettings())
    assert trace.cot == THOUGHT and trace.thinking_ended == "stop" and trace.correct
    assert r1.tokenizer.convert_ids_to_tokens(trace.cot_token_ids[-1:]) == [".Ċ"]
    prompt_ids = r1.encode(trace.prompt)
    ids = prompt_ids + trace.cot_token_ids
    closing = closing_for(Prober(r1, get_profile("think-prefill"), VERBAL_10, ForceSettings()))
    tails = set()
    for cut in range(len(prompt_ids), len(ids) + 1):  # every token position of the CoT
        keep, new = close_at(r1, ids[:cut], len(prompt_ids), closing)
        row = (ids[:keep] + new)[len(prompt_ids):]
        text = r1.decode(row)
        prefix = r1.decode(ids[len(prompt_ids):cut]).rstrip()
        assert text == (prefix + "\n" if prefix else "") + "</think>\n\n**Answer**:"
        assert row == r1.encode(text)  # as the tokenizer encodes the same text whole
        assert row.count(END) == 1 and [151649] == r1.encode("</think>")
        tails.add(tuple(row[row.index(END):]))
    assert len(tails) == 1  # the same closing tokens at every cut
    # the cut after "Paris." closes with ".Ċ" + </think>, never "." + "Ċ"
    dot = r1.encode("Okay, so I need to find the capital of France.")
    keep, new = close_at(r1, prompt_ids + dot, len(prompt_ids), closing)
    assert r1.tokenizer.convert_ids_to_tokens(new[:2]) == [".Ċ", "</think>"]


def test_truncation_on_real_ids_with_random_qwen2(r1, tmp_path):
    trace_ids = r1.encode(THOUGHT)
    backend = ScriptedBackend(lambda c: THOUGHT + "</think>\n\n**Answer**: Paris", r1.tokenizer)
    with RunDir(tmp_path) as run:
        (trace,) = generate(Prober(backend, get_profile("think-prefill"), VERBAL_10, GenerationSettings().force), [QUESTION], run, GenerationSettings())
    assert trace.cot_token_ids == trace_ids
    steps = segment_trace(r1, trace)
    assert "".join(s.text + s.sep for s in steps) == trace.cot
    cuts = plan_cuts(steps, len(trace.cot_token_ids), [k / 10 for k in range(11)], "step")
    assert {c.token_index for c in cuts} <= {0, len(trace_ids), *(s.token_end for s in steps)}
    naive = HFBackend(r1.model, r1.tokenizer, reuse_cache=False)
    probes = probe_cuts(Prober(r1, get_profile("think-prefill"), VERBAL_10, ForceSettings()), trace, QUESTION, cuts)
    again = probe_cuts(Prober(naive, get_profile("think-prefill"), VERBAL_10, ForceSettings()), trace, QUESTION, cuts)
    for a, b in zip(probes, again, strict=True):
        assert a.answer == b.answer
        assert a.confidence.scored_probs == pytest.approx(b.confidence.scored_probs, abs=1e-4)
        assert 0 < a.confidence.label_mass <= 1 and sum(a.confidence.scored_probs) == pytest.approx(1)


def test_numeric100_scores_exclusively_on_qwen_tokens(r1):
    sequences, continued = label_options(r1, NUMERIC_100)
    labels = list(NUMERIC_100.labels)
    assert sequences[labels.index("10")] == [220, 16, 15] and sequences[labels.index("100")] == [220, 16, 15, 15]
    assert continued[labels.index("10")] == [labels.index("100")]  # " 10" is a token prefix of " 100"
    assert all(not c for k, c in enumerate(continued) if labels[k] != "10")
    prompt_ids = r1.encode(build_prompt(r1, get_profile("think-prefill"), NUMERIC_100, "cot", QUESTION))
    ids = prompt_ids + r1.encode(THOUGHT) + r1.encode("</think>\n\n**Answer**: Paris\n**Confidence**:")
    session = r1.session(ids)
    raw = session.score(sequences)
    exclusive = exclusive_logprobs(raw, continued)
    p10, p100 = math.exp(raw[labels.index("10")]), math.exp(raw[labels.index("100")])
    assert math.exp(exclusive[labels.index("10")]) == pytest.approx(p10 - p100, rel=1e-6)
    # P(" 10" then not "0") computed from the model's own next-token distribution after " 10"
    with torch.inference_mode():
        logits = r1.model(input_ids=torch.tensor([ids + sequences[labels.index("10")]])).logits[0, -1]
    not_zero = 1 - float(torch.softmax(logits.float(), -1)[15])
    assert math.exp(exclusive[labels.index("10")]) == pytest.approx(p10 * not_zero, rel=1e-3)
    ((answer, confidence),) = force_cuts(Prober(r1, get_profile("think-prefill"), NUMERIC_100, ForceSettings()), ids[:len(prompt_ids) + len(r1.encode(THOUGHT))], len(prompt_ids), [len(prompt_ids) + len(r1.encode(THOUGHT))])
    assert len(confidence.scored_probs) == 11 and 0 < confidence.label_mass <= 1
