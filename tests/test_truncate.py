import json
import subprocess
import sys

import pytest
from conftest import assert_greedy_agree

from cotprobe.backends.hf import HFBackend
from cotprobe.tracing import GenerationSettings, generate
from cotprobe.tracing import build_prompt
from cotprobe.forcing import ForceSettings, Prober, close_at, closing_for, forcing_suffix
from cotprobe.profiles import get_profile
from cotprobe.records import Probe, Question, Step
from cotprobe.scales import VERBAL_10
from cotprobe.store import RunDir
from cotprobe.cuts import Sweep, parse_fractions, plan_cuts, probe_cuts, truncate
from cotprobe.steps import segment_trace


def step(i, start, end, t0, t1):
    return Step(question_id="q", index=i, text="x" * (end - start), start=start, end=end, sep=" ",
                token_start=t0, token_end=t1)


def test_parse_fractions_range_is_inclusive_and_exact():
    assert parse_fractions("0:1:0.1") == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert parse_fractions("1,0.5,0") == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="fractions"):
        parse_fractions("0:2:0.5")


def test_step_cuts_land_on_step_boundaries():
    steps = [step(0, 0, 10, 0, 4), step(1, 11, 30, 4, 12), step(2, 31, 40, 12, 20)]
    cuts = plan_cuts(steps, 20, [0.0, 0.15, 0.3, 0.5, 0.9, 1.0], "step")  # targets 0, 3, 6, 10, 18, 20
    assert [c.token_index for c in cuts] == [0, 4, 4, 12, 20, 20]
    assert [c.step_index for c in cuts] == [0, 1, 1, 2, 3, 3]
    assert all(c.token_index in {0, 4, 12, 20} for c in cuts)
    assert cuts[3].fraction_realised == pytest.approx(0.6)


def test_token_cuts_are_exact_fractions_and_every_step_cuts_each_boundary():
    steps = [step(0, 0, 10, 0, 4), step(1, 11, 30, 4, 12), step(2, 31, 40, 12, 20)]
    assert [c.token_index for c in plan_cuts(steps, 20, [0.25, 0.5], "token")] == [5, 10]
    assert [c.token_index for c in plan_cuts(steps, 20, [], "every-step")] == [0, 4, 12, 20]


def test_zero_and_one_step_cots_cut_cleanly():
    assert [c.token_index for c in plan_cuts([], 0, [0.0, 0.5, 1.0])] == [0, 0, 0]
    one = plan_cuts([step(0, 0, 5, 0, 3)], 3, [0.0, 0.4, 1.0])
    assert [c.token_index for c in one] == [0, 0, 3]


def test_forcing_suffix_closes_thought_with_profile_end_tag():
    assert forcing_suffix(get_profile("think"), "abc") == "\n</think>\n\n**Answer**:"
    assert forcing_suffix(get_profile("think"), "abc.\n") == "</think>\n\n**Answer**:"
    assert forcing_suffix(get_profile("plain"), "") == "**Answer**:"
    assert forcing_suffix(get_profile("plain"), "so 4.\n") == "\n**Answer**:"


COT = "Let me think. Wait, maybe it is Paris.\n\nAlternatively, Lyon. Let me double-check: 12 + 7 = 19.\nHmm, so Paris."


def closed_rows(backend, profile, force=ForceSettings()):
    """For every cut of COT: (prefix text, row ids after the prompt)."""
    prompt_ids = backend.encode(build_prompt(backend, profile, VERBAL_10, "cot", QUESTION))
    ids = prompt_ids + backend.encode(COT)
    closing = closing_for(Prober(backend, profile, VERBAL_10, force))
    for cut in range(len(prompt_ids), len(ids) + 1):
        keep, new = close_at(backend, ids[:cut], len(prompt_ids), closing)
        assert ids[:keep] == ids[:cut][:keep] and keep >= len(prompt_ids)
        yield backend.decode(ids[len(prompt_ids):cut]), (ids[:keep] + new)[len(prompt_ids):]


QUESTION = Question(id="q", question="What is the capital of France?", answer="Paris")


@pytest.mark.parametrize("profile, closing", [("think-prefill", "\n</think>\n\n**Answer**:"),
                                              ("plain", "\n\n**Answer**:")])
