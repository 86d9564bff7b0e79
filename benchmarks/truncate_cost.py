"""Cost of an 11-cut truncation sweep with cache reuse against naive re-encoding.

    python benchmarks/truncate_cost.py [--model smollm2-135m-instruct] [--lengths 256,1024,2048]
        [--template paper|compact] [--threads N] [--traces N]

For CoTs of each length (a reasoning-style text cut to exactly that many tokens), times
  full     one forward pass over prompt + whole CoT,
  forced   the forced answer + confidence at each cut, one cut at a time, prefix already cached,
  reuse    the sweep as cotprobe runs it (encode once, crop the cache per cut),
  naive    the sweep re-encoding prompt + prefix at every cut,
and prints reuse / (full + forced) (target <= 1.5), reuse / full and naive / reuse (target >= 4 at
2048). --template says how the answer is forced: paper (the default protocol: the prompt template's
second user turn asks a non-reasoning model to restate answer and confidence) or compact (the
answer line right after the CoT, in the same turn). Then, per CoT length, the cost of one decoding
step of 11 cut rows through the shared prefix against one step with no prefix at all (the
weights' cost, the floor of any decoding step) and one step of an ordinary batched key/value cache
(the prefix copied per row, the model's own attention), measured in the same run. --threads sets
torch's CPU threads (default: torch's own choice, printed). --traces N then times the
cross-trace sweep at the longest length: N traces, each timed for one full pass and for the
sweep one trace at a time, then their cut rows decoded as one batch (`cuts.probe_traces`, what
`truncate --sweep-batch N` runs), side by side in the same part of the run; it ends with the line

  cross-trace sweep: <S> s per trace at <T> tokens with <N> traces per batch = <R>x one full pass (one trace at a time: <Q>x)
"""

import argparse
import time

import torch

from cotprobe.backends import fork, load_backend
from cotprobe.backends.hf import HFBackend
from cotprobe.cuts import parse_fractions, plan_cuts, probe_cuts, probe_traces
from cotprobe.data import load_dataset
from cotprobe.forcing import ForceSettings, Prober, force_answers
from cotprobe.profiles import get_profile
from cotprobe.prompts import get_template
from cotprobe.records import Confidence, Trace
from cotprobe.scales import VERBAL_10
from cotprobe.steps import segment_trace
from cotprobe.tracing import build_prompt

PARAGRAPH = (
    "Okay, so I need to figure out which river flows through this city. Let me think. "
    "I remember that the city grew up around a bridge, and the river there is wide. "
    "Wait, maybe I'm confusing it with another city. Alternatively, it could be the river "
    "that runs further north. Let me double-check: the old town sits on the east bank. "
    "Hmm, I think that's right, but I'm not entirely sure.\n\n"
)


