"""Size of the HTML report of a large run, and how long it takes to open in headless Chromium.

Builds a synthetic run directory of N traces (default 1000) from records constructed directly:
CoTs of ~2000 characters in ~30 steps, 11 cut probes per trace, a few behaviour tags, a real
metrics.json layout and a 200-dpi figure; writes the report; opens it in headless Chromium and
measures the time from navigation to the rendered trace list (wall clock around driver.get plus
the wait for the first row, and the page's own performance.now() when the list was ready), then
the time to open one trace's detail view and to apply a filter. Targets: < 20 MB and < 3 s to
the rendered list; exits 1 if either is missed.

    python benchmarks/report_size.py [--n 1000] [--out DIR] [--loads 3]

Needs `apt-get install -y chromium chromium-driver` and `pip install selenium`.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cotprobe.metrics import METRICS
from cotprobe.plots import plot_progress
from cotprobe.records import Confidence, Probe, Step, Tag, Trace, write_jsonl
from cotprobe.report import write_report

TARGET_MB, TARGET_S = 20.0, 3.0
LABELS = ["Almost no chance", "Highly unlikely", "Chances are slight", "Unlikely", "Less than even",
          "Better than even", "Likely", "Very good chance", "Highly likely", "Almost certain"]
VALUES = [0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95]
FRACTIONS = [round(k / 10, 1) for k in range(11)]
PROMPT = ("<|im_start|>user\nThink step by step about the question below, then answer it. After your "
          "reasoning, finish with exactly these two lines:\n**Answer**: <your final answer, as short as "
          "possible>\n**Confidence**: <one of " + ", ".join(f'"{x}"' for x in LABELS) + ">\n\n"
          "Question: {q}<|im_end|>\n<|im_start|>assistant\n<think>\n")
FILLER = ["The key fact here concerns the {w} of the {x}, which I recall from history.",
          "First, recall that the {x} was described in several sources around {n}.",
          "That gives {n} when combined with the earlier value of {m}.",
          "Each of these options relates to the {w}; I need the one matching the {x}.",
          "The {x} is usually associated with {w}, at least in most textbooks."]
CUED = [("backtracking", "Wait", "Wait, that does not match the {x}; the {w} came later."),
        ("alternative", "Alternatively", "Alternatively, the {x} could refer to the {w} instead."),
        ("verification", "Let me double-check", "Let me double-check: {m} plus {n} fits the {w}."),
        ("hedging", "probably", "It is probably the {w}, though I am not fully sure about the {x}."),
        ("conclusion", "So the answer is", "So the answer is the {w} of the {x}.")]
WORDS = ["river", "treaty", "capital", "composer", "element", "planet", "painting", "dynasty", "author"]


def confidence(rng: random.Random) -> Confidence:
    raw = [rng.random() ** 3 for _ in LABELS]
    total = sum(raw)
    probs = [x / total for x in raw]
    k = max(range(len(probs)), key=probs.__getitem__)
    parsed = rng.random() > 0.1
    s = rng.randrange(len(LABELS))
    return Confidence(sampled_text=LABELS[s] if parsed else "unsure", sampled_label=LABELS[s] if parsed else None,
                      sampled_value=VALUES[s] if parsed else None, scored_probs=probs, scored_label=LABELS[k],
                      scored_value=VALUES[k], expected_value=sum(p * v for p, v in zip(probs, VALUES)))


def synthetic_run(path: Path, n: int = 1000, seed: int = 0) -> Path:
    rng = random.Random(seed)
    traces, steps, tags, probes = [], [], [], []
    for i in range(n):
        qid = f"bench-{i:05d}"
        fill = lambda t: t.format(w=rng.choice(WORDS), x=rng.choice(WORDS), n=rng.randint(2, 2000), m=rng.randint(2, 99))
        cot, texts, starts, cued = "", [], [], []
        for k in range(rng.randint(26, 34)):
            if rng.random() < 0.15:
                behaviour, cue, template = rng.choice(CUED)
                text = fill(template)
                cued.append((k, behaviour, cue, text.find(cue)))
            else:
                text = fill(rng.choice(FILLER))
            starts.append(len(cot))
            texts.append(text)
            cot += text + "\n\n"
        correct = rng.random() < 0.6
        n_tokens = len(cot) // 4
        traces.append(Trace(
            question_id=qid, model="bench-model", prompt=PROMPT.replace("{q}", f"Which {rng.choice(WORDS)} is number {i}?"),
            cot=cot, answer=f"answer {i}" if correct else f"wrong {i}", confidence=confidence(rng),
            prompt_tokens=180, cot_token_ids=list(range(n_tokens)), thinking_ended="stop", correct=correct,
            grader="alias@1", style="cot"))
        per_step = n_tokens / len(texts)
        for k, (text, start) in enumerate(zip(texts, starts)):
            steps.append(Step(question_id=qid, index=k, text=text, start=start, end=start + len(text), sep="\n\n",
                              token_start=int(k * per_step), token_end=int((k + 1) * per_step)))
        for k, behaviour, cue, pos in cued:
            tags.append(Tag(question_id=qid, step_index=k, behaviour=behaviour, cue=cue, start=pos, end=pos + len(cue)))
        for f in FRACTIONS:
            kept = round(f * len(texts))
            probes.append(Probe(question_id=qid, condition="cut", fraction_requested=f,
                                fraction_realised=kept / len(texts), step_index=kept, token_index=int(kept * per_step),
                                answer=f"answer {i}" if rng.random() < 0.5 + f / 3 else f"guess {rng.randint(0, 9)}",
                                confidence=confidence(rng), correct=rng.random() < 0.5 + f / 3, grader="alias@1"))
    path.mkdir(parents=True, exist_ok=True)
    manifest = {"stages": {"generate": {
        "settings": {"model": "bench-model", "profile": {"name": "qwen3", "description": "synthetic"},
                     "dataset": "synthetic", "limit": n, "scale": {"name": "verbal10", "labels": LABELS, "values": VALUES}},
        "started": "2026-01-01T00:00:00+00:00", "versions": {"python": sys.version.split()[0]}, "command": "benchmark"}}}
    (path / "manifest.json").write_text(json.dumps(manifest))
    for name, records in (("traces.jsonl", traces), ("steps.jsonl", steps), ("tags.jsonl", tags), ("probes.jsonl", probes)):
        write_jsonl(path / name, records)
    row = {"n_total": n, "n_unparsed": 0, "n": n}
    for key in METRICS:
        row.update({key: 0.5, key + "_low": 0.45, key + "_high": 0.55})
    truncate = {"source": "expected", "levels": [dict(row, level=f, fraction_realised=f) for f in FRACTIONS],
                "trends": {}, "trajectories": {"n": 0}}
    (path / "metrics.json").write_text(json.dumps({
        "traces": {"n": n, "thinking_ended": {"stop": n}, "sources": {s: row for s in ("scored", "expected", "sampled")}},
        "truncate": truncate}))
    plot_progress({"synthetic": truncate}, path / "figures" / "calibration_progress")  # the 200-dpi figure truncate draws
    return path


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000",
                f"--user-data-dir={tempfile.mkdtemp(prefix='cotprobe-chromium-')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="traces (default 1000)")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: a temporary one)")
    parser.add_argument("--loads", type=int, default=3, help="page loads to time (default 3)")
    parser.add_argument("--screenshot", type=Path, default=None, help="save a screenshot of the opened trace here")
    args = parser.parse_args(argv)

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run = args.out or Path(tempfile.mkdtemp(prefix="cotprobe-bench-")) / "run"
    t0 = time.perf_counter()
    synthetic_run(run, args.n)
    t1 = time.perf_counter()
    report = write_report(run)
    t2 = time.perf_counter()
    size_mb = report.stat().st_size / 1e6
    print(f"run directory: {run} ({args.n} traces; records built in {t1 - t0:.1f} s)")
    print(f"report: {report}")
    print(f"report size: {size_mb:.2f} MB (target < {TARGET_MB:.0f} MB); written in {t2 - t1:.2f} s")

    driver = browser()
    try:
        driver.get("about:blank")  # browser start-up is not part of the measurement
        walls, pages = [], []
        for _ in range(args.loads):
            driver.get("about:blank")
            start = time.perf_counter()
            driver.get(report.as_uri())
            WebDriverWait(driver, 60, poll_frequency=0.02).until(
                lambda d: d.execute_script("return document.querySelectorAll('#trace-list tbody tr').length > 0"))
            walls.append(time.perf_counter() - start)
            pages.append(driver.execute_script("return window.cotprobeReadyAt") / 1000)
        rows = len(driver.find_elements(By.CSS_SELECTOR, "#trace-list tbody tr"))
        start = time.perf_counter()
        driver.find_elements(By.CSS_SELECTOR, "#trace-list tbody tr")[1].click()
        WebDriverWait(driver, 30, poll_frequency=0.02).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#detail .step"))
        detail_s = time.perf_counter() - start
        start = time.perf_counter()
        driver.find_element(By.XPATH, "//label[normalize-space()='Incorrect only']").click()
        expected = str(sum(1 for line in (run / "traces.jsonl").open() if '"correct": false' in line))
        WebDriverWait(driver, 30, poll_frequency=0.02).until(
            lambda d: d.find_element(By.ID, "match-count").get_attribute("data-count") == expected)
        filter_s = time.perf_counter() - start
        if args.screenshot:
            driver.execute_script("document.getElementById('traces').scrollIntoView()")
            driver.save_screenshot(str(args.screenshot))
            print(f"screenshot: {args.screenshot}")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
    wall = statistics.median(walls)
    print(f"open to rendered list ({rows} rows): wall {wall:.2f} s median of {args.loads} "
          f"({', '.join(f'{w:.2f}' for w in walls)}); in page (performance.now at ready) "
          f"{statistics.median(pages):.2f} s (target < {TARGET_S:.0f} s)")
    print(f"open one trace's detail: {detail_s:.2f} s; apply 'Incorrect only' filter: {filter_s:.2f} s")
    if errors:
        print(f"console errors: {errors}")
    ok = size_mb < TARGET_MB and wall < TARGET_S and not errors
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
