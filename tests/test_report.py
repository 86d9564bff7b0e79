"""Tests for cotprobe.report: the HTML builder (no browser) and the page in headless Chromium.

The browser tests need the Debian packages `chromium` and `chromium-driver` and the Python
package `selenium`; without them they fail (CI installs them):

    apt-get install -y chromium chromium-driver
    pip install selenium
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
import zlib
from pathlib import Path

import pytest

from cotprobe.records import Confidence, Probe, Step, Tag, Trace, write_jsonl
from cotprobe.report import build_report, main, trace_data, write_report

LABELS = ["Almost no chance", "Unlikely", "Even", "Likely", "Almost certain"]
VALUES = [0.05, 0.3, 0.5, 0.7, 0.95]
BEHAVIOURS = ["backtracking", "alternative", "verification", "hedging", "conclusion"]
EVIL = "</script><script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned=2\">"
FRACTIONS = [0.0, 0.25, 0.5, 0.75, 1.0]


def conf(i: int, parsed: bool = True) -> Confidence:
    k = i % len(LABELS)
    probs = [0.1] * len(LABELS)
    probs[k] = 0.6
    return Confidence(
        sampled_text=LABELS[k] if parsed else "<garbled & odd>",
        sampled_label=LABELS[k] if parsed else None,
        sampled_value=VALUES[k] if parsed else None,
        scored_probs=probs, scored_label=LABELS[k], scored_value=VALUES[k],
        expected_value=sum(p * v for p, v in zip(probs, VALUES)),
    )


def make_records(n: int):
    """n traces with varied grades (True/False/None), lengths, unicode, tags and probes."""
    traces, steps, tags, probes = [], [], [], []
    for i in range(n):
        qid = f"q{i:04d}"
        texts = [f"<think> Step one of {i}: consider 3 < 4 & 5 > 2.",
                 "Wait, that's not right — let me double-check the 😀 numbers.",
                 "Alternatively, I think it is probably Paris.",
                 "So the answer is Paris."][: 1 + i % 4]
        if i == 0:
            texts = [f"Look: {EVIL}", "So the answer is <b>bold</b>."]
        cot, starts = "", []
        for t in texts:
            starts.append(len(cot))
            cot += t + "\n"
        correct = [True, False, None][i % 3]
        traces.append(Trace(
            question_id=qid, model="tiny-<model>",
            prompt=f"<|im_start|>user\nThink.\n\nQuestion: What is the capital {i} of <France>?<|im_end|>\n<|im_start|>assistant\n",
            cot=cot, answer="Paris" if correct else f"Lyon {i}", confidence=conf(i, parsed=i % 5 != 0),
            prompt_tokens=40 + i, cot_token_ids=list(range(10 * len(texts))), thinking_ended="stop" if i % 2 else "budget",
            correct=correct, grader="alias@1", style="cot"))
        for k, (t, st) in enumerate(zip(texts, starts)):
            steps.append(Step(question_id=qid, index=k, text=t, start=st, end=st + len(t), sep="\n",
                              token_start=10 * k, token_end=10 * k + 10))
            for b, cue in (("backtracking", "Wait"), ("verification", "let me double-check"),
                           ("alternative", "Alternatively"), ("hedging", "probably"), ("conclusion", "So the answer is")):
                pos = t.find(cue)
                if pos >= 0:
                    tags.append(Tag(question_id=qid, step_index=k, behaviour=b, cue=cue, start=pos, end=pos + len(cue)))
        for j, f in enumerate(FRACTIONS):
            kept = round(f * len(texts))
            probes.append(Probe(
                question_id=qid, condition="cut", fraction_requested=f, fraction_realised=kept / len(texts),
                step_index=kept, token_index=10 * kept, answer=["Lyon", "Paris", "<i>Paris</i>"][(i + j) % 3],
                confidence=conf(i + j), correct=[False, True, None][(i + j) % 3], grader="alias@1"))
        probes.append(Probe(question_id=qid, condition="full", fraction_requested=1.0, fraction_realised=1.0,
                            step_index=len(texts), token_index=10 * len(texts), answer="Paris",
                            confidence=conf(i), correct=True, cot=cot))
        probes.append(Probe(question_id=qid, condition="no-backtracking", fraction_requested=1.0,
                            fraction_realised=1.0, step_index=len(texts), token_index=0, answer="Paris",
                            confidence=conf(i + 1), correct=i % 2 == 0, removed=["Wait, that's not right"],
                            error="" if i % 7 else "rewrite failed"))
    return traces, steps, tags, probes


def metric_row(acc: float) -> dict:
    row = {"n_total": 10, "n_unparsed": 1, "n": 9}
    for key, value in (("accuracy", acc), ("ece", 0.12), ("brier", 0.2), ("auroc", math.nan), ("mean_confidence", 0.6)):
        row.update({key: value, key + "_low": value - 0.05, key + "_high": value + 0.05})
    row["note"] = "AUROC undefined: <all> answers correct"
    return row


def tiny_png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def make_run(path: Path, n: int = 12, *, steps=True, tags=True, probes=True, metrics=True, figures=True) -> Path:
    traces, st, tg, pr = make_records(n)
    path.mkdir(parents=True, exist_ok=True)
    manifest = {"stages": {
        "generate": {"settings": {"model": "tiny-<model>", "profile": {"name": "plain", "description": "<desc>"},
                                  "dataset": "trivia", "limit": n, "scale": {"name": "test5", "labels": LABELS, "values": VALUES},
                                  "prompt_template": "Think.\n<labels>"},
                     "started": "2026-01-01T00:00:00+00:00", "versions": {"python": "3.11", "torch": "2.x"},
                     "command": "python -m cotprobe.generate"},
        "truncate": {"settings": {"fractions": FRACTIONS, "cut": "step"}, "started": "2026-01-01T00:01:00+00:00",
                     "versions": {"python": "3.11", "torch": "2.y"}, "command": "python -m cotprobe.truncate"}}}
    (path / "manifest.json").write_text(json.dumps(manifest))
    write_jsonl(path / "traces.jsonl", traces)
    if steps:
        write_jsonl(path / "steps.jsonl", st)
    if tags:
        write_jsonl(path / "tags.jsonl", tg)
    if probes:
        write_jsonl(path / "probes.jsonl", pr)
    if metrics:
        data = {
            "traces": {"n": n, "thinking_ended": {"stop": 6, "budget": 6},
                       "sources": {"scored": metric_row(0.5), "expected": metric_row(0.5), "sampled": {"n_total": n, "n_unparsed": n}}},
            "truncate": {"source": "expected", "levels": [dict(metric_row(0.3 + f / 2), level=f, fraction_realised=f) for f in FRACTIONS],
                         "trends": {"ece": {"clustered": {"slope": -0.1, "intercept": 0.2, "p_value": 0.01, "low": -0.2, "high": -0.01},
                                            "ols_per_level": None}},
                         "trajectories": {"n": n, "mean_change": 0.1, "mean_abs_largest_jump": 0.2, "mean_direction_changes": 1.5}},
            "ablate": {"source": "expected", "reference": "full", "conditions": {
                "full": dict(metric_row(0.6), n_failed=0),
                "no-backtracking": dict(metric_row(0.5), n_failed=2, diff_vs_full={
                    "n": 10, "accuracy": {"estimate": -0.1, "low": -0.2, "high": 0.0, "p_value": 0.04}})}},
        }
        (path / "metrics.json").write_text(json.dumps(data))  # Python writes NaN, as summary.update_metrics does
    if figures:
        (path / "figures").mkdir(exist_ok=True)
        (path / "figures" / "calibration_progress.png").write_bytes(tiny_png())
    return path


def embedded_data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="cotprobe-data">(.*?)</script>', page, re.DOTALL)
    assert m, "no data blob"
    return json.loads(m.group(1))


# ------------------------------------------------------------------------------ builder


def test_script_in_cot_is_escaped(tmp_path):
    page = build_report(make_run(tmp_path / "run"))
    # only the report's own two script elements open or close, wherever records put "<script>"
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert "__pwned" in page and "<img src=x" not in page
    assert "tiny-&lt;model&gt;" in page and "tiny-<model>" not in page  # manifest, HTML-escaped
    assert "&lt;desc&gt;" in page and "&lt;all&gt; answers" in page
    data = embedded_data(page)
    assert data["traces"][0]["cot"].startswith(f"Look: {EVIL}")  # the blob round-trips the raw text
    assert data["traces"][0]["q"] == "What is the capital 0 of <France>?"


def test_works_without_tags_probes_steps_metrics_figures(tmp_path):
    run = make_run(tmp_path / "run", steps=False, tags=False, probes=False, metrics=False, figures=False)
    page = build_report(run)
    data = embedded_data(page)
    assert len(data["traces"]) == 12
    assert data["has"] == {"steps": False, "tags": False, "probes": False}
    assert all(t["steps"] == [] and t["tags"] == [] and t["cuts"] == [] and t["bh"] == [] for t in data["traces"])
    assert "No metrics.json" in page and "No figures" in page


def test_steps_without_tags(tmp_path):
    data = embedded_data(build_report(make_run(tmp_path / "run", tags=False)))
    assert data["has"]["tags"] is False and data["present"] == []
    assert sum(len(t["steps"]) for t in data["traces"]) > 12


def test_figures_inlined(tmp_path):
    run = make_run(tmp_path / "run")
    page = build_report(run)
    b64 = base64.b64encode((run / "figures" / "calibration_progress.png").read_bytes()).decode()
    assert f'src="data:image/png;base64,{b64}"' in page
    assert not re.search(r'(src|href)="(?!data:|#)', page), "the report must reference nothing outside itself"


def test_metrics_tables(tmp_path):
    page = build_report(make_run(tmp_path / "run"))
    for heading in ("Final answers, per confidence source", "Calibration against CoT progress", "Ablations"):
        assert heading in page
    assert "no parsed confidences" in page  # the sampled source with no parsed labels
    assert "n/a" in page  # NaN AUROC
    assert "-0.100" in page and "p=0.040" in page  # paired difference vs full
    assert "2.x (generate) / 2.y (truncate)" in page  # versions that differ between stages
    embedded_data(page)  # no NaN leaked into the JSON blob (json.loads would accept it; check literally)
    blob = re.search(r'id="cotprobe-data">(.*?)</script>', page, re.DOTALL).group(1)
    assert "NaN" not in blob and "Infinity" not in blob


def test_offsets_are_utf16_and_tags_point_at_cues(tmp_path):
    traces, steps, tags, probes = make_records(8)
    rows = trace_data(traces, steps, tags, probes)
    for row in rows:
        units = row["cot"].encode("utf-16-le")
        texts = {}
        for index, start, end, *explicit in row["steps"]:
            assert not explicit
            texts[index] = units[2 * start:2 * end].decode("utf-16-le")
        for step_index, behaviour, start, end, cue in row["tags"]:
            assert texts[step_index].encode("utf-16-le")[2 * start:2 * end].decode("utf-16-le") == cue
    emoji = next(r for r in rows if "😀" in r["cot"])
    assert emoji["bh"] == [b for b in BEHAVIOURS if b in emoji["bh"]]  # canonical order
    assert [c["f"] for c in rows[3]["cuts"]] == FRACTIONS
    assert {a["cond"] for a in rows[3]["abl"]} == {"full", "no-backtracking"}


def test_reader_names_file_line_and_field_of_a_bad_record(tmp_path):
    from cotprobe.records import RecordError, to_dict
    from cotprobe.store import read_records

    traces, *_ = make_records(2)
    good = to_dict(traces[1])
    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(dict(good, cot_token_ids=[1, "2"])) + "\n")
    with pytest.raises(RecordError, match=r"traces.jsonl:2: field 'cot_token_ids'.*expected an integer"):
        read_records(path, Trace)


def test_cli_default_output_max_traces_and_torn_line(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    with (run / "probes.jsonl").open("a") as fh:
        fh.write('{"question_id": "q0000", "condi')  # a run still writing
    assert main([str(run), "--max-traces", "5"]) == 0
    out = run / "report.html"
    assert "report:" in capsys.readouterr().out
    data = embedded_data(out.read_text())
    assert len(data["traces"]) == 5 and data["n_all"] == 12
    other = write_report(run, tmp_path / "elsewhere" / "r.html")
    assert other.exists() and len(embedded_data(other.read_text())["traces"]) == 12


# ------------------------------------------------------------------------------ browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = "apt-get install -y chromium chromium-driver"


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.fail(f"browser tests need {', '.join(missing)}: install with `{INSTALL}`", pytrace=False)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("browser tests need selenium: `pip install selenium`", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def page(driver, tmp_path_factory):
    """A 120-trace report (more than one page of 50 rows) loaded in the browser."""
    run = make_run(tmp_path_factory.mktemp("browser") / "run", n=120)
    out = write_report(run)
    driver.get(out.as_uri())
    wait_for(driver, lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
    return {"run": run, "data": embedded_data(out.read_text())}


def wait_for(driver, cond, timeout: float = 10):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(cond)


def rows(driver):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#trace-list tbody tr.trace-row")


def count(driver) -> int:
    return int(driver.execute_script("return document.getElementById('match-count').dataset.count"))


def click_label(driver, text: str):
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f"//form[@id='filters']//label[normalize-space()='{text}']").click()


def test_browser_list_filters_and_paging(driver, page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    traces = page["data"]["traces"]
    assert count(driver) == 120 and len(rows(driver)) == 50
    driver.find_element(By.ID, "more").click()
    assert len(rows(driver)) == 100

    wrong = sum(t["ok"] is False for t in traces)
    click_label(driver, "Incorrect only")
    wait_for(driver, lambda d: count(d) == wrong)
    assert len(rows(driver)) == min(50, wrong)
    ids = {r.get_attribute("data-index") for r in rows(driver)}
    assert all(traces[int(i)]["ok"] is False for i in ids)

    click_label(driver, "All")
    Select(driver.find_element(By.ID, "f-beh")).select_by_value("backtracking")
    expected = sum("backtracking" in t["bh"] for t in traces)
    wait_for(driver, lambda d: count(d) == expected)
    Select(driver.find_element(By.ID, "f-beh")).select_by_value("|none")
    wait_for(driver, lambda d: count(d) == sum(not t["bh"] for t in traces))
    Select(driver.find_element(By.ID, "f-beh")).select_by_value("")

    Select(driver.find_element(By.ID, "f-conf")).select_by_value("sampled|unparsed")
    wait_for(driver, lambda d: count(d) == sum(t["c"]["sl"] is None for t in traces))
    Select(driver.find_element(By.ID, "f-conf")).select_by_value("scored:Likely")
    wait_for(driver, lambda d: count(d) == sum(t["c"]["l"] == "Likely" for t in traces))
    Select(driver.find_element(By.ID, "f-conf")).select_by_value("")

    box = driver.find_element(By.ID, "f-q")
    box.send_keys("capital 42 of")
    wait_for(driver, lambda d: count(d) == 1)
    box.clear()
    box.send_keys(" ")  # an input event; whitespace-only search matches everything
    wait_for(driver, lambda d: count(d) == 120)


def test_browser_detail_view_and_escaping(driver, page, tmp_path):
    from selenium.webdriver.common.by import By

    traces = page["data"]["traces"]
    click_label(driver, "All")
    rows(driver)[3].click()
    detail = driver.find_element(By.ID, "detail")
    wait_for(driver, lambda d: detail.find_elements(By.CSS_SELECTOR, ".step"))
    t = traces[3]
    assert len(detail.find_elements(By.CSS_SELECTOR, ".step")) == len(t["steps"])
    assert len(detail.find_elements(By.CSS_SELECTOR, "svg.chart")) == 1
    assert len(detail.find_elements(By.CSS_SELECTOR, "svg.chart .mk")) == len(t["cuts"])
    assert len(detail.find_elements(By.CSS_SELECTOR, "table.cuts")[0].find_elements(By.CSS_SELECTOR, "tbody tr")) == len(t["cuts"])
    marks = detail.find_elements(By.CSS_SELECTOR, "mark.b")
    assert {m.get_attribute("data-behaviour") for m in marks} == set(t["bh"])
    assert {m.text for m in marks} >= {"Wait", "Alternatively"}
    assert driver.execute_script("return location.hash") == "#trace=3"
    assert "<think> Step one of 3" in detail.text  # angle brackets from records shown as text

    rows(driver)[0].click()  # the trace whose CoT carries </script><script>...
    wait_for(driver, lambda d: "Look:" in detail.text)
    assert EVIL in detail.find_element(By.CSS_SELECTOR, ".step .t").text
    assert driver.execute_script("return window.__pwned === undefined")
    assert "<b>bold</b>" in detail.text

    rows(driver)[3].click()
    wait_for(driver, lambda d: len(detail.find_elements(By.CSS_SELECTOR, ".step")) == len(t["steps"]))
    driver.execute_script("document.getElementById('traces').scrollIntoView()")
    shot = tmp_path / "report.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")

    severe = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not severe, f"console errors: {severe}"


def test_browser_without_optional_files(driver, tmp_path):
    from selenium.webdriver.common.by import By

    run = make_run(tmp_path / "bare", n=7, steps=False, tags=False, probes=False, metrics=False, figures=False)
    driver.get(write_report(run).as_uri())
    wait_for(driver, lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
    assert count(driver) == 7 and len(rows(driver)) == 7
    assert not driver.find_element(By.ID, "f-beh").is_enabled()
    rows(driver)[1].click()
    detail = driver.find_element(By.ID, "detail")
    wait_for(driver, lambda d: detail.find_elements(By.CSS_SELECTOR, "pre.cot"))
    assert not detail.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert "No probes.jsonl" in detail.text
    severe = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not severe, f"console errors: {severe}"


def test_behaviour_colours_and_order_come_from_the_data_file(tmp_path):
    from cotprobe.colours import behaviour_colours, in_order, shipped

    data = embedded_data(build_report(make_run(tmp_path / "run")))
    assert shipped() == tuple(BEHAVIOURS) and data["present"] == BEHAVIOURS
    assert data["behaviours"] == behaviour_colours(BEHAVIOURS)
    extra = behaviour_colours(["mine", "hedging", "yours"])
    assert extra["mine"] != extra["yours"] and set(extra) == set(BEHAVIOURS) | {"mine", "yours"}
    assert in_order(["mine", "hedging", "backtracking", "mine"]) == ["backtracking", "hedging", "mine"]
