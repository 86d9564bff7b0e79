"""Cost of the in-context slow-thinking prompts with and without the remembered prompt start.

    python benchmarks/prefix_memory.py [--model smollm2-135m-instruct] [-n 8] [--budget 32] [--threads N]

Every slow-think prompt begins with the same system prompt and three worked exemplars (about
1,700 of its 1,740 tokens on the embedded model), then the question. For n such prompts this
times, on one backend with the remembered prefix (`HFBackend.remember_prefix`) and on one without:

  generate   batched greedy generation of `budget` thinking tokens for all n prompts,
  sweep      the 11-cut probe sweep of each generated trace (`cotprobe.cuts.probe_cuts`),

and prints each time and the ratio without / with (the target: at least 2 for generation at the
default batch of 8). Remembering the prefix (one pass over it) is timed on its own and counted
in the "with" figures. It also prints how many generated tokens agree between the two runs (they
should all agree, up to near ties in fp32).
"""

import argparse
import time

import torch

from cotprobe import models
from cotprobe.backends.hf import HFBackend
from cotprobe.cuts import parse_fractions, plan_cuts, probe_cuts
from cotprobe.data import load_dataset
from cotprobe.experiment import default_profile
from cotprobe.forcing import ForceSettings, Prober
from cotprobe.profiles import for_style
from cotprobe.records import Confidence, Trace
from cotprobe.scales import VERBAL_10
from cotprobe.steps import segment_trace
from cotprobe.tracing import build_prompt, remember_shared_prompt


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def sweep(backend, prompts, completions, questions, profile):
    for prompt, completion, question in zip(prompts, completions, questions):
        trace = Trace(question_id=question.id, model="bench", prompt=prompt, cot=completion.text,
                      answer="", confidence=Confidence(), prompt_tokens=0, cot_token_ids=list(completion.token_ids), thinking_ended="budget")
        cuts = plan_cuts(segment_trace(backend, trace), len(trace.cot_token_ids), parse_fractions("0:1:0.1"))
        probe_cuts(Prober(backend, profile, VERBAL_10, ForceSettings()), trace, question, cuts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=models.DEFAULT_MODEL)
    parser.add_argument("-n", type=int, default=8, help="prompts (one generation batch; default 8)")
    parser.add_argument("--budget", type=int, default=32, help="thinking tokens per prompt (default 32)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")
    model, tokenizer = models.load(args.model)
    plain, kept = HFBackend(model, tokenizer), HFBackend(model, tokenizer)
    profile = for_style(default_profile(args.model, None), "slow-think")
    questions = load_dataset("trivia", n=args.n, seed=0)
    prompts = [build_prompt(plain, profile, VERBAL_10, "slow-think", q) for q in questions]
    ids = [plain.encode(p) for p in prompts]
    stop = [profile.think_end]

    _, t_remember = timed(lambda: remember_shared_prompt(kept, prompts))
    shared = len(kept.known_prefix(ids[0], len(ids[0])).ids)
    print(f"{args.n} prompts of {min(map(len, ids))}-{max(map(len, ids))} tokens; shared start {shared} tokens "
          f"(remembered in {t_remember:.1f} s)")
    without, t_gen_plain = timed(lambda: plain.generate(ids, args.budget, stop))
    with_, t_gen_kept = timed(lambda: kept.generate(ids, args.budget, stop))
    _, t_sweep_plain = timed(lambda: sweep(plain, prompts, without, questions, profile))
    _, t_sweep_kept = timed(lambda: sweep(kept, prompts, without, questions, profile))
    same = sum(a.token_ids == b.token_ids for a, b in zip(without, with_))
    print(f"{'':<10} {'without':>9} {'with':>9} {'without / with':>15}")
    print(f"{'generate':<10} {t_gen_plain:>8.1f}s {t_gen_kept + t_remember:>8.1f}s "
          f"{t_gen_plain / (t_gen_kept + t_remember):>15.2f}")
    print(f"{'sweep':<10} {t_sweep_plain:>8.1f}s {t_sweep_kept:>8.1f}s {t_sweep_plain / t_sweep_kept:>15.2f}")
    print(f"generated the same tokens in {same} of {args.n} prompts")


if __name__ == "__main__":
    main()
