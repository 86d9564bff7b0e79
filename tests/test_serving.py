"""The OpenAI backend against the recording server, which speaks vLLM's dialect of /v1/completions.

The recording server's synthetic model gives known log-probabilities, so scores can be checked
against it exactly; it records what a prefix cache could not serve, and can be slowed, stripped
of log-probabilities, or killed mid-run.
"""

from __future__ import annotations

import json
import math

import pytest

from cotprobe.forcing import Prober
from cotprobe.backends import fork
from cotprobe.backends.openai import (
    OpenAIBackend,
    ServerError,
    split_urls,
)
from cotprobe.backends.recording_server import RecordingServer
from cotprobe.backends.tiny import tiny_tokenizer
from cotprobe.tracing import GenerationSettings, generate
from cotprobe.profiles import get_profile
from cotprobe.records import Question
from cotprobe.scales import VERBAL_10
from cotprobe.store import RunDir
from cotprobe.summary import trace_metrics

PROFILE = get_profile("plain")
MODEL = "synthetic"
QUESTIONS = [Question(id=f"q{i}", question=f"What is {i} + {i}?", answer=str(2 * i), kind="numeric")
             for i in range(6)]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def serve(tok, **kwargs) -> RecordingServer:
    return RecordingServer(tok, MODEL, labels=VERBAL_10.labels, **kwargs)


def backend_for(server, tok, tmp_path=None, **kwargs) -> OpenAIBackend:
    cache = tmp_path / "requests" if tmp_path is not None else None
    return OpenAIBackend(server.url if isinstance(server, RecordingServer) else server, MODEL, tok,
                         cache_dir=cache, **kwargs)


def options_of(backend):
    return [backend.encode(" " + label) for label in VERBAL_10.labels]


def test_vllm_dialect_scoring_is_exact_cached_and_a_few_requests(tok, tmp_path):
    with serve(tok, max_logprobs=100) as server:
        backend = backend_for(server, tok, tmp_path, topk=100)
        assert (backend.prompt_mode, backend.ids_source, backend.score_mode, backend.topk) == \
            ("tokens", "server", "topk", 100)
        prompt = backend.encode(backend.chat_prompt([{"role": "user", "content": "What is 2 + 3?"}]))
        (cot,) = backend.generate([prompt], 64, [])
        ids = prompt + cot.token_ids
        lengths = [len(prompt), len(prompt) + 20, len(ids)]
        rows = fork(backend, ids, lengths)
        rows.extend([backend.encode("\n**Confidence**:")] * 3)
        before = len(server.completions())
        scores = rows.score(options_of(backend))
        sent = server.completions()[before:]
        # exact: the synthetic model's own log-probabilities of each label's whole token path
        options = options_of(backend)
        for row, got in zip(rows.ids, scores):
            want = [sum(server.lm.logprob(row + o[:d], o[d]) for d in range(len(o))) for o in options]
            assert got == pytest.approx(want, abs=1e-9)
            assert 0 < sum(math.exp(v) for v in got) <= 1 + 1e-9  # the label mass
        assert backend.topk_misses == 0
        # one greedy request per row, then one one-token request per label prefix it did not pass
        deeper = len({tuple(o[:d]) for o in options for d in range(1, len(o))})
        assert 3 <= len(sent) <= 3 * (1 + deeper)
        assert not any(r.prompt_logprobs for r in sent)  # never prompt log-probs over the CoT
        # every request after the longest row's first one extends a cached prompt
        assert sum(r.uncached_tokens for r in sent[1:]) <= 2 * 16 * len(sent[1:])
        # the written confidence was in the scoring request's answer: no request of its own
        n = len(server.completions())
        written = rows.greedy(8, ["\n"], nonblank=True)
        assert len(server.completions()) == n and all(w.text for w in written)


def test_prompt_mode_is_exact_but_bypasses_the_prefix_cache(tok):
    with serve(tok, max_logprobs=5) as server:
        backend = backend_for(server, tok, score_mode="prompt")
        ids = backend.encode("Question: is it Paris? Let me think.") * 4
        options = options_of(backend)
        before = len(server.completions())
        (scores,) = fork(backend, ids, [len(ids)]).score(options)
        for got, o in zip(scores, options):
            assert got == pytest.approx(sum(server.lm.logprob(ids + o[:d], o[d]) for d in range(len(o))), abs=1e-9)
        sent = server.completions()[before:]
        assert len(sent) == len(options) and all(r.prompt_logprobs and r.cached_tokens == 0 for r in sent)


