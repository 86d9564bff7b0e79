"""Traces per second through a batching server: the cut sweep one trace at a time against many
traces in flight together (#28 item 2), measured without a GPU.

The recording server (cotprobe.backends.recording_server, vLLM's dialect, a synthetic model over
the embedded model's real tokenizer) plays a batching engine: each request costs its prefill and
one step per generated token, and the requests in flight together share each step
(`step_clock.StepClock`, --step-ms per step). Traces are generated first on a server without
step latency; then the same 11-cut sweep (the paper's) runs twice against the stepped server,
through the real OpenAI backend with `--concurrency C` requests in flight and a fresh request
cache each time: one trace at a time (--sweep-batch 1: the cuts of one trace in flight
together, as before), then with traces in flight together (the automatic default). The two
runs' probes must be identical. Its last line:

  serving throughput: <R>x traces/s with traces in flight together vs one at a time (<L> ms per step, concurrency <C>)

    python benchmarks/serving_throughput.py [--traces 32] [--concurrency 64] [--step-ms 20] [--budget 256]
        [--fractions 0:1:0.1] [--cut token|step]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cotprobe import data, models
from cotprobe.backends.openai import OpenAIBackend
from cotprobe.backends.recording_server import RecordingServer
from cotprobe.cuts import Sweep, parse_fractions, traces_together, truncate
from cotprobe.forcing import Prober
from cotprobe.profiles import get_profile
from cotprobe.scales import VERBAL_10
from cotprobe.store import RunDir
from cotprobe.tracing import GenerationSettings, generate

MODEL = "synthetic"
PROFILE = get_profile("plain")


def timed_sweep(server, tokenizer, traces, by_id, sweep: Sweep, concurrency: int, workdir: Path):
    """(seconds, probes, requests, engine steps) of one sweep with a fresh backend and run directory."""
    backend = OpenAIBackend(server.url, MODEL, tokenizer, concurrency=concurrency)
    backend.score_mode  # start-up probes, before the clock starts
    sent, steps = len(server.completions()), server.clock.steps
    start = time.perf_counter()
    with RunDir(workdir) as run:
        probes = truncate(Prober(backend, PROFILE, VERBAL_10), traces, by_id, run, sweep)
    seconds = time.perf_counter() - start
    backend.close()
    return seconds, probes, len(server.completions()) - sent, server.clock.steps - steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=32, help="traces to sweep (default 32)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    parser.add_argument("--step-ms", type=float, default=20.0, help="milliseconds per engine step (default 20)")
    parser.add_argument("--budget", type=int, default=256, help="CoT token budget of the traces (default 256)")
    parser.add_argument("--fractions", default="0:1:0.1", help="cut fractions (default 0:1:0.1, 11 cuts)")
    parser.add_argument("--cut", default="token", choices=("token", "step"),
                        help="token (default: 11 distinct cuts per trace, as on thoughts of thousands of tokens) "
                             "or step (nearest step boundary: on these short synthetic thoughts, a few)")
    args = parser.parse_args(argv)
    fractions = parse_fractions(args.fractions)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(models.embedded_folder(models.DEFAULT_MODEL)))
    questions = data.load_dataset("trivia", n=args.traces, seed=0)
    by_id = {q.id: q for q in questions}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with RecordingServer(tokenizer, MODEL, labels=VERBAL_10.labels) as server:
            maker = OpenAIBackend(server.url, MODEL, tokenizer, concurrency=args.concurrency)
            settings = GenerationSettings(budget=args.budget, batch_size=len(questions))
            with RunDir(tmp / "gen") as run:
                traces = generate(Prober(maker, PROFILE, VERBAL_10, settings.force), questions, run, settings)
            maker.close()
        with RecordingServer(tokenizer, MODEL, labels=VERBAL_10.labels, step=args.step_ms / 1000) as server:
            probe = OpenAIBackend(server.url, MODEL, tokenizer, concurrency=args.concurrency)
            together = traces_together(probe, Sweep(fractions, args.cut), len(traces))
            probe.close()
            one = timed_sweep(server, tokenizer, traces, by_id, Sweep(fractions, args.cut, batch=1), args.concurrency,
                              tmp / "one")
            many = timed_sweep(server, tokenizer, traces, by_id, Sweep(fractions, args.cut), args.concurrency,
                              tmp / "many")
    if many[1] != one[1]:
        raise SystemExit("the probes of the two sweeps differ: traces in flight together must not change them")
    tokens = sum(len(t.cot_token_ids) for t in traces) / len(traces)
    print(f"{len(traces)} traces (mean {tokens:.0f} CoT tokens) x {len(fractions)} cuts = {len(one[1])} probes; "
          f"{args.step_ms:g} ms per engine step; concurrency {args.concurrency}")
    print(f"{'mode':<28} {'seconds':>8} {'traces/s':>9} {'requests':>9} {'steps':>7}")
    for name, (seconds, _, requests, steps) in (("one trace at a time", one),
                                                 (f"{together} traces in flight", many)):
        print(f"{name:<28} {seconds:>8.1f} {len(traces) / seconds:>9.2f} {requests:>9} {steps:>7}")
    print("probes identical: yes")
    print(f"serving throughput: {one[0] / many[0]:.1f}x traces/s with traces in flight together vs one at a time "
          f"({args.step_ms:g} ms per step, concurrency {args.concurrency})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
