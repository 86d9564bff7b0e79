"""Cross-trace cut sweeps on the hf backend (#28 item 1): the cut rows of several traces decoded
as one batch (each trace's prefix encoded once, every row attending only to its own trace up to
its cut) give what one trace at a time gives, within fp32 rounding; a run killed mid-batch
resumes to exactly the uninterrupted run's probes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from conftest import assert_greedy_agree

from cotprobe.backends import capabilities_of, fork
from cotprobe.backends.hf import HFBackend
from cotprobe.cuts import Sweep, plan_cuts, probe_cuts, probe_traces, traces_per_batch, truncate
from cotprobe.forcing import Prober
from cotprobe.profiles import get_profile
from cotprobe.prompts import CONFIDENCE_PREFIX
from cotprobe.records import Question
from cotprobe.scales import VERBAL_10
from cotprobe.steps import segment_trace
from cotprobe.store import RunDir
from cotprobe.tracing import GenerationSettings, generate

FRACTIONS = [0.0, 0.3, 0.5, 0.8, 1.0]
QUESTIONS = [Question(id=f"q{i}", question=f"What is {i} + {i + 1}?", answer=str(2 * i + 1), kind="numeric")
             for i in range(5)]


def _traces(backend, tmp_path, profile="plain", budget=24):
    settings = GenerationSettings(budget=budget, batch_size=5)
    with RunDir(tmp_path / "gen") as run:
        return generate(Prober(backend, get_profile(profile), VERBAL_10, settings.force), QUESTIONS, run, settings)


def _agree(a, b):
    for x, y in zip(a, b, strict=True):
        assert (x.question_id, x.fraction_requested, x.token_index) == (y.question_id, y.fraction_requested,
                                                                         y.token_index)
        assert x.answer == y.answer
        assert x.confidence.sampled_text == y.confidence.sampled_text
        assert x.confidence.scored_probs == pytest.approx(y.confidence.scored_probs, abs=1e-4)


def test_rows_across_traces_decode_as_each_trace_alone(tiny_parts, tmp_path):
    model, tokenizer = tiny_parts
    backend = HFBackend(model, tokenizer)
    traces = _traces(backend, tmp_path)
    options = [backend.encode(" " + label) for label in VERBAL_10.labels]
    sequences = []
    for trace in traces:
        ids = backend.encode(trace.prompt) + trace.cot_token_ids
        start = len(ids) - len(trace.cot_token_ids)
        sequences.append((ids, sorted({start + round(f * len(trace.cot_token_ids)) for f in FRACTIONS}, reverse=True)))
    suffix = backend.encode("\n\n**Answer**:")

    def run(rows):
        rows.extend([suffix] * len(rows.ids))
        answers = rows.greedy(12, stop=["\n"], nonblank=True)
        rows.extend([backend.encode("\n" + CONFIDENCE_PREFIX)] * len(rows.ids))
        return answers, rows.score(options)

    together = run(backend.fork_across(sequences))
    alone = [run(fork(backend, ids, lengths)) for ids, lengths in sequences]
    want_answers = [a for answers, _ in alone for a in answers]
    want_scores = [s for _, scores in alone for s in scores]
    contexts = [ids[:n] + suffix for ids, lengths in sequences for n in lengths]
    assert len(together[0]) == len(want_answers) == len(contexts)
    for context, x, y in zip(contexts, together[0], want_answers):
        assert_greedy_agree(backend, context, x.token_ids, y.token_ids)
    for x, y, got, want in zip(together[0], want_answers, together[1], want_scores):
        if x.token_ids == y.token_ids:
            assert got == pytest.approx(want, abs=1e-4)


@pytest.mark.parametrize("profile", ["plain", "think-prefill"])
def test_probe_traces_gives_what_probe_cuts_gives(tiny_parts, tmp_path, profile):
    model, tokenizer = tiny_parts
    backend = HFBackend(model, tokenizer)
    traces = _traces(backend, tmp_path, profile)
    prober = Prober(backend, get_profile(profile), VERBAL_10, GenerationSettings().force)
    items = [(t, q, plan_cuts(segment_trace(backend, t), len(t.cot_token_ids), FRACTIONS, "token"))
             for t, q in zip(traces, QUESTIONS)]
    together = probe_traces(prober, items)
    for (trace, question, cuts), got in zip(items, together, strict=True):
        _agree(got, probe_cuts(prober, trace, question, cuts))


def test_the_sweep_batch_is_chosen_from_the_device_and_given_by_sweep_batch(tiny_parts, tmp_path):
    model, tokenizer = tiny_parts
    backend = HFBackend(model, tokenizer)
    assert capabilities_of(backend).forks_across
    traces = _traces(backend, tmp_path, budget=8)
    assert traces_per_batch(backend, Sweep(parse_fractions_11()), traces) == 4  # a CPU: 48 rows, 11 cuts each
    assert traces_per_batch(backend, Sweep(FRACTIONS, batch=2), traces) == 2
    assert traces_per_batch(backend, Sweep(FRACTIONS, hidden_store=object()), traces) == 1
    assert not capabilities_of(HFBackend(model, tokenizer, reuse_cache=False)).forks_across


def parse_fractions_11():
    return [i / 10 for i in range(11)]


def test_truncate_with_traces_batched_agrees_with_one_at_a_time(tiny_parts, tmp_path):
    model, tokenizer = tiny_parts
    backend = HFBackend(model, tokenizer)
    traces = _traces(backend, tmp_path, "think-prefill")
    by_id = {q.id: q for q in QUESTIONS}
    prober = Prober(backend, get_profile("think-prefill"), VERBAL_10)
    got = {}
    for batch in (1, 3):
        with RunDir(tmp_path / f"batch{batch}") as run:
            got[batch] = truncate(prober, traces, by_id, run, Sweep(FRACTIONS, "token", batch=batch))
    assert len(got[1]) == len(traces) * len(FRACTIONS)
    _agree(got[3], got[1])


def test_a_run_killed_mid_batch_resumes_to_exactly_the_uninterrupted_probes(tmp_path):
    """kill -9 while a cross-trace batch runs, then the same command: exactly the probes (file
    and order) of a run never interrupted."""
    def command(out):
        return [sys.executable, "-m", "cotprobe.truncate", "--model", "tiny-random", "-n", "12", "--budget", "40",
                "--fractions", "0:1:0.25", "--cut", "token", "--sweep-batch", "4", "--out", str(out)]

    whole = subprocess.run(command(tmp_path / "whole"), capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-2000:]
    want = (tmp_path / "whole" / "probes.jsonl").read_text()
    assert want.count("\n") == 12 * 5
    probes = tmp_path / "cut" / "probes.jsonl"
    proc = subprocess.Popen(command(tmp_path / "cut"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (probes.exists() and probes.read_text().count("\n") >= 4 * 5):
        time.sleep(0.05)
    proc.kill()  # SIGKILL, in the second batch (or later)
    proc.wait()
    written = probes.read_text()
    assert 4 * 5 <= written.count("\n") < 12 * 5
    assert want.startswith(written)  # whole batches, in order: a prefix of the uninterrupted probes
    again = subprocess.run(command(tmp_path / "cut"), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert probes.read_text() == want
    keys = [(r["question_id"], r["fraction_requested"]) for r in map(json.loads, want.splitlines())]
    assert len(keys) == len(set(keys))
