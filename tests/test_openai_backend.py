"""The OpenAI-compatible backend against a real local server (llama.cpp) serving the embedded model.

The server runs the embedded model's GGUF (Q4_1) on 127.0.0.1; the tokenizer comes from the
converted Hugging Face folder. Select with `-m server`; they run by default. The [test] extra
installs llama-cpp-python's server; without one they fail, saying how to install it.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time

import pytest

from cotprobe import models
from cotprobe.backends import PromptTooLong, fork
from cotprobe.backends.hf import HFBackend
from cotprobe.backends.local_server import LocalServer, available_kinds
from cotprobe.backends.openai import (
    OpenAIBackend,
    ScoringUnavailable,
    ServerError,
)
from cotprobe.backends.recording_server import ModelLM, RecordingServer
from cotprobe.tracing import GenerationSettings, generate
from cotprobe.forcing import ForceSettings, Prober, closing_for, forcing_suffix, scored_confidence
from cotprobe.profiles import get_profile
from cotprobe.prompts import CONFIDENCE_PREFIX
from cotprobe.records import Question
from cotprobe.scales import VERBAL_10
from cotprobe.store import RunDir
from cotprobe.cuts import Sweep, truncate

pytestmark = pytest.mark.server

MODEL = models.DEFAULT_MODEL
CONTEXT = 8192  # the embedded model's max_position_embeddings; the server is started with it
BUDGET = 32
PROFILE = get_profile("plain")
# The default (paper) template: the CoT, then the second user turn asking to restate the answer and
# the confidence, through the server's own requests.
SETTINGS = GenerationSettings(budget=BUDGET, batch_size=2)
# Total variation between the scored label distributions of the server and the local model for the
# same CoT and answer. A server without echoed prompt log-probabilities (llama-cpp-python) is scored
# through its top-k alternatives, which bound the labels outside them from above: not exact, so the
# bound is loose (measured 0.22 on q1 on an AMD EPYC with llama-cpp-python 0.3.36).
TV_BOUND = 0.35
LP_BOUND = 1.0  # nats between a label's log-probability there (Q4_1, 8-bit activations) and here (float32)
TIE_NATS = 0.5  # a server's greedy token, teacher-forced locally, is at most this far below the local best
QUESTIONS = [
    Question(id="q1", question="What is the capital of France?", answer="Paris", aliases=["Paris, France"]),
    Question(id="q2", question="What is 2 + 3?", answer="5", kind="numeric"),
]


def _need_server() -> None:
    if not available_kinds():
        msg = ("no local llama.cpp server installed: pip install 'llama-cpp-python[server]==0.3.36' "
               "or build llama-server (docs/serving.md)")
        pytest.fail(msg)  # the [test] extra installs llama-cpp-python: a missing server is a broken install


@pytest.fixture(scope="module")
def gguf():
    return models.embedded_gguf(MODEL)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(models.embedded_folder(MODEL))


def start_server(gguf, log) -> LocalServer:
    # the first installed of llama-server and llama-cpp-python, or COTPROBE_TEST_SERVER's choice
    kind = os.environ.get("COTPROBE_TEST_SERVER", "auto")
    return LocalServer(gguf, MODEL, kind=kind, n_ctx=CONTEXT, threads=1, log=log).start()


@pytest.fixture(scope="module")
def server(gguf, tmp_path_factory):
    _need_server()
    srv = start_server(gguf, tmp_path_factory.mktemp("server") / "server.log")
    yield srv
    srv.stop()


def make_backend(server, tokenizer, cache_dir=None, **kwargs) -> OpenAIBackend:
    # watch: a server that dies (a crash, a signal) fails the test with one line naming it and its log
    return OpenAIBackend(server.url, MODEL, tokenizer, concurrency=4, cache_dir=cache_dir,
                         watch=server.death, **kwargs)


@pytest.fixture(scope="module")
def served(server, tokenizer, tmp_path_factory):
    """The questions generated through the server once, with a request cache."""
    root = tmp_path_factory.mktemp("served")
    backend = make_backend(server, tokenizer, cache_dir=root / "requests")
    with RunDir(root / "run") as run:
        traces = generate(Prober(backend, PROFILE, VERBAL_10, SETTINGS.force), QUESTIONS, run, SETTINGS)
    return backend, traces, root


def test_generation_end_to_end_through_the_server(served):
    backend, traces, root = served
    assert [t.question_id for t in traces] == ["q1", "q2"]
    assert backend.prompt_mode in ("tokens", "text") and backend.score_mode in ("prompt", "topk")
    assert backend.context_length == CONTEXT
    # Text prompts: the server tokenizes, and the text it returns is re-encoded here, which may
    # take a token or two more than it generated (e.g. "\n\n" as one token there, two here).
    slack = 0 if backend.prompt_mode == "tokens" else 3
    for trace in traces:
        assert trace.model == MODEL and trace.cot.strip() and trace.thinking_ended in ("stop", "eos", "budget")
        assert len(trace.cot_token_ids) <= BUDGET + slack and backend.decode(trace.cot_token_ids) == trace.cot
        assert "\n" not in trace.answer  # may be empty: a 135M model sometimes answers with a bare newline
        c = trace.confidence
        if c.scored_exact:  # every label token within the server's top-k: the model's own distribution
            assert len(c.scored_probs) == len(VERBAL_10.labels) and math.isclose(sum(c.scored_probs), 1.0, rel_tol=1e-6)
            assert 0 < c.expected_value < 1
        else:  # some label's first token outside the top-k: flagged, and no distribution made up
            assert c.scored_exact is False and c.scored_misses > 0 and c.scored_probs == [] and c.expected_value is None
    lines = (root / "run" / "traces.jsonl").read_text().splitlines()
    assert [json.loads(line)["question_id"] for line in lines] == ["q1", "q2"]


def test_truncation_sweep_through_the_server(served, tokenizer, server, tmp_path):
    _, traces, root = served
    fresh = make_backend(server, tokenizer, cache_dir=root / "requests")
    with RunDir(tmp_path / "run") as run:
        probes = truncate(Prober(fresh, PROFILE, VERBAL_10, SETTINGS.force), traces[:1], {q.id: q for q in QUESTIONS}, run, Sweep([0.0, 0.5, 1.0], "step"))
    assert sorted(p.fraction_requested for p in probes) == [0.0, 0.5, 1.0]
    assert sorted(p.token_index for p in probes)[1] < len(traces[0].cot_token_ids)
    for trace in traces[:1]:
        full = next(p for p in probes if p.question_id == trace.question_id and p.fraction_requested == 1.0)
        # the whole CoT, forced again: the very requests of generation, answered alike
        assert full.token_index == len(trace.cot_token_ids)
        assert full.answer == trace.answer and full.confidence == trace.confidence
        empty = next(p for p in probes if p.question_id == trace.question_id and p.fraction_requested == 0.0)
        assert empty.token_index == 0
        if empty.confidence.scored_exact:  # else flagged (a label token outside the top-k), never made up
            assert math.isclose(sum(empty.confidence.scored_probs), 1.0, rel_tol=1e-6)
        else:
            assert empty.confidence.scored_probs == [] and empty.confidence.scored_misses > 0
    assert fresh.cache_hits > 0  # the full-CoT probes were generation's own forcing requests


def test_request_cache_answers_a_rerun_with_no_new_request(served, server, tokenizer, tmp_path):
    _, traces, root = served
    again = make_backend(server, tokenizer, cache_dir=root / "requests")
    # construction: the model list, llama.cpp's /props where not found, and the probes the server
    # refused (refusals are not cached: another server may sit behind the same name later) - the
    # token-prompt probe and the three ways of asking for token ids
    before = again.requests_sent
    assert before <= 6
    with RunDir(tmp_path / "rerun") as run:
        rerun = generate(Prober(again, PROFILE, VERBAL_10, SETTINGS.force), QUESTIONS, run, SETTINGS)
    assert again.requests_sent == before  # not one completion asked again
    assert again.cache_hits > 0
    assert [(t.cot, t.answer, t.confidence) for t in rerun] == [(t.cot, t.answer, t.confidence) for t in traces]
    assert (root / "requests" / "requests.sqlite").exists()
    assert len(again.cache) >= again.cache_hits // 2 and again.cache.bytes > 0


@pytest.fixture()
def one_torch_thread():
    """transformers on an oversubscribed 2-core machine: one thread is many times faster than two."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _regrets(hf: HFBackend, ids: list[int], start: int, banned: tuple[int, ...] = ()) -> list[float]:
    """For each token of ``ids`` from ``start`` on: how far below the local model's best next token
    (other than ``banned`` ones) it is, in nats (0 where it is that best), ``ids[:i]`` teacher-forced."""
    import torch

    with torch.inference_mode():
        logits = hf.model(input_ids=torch.tensor([ids])).logits[0].float()
    lps = torch.log_softmax(logits, dim=-1)
    lps[:, list(banned)] = -math.inf
    return [float(lps[i - 1].max() - lps[i - 1, ids[i]]) for i in range(start, len(ids))]


