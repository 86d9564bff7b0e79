"""Agreement of the rule tagger with hand labels (cotprobe/_data/behaviour_eval.jsonl).

A step counts as positive for a behaviour if ``tag_step`` returns any hit of it. Prints
precision, recall, F1 and support (hand-labelled positives) per behaviour, for each
``split`` in the file and for all steps; with ``--errors`` every disagreement.

Splits record how the lexicon was developed, so you can tell in-sample from held-out
numbers. "dev": lexicon 1.0 was written against these. "tune": written and labelled
with 1.0 frozen, then used to make 1.1. "test": written and labelled with 1.1 frozen,
then used to make 1.2. Every split is in-sample for the current lexicon; to measure it
out of sample, add a new split written without looking at the tagger's output.

With ``--judge MODEL`` the LLM judge (``python -m cotprobe.tag --judge``) is measured instead;
each step is shown with the row before it in the file as its previous step (rows are in trace
order), and answers that do not parse count as no behaviour and are counted.

    python benchmarks/tagger_agreement.py [--eval FILE] [--lexicon FILE] [--errors]
    python benchmarks/tagger_agreement.py --judge smollm2-135m-instruct [--judge-backend openai --judge-base-url URL]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cotprobe.resources import data_path  # noqa: E402
from cotprobe.tags import BEHAVIOURS, load_lexicon, tag_step  # noqa: E402


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
    args = parser.parse_args(argv)

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
