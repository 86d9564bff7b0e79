"""Does a server give the same scored confidence as the model run here? The embedded model at the
same cuts, once through the HF backend and once through the vLLM-dialect recording server that
computes with the same model (`ModelLM`), its top-k capped like vLLM's --max-logprobs.

Traces are generated here (greedy), cut at 11 token fractions, and every cut is forced and
scored both ways. A cut whose server distribution is exact (every label token within the top k)
is compared with the HF one by total variation; an inexact one (some label token outside the top
k) must be flagged, never filled in. Ends with the line

  scoring agreement: max TV <D> over <N> exact cuts, <M> cuts flagged inexact (k=<K>)

    python benchmarks/scoring_agreement.py [--questions 3] [--budget 64] [--max-logprobs 2000]

The embedded 135M model is not sure of the format: at the label position it ranks the first
token of its least likely label 300th to 1,400th (measured on trivia questions), so at vLLM's
default cap (20) and at 100 every cut is flagged inexact (44 of 44 here); the default cap here,
2,000, lets every label through, as `vllm serve --max-logprobs 2000` would.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cotprobe import data, models  # noqa: E402
from cotprobe.backends.hf import HFBackend  # noqa: E402
from cotprobe.backends.openai import OpenAIBackend  # noqa: E402
from cotprobe.backends.recording_server import ModelLM, RecordingServer  # noqa: E402
from cotprobe.cuts import parse_fractions, plan_cuts, probe_cuts  # noqa: E402
from cotprobe.forcing import Prober  # noqa: E402
from cotprobe.profiles import get_profile  # noqa: E402
from cotprobe.scales import VERBAL_10  # noqa: E402
from cotprobe.steps import segment_trace  # noqa: E402
from cotprobe.store import RunDir  # noqa: E402
from cotprobe.tracing import GenerationSettings, generate  # noqa: E402

MODEL = models.DEFAULT_MODEL
PROFILE = get_profile("plain")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=3, help="trivia questions (default 3: 33 cuts)")
    parser.add_argument("--budget", type=int, default=64, help="thinking tokens per trace (default 64)")
    parser.add_argument("--max-logprobs", type=int, default=2000,
                        help="the server's top-k cap, as vLLM's --max-logprobs (default 2000)")
    args = parser.parse_args(argv)
    model, tokenizer = models.load(MODEL)
    local = HFBackend(model, tokenizer, name=MODEL)
    settings = GenerationSettings(budget=args.budget, batch_size=args.questions)
    here = Prober(local, PROFILE, VERBAL_10, settings.force)
    questions = data.load_dataset("trivia", n=args.questions)
    with tempfile.TemporaryDirectory() as tmp, RunDir(Path(tmp) / "run") as run:
        traces = generate(here, questions, run, settings)
    by_id = {q.id: q for q in questions}
    server = RecordingServer(tokenizer, MODEL, lm=ModelLM(model, tokenizer), context=local.context_length,
                             max_logprobs=args.max_logprobs)
    try:
        remote = OpenAIBackend(server.url, MODEL, tokenizer, concurrency=4, topk=args.max_logprobs)
        there = Prober(remote, PROFILE, VERBAL_10, settings.force)
        tvs, inexact, differ = [], 0, 0
        for trace in traces:
            cuts = plan_cuts(segment_trace(local, trace), len(trace.cot_token_ids), parse_fractions("0:1:0.1"),
                             "token")
            for a, b in zip(probe_cuts(here, trace, by_id[trace.question_id], cuts),
                            probe_cuts(there, trace, by_id[trace.question_id], cuts)):
                if b.confidence.scored_exact is False:
                    inexact += 1
                elif a.answer != b.answer:
                    differ += 1  # a near tie decoded differently: another context, not comparable
                else:
                    tvs.append(0.5 * sum(abs(x - y) for x, y in zip(a.confidence.scored_probs,
                                                                    b.confidence.scored_probs)))
        k = remote.topk
        remote.close()
    finally:
        server.close()
    print(f"{len(traces)} traces, {len(tvs) + inexact + differ} cuts; {differ} with different forced answers "
          f"(left out); label tokens outside the top-{k}: {remote.topk_misses}")
    print(f"scoring agreement: max TV {max(tvs, default=float('nan')):.2g} over {len(tvs)} exact cuts, "
          f"{inexact} cuts flagged inexact (k={k})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