def test_a_label_outside_the_top_k_leaves_the_row_unscored_never_flattened(tok, tmp_path):
    """With a top-k too small for some label token, those rows get no scored distribution (marked
    inexact, the misses counted) instead of one built from the k-th log-probability; rows the
    top-k covers stay exact and equal the model's own distribution."""
    from cotprobe.forcing import label_distribution, label_options

    with serve(tok) as server:
        backend = backend_for(server, tok, topk=2)
        assert backend.score_mode == "topk" and backend.topk == 2
        ids = backend.encode(backend.chat_prompt([{"role": "user", "content": "What is 2 + 3?"}]))
        rows = fork(backend, ids, [len(ids) - 3, len(ids)])
        rows.extend([backend.encode("\n**Confidence**:")] * 2)
        sequences, continued = label_options(backend, VERBAL_10)
        scored = [label_distribution(lps, continued, VERBAL_10) for lps in rows.score(sequences)]
    assert backend.topk_misses > 0
    assert any(d["scored_exact"] is False for d in scored)
    for d, row in zip(scored, rows.ids):
        if d["scored_exact"]:
            want = [sum(server.lm.logprob(row + s[:j], s[j]) for j in range(len(s))) for s in sequences]
            assert d["scored_probs"] == pytest.approx([math.exp(w) / sum(map(math.exp, want)) for w in want])
        else:
            assert "scored_probs" not in d and d["scored_misses"] > 0


def test_max_logprobs_is_respected(tok):
    with serve(tok, max_logprobs=5) as server:
        backend = backend_for(server, tok)  # asks for 20 first: refused with HTTP 400, then 10, then 5
        assert backend.score_mode == "topk" and backend.topk == 5
        (scores,) = fork(backend, backend.encode("Hello"), [1]).score(options_of(backend))
        assert len(scores) == 10 and all(v <= 0 or math.isnan(v) for v in scores)  # NaN: beyond the top 5


def test_token_ids_are_the_servers(tok):
    with serve(tok) as server:
        backend = backend_for(server, tok)
        prompt = backend.encode("Let me think")
        (done,) = backend.generate([prompt], 200, [])
        record = server.completions()[-1]
        assert record.completion_tokens == 200 and done.finish == "length"
        served = server.lm  # what the server generated, greedily, token by token
        want = []
        for _ in range(200):
            want.append(served.dist(prompt + want)[0][0])
        assert done.token_ids == want
        # re-encoding the text would not give the generated ids back: the token-id path matters
        assert tok.encode(done.text, add_special_tokens=False) != want


def test_server_without_logprobs_records_sampled_confidence_only(tok, tmp_path, capsys):
    with serve(tok, logprobs=False) as server:
        backend = backend_for(server, tok, tmp_path)
        assert backend.score_mode == "none"
        with RunDir(tmp_path / "run") as run:
            traces = generate(Prober(backend, PROFILE, VERBAL_10, GenerationSettings(budget=16).force), QUESTIONS[:3], run, GenerationSettings(budget=16))
    assert len(traces) == 3
    for t in traces:
        c = t.confidence
        assert c.scored_probs == [] and c.expected_value is None and c.label_mass is None
        assert c.sampled_text  # the written confidence is there
    err = capsys.readouterr().err
    assert err.count("no log-probabilities") == 1
    sources = trace_metrics(traces, n_resamples=50)["sources"]
    assert "unavailable" in sources["expected"] and "unavailable" in sources["scored"]
    assert "unavailable" not in sources["sampled"]


def test_slow_server_times_out_then_succeeds(tok):
    with serve(tok, delays=[3.0]) as server:  # the first completion stalls past the timeout
        backend = backend_for(server, tok, timeout=0.5, retries=2, backoff=0.01)
        assert backend.prompt_mode == "tokens"  # that first request was the start-up probe, retried
        (done,) = backend.generate([backend.encode("Hello")], 5, [])
        assert len(done.token_ids) == 5


