"""Agreement of the rule tagger with hand labels (cotprobe/_data/behaviour_eval.jsonl).

A step counts as positive for a behaviour if ``tag_step`` returns any hit of it. Prints
precision, recall, F1 and support (hand-labelled positives) per behaviour, for each
``split`` in the file and for all steps; with ``--errors`` every disagreement.

Splits record how the lexicon was developed, so you can tell in-sample from held-out
numbers. "dev": lexicon 1.0 was written against these. "tune": written and labelled
with 1.0 frozen, then used to make 1.1. "test": written and labelled with 1.1 frozen,
then used to make 1.2. "r1style": written while making 1.4, in the style of
real R1 traces (computation after "Therefore", hedged method choices, rounding, recaps,
tag questions). Every split is in-sample for the current lexicon; to measure it
out of sample, add a new split written without looking at the tagger's output.

With ``--judge MODEL`` the LLM judge (``python -m cotprobe.tag --judge``) is measured instead;
each step is shown with the row before it in the file as its previous step (rows are in trace
order), and answers that do not parse count as no behaviour and are counted.

    python benchmarks/tagger_agreement.py [--eval FILE] [--lexicon FILE] [--errors]
    python benchmarks/tagger_agreement.py --real ../shared/real_traces/r1_distill_llama8b_math.jsonl [--errors] [--half 1|2]
    python benchmarks/tagger_agreement.py --judge smollm2-135m-instruct [--judge-backend openai --judge-base-url URL]
    python benchmarks/tagger_agreement.py --codebook ../shared/real_traces/codebook/steps.jsonl [--per-step] [--errors]

With ``--codebook FILE`` (JSONL: trace, i, text, labels_a, labels_b; issue 27) the tagger is measured
against two annotators' labels under cotprobe's own definitions: each trace's steps are tagged in
order with ``tag_texts`` (``--per-step``: each step alone with ``tag_step``), and per class it prints
the annotators' agreement (F1 of one against the other), the tagger's F1 against each annotator and
their mean, and the counts of steps labelled by A, B and the tagger.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cotprobe.resources import data_path
from cotprobe.segment import split_steps
from cotprobe.tags import BEHAVIOURS, load_lexicon, tag_step

try:
    from cotprobe.tags import tag_texts
except ImportError:  # lexicon 1.4 had no context rules
    tag_texts = None

# Function labels of the real-trace chunks -> the tagger's behaviours (issue 12).
REAL_MAPPING = {
    "verification": ({"self_checking"}, {"verification"}),
    "uncertainty": ({"uncertainty_management"}, {"backtracking", "alternative", "hedging"}),
    "conclusion": ({"final_answer_emission", "result_consolidation"}, {"conclusion"}),
}
TOLERANCE = 5  # characters, for boundary matching


def _prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else float("nan")
    r = tp / n_gold if n_gold else float("nan")
    return p, r, (2 * p * r / (p + r) if tp else 0.0)


def boundary_matches(gold: list[int], pred: list[int], tol: int = TOLERANCE) -> int:
    """One-to-one matches between boundary offsets at most ``tol`` apart (greedy, in order)."""
    used, tp = set(), 0
    for g in gold:
        near = [(abs(p - g), i) for i, p in enumerate(pred) if abs(p - g) <= tol and i not in used]
        if near:
            used.add(min(near)[1])
            tp += 1
    return tp


def pk_windowdiff(gold: list[int], pred: list[int], n: int) -> tuple[float, float]:
    """Pk and WindowDiff over character positions, k = half the mean gold segment length."""
    import numpy as np

    k = max(1, round(n / (len(gold) + 1) / 2))
    if n <= k:
        return float("nan"), float("nan")
    def counts(bounds):
        marks = np.zeros(n + 1, dtype=int)
        marks[[b for b in bounds if 0 < b <= n]] = 1
        return np.cumsum(marks)
    g, p = counts(gold), counts(pred)
    i = np.arange(n - k)
    dg, dp = g[i + k] - g[i], p[i + k] - p[i]
    return float(np.mean((dg > 0) != (dp > 0))), float(np.mean(dg != dp))


def problem_half(rows: list[dict], half: int | None) -> list[dict]:
    """Rows whose problem is in the first (1) or second (2) half of the sorted problem ids.

    Both traces of a problem fall in the same half, so tuning on one half and measuring on
    the other keeps a problem's wording out of the held-out figures. ``None``: all rows.
    """
    if half is None:
        return rows
    problem = lambda row: row.get("trace_id", "").rsplit("/", 1)[-1]
    ids = sorted({problem(r) for r in rows})
    chosen = set(ids[: (len(ids) + 1) // 2] if half == 1 else ids[(len(ids) + 1) // 2 :])
    return [r for r in rows if problem(r) in chosen]


def real_agreement(path: Path, lexicon, show_errors: bool, half: int | None = None, per_step: bool = False) -> None:
    """Segmenter and tagger against the chunks and GPT-4o function labels of real traces."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = problem_half(rows, half)
    tp = n_pred = n_gold = 0
    pks, wds, tiny, n_steps = [], [], 0, 0
    counts = {name: {"chunk": [0, 0, 0], "steps": [0, 0, 0]} for name in REAL_MAPPING}
    errors = []
    for row in rows:
        text, chunks = row["text"], row["chunks"]
        steps = split_steps(text)
        n_steps += len(steps)
        tiny += sum(1 for s in steps if len(s.text) <= 6)
        gold = sorted({c["start"] for c in chunks} - {chunks[0]["start"]})
        pred = [s.start for s in steps[1:]]
        tp += boundary_matches(gold, pred)
        n_pred, n_gold = n_pred + len(pred), n_gold + len(gold)
        pk, wd = pk_windowdiff(gold, pred, len(text))
        pks.append(pk)
        wds.append(wd)
        tag = lexicon.tag_many if per_step or not hasattr(lexicon, "tag_texts") else lexicon.tag_texts
        hits = [(s.start + h.start, h.behaviour) for s, hs in zip(steps, tag([s.text for s in steps])) for h in hs]
        chunk_hits = tag([text[c["start"]:c["end"]] for c in chunks])
        for c, own in zip(chunks, chunk_hits):
            labels = set(c.get("tags") or [])
            for name, (gold_labels, ours) in REAL_MAPPING.items():
                is_gold = bool(labels & gold_labels)
                for kind, got in (("chunk", any(h.behaviour in ours for h in own)),
                                  ("steps", any(c["start"] <= a < c["end"] and b in ours for a, b in hits))):
                    cell = counts[name][kind]
                    cell[0] += is_gold and got
                    cell[1] += got
                    cell[2] += is_gold
                    if kind == "chunk" and is_gold != got:
                        cues = ", ".join(f"{h.behaviour}:{h.cue!r}" for h in own if h.behaviour in ours)
                        errors.append(f"  {'FN' if is_gold else 'FP'} {name:<13} {'/'.join(sorted(labels))}: "
                                      f"{text[c['start']:c['end']][:160]!r}"
                                      + (f"  [{cues}]" if cues else ""))
    p, r, f = _prf(tp, n_pred, n_gold)
    which = f" (problem half {half})" if half else ""
    print(f"{len(rows)} traces{which} from {path}; lexicon {lexicon.source} (version {lexicon.version}); "
          f"{'each chunk alone' if per_step else 'each trace in order (tag_texts)'}")
    print(f"\nboundaries vs the chunks (+-{TOLERANCE} chars): precision {p:.3f} recall {r:.3f} F1 {f:.3f} "
          f"({n_pred} predicted, {n_gold} gold)")
    print(f"Pk {sum(pks) / len(pks):.3f}  WindowDiff {sum(wds) / len(wds):.3f} (mean over traces; lower is better)")
    print(f"steps: {n_steps}; steps of <= 6 characters: {tiny}")
    print("\nbehaviours vs GPT-4o labels per chunk (chunk: the tagger on each chunk's text; "
          "steps: cues found in our own steps, placed in the chunk that holds them)")
    print(f"{'behaviour':<14}{'on':>6}{'precision':>10}{'recall':>8}{'F1':>7}{'support':>9}{'tagged':>8}")
    for name in REAL_MAPPING:
        for kind in ("chunk", "steps"):
            t, np_, ng = counts[name][kind]
            p, r, f = _prf(t, np_, ng)
            print(f"{name:<14}{kind:>6}{p:>10.2f}{r:>8.2f}{f:>7.2f}{ng:>9d}{np_:>8d}")
    if show_errors:
        print("\ndisagreements (chunk level):", *errors, sep="\n")