def test_server_agrees_with_the_local_hf_backend(served, embedded, one_torch_thread):
    """llama.cpp runs the Q4_1 GGUF with quantized dot products (8-bit activations, kernels chosen by
    CPU features); transformers runs the same weights de-quantized to float32. Their greedy texts may
    part wherever two tokens are nearly tied, so texts are not compared. What is robust: every token
    the server chose greedily (CoT and forced answer) is, teacher-forced through the local model, within
    TIE_NATS of the local model's best token; the same answer after the same CoT gets a close scored
    confidence (total variation below TV_BOUND)."""
    backend, traces, _ = served
    hf: HFBackend = embedded
    options = [hf.encode(" " + label) for label in VERBAL_10.labels]  # whole labels, on both sides
    for trace in traces:
        prompt = hf.encode(trace.prompt)
        cot = trace.cot_token_ids
        closing = closing_for(Prober(hf, PROFILE, VERBAL_10, SETTINGS.force))  # the restating turn, as generation had it
        context = prompt + cot + hf.encode(forcing_suffix(PROFILE, trace.cot, closing))
        # the server's forced answer as it wrote it (from the request cache: generation asked the same)
        rows = fork(backend, prompt + cot, [len(prompt + cot)])
        rows.extend([context[len(prompt + cot):]])
        (written,) = rows.greedy(ForceSettings().answer_max_tokens, stop=["\n"], nonblank=True)
        answer = hf.encode(written.text)
        # the tokens the model chose: the CoT and the forced answer, not the forcing text between them;
        # (a forced answer cannot end while blank: end-of-sequence is not a choice there)
        regrets = (_regrets(hf, prompt + cot, len(prompt))
                   + _regrets(hf, context + answer, len(context), banned=(hf.tokenizer.eos_token_id,)))
        assert max(regrets) < TIE_NATS, (trace.question_id, max(regrets), trace.cot, written.text)
        confidence_line = ("" if written.finish == "stop" else "\n") + CONFIDENCE_PREFIX
        row = context + answer + hf.encode(confidence_line)
        here = hf.session(row).score(options)
        # each label the server scored (its whole path within the top-k) against the local model; one
        # label at a time, since a row where any label's first token misses gets no deeper requests
        there = [fork(backend, row, [len(row)]).score([option])[0][0] for option in options]
        scored = [(a, b) for a, b in zip(here, there) if not math.isnan(b)]
        assert len(scored) >= 3 and all(abs(a - b) < LP_BOUND for a, b in scored), (trace.question_id, here, there)
        if trace.confidence.scored_exact:
            local = scored_confidence(here, VERBAL_10)
            remote = trace.confidence.scored_probs
            tv = 0.5 * sum(abs(a - b) for a, b in zip(local["scored_probs"], remote))
            assert tv < TV_BOUND, (trace.question_id, tv, local["scored_probs"], remote)
            assert abs(local["expected_value"] - trace.confidence.expected_value) < 0.1
            assert abs(local["label_mass"] - trace.confidence.label_mass) < 0.2 and 0 < trace.confidence.label_mass <= 1 + 1e-6


