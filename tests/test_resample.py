"""P(correct | prefix): resampled continuations against a scripted backend with known outcome rates."""

from collections import Counter

import pytest
import torch

from cotprobe.forcing import Prober, close_at, closing_for, force_cuts
from cotprobe import metrics
from cotprobe.backends import fork
from cotprobe.backends.hf import HFBackend
from cotprobe.backends.scripted import ScriptedBackend
from cotprobe.profiles import get_profile
from cotprobe.records import Confidence, Question, Resample, Trace
from cotprobe.reference import r1_tokenizer
from cotprobe.resample import resample_cuts, thought_length, thought_stop
from cotprobe.scales import VERBAL_10
from cotprobe.store import RunDir
from cotprobe.cuts import Cut, ResampleSettings, Sweep, truncate

THOUGHT = "Step one. Step two. Step three. Step four."
PROFILE = get_profile("think-prefill")


def scripted(tokenizer, k):
    """A continuation from a prefix with j steps ends correct in exactly j of every k samples."""
    calls = Counter()

    def respond(context: str) -> str:
        if context.endswith("**Confidence**:"):
            return " Likely\n"
        if context.endswith("**Answer**:"):
            return " 5\n" if "Then right." in context else " 7\n"
        steps = context.split("<think>\n", 1)[1].count("Step")
        m = calls[context]
        calls[context] += 1
        return (" Then right." if m % k < steps else " Then wrong.") + "</think>\n\n**Answer**: x"

    return ScriptedBackend(respond, tokenizer)


def make_trace(backend):
    prompt = "<|im_start|>user\nHow many?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    ids = backend.encode(THOUGHT)
    assert backend.decode(ids) == THOUGHT
    return Trace(question_id="q", model="scripted", prompt=prompt, cot=THOUGHT, answer="5", confidence=Confidence(),
                 prompt_tokens=len(backend.encode(prompt)), cot_token_ids=ids, thinking_ended="stop")


QUESTION = Question(id="q", question="How many?", answer="5", kind="numeric")


def cuts_at_steps(backend, trace):
    """A cut after 0..4 whole steps."""
    ends = [0] + [len(backend.encode(". ".join(THOUGHT.split(". ")[:j]) + ("" if j == 4 else ".")))
                  for j in range(1, 5)]
    return [Cut(j / 4, t / len(trace.cot_token_ids), j, t) for j, t in enumerate(ends)]


def test_prefix_accuracy_matches_the_scripted_outcome_rates(tiny_parts):
    backend = scripted(tiny_parts[1], k=4)
    trace = make_trace(backend)
    cuts = cuts_at_steps(backend, trace)
    records = resample_cuts(Prober(backend, PROFILE, VERBAL_10), trace, QUESTION, cuts, ResampleSettings(k=4, temperature=0.7, budget=200))
    assert [r.n_correct for r in records] == [0, 1, 2, 3, 4]
    assert [r.p_correct for r in records] == [0.0, 0.25, 0.5, 0.75, 1.0]
    for r in records:
        assert r.n_graded == 4 and len(r.answers) == 4 and set(r.answers) <= {"5", "7"}
        assert (r.low, r.high) == pytest.approx(metrics.binomial_ci(r.n_correct, 4))
        assert r.low <= r.p_correct <= r.high
        # the continuation kept is the thought before the think end tag: " Then right." / " Then wrong."
        assert all(n == len(backend.encode(" Then wrong.")) or n == len(backend.encode(" Then right."))
                   for n in r.continuation_tokens)


def test_continuations_stay_within_the_thinking_budget(tiny_parts):
    backend = scripted(tiny_parts[1], k=2)
    trace = make_trace(backend)
    cuts = cuts_at_steps(backend, trace)
    budget = len(trace.cot_token_ids) + 2  # the last cuts may add at most 2 tokens
    records = resample_cuts(Prober(backend, PROFILE, VERBAL_10), trace, QUESTION, cuts, ResampleSettings(k=2, temperature=0.7, budget=budget))
    for cut, r in zip(cuts, records):
        assert all(n <= budget - cut.token_index for n in r.continuation_tokens)


