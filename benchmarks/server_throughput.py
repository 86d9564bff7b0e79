"""Probes per second through an OpenAI-compatible server, at several request concurrencies.

Starts local llama.cpp servers on the embedded model (--servers N of them, or uses --base-url),
generates a few
traces once, then probes every trace at the given cut fractions with `concurrency` requests in
flight (traces run side by side; the cuts of one trace go out together), without the request
cache. Prints probes/second per concurrency and the speed-up over concurrency 1. A server that
runs one request at a time (llama-cpp-python) shows a speed-up near 1 whatever the client does;
two of them (--servers 2: the backend spreads requests over both) show what a second replica buys.

    python benchmarks/server_throughput.py [--kind llama-server|llama-cpp-python] [--traces 4]
        [--concurrency 1,4,16] [--fractions 0,0.5,1] [--threads 1] [--servers 1] [--base-url URL ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cotprobe import data, models
from cotprobe.backends.local_server import LocalServer
from cotprobe.backends.openai import OpenAIBackend
from cotprobe.tracing import GenerationSettings, generate
from cotprobe.forcing import ForceSettings, Prober
from cotprobe.profiles import get_profile
from cotprobe.scales import VERBAL_10
from cotprobe.store import RunDir
from cotprobe.cuts import parse_fractions, plan_cuts, probe_cuts
from cotprobe.steps import segment_trace

MODEL = models.DEFAULT_MODEL


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="auto", help="llama-server, llama-cpp-python or auto (default)")
    parser.add_argument("--base-url", nargs="+", help="use these running servers instead of starting some")
    parser.add_argument("--servers", type=int, default=1, help="local servers to start (default 1)")
    parser.add_argument("--traces", type=int, default=4, help="traces to probe (default 4)")
    parser.add_argument("--budget", type=int, default=48, help="CoT token budget (default 48)")
    parser.add_argument("--fractions", default="0,0.5,1", help="cut fractions (default 0,0.5,1)")
    parser.add_argument("--concurrency", default="1,4,16", help="concurrencies to time (default 1,4,16)")
    parser.add_argument("--threads", type=int, default=1, help="server CPU threads (default 1)")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    fractions = parse_fractions(args.fractions)
    tokenizer = str(models.embedded_folder(MODEL))
    profile = get_profile("plain")

    servers = []
    try:
        if args.base_url:
            url = args.base_url
        else:
            for _ in range(args.servers):
                servers.append(LocalServer(models.embedded_gguf(MODEL), MODEL, kind=args.kind, n_ctx=2048,
                                           threads=args.threads, parallel=max(levels)).start())
            url = [s.url for s in servers]
        server = servers[0] if servers else None
        context = server.n_ctx if server else None  # per request slot
        setup = OpenAIBackend(url, MODEL, tokenizer, concurrency=max(levels), context_length=context)
        questions = data.load_dataset("trivia", n=args.traces, seed=0)
        with tempfile.TemporaryDirectory() as tmp, RunDir(tmp) as run:
            traces = generate(Prober(setup, profile, VERBAL_10, GenerationSettings(budget=args.budget, batch_size=len(questions)).force), questions, run, GenerationSettings(budget=args.budget, batch_size=len(questions)))
        by_id = {q.id: q for q in questions}
        cuts = {t.question_id: plan_cuts(segment_trace(setup, t), len(t.cot_token_ids), fractions) for t in traces}
        n_probes = sum(len(c) for c in cuts.values())
        kind = f"{len(servers)} x {server.kind}" if server else "given servers"
        print(f"server: {kind} ({', '.join(url)}); prompts: {setup.prompt_mode}; scoring: {setup.score_mode}; "
              f"{len(traces)} traces x {len(fractions)} cuts = {n_probes} probes per level")
        base = None
        print(f"{'concurrency':>11} {'seconds':>8} {'probes/s':>9} {'requests':>9} {'speed-up':>9}")
        for level in levels:
            backend = OpenAIBackend(url, MODEL, setup.tokenizer, concurrency=level, score_mode=setup.score_mode,
                                    prompt_mode=setup.prompt_mode, topk=setup.topk, context_length=context)
            backend.dialect.n_probs = setup.dialect.n_probs
            sent = backend.requests_sent
            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=level) as pool:
                list(pool.map(lambda t: probe_cuts(Prober(backend, profile, VERBAL_10, ForceSettings()), t, by_id[t.question_id], cuts[t.question_id]), traces))
            elapsed = time.perf_counter() - start
            rate = n_probes / elapsed
            base = base or rate
            print(f"{level:>11} {elapsed:>8.1f} {rate:>9.2f} {backend.requests_sent - sent:>9} {rate / base:>8.2f}x")
            backend.close()
    finally:
        for s in servers:
            s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