def test_every_cut_ends_in_the_same_closing_tokenized_as_whole_text(tiny, profile, closing):
    end = tiny.tokenizer.convert_tokens_to_ids("</think>")
    rows = list(closed_rows(tiny, get_profile(profile), ForceSettings(restate=None)))
    assert len(rows) > 20
    for prefix, row in rows:
        text = tiny.decode(row)
        assert text == (prefix.rstrip() + closing if prefix.strip() else closing.lstrip("\n")), (prefix, text)
        # the row is what the tokenizer makes of the same text written whole: no '.' + '\n' split
        assert row == tiny.encode(text), (prefix, tiny.tokenizer.convert_ids_to_tokens(row))
        if profile == "think-prefill":
            assert row.count(end) == 1  # the end tag as its special token, never as BPE pieces


def test_non_reasoning_cuts_restate_in_a_second_turn(tiny):
    force = GenerationSettings().force
    assert force.restate and "restate" in force.restate
    for prefix, row in closed_rows(tiny, get_profile("plain"), force):
        text = tiny.decode(row)
        assert text.startswith(prefix.rstrip() + "<|im_end|>\n<|im_start|>user\nNow restate your final answer")
        assert text.endswith("<|im_end|>\n<|im_start|>assistant\n**Answer**:")
        assert "<the class name only>" in text


def _traces(backend, questions, tmp_path, profile="plain", budget=24):
    with RunDir(tmp_path / "gen") as run:
        return generate(Prober(backend, get_profile(profile), VERBAL_10, GenerationSettings(budget=budget, batch_size=3).force), questions, run, GenerationSettings(budget=budget, batch_size=3))


def _assert_probes_agree(a: list[Probe], b: list[Probe]):
    for x, y in zip(a, b, strict=True):
        assert x.answer == y.answer
        assert x.confidence.sampled_text == y.confidence.sampled_text
        assert x.confidence.scored_probs == pytest.approx(y.confidence.scored_probs, abs=1e-4)


@pytest.mark.parametrize("profile", ["plain", "think-prefill"])
def test_cached_and_naive_probing_agree_on_tiny_model(tiny_parts, questions, tmp_path, profile):
    model, tokenizer = tiny_parts
    cached, naive = HFBackend(model, tokenizer), HFBackend(model, tokenizer, reuse_cache=False)
    traces = _traces(cached, questions, tmp_path, profile)
    fractions = [0.0, 0.3, 0.5, 0.8, 1.0]
    for trace, q in zip(traces, questions):
        cuts = plan_cuts(segment_trace(cached, trace), len(trace.cot_token_ids), fractions, "token")
        asking = (get_profile(profile), VERBAL_10, GenerationSettings().force)
        _assert_probes_agree(probe_cuts(Prober(cached, *asking), trace, q, cuts),
                             probe_cuts(Prober(naive, *asking), trace, q, cuts))


def test_cached_and_naive_probing_agree_on_embedded_model(embedded_parts, questions, tmp_path):
    """The shared-prefix sweep and naive re-encoding run different float reductions: forced answers
    are compared as greedy outputs (equal, or parting only at a near tie), scores within a bound."""
    from cotprobe.backends import fork
    from cotprobe.prompts import CONFIDENCE_PREFIX

    model, tokenizer = embedded_parts
    cached, naive = HFBackend(model, tokenizer), HFBackend(model, tokenizer, reuse_cache=False)
    (trace,) = _traces(cached, questions[:1], tmp_path, budget=48)
    cuts = plan_cuts(segment_trace(cached, trace), len(trace.cot_token_ids), [0.0, 0.5, 1.0], "step")
    ids = cached.encode(trace.prompt) + trace.cot_token_ids
    start = len(ids) - len(trace.cot_token_ids)
    lengths = [start + c.token_index for c in cuts]
    suffixes = [cached.encode(forcing_suffix(get_profile("plain"), cached.decode(trace.cot_token_ids[:c.token_index])))
                for c in cuts]
    options = [cached.encode(" " + label) for label in VERBAL_10.labels]
    outputs = []
    for backend in (cached, naive):
        rows = fork(backend, ids, lengths)
        rows.extend(suffixes)
        answers = rows.greedy(GenerationSettings().force.answer_max_tokens, stop=["\n"], nonblank=True)
        rows.extend([cached.encode("\n" + CONFIDENCE_PREFIX)] * len(cuts))
        outputs.append((answers, rows.score(options)))
    (got, got_scores), (want, want_scores) = outputs
    for length, suffix, x, y in zip(lengths, suffixes, got, want):
        assert_greedy_agree(naive, ids[:length] + suffix, x.token_ids, y.token_ids)
    for x, y, g, w in zip(got, want, got_scores, want_scores):
        if x.token_ids == y.token_ids:  # the same answer: the same scores, up to float reductions
            assert g == pytest.approx(w, abs=1e-4)