def test_truncate_resamples_once_per_cut_and_resumes(tiny_parts, tmp_path):
    backend = scripted(tiny_parts[1], k=3)
    trace = make_trace(backend)
    settings = ResampleSettings(k=3, temperature=0.7, budget=200, fractions=(0.0, 1.0))
    with RunDir(tmp_path / "run") as run:
        for _ in range(2):
            truncate(Prober(backend, PROFILE, VERBAL_10), [trace], {"q": QUESTION}, run, Sweep([0.0, 0.5, 1.0], "token", resample=settings))
        records = run.read("resamples.jsonl", Resample)
    assert [r.fraction_requested for r in records] == [0.0, 1.0]
    assert records[0].p_correct == 0.0 and records[1].p_correct == 1.0


def test_wilson_interval_known_values():
    assert metrics.binomial_ci(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert metrics.binomial_ci(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert metrics.binomial_ci(10, 10)[1] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        metrics.binomial_ci(3, 2)


def test_soft_target_metrics_reduce_to_the_outcome_ones():
    conf = [0.1, 0.4, 0.8, 0.95]
    outcome = [0, 1, 1, 0]
    assert metrics.brier_target(conf, outcome) == pytest.approx(metrics.brier(conf, outcome))
    assert metrics.ece_target(conf, outcome) == pytest.approx(metrics.ece(conf, outcome))
    assert metrics.brier_target(conf, conf) == 0.0 and metrics.ece_target(conf, conf) == 0.0


def test_rewound_rows_continue_as_if_the_tokens_were_never_there(tiny):
    ids = tiny.encode("Question: What is the capital of France? Let me think. Wait, maybe it is Paris.")
    lengths = [len(ids), len(ids) - 6]
    rows = fork(tiny, ids, lengths)
    rows.extend([tiny.encode(" the a an"), tiny.encode(" of")])
    rows.rewind([len(tiny.encode(" the a an")), len(tiny.encode(" of"))])
    assert rows.ids == [ids[:n] for n in lengths]
    fresh = fork(tiny, ids, lengths)
    nxt = tiny.encode(" is")
    rows.extend([nxt, nxt])
    fresh.extend([nxt, nxt])
    assert torch.allclose(rows.last, fresh.last, atol=1e-4)


def test_sampling_on_the_tiny_model_is_seeded_and_respects_its_stop(tiny):
    ids = tiny.encode("Question: What is 2 + 3? Let me think.")
    first = fork(tiny, ids, [len(ids)] * 3).sample(12, ["</think>"], temperature=1.0, seed=7)
    again = fork(tiny, ids, [len(ids)] * 3).sample(12, ["</think>"], temperature=1.0, seed=7)
    assert [c.token_ids for c in first] == [c.token_ids for c in again]
    assert len({tuple(c.token_ids) for c in first}) > 1  # the rows draw independently
    for c in first:
        assert thought_length(tiny, c.token_ids, ["</think>"]) <= len(c.token_ids)
    with pytest.raises(ValueError, match="temperature"):
        fork(tiny, ids, [len(ids)]).sample(4, [], temperature=0.0, seed=0)


def test_resampling_runs_batched_on_the_tiny_model(tiny_parts):
    model, tokenizer = tiny_parts
    backend = HFBackend(model, tokenizer)
    trace = make_trace(backend)
    cuts = [Cut(0.0, 0.0, 0, 0), Cut(1.0, 1.0, 4, len(trace.cot_token_ids))]
    records = resample_cuts(Prober(backend, PROFILE, VERBAL_10), trace, QUESTION, cuts, ResampleSettings(k=3, temperature=1.0, budget=len(trace.cot_token_ids) + 6))
    assert [len(r.answers) for r in records] == [3, 3]
    assert all(n <= 6 for n in records[1].continuation_tokens)  # what the budget leaves after the full thought
    assert all(r.p_correct is None or 0 <= r.p_correct <= 1 for r in records)


# ------------------------------------------------------------------ one closing for sweep and resampling

R1_THOUGHT = ("Okay, so I need to find the capital of France. I think it's Paris.\n\nWait, could it be Lyon? "
              "No, Lyon is a large city, but the capital is Paris. Let me double-check: yes, Paris.\n")
# what a continuation writes before it ends its thought, picked by the context's length
ENDINGS = ["", " So Paris.", " Paris.\n\n", " \n", "\n\nYes, Paris", " 巴黎。", "."]


class RecordingBackend(ScriptedBackend):
    """A scripted backend that keeps every context it is asked to continue, with what it wrote."""

    def __init__(self, respond, tokenizer):
        super().__init__(respond, tokenizer)
        self.played = []

    def _play(self, context, max_new_tokens, stop):
        completion = super()._play(context, max_new_tokens, stop)
        self.played.append((list(context), completion))
        return completion


def closing_respond(context: str) -> str:
    if context.endswith("**Confidence**:"):
        return " Likely\n"
    if context.endswith("**Answer**:"):
        return " Paris\n"
    return ENDINGS[len(context) % len(ENDINGS)] + "</think>\n\n**Answer**: Paris"


@pytest.mark.parametrize("tokenizer", ["tiny", "r1"])
def test_a_resampled_thought_is_closed_as_the_sweep_closes_a_cut(tokenizer, tiny_parts):
    """At every cut of the thought, the row an answer is forced from holds what close_at gives for
    the sampled thought (the prompt, the cut, the continuation kept): the cut's last words
    re-encoded with the closing, as the sweep does, not the closing appended after them."""
    backend = RecordingBackend(closing_respond, tiny_parts[1] if tokenizer == "tiny" else r1_tokenizer())
    prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    cot = backend.encode(R1_THOUGHT)
    trace = Trace(question_id="q", model="scripted", prompt=prompt, cot=R1_THOUGHT, answer="Paris",
                  confidence=Confidence(), prompt_tokens=len(backend.encode(prompt)), cot_token_ids=cot,
                  thinking_ended="stop")
    prober = Prober(backend, PROFILE, VERBAL_10)
    cuts = [Cut(t / len(cot), t / len(cot), 0, t) for t in range(len(cot) + 1)]
    question = Question(id="q", question="What is the capital of France?", answer="Paris")
    records = resample_cuts(prober, trace, question, cuts, ResampleSettings(k=1, budget=10_000))
    assert all(r.answers == ["Paris"] and r.p_correct == 1.0 for r in records)
    samples = [(c, w) for c, w in backend.played if not backend.decode(c).endswith(("**Answer**:", "**Confidence**:"))]
    forced = [c for c, _ in backend.played if backend.decode(c).endswith("**Answer**:")]
    assert len(samples) == len(forced) == len(cuts)
    floor, closing = len(backend.encode(prompt)), closing_for(prober)
    stop = thought_stop(PROFILE)
    kept = [thought_length(backend, w.token_ids, stop) for _, w in samples]
    assert 0 in kept and max(kept) > 1  # some continuations end the thought at once
    for (context, written), n, row in zip(samples, kept, forced):
        thought = context + written.token_ids[:n]
        keep, new = close_at(backend, thought, floor, closing)
        assert row == thought[:keep] + new


def test_a_continuation_without_budget_is_forced_as_the_sweep_forces_its_cut(tiny_parts):
    """On the batched HF rows: with no thinking budget left, every resampled row closes and forces
    the cut itself, so its answer is the sweep's (closing takes back tokens of the trace before the
    cut, which the rows must hold as their own)."""
    model, tokenizer = tiny_parts
    backend = HFBackend(model, tokenizer)
    assert backend.shares_rows
    trace = make_trace(backend)
    cot = trace.cot_token_ids
    cuts = [Cut(t / len(cot), t / len(cot), 0, t) for t in range(len(cot) + 1)]
    prober = Prober(backend, PROFILE, VERBAL_10)
    records = resample_cuts(prober, trace, QUESTION, cuts, ResampleSettings(k=2, budget=0))
    prompt_ids = backend.encode(trace.prompt)
    swept = force_cuts(prober, prompt_ids + cot, len(prompt_ids), [len(prompt_ids) + c.token_index for c in cuts])
    assert [r.answers for r in records] == [[answer, answer] for answer, _ in swept]
    assert all(r.continuation_tokens == [0, 0] for r in records)