def make_trace(backend, n_tokens: int, k: int = 0) -> Trace:
    """The k-th trace of n_tokens: the k-th trivia question, the text starting k x 7 tokens in."""
    question = load_dataset("trivia", n=k + 1, seed=0)[k]
    prompt = build_prompt(backend, get_profile("plain"), VERBAL_10, "cot", question)
    ids = backend.encode(PARAGRAPH * (n_tokens // 20 + 2))[7 * k:7 * k + n_tokens]
    return Trace(question_id=question.id, model=backend.name, prompt=prompt, cot=backend.decode(ids),
                 answer="", confidence=Confidence(), prompt_tokens=len(backend.encode(prompt)),
                 cot_token_ids=ids, thinking_ended="budget"), question


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--lengths", default="256,1024,2048")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--steps", type=int, default=8, help="decoding steps timed per path (default 8)")
    parser.add_argument("--traces", type=int, default=0, metavar="N",
                        help="also time the cross-trace sweep (#28): N traces of the longest length, their cut rows "
                             "decoded as one batch (cuts.probe_traces); ends with the line 'cross-trace sweep: ...'")
    parser.add_argument("--template", choices=("paper", "compact"), default="paper",
                        help="how the answer is forced (default paper: the restating turn, as cotprobe runs by default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reuse = load_backend(args.model)
    naive = HFBackend(reuse.model, reuse.tokenizer, name=reuse.name, reuse_cache=False)
    profile, force = get_profile("plain"), ForceSettings(restate=get_template(args.template).restate)
    fractions = parse_fractions("0:1:0.1")
    fork(reuse, reuse.encode(PARAGRAPH), [8])  # warm-up: the first forward pass pays one-off costs
    steps, times = [], []
    print(f"model {args.model}; 11 cuts at step boundaries; --template {args.template}; times in seconds; "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'tokens':>6} {'full':>7} {'forced':>7} {'reuse':>7} {'naive':>7}  reuse/(full+forced)  reuse/full  naive/reuse")
    for n in (int(x) for x in args.lengths.split(",")):
        trace, question = make_trace(reuse, n)
        prompt_ids = reuse.encode(trace.prompt)
        cuts = plan_cuts(segment_trace(reuse, trace), n, fractions, "step")
        ids = prompt_ids + trace.cot_token_ids
        full = timed(lambda: fork(reuse, ids, [len(ids)]))
        forced = 0.0
        for t in sorted({c.token_index for c in cuts}):
            rows = fork(reuse, ids, [len(prompt_ids) + t])  # prefix encoded, not timed
            cot = [reuse.decode(trace.cot_token_ids[:t])]
            forced += timed(lambda: force_answers(rows, Prober(reuse, profile, VERBAL_10, force), cot))
        t_reuse = timed(lambda: probe_cuts(Prober(reuse, profile, VERBAL_10, force), trace, question, cuts))
        t_naive = timed(lambda: probe_cuts(Prober(naive, profile, VERBAL_10, force), trace, question, cuts))
        print(f"{n:>6} {full:7.2f} {forced:7.2f} {t_reuse:7.2f} {t_naive:7.2f}  "
              f"{t_reuse / (full + forced):19.2f}  {t_reuse / full:10.2f}  {t_naive / t_reuse:11.2f}")
        times.append((n, full, t_reuse))
        steps.append((n, *step_costs(reuse, ids, [len(prompt_ids) + c.token_index for c in cuts], args.steps)))
    if args.traces:  # the same N traces, one pass each, one at a time and batched, timed side by side
        n = times[-1][0]
        prober = Prober(reuse, profile, VERBAL_10, force)
        items = []
        for k in range(args.traces):
            trace, question = make_trace(reuse, n, k)
            items.append((trace, question, plan_cuts(segment_trace(reuse, trace), n, fractions, "step")))
        passes = [reuse.encode(t.prompt) + t.cot_token_ids for t, _, _ in items]
        full = sum(timed(lambda: fork(reuse, ids, [len(ids)])) for ids in passes) / args.traces
        t_reuse = sum(timed(lambda: probe_cuts(prober, *item)) for item in items) / args.traces
        cross = timed(lambda: probe_traces(prober, items)) / args.traces
    print("one decoding step of the 11 cut rows, milliseconds (no prefix: the weights' cost alone):")
    print(f"{'tokens':>6} {'shared':>8} {'no prefix':>10} {'ordinary':>9}  shared/no prefix  shared/ordinary")
    for n, shared, bare, ordinary in steps:
        print(f"{n:>6} {shared:8.1f} {bare:10.1f} {ordinary:9.1f}  {shared / bare:16.2f}  {shared / ordinary:15.2f}")
    if args.traces:
        print(f"the same {args.traces} traces at {n} tokens: one full pass {full:.2f} s, the sweep one trace at a "
              f"time {t_reuse:.2f} s, batched {cross:.2f} s per trace")
        print(f"cross-trace sweep: {cross:.2f} s per trace at {n} tokens with {args.traces} traces per batch = "
              f"{cross / full:.2f}x one full pass (one trace at a time: {t_reuse / full:.2f}x)")


def step_costs(backend, ids: list[int], lengths: list[int], n_steps: int) -> tuple[float, float, float]:
    """Milliseconds per one-token step for all rows: through the shared prefix (HFRows), with no
    prefix (rows of one token each: what the weights cost), and with an ordinary batched cache of
    the longest prefix repeated per row (the model's own attention)."""
    token = [[backend.pad_id]] * len(lengths)

    def per_step(rows) -> float:
        rows.extend(token)  # warm-up
        start = time.perf_counter()
        for _ in range(n_steps):
            rows.extend(token)
        return (time.perf_counter() - start) / n_steps * 1000

    shared = per_step(fork(backend, ids, lengths))
    bare = per_step(fork(backend, ids[:1], [1] * len(lengths)))
    model = backend.model
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ids[:max(lengths)]], device=backend.device), use_cache=True,
                    **backend.logits_args(1))
        cache = out[backend.cache_arg]
        cache.batch_repeat_interleave(len(lengths))
        step = torch.full((len(lengths), 1), backend.pad_id, device=backend.device)
        cache = model(input_ids=step, use_cache=True, **{backend.cache_arg: cache})[backend.cache_arg]  # warm-up
        start = time.perf_counter()
        for _ in range(n_steps):
            cache = model(input_ids=step, use_cache=True, **{backend.cache_arg: cache})[backend.cache_arg]
        ordinary = (time.perf_counter() - start) / n_steps * 1000
    return shared, bare, ordinary


if __name__ == "__main__":
    main()