def test_cut_reuse_runs_fewer_tokens_than_naive(tiny_parts, questions, tmp_path, monkeypatch):
    import cotprobe.forcing as probe_module
    from cotprobe.backends import fork

    model, tokenizer = tiny_parts
    cached, naive = HFBackend(model, tokenizer), HFBackend(model, tokenizer, reuse_cache=False)
    (trace,) = _traces(cached, questions[:1], tmp_path, budget=60)
    made = []
    monkeypatch.setattr(probe_module, "fork", lambda *a: made.append(fork(*a)) or made[-1])
    cuts = plan_cuts([], len(trace.cot_token_ids), parse_fractions("0:1:0.1"), "token")
    counts = []
    for backend in (cached, naive):
        probe_cuts(Prober(backend, get_profile("plain"), VERBAL_10, GenerationSettings().force), trace, questions[0], cuts)
        counts.append(sum(s.forwarded_tokens for rows in made for s in getattr(rows, "sessions", [rows])))
        made.clear()
    assert counts[0] < counts[1] / 2


def test_truncate_resumes_without_duplicates(tiny, questions, tmp_path):
    traces = _traces(tiny, questions, tmp_path)
    by_id = {q.id: q for q in questions}
    with RunDir(tmp_path / "gen") as run:
        truncate(Prober(tiny, get_profile("plain"), VERBAL_10), traces[:2], by_id, run, Sweep([0.0, 0.5, 1.0]))
        truncate(Prober(tiny, get_profile("plain"), VERBAL_10), traces, by_id, run, Sweep([0.0, 0.5, 1.0]))
        probes = run.read("probes.jsonl", Probe)
        steps = run.read("steps.jsonl", Step)
    keys = [(p.question_id, p.fraction_requested) for p in probes]
    assert len(keys) == len(set(keys)) == 9
    assert len({(s.question_id, s.index) for s in steps}) == len(steps)


def test_steps_tile_the_cot_in_tokens(tiny, questions, tmp_path):
    for trace in _traces(tiny, questions, tmp_path, budget=60):
        steps = segment_trace(tiny, trace)
        for s in steps:
            assert trace.cot[s.start:s.end] == s.text
            assert 0 <= s.token_start <= s.token_end <= len(trace.cot_token_ids)


def test_truncate_command_writes_probes_metrics_and_figure(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "cotprobe.truncate", "--model", "tiny-random", "-n", "4", "--budget", "16",
           "--fractions", "0:1:0.25", "--source", "expected", "--out", str(out)]
    # (the random model writes no parseable confidence: the scored one gives every level a value)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "trend ece" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert [row["level"] for row in metrics["truncate"]["levels"]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert (out / "figures" / "calibration_progress.png").stat().st_size > 10_000
    assert len((out / "probes.jsonl").read_text().splitlines()) == 20
    # --from-run reuses the traces and adds nothing when every cut is done
    again = subprocess.run(cmd[:3] + ["--from-run", str(out), "--fractions", "0:1:0.25"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len((out / "probes.jsonl").read_text().splitlines()) == 20


@pytest.mark.parametrize("reuse_cache", [True, False])
def test_forced_field_does_not_end_while_blank(embedded_parts, reuse_cache):
    """After this "**Answer**:" SmolLM2's first choice is <|im_end|> and its next a newline; a
    forced field goes on until it has written something, then stops at the end of that line."""
    from cotprobe.backends import fork

    backend = HFBackend(*embedded_parts, reuse_cache=reuse_cache)
    prompt = backend.chat_prompt([{"role": "user", "content": "Which planet is known as the Red Planet?"}])
    ids = backend.encode(prompt + "The planet is Mars.\n\n**Answer**:")
    (free,) = fork(backend, ids, [len(ids)]).greedy(8, ["\n"])
    assert free.finish == "eos" and free.token_ids == []  # what the model does unforced
    (forced,) = fork(backend, ids, [len(ids)]).greedy(16, ["\n"], nonblank=True)
    assert forced.token_ids[0] not in backend.eos_ids
    assert forced.text.startswith("\nMars")  # the newline did not end it; the answer follows
    assert "\n" not in forced.text.strip()


def test_stop_strings_wait_for_nonblank_text():
    from cotprobe.backends import cut_at_stop

    assert cut_at_stop("\n\nMars\nmore", ["\n"], nonblank=True) == ("\n\nMars\n", True)
    assert cut_at_stop("\n\n", ["\n"], nonblank=True) == ("\n\n", False)
    assert cut_at_stop("\n\nMars\n", ["\n"]) == ("\n", True)