def test_unreachable_server_and_bad_addresses_are_clear_errors(tok, tmp_path):
    from cotprobe.backends.local_server import free_port

    with pytest.raises(ServerError, match="cannot use the server"):
        OpenAIBackend(f"http://127.0.0.1:{free_port()}/v1", MODEL, tok, retries=0)
    with pytest.raises(ValueError, match="not an http"):
        split_urls("localhost:8000")
    (tmp_path / "servers.txt").write_text("http://a:1/v1, http://b:2\n# a comment\nhttp://c:3/v1\n")
    assert split_urls([f"@{tmp_path / 'servers.txt'}"]) == ["http://a:1", "http://b:2", "http://c:3"]


def test_two_servers_one_killed_mid_run_every_item_once(tok, tmp_path):
    first, second = serve(tok), serve(tok)
    try:
        backend = backend_for([first.url, second.url], tok, tmp_path, retries=3, backoff=0.01)
        traces_file = tmp_path / "run" / "traces.jsonl"
        real = first.complete

        def dying(body):  # the first server dies once two questions are written
            if traces_file.exists() and traces_file.read_text().count("\n") >= 2:
                first.kill()
            return real(body)

        first.complete = dying
        settings = GenerationSettings(budget=24, batch_size=2)
        with RunDir(tmp_path / "run") as run:
            traces = generate(Prober(backend, PROFILE, VERBAL_10, settings.force), QUESTIONS, run, settings)
        assert first.dead and len(first.completions()) > 0 and len(second.completions()) > 0
        ids = [json.loads(line)["question_id"] for line in traces_file.read_text().splitlines()]
        assert sorted(ids) == sorted(q.id for q in QUESTIONS) and len(ids) == len(set(ids))
        assert [t.question_id for t in traces] == [q.id for q in QUESTIONS]
        # resumable: the survivor alone, same run directory: nothing redone, nothing twice
        n = len(second.completions())
        again = backend_for(second, tok, tmp_path)
        with RunDir(tmp_path / "run") as run:
            generate(Prober(again, PROFILE, VERBAL_10, settings.force), QUESTIONS, run, settings)
        assert len(second.completions()) == n
        assert traces_file.read_text().count("\n") == len(QUESTIONS)
    finally:
        second.kill()
        if not first.dead:
            first.kill()


def test_request_cache_is_compact_and_bounded(tok, tmp_path):
    from cotprobe.backends.cache import RequestCache

    cache = RequestCache(tmp_path / "c", max_bytes=20_000)
    for i in range(100):
        cache.put(RequestCache.key("/v1/completions", {"prompt": [i]}), None, {"text": "x" * 500})
    assert cache.bytes <= 20_000 and 0 < len(cache) < 100
    key = RequestCache.key("/v1/completions", {"prompt": [1], "logprobs": 5})
    assert key == RequestCache.key("/v1/completions", {"prompt": [1]})
    cache.put(key, 5, {"text": "y"})
    assert cache.get(key, None) == {"text": "y"} and cache.get(key, 5) == {"text": "y"} and cache.get(key, 6) is None
    assert RequestCache(tmp_path / "c").get(key, 1) == {"text": "y"}  # on disk, across processes


def test_malformed_answers_and_refused_parameters_are_one_clear_error(tok):
    with serve(tok) as server:
        backend = backend_for(server, tok, retries=0)
        real = server.complete
        server.complete = lambda body: (200, {"choices": "not a list"}, None)
        with pytest.raises(ServerError, match="malformed answer"):
            backend.generate([backend.encode("Hi")], 3, [])
        server.complete = lambda body: (400, {"error": {"message": "min_tokens is not supported"}}, None)
        with pytest.raises(ServerError, match="HTTP 400.*min_tokens"):
            backend.generate([backend.encode("Hi there")], 3, [])
        server.complete = real


def test_cli_unreachable_server_is_one_line_on_stderr(tmp_path):
    import subprocess
    import sys

    from cotprobe.backends.local_server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    done = subprocess.run([sys.executable, "-m", "cotprobe.generate", "--backend", "openai", "--base-url", url,
                           "--max-retries", "0", "--timeout", "5", "-n", "1", "--out", str(tmp_path / "run")],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot use the server") and url[:-3] in lines[0]
    bad = subprocess.run([sys.executable, "-m", "cotprobe.generate", "--backend", "openai", "--base-url", url,
                          "--timeout", "0", "--out", str(tmp_path / "run")], check=False, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--timeout" in bad.stderr and "Traceback" not in bad.stderr