def _f1(x: list[bool], y: list[bool]) -> float:
    tp = sum(a and b for a, b in zip(x, y))
    n = sum(x) + sum(y)
    return 2 * tp / n if n else float("nan")


def codebook_agreement(path: Path, lexicon, per_step: bool, show_errors: bool) -> dict[str, dict]:
    """Per class: annotators' F1, the tagger's F1 against each and their mean, counts A / B / tagger."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    traces: dict[str, list[dict]] = {}
    for r in rows:
        traces.setdefault(r["trace"], []).append(r)
    predicted: list[set[str]] = []
    ordered: list[dict] = []
    for trace_rows in traces.values():
        trace_rows.sort(key=lambda r: r["i"])
        texts = [r["text"] for r in trace_rows]
        hits = [tag_step(t, lexicon) for t in texts] if per_step else tag_texts(texts, lexicon)
        predicted += [{h.behaviour for h in hs} for hs in hits]
        ordered += trace_rows
    mode = "tag_step, each step alone" if per_step else "tag_texts, each trace in order"
    print(f"{len(ordered)} steps of {len(traces)} traces from {path}; lexicon {lexicon.source} "
          f"(version {lexicon.version}); {mode}")
    print(f"\n{'class':<14}{'A vs B':>8}{'tagger vs A':>13}{'vs B':>7}{'mean':>7}{'A / B / tagger':>18}")
    table, errors = {}, []
    for b in BEHAVIOURS:
        a = [b in r["labels_a"] for r in ordered]
        bb = [b in r["labels_b"] for r in ordered]
        t = [b in p for p in predicted]
        fa, fb = _f1(t, a), _f1(t, bb)
        table[b] = {"annotators": _f1(a, bb), "vs_a": fa, "vs_b": fb, "mean": (fa + fb) / 2,
                    "counts": (sum(a), sum(bb), sum(t))}
        row = table[b]
        counts = "{} / {} / {}".format(*row["counts"])
        print(f"{b:<14}{row['annotators']:>8.2f}{fa:>13.2f}{fb:>7.2f}{row['mean']:>7.2f}{counts:>18}")
        for r, x, y, z in zip(ordered, a, bb, t):
            if z != x or z != y:
                kind = ("FP" if not (x or y) else "FP?") if z else "FN"
                who = "both" if x == y else ("A" if x else "B")
                errors.append(f"  {kind:<3} {b:<13} [{who}] {r['trace']}#{r['i']}: {r['text'][:150]!r}")
    if show_errors:
        print("\ndisagreements (FP: tagged by neither annotator, FP?: by one; FN: missed, [who] labelled it):",
              *errors, sep="\n")
    return table


def judge_rows(rows: list[dict], args) -> list[set[str]]:
    from cotprobe.backends import load_backend
    from cotprobe.judge import judge_key, judge_steps, load_judge_prompt
    from cotprobe.records import Step

    prompt = load_judge_prompt(args.judge_prompt)
    backend = load_backend(args.judge, kind=args.judge_backend, base_url=args.judge_base_url)
    steps = [(Step("eval", i, r["text"], 0, len(r["text"]), "", 0, 0), rows[i - 1]["text"] if i else "")
             for i, r in enumerate(rows)]
    start = time.perf_counter()
    judgements = list(judge_steps(backend, prompt, judge_key(args.judge, prompt), steps))
    unparsed = sum(1 for j in judgements if j.error)
    print(f"{len(rows)} steps; judge {judge_key(args.judge, prompt)} ({args.judge_backend}); "
          f"{unparsed} answers did not parse; {time.perf_counter() - start:.0f} s")
    return [set(j.behaviours) for j in judgements]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=None, help="labelled JSONL file")
    parser.add_argument("--lexicon", type=Path, default=None, help="lexicon JSON file")
    parser.add_argument("--errors", action="store_true", help="list every disagreement")
    parser.add_argument("--judge", default=None, help="measure this LLM judge instead of the rules")
    parser.add_argument("--judge-backend", choices=("hf", "openai"), default="hf")
    parser.add_argument("--judge-base-url", default=None)
    parser.add_argument("--judge-prompt", type=Path, default=None, help="judge prompt JSON")
    parser.add_argument("--real", type=Path, default=None,
                        help="real traces with chunks and function labels (JSONL: text, chunks[start, end, tags]): "
                             "boundary P/R/F1, Pk, WindowDiff and per-behaviour agreement")
    parser.add_argument("--half", type=int, choices=(1, 2), default=None,
                        help="with --real: only the traces of the first or second half of the problems "
                             "(tune on one, report the other held out)")
    parser.add_argument("--codebook", type=Path, default=None,
                        help="steps labelled by two annotators under the codebook (JSONL: trace, i, text, "
                             "labels_a, labels_b): per-class F1 against each annotator and their own agreement")
    parser.add_argument("--per-step", action="store_true",
                        help="with --codebook or --real: tag each step alone (tag_step) instead of each trace in order")
    args = parser.parse_args(argv)
    if args.codebook:
        codebook_agreement(args.codebook, load_lexicon(args.lexicon), args.per_step or tag_texts is None,
                           args.errors)
        return 0
    if args.real:
        real_agreement(args.real, load_lexicon(args.lexicon), args.errors, args.half, args.per_step)
        return 0

    path = args.eval or data_path("behaviour_eval.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.judge:
        predicted = judge_rows(rows, args)
    else:
        lexicon = load_lexicon(args.lexicon)
        predicted = [{h.behaviour for h in tag_step(r["text"], lexicon)} for r in rows]
        print(f"{len(rows)} steps from {path}; lexicon {lexicon.source} (version {lexicon.version})")
    splits = list(dict.fromkeys(r.get("split", "all") for r in rows))
    errors = []
    for split in (splits + ["all"] if len(splits) > 1 else splits):
        chosen = [i for i, r in enumerate(rows) if split == "all" or r.get("split", "all") == split]
        print(f"\n[{split}] {len(chosen)} steps")
        print(f"{'behaviour':<14}{'precision':>10}{'recall':>8}{'F1':>7}{'support':>9}{'tagged':>8}")
        for b in BEHAVIOURS:
            tp = fp = fn = 0
            for i in chosen:
                gold, got = b in rows[i]["labels"], b in predicted[i]
                tp += gold and got
                fp += got and not gold
                fn += gold and not got
                if gold != got and split != "all":
                    errors.append(f"  [{split}] {'FN' if gold else 'FP'} {b:<13} {rows[i]['text']}")
            p = tp / (tp + fp) if tp + fp else float("nan")
            r = tp / (tp + fn) if tp + fn else float("nan")
            f = 2 * p * r / (p + r) if tp else 0.0
            print(f"{b:<14}{p:>10.2f}{r:>8.2f}{f:>7.2f}{tp + fn:>9d}{tp + fp:>8d}")
    if args.errors:
        print("\ndisagreements:", *errors, sep="\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