def test_too_long_prompt_is_refused_before_any_request(served):
    backend, _, _ = served
    sent = backend.requests_sent
    with pytest.raises(PromptTooLong):
        backend.generate([[1] * (CONTEXT - 10)], 20, [])
    with pytest.raises(PromptTooLong):
        backend.session([1] * CONTEXT).score([[2]])
    assert backend.requests_sent == sent


def test_no_logprobs_raises_scoring_unavailable(server, tokenizer):
    backend = make_backend(server, tokenizer, score_mode="none")
    with pytest.raises(ScoringUnavailable, match="sampled"):
        backend.session(backend.encode("Hello")).score([backend.encode(" world")])


def test_server_killed_mid_run_resumes_with_every_question_once(gguf, tokenizer, tmp_path):
    _need_server()
    log = tmp_path / "server.log"
    first = start_server(gguf, log)
    backend = make_backend(first, tokenizer, cache_dir=tmp_path / "requests", retries=1, backoff=0.05)
    traces_file = tmp_path / "run" / "traces.jsonl"
    state = {"n": 0, "first_done_at": None}
    real = backend.client.request

    def counting(method, path, body=None, retries=None, server=None):
        if path == "/v1/completions":
            state["n"] += 1
            if state["first_done_at"] is None and traces_file.exists() and traces_file.read_text().count("\n") == 1:
                state["first_done_at"] = state["n"]
            if state["first_done_at"] is not None and state["n"] == state["first_done_at"] + 1:
                first.kill()  # the second question's second request (its first was answered)
        return real(method, path, body, retries, server)

    backend.client.request = counting
    settings = GenerationSettings(budget=BUDGET, batch_size=1)
    with pytest.raises(ServerError, match="resumes"), RunDir(tmp_path / "run") as run:
        generate(Prober(backend, PROFILE, VERBAL_10, settings.force), QUESTIONS[:2], run, settings)
    written = [json.loads(line)["question_id"] for line in (tmp_path / "run" / "traces.jsonl").read_text().splitlines()]
    assert written == ["q1"]  # the first question finished, the second did not

    second = start_server(gguf, log)  # a new process, on another port
    try:
        again = make_backend(second, tokenizer, cache_dir=tmp_path / "requests")
        with RunDir(tmp_path / "run") as run:
            traces = generate(Prober(again, PROFILE, VERBAL_10, settings.force), QUESTIONS[:2], run, settings)
    finally:
        second.stop()
    lines = (tmp_path / "run" / "traces.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["question_id"] for line in lines) == ["q1", "q2"]
    assert [t.question_id for t in traces] == ["q1", "q2"]
    assert again.cache_hits > 0  # the second question's requests made before the crash were kept


def test_a_crashed_server_is_named_with_its_signal_and_log(gguf, tokenizer, tmp_path):
    """A server that dies (here SIGSEGV, as a native build crashes on a CPU it was not built for) is
    reported in one line, its signal and its log, at once: no retries into "connection refused"."""
    _need_server()
    log = tmp_path / "server.log"
    srv = start_server(gguf, log)
    try:
        backend = make_backend(srv, tokenizer, retries=3, backoff=5.0)  # retrying would take > 30 s
        assert srv.death() is None
        os.killpg(srv.proc.pid, signal.SIGSEGV)
        srv.proc.wait(timeout=30)
        started = time.monotonic()
        with pytest.raises(ServerError) as caught:
            backend.generate([backend.encode("Hello")], 4, [])
        message = str(caught.value)
        assert time.monotonic() - started < 4  # named at once, not after the backoff's retries
        assert "\n" not in message and "killed by SIGSEGV" in message and str(log) in message
        assert srv.kind in message and srv.url in message
        assert srv.death("http://127.0.0.1:1/v1") is None  # another server's root is not this one
    finally:
        srv.stop()


# -- the token-prompt and prompt-logprob paths, which the CPU server above does not offer ---------
#
# vLLM and SGLang take token-id prompts and return echoed prompt log-probabilities; llama-cpp-python
# does neither. The recording server speaks vLLM's dialect of /v1/completions over a real HTTP
# socket; computing with the tiny transformers model (`ModelLM`), it covers those paths of the
# client, and lets the results be compared exactly with the same model run in-process.

def test_token_prompts_and_prompt_logprobs_match_the_in_process_model(tiny_parts, tmp_path):
    """Through the vLLM dialect the client takes the exact paths (token prompts, echoed prompt
    log-probabilities) and gets what the same model gives in-process. Texts are compared, not
    generated token ids: the random tiny model writes byte fragments that do not round-trip, so
    the client re-encodes some of what the server returns (real models' text does round-trip)."""
    model, tokenizer = tiny_parts
    server = RecordingServer(tokenizer, "tiny", lm=ModelLM(model, tokenizer), context=4096)
    try:
        remote = OpenAIBackend(server.url, "tiny", tokenizer, concurrency=4, cache_dir=tmp_path / "requests",
                               score_mode="prompt")  # on request only: vLLM serves it from no cache
        assert (remote.prompt_mode, remote.score_mode, remote.context_length) == ("tokens", "prompt", 4096)
        local = HFBackend(model, tokenizer, name="tiny")
        prompts = [local.encode(local.chat_prompt([{"role": "user", "content": q.question}])) for q in QUESTIONS]
        stop = ["**Answer**"]
        got, want = remote.generate(prompts, 12, stop), local.generate(prompts, 12, stop)
        assert [(c.text, c.finish) for c in got] == [(c.text, c.finish) for c in want]
        options = [local.encode(" " + label) for label in VERBAL_10.labels]
        ids = prompts[0] + want[0].token_ids
        lengths = [len(prompts[0]), len(prompts[0]) + 5, len(ids)]
        remote_rows, local_rows = fork(remote, ids, lengths), fork(local, ids, lengths)
        for rows in (remote_rows, local_rows):
            rows.extend([local.encode("\n**Confidence**:")] * len(lengths))
        scores = remote_rows.score(options)
        assert scores == [pytest.approx(row, abs=1e-4) for row in local_rows.score(options)]
        assert remote.session(remote_rows.ids[0]).score(options) == pytest.approx(scores[0], abs=1e-6)
        sent = len(server.completions())
        assert remote_rows.score(options) == scores and len(server.completions()) == sent  # from the request cache
        assert [c.text for c in remote_rows.greedy(6, ["\n"])] == [c.text for c in local_rows.greedy(6, ["\n"])]
    finally:
        server.close()
