import json
import subprocess
import sys
import time

import pytest
from conftest import assert_greedy_agree

from cotprobe.forcing import Prober
from cotprobe.backends import PromptTooLong
from cotprobe.backends.hf import HFBackend
from cotprobe.backends.scripted import ScriptedBackend
from cotprobe.tracing import GenerationSettings, generate
from cotprobe.profiles import get_profile
from cotprobe.scales import VERBAL_10
from cotprobe.store import RunDir

THOUGHT = "Okay, France. Wait, its capital is Paris, not Lyon. Let me check: yes, Paris."


def scripted(tokenizer, close_thought=True):
    def respond(context: str) -> str:
        if context.endswith("**Confidence**:"):
            return " Highly likely\n"
        if context.endswith("**Answer**:"):
            return " Paris\n"
        return THOUGHT + ("</think>\n\n**Answer**: Paris" if close_thought else " and so on" * 50)
    return ScriptedBackend(respond, tokenizer)


def test_reasoning_trace_keeps_thought_and_forces_answer(tiny_parts, questions, tmp_path):
    backend = scripted(tiny_parts[1])
    with RunDir(tmp_path) as run:
        (trace,) = generate(Prober(backend, get_profile("think-prefill"), VERBAL_10, GenerationSettings().force), questions[:1], run, GenerationSettings())
    assert trace.cot == THOUGHT
    assert trace.prompt.endswith("<think>\n")
    assert trace.thinking_ended == "stop"
    assert trace.answer == "Paris" and trace.correct is True and trace.grader
    assert trace.confidence.sampled_label == "Highly likely"
    assert trace.confidence.scored_label == "Highly likely"
    assert backend.decode(trace.cot_token_ids) == trace.cot


def test_plain_cot_ends_before_a_multi_token_answer_marker(tiny_parts, questions, tmp_path):
    backend = ScriptedBackend(lambda c: " Paris\n" if c.endswith("**Answer**:") else
                              " Highly likely\n" if c.endswith("**Confidence**:") else
                              "I think Paris.\n\n**Answer**: Paris", tiny_parts[1])
    with RunDir(tmp_path) as run:
        (trace,) = generate(Prober(backend, get_profile("plain"), VERBAL_10, GenerationSettings().force), questions[:1], run, GenerationSettings())
    assert trace.cot == "I think Paris.\n\n"
    assert backend.decode(trace.cot_token_ids) == trace.cot


def test_thinking_budget_overrun_is_recorded_and_closed(tiny_parts, questions, tmp_path):
    backend = scripted(tiny_parts[1], close_thought=False)
    with RunDir(tmp_path) as run:
        (trace,) = generate(Prober(backend, get_profile("think-prefill"), VERBAL_10, GenerationSettings(budget=20).force), questions[:1], run, GenerationSettings(budget=20))
    assert trace.thinking_ended == "budget"
    assert len(trace.cot_token_ids) == 20
    assert trace.answer == "Paris"


def test_prompt_longer_than_context_raises_never_truncates(tiny, questions, tmp_path):
    tiny.context_length = 64
    with RunDir(tmp_path) as run, pytest.raises(PromptTooLong, match="exceeds the model's context of 64"):
        generate(Prober(tiny, get_profile("plain"), VERBAL_10, GenerationSettings(budget=8).force), questions[:1], run, GenerationSettings(budget=8))


def test_batched_generation_matches_one_at_a_time(tiny_parts, questions, tmp_path):
    """Padded batches and single rows reduce in different orders: the CoTs agree, or part only
    where the tokens were tied."""
    results = []
    for batch in (1, 3):
        with RunDir(tmp_path / str(batch)) as run:
            traces = generate(Prober(HFBackend(*tiny_parts), get_profile("plain"), VERBAL_10, GenerationSettings(budget=12, batch_size=batch).force), questions, run, GenerationSettings(budget=12, batch_size=batch))
        results.append(traces)
    reference = HFBackend(*tiny_parts, reuse_cache=False)
    for one, batched in zip(*results, strict=True):
        assert one.prompt == batched.prompt
        assert_greedy_agree(reference, reference.encode(one.prompt), one.cot_token_ids, batched.cot_token_ids)


def test_killed_generation_resumes_with_every_question_once(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "cotprobe.generate", "--model", "tiny-random", "-n", "12", "--budget", "24",
           "--batch-size", "1", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    traces = out / "traces.jsonl"
    deadline = time.time() + 240
    def lines():  # records end in "\n" only: a CoT of random tokens may hold other line separators
        return [line for line in traces.read_text().split("\n") if line]
    while time.time() < deadline and not (traces.exists() and len(lines()) >= 3):
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    partial = len(lines())
    assert 3 <= partial < 12
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ids = [json.loads(line)["question_id"] for line in lines()]
    assert len(ids) == len(set(ids)) == 12


@pytest.mark.parametrize("args, message", [
    (["--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["--model", "tiny-random", "--dataset", "no-such-set"], "unknown dataset"),
    (["--model", "tiny-random", "--dataset", "missing.jsonl"], "missing.jsonl"),
    (["--model", "tiny-random", "--dataset", "{bad}"], "bad.jsonl line 1"),
    (["--model", "tiny-random", "--dataset", "{nocol}"], "answer"),
])
def test_bad_input_gives_one_line_error(tmp_path, args, message):
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "question": "?", "answer": "x"\n')
    (tmp_path / "nocol.csv").write_text("id,question\na,Why?\n")
    args = [a.replace("{bad}", str(tmp_path / "bad.jsonl")).replace("{nocol}", str(tmp_path / "nocol.csv"))
            .replace("missing.jsonl", str(tmp_path / "missing.jsonl")) for a in args]
    proc = subprocess.run([sys.executable, "-m", "cotprobe.generate", *args, "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1], proc.stderr[-1500:]
    assert len([line for line in lines if line.startswith("error")]) == 1
    assert "Traceback" not in proc.stderr
