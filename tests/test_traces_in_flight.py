"""Many traces in flight on a server (#28 item 2): the cut sweep through the OpenAI backend keeps
several traces' requests in flight at once, yet writes exactly what one trace at a time writes,
in the same order, and an interrupted run resumes to exactly the uninterrupted run's records."""

from __future__ import annotations

import threading

import pytest

from cotprobe.backends import capabilities_of
from cotprobe.backends.openai import OpenAIBackend, ServerError
from cotprobe.backends.recording_server import RecordingServer
from cotprobe.backends.step_clock import StepClock
from cotprobe.backends.tiny import tiny_tokenizer
from cotprobe.cuts import Sweep, traces_together, truncate
from cotprobe.forcing import Prober
from cotprobe.inflight import in_order
from cotprobe.profiles import get_profile
from cotprobe.records import Question
from cotprobe.scales import VERBAL_10
from cotprobe.store import RunDir
from cotprobe.tracing import GenerationSettings, generate

PROFILE = get_profile("plain")
MODEL = "synthetic"
QUESTIONS = [Question(id=f"q{i}", question=f"What is {i} + {i}?", answer=str(2 * i), kind="numeric")
             for i in range(8)]
FRACTIONS = [0.0, 0.25, 0.5, 0.75, 1.0]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def made(tok, tmp_path_factory):
    """Eight traces made through the recording server: (traces, questions by id)."""
    with RecordingServer(tok, MODEL, labels=VERBAL_10.labels) as server:
        backend = OpenAIBackend(server.url, MODEL, tok, concurrency=8)
        settings = GenerationSettings(budget=40, batch_size=8)
        with RunDir(tmp_path_factory.mktemp("gen")) as run:
            traces = generate(Prober(backend, PROFILE, VERBAL_10, settings.force), QUESTIONS, run, settings)
        backend.close()
    return traces, {q.id: q for q in QUESTIONS}


def sweep(server, tok, path, traces, by_id, batch=None, **options):
    backend = OpenAIBackend(server.url, MODEL, tok, **{"concurrency": 8, **options})
    try:
        with RunDir(path) as run:
            return truncate(Prober(backend, PROFILE, VERBAL_10), traces, by_id, run, Sweep(FRACTIONS, batch=batch))
    finally:
        backend.close()


def test_in_order_keeps_the_order_and_raises_at_the_failing_items_turn():
    seen = []

    def slow_first(x):
        if x == 0:
            threading.Event().wait(0.05)
        if x == 5:
            raise ValueError("five")
        return x * x

    got = in_order(slow_first, range(10), workers=4)
    with pytest.raises(ValueError, match="five"):
        for item, result in got:
            seen.append((item, result))
    assert seen == [(i, i * i) for i in range(5)]
    assert list(in_order(lambda x: -x, [3, 1, 2], workers=1)) == [(3, -3), (1, -1), (2, -2)]


def test_the_backend_declares_its_requests_in_flight(tok):
    with RecordingServer(tok, MODEL, labels=VERBAL_10.labels) as server:
        backend = OpenAIBackend(server.url, MODEL, tok, concurrency=64)
        assert capabilities_of(backend).in_flight == 64
        assert traces_together(backend, Sweep(FRACTIONS), 100) == 26  # 2 x 64 requests over 5 cuts
        assert traces_together(backend, Sweep(FRACTIONS, batch=3), 100) == 3
        assert traces_together(backend, Sweep(FRACTIONS), 4) == 4
        backend.close()


def test_traces_in_flight_write_exactly_what_one_at_a_time_writes(tok, made, tmp_path):
    traces, by_id = made
    with RecordingServer(tok, MODEL, labels=VERBAL_10.labels) as server:
        one = sweep(server, tok, tmp_path / "one", traces, by_id, batch=1)
        many = sweep(server, tok, tmp_path / "many", traces, by_id)  # automatic: all 8 in flight
    assert len(one) == len(traces) * len(FRACTIONS)
    assert many == one
    assert (tmp_path / "many" / "probes.jsonl").read_text() == (tmp_path / "one" / "probes.jsonl").read_text()
    assert (tmp_path / "many" / "steps.jsonl").read_text() == (tmp_path / "one" / "steps.jsonl").read_text()


def test_a_run_killed_with_traces_in_flight_resumes_to_the_uninterrupted_records(tok, made, tmp_path):
    traces, by_id = made
    with RecordingServer(tok, MODEL, labels=VERBAL_10.labels) as server:
        sweep(server, tok, tmp_path / "whole", traces, by_id, batch=1)
    want = (tmp_path / "whole" / "probes.jsonl").read_text()
    probes_file = tmp_path / "cut" / "probes.jsonl"
    with RecordingServer(tok, MODEL, labels=VERBAL_10.labels) as dying:
        real = dying.complete

        def dies(body):  # the server dies once three traces' probes are written, others in flight
            if probes_file.exists() and probes_file.read_text().count("\n") >= 3 * len(FRACTIONS):
                dying.kill()
            return real(body)

        dying.complete = dies
        with pytest.raises(ServerError):
            sweep(dying, tok, tmp_path / "cut", traces, by_id, batch=4, retries=0)
    lines = probes_file.read_text().splitlines(keepends=True)
    assert 3 * len(FRACTIONS) <= len(lines) < len(traces) * len(FRACTIONS)
    assert "".join(lines) == want[:len("".join(lines))]  # a prefix of the uninterrupted records
    with RecordingServer(tok, MODEL, labels=VERBAL_10.labels) as server:
        sweep(server, tok, tmp_path / "cut", traces, by_id, batch=4)
    assert probes_file.read_text() == want  # every probe exactly once, in the same order


def test_the_step_clock_charges_requests_in_flight_together_one_step():
    clock = StepClock(0.02)
    threads = [threading.Thread(target=clock.wait, args=(5,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    together = clock.steps
    assert 5 <= together < 20  # eight requests of 5 steps each, in flight together: not 40 steps
    for _ in range(2):
        clock.wait(3)
    assert clock.steps - together >= 2 * 3  # one after another: their steps add up


def test_ablation_with_traces_in_flight_writes_what_one_at_a_time_writes(tok, made, tmp_path):
    """Ablation through a server keeps several traces in flight too, with the same records."""
    from cotprobe.ablate import Ablation, ablate
    from cotprobe.steps import tag_run

    traces, by_id = made
    conditions = ["full", "no-hedging", "random-deletion", "none"]
    written = {}
    with RecordingServer(tok, MODEL, labels=VERBAL_10.labels) as server:
        for concurrency in (1, 16):
            path = tmp_path / f"c{concurrency}"
            path.mkdir()
            with RunDir(path) as run:
                run.add_many(traces)
                tagged = tag_run(run, backend=OpenAIBackend(server.url, MODEL, tok))
                backend = OpenAIBackend(server.url, MODEL, tok, concurrency=concurrency)
                probes, _ = ablate(Prober(backend, PROFILE, VERBAL_10), traces, by_id, run,
                                   Ablation(conditions, tagged.steps, tagged.tags))
                backend.close()
            assert len(probes) == len(traces) * len(conditions)
            written[concurrency] = (path / "probes.jsonl").read_text()
    assert written[16] == written[1]
