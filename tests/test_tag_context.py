"""tag_texts: the context rules (cotprobe.tag_context) and lexicon 1.5's rules for real R1-style
steps, on short steps of our own written in the style of the codebook's hard cases (issue 27)."""

import json
import runpy
from pathlib import Path

import pytest

from cotprobe.records import Step
from cotprobe.resources import data_path
from cotprobe.tags import Lexicon, LexiconError, TagHit, tag_step, tag_steps, tag_texts


def behaviours(hits):
    return [{h.behaviour for h in step} for step in hits]


def rules(hits, behaviour):
    return [{h.rule for h in step if h.behaviour == behaviour} for step in hits]


def test_recomputation_after_an_announced_check_is_verification_until_the_answer():
    steps = ["I need the product of the two coefficients.",
             "So the product is 6 * 20 = 120.",
             "Wait, let me double-check that.",  # announced, no check in it: planning
             "The first coefficient is 6 and the second is 20.",
             "6 times 20 is 120.",
             "So, the product is 120."]  # the quantity the question asks for, no verdict: closes the check
    hits = tag_texts(steps)
    got = behaviours(hits)
    assert "verification" not in got[2] and "backtracking" not in got[2]
    assert rules(hits, "verification")[3:5] == [{"context:check_run"}] * 2
    assert "conclusion" in got[5] and "verification" not in got[5]
    assert all("verification" not in b for b in behaviours([tag_step(s) for s in steps]))  # alone: no cue word
    for step, text in zip(hits, steps):
        assert all(text[h.start:h.end] == h.cue for h in step)


def test_a_verdict_keeps_the_check_open_and_is_verification_and_conclusion():
    hits = tag_texts(["Find the sum.", "Let me verify the sum.", "3 + 4 = 7.",
                      "So, yes, 7 should be the correct sum.", "4 + 3 is 7 as well."])
    got = behaviours(hits)
    assert {"verification", "conclusion"} <= got[3]
    assert "verification" in got[4]


@pytest.mark.parametrize("closing", ["Now, the second part: 4 * 5 = 20.", "So the answer is 6."])
def test_moving_on_or_the_answer_closes_a_check(closing):
    hits = tag_texts(["Let me check the product.", "2 * 3 = 6.", closing, "Then 5 * 5 = 25."])
    got = behaviours(hits)
    assert "verification" in got[1]
    assert "verification" not in got[2] and "verification" not in got[3]


def test_a_retraction_ends_the_check():
    hits = tag_texts(["Let me verify the sum.", "3 + 4 = 8, so I made a mistake.", "Redoing it: 3 + 4 = 7."])
    got = behaviours(hits)
    assert {"verification", "backtracking"} <= got[1]
    assert "verification" not in got[2]


def test_a_check_that_never_closes_ends_after_max_check_steps():
    data = json.loads(data_path("behaviours.json").read_text(encoding="utf-8"))
    data["context"]["max_check_steps"] = 2
    lex = Lexicon(data)
    got = behaviours(lex.tag_texts(["Let me double-check.", "1 + 1 = 2.", "2 + 2 = 4.", "4 + 4 = 8."]))
    assert ["verification" in b for b in got] == [False, True, True, False]


def test_an_announced_check_with_a_check_in_it_is_verification():
    text = "Wait, but let me check if n = 4 gives 16, so it fits."
    hits = tag_texts(["Find n.", text])[1]
    assert {h.behaviour for h in hits} == {"verification"}  # the announcing "Wait" is no backtracking
    (hit,) = hits
    assert hit.rule == "context:announced_check" and hit.cue == "let me check"


@pytest.mark.parametrize("text", [
    "Wait, let me make sure I didn't make a mistake here.",
    "But wait a second, let me just make sure I didn't flip anything.",
    "Wait, perhaps I should compute 1/(7π) more accurately.",
    "But let me double-check the first inequality to make sure I didn't flip anything.",
])
def test_an_announced_check_with_no_check_in_it_is_not_verification_nor_backtracking(text):
    got = behaviours(tag_texts(["Find x.", text]))[1]
    assert not got & {"verification", "backtracking"}


def test_a_recomputation_after_a_doubtful_question_is_verification():
    hits = tag_texts(["The sum is 7 + 5 = 12.", "Wait, is that right?", "Adding 7 and 5 gives 12.",
                      "Next I need the product."])
    assert rules(hits, "verification")[2] == {"context:doubt_check"}
    assert "verification" not in behaviours(hits)[3]
    # no doubt before: the same recomputation is not verification
    assert "verification" not in behaviours(tag_texts(["The sum is 7 + 5 = 12.", "Adding 7 and 5 gives 12."]))[1]


def test_a_sub_result_that_ends_a_computation_is_a_conclusion():
    hits = tag_texts(["Units digits: 12 * 4 = 48.", "Total 4's in the units place: 48."])
    (hit,) = [h for h in hits[1] if h.behaviour == "conclusion"]
    assert hit.rule == "context:restated_result" and hit.cue == "48"


@pytest.mark.parametrize("steps", [
    ["12 * 4 = 48.", "48 + 2 = 50."],  # more arithmetic
    ["12 * 4 = 48.", "So 96 divided by 48."],  # arithmetic in words
    ["The numbers are 2, 3, 4.", "Count is 3."],  # not the value the step before computed
    ["Let me compute 12 * 4.", "The result should be 48."],  # nothing was computed before
])
def test_plain_arithmetic_is_not_a_restated_result(steps):
    assert "conclusion" not in behaviours(tag_texts(steps))[1]


@pytest.mark.parametrize("text, behaviour, expected", [
    # re-reading the question is backtracking (codebook), not verification
    ("Wait, let me re-read the question.", "backtracking", True),
    ("Wait, let me re-read the question.", "verification", False),
    # a self-question about one's own result re-examines it
    ("Wait, does that change the count?", "backtracking", True),
    ("Wait, does that change the count?", "hedging", False),
    ("So, does n = 12 give x = 0.01 exactly?", "backtracking", True),
    ("Is there any trick here that I'm missing?", "backtracking", False),
    # resuming the main line is not going back
    ("Now, going back to the original problem, the product is 120.", "backtracking", False),
    ("Wait, no, that doesn't make sense.", "backtracking", True),
    ("Wait, no, that doesn't make sense.", "hedging", False),
    # a plan with "maybe" is not hedging; a hedged claim is
    ("So, maybe I can apply the binomial theorem here.", "hedging", False),
    ("So I think the formula is (n-1)! over the repeats.", "hedging", True),
    ("So I think it's Paris.", "hedging", True),
    # a verdict that confirms is verification
    ("I think that makes sense.", "verification", True),
    ("I think that makes sense.", "hedging", False),
    ("I think I got it.", "verification", True),
    ("I think I got it.", "hedging", False),
    # another test of the same formula is no alternative approach
    ("Correct. Another example: n from 2 to 4.", "alternative", False),
    ("Instead of having 10 plates, I now have 9 items.", "alternative", False),
    ("Alternatively, count the complement.", "alternative", True),
    # results stated as results
    ("So, that part is 6.", "conclusion", True),
    ("So, n can take integer values from 31 up to 318.", "conclusion", True),
    ("So, yes, 120 should be the correct coefficient.", "conclusion", True),
    ("Therefore, the number of integers is 318 - 31 + 1 = 288.", "conclusion", True),
    ("Therefore, the number of seatings where they are apart is 75 - 33 = 42.", "conclusion", True),
    ("So, the coefficient of \\(x^2\\) in \\((a + b)^4\\) would be \\(\\dbinom{4}{2}\\).", "conclusion", True),
    # ... and what is not one
    ("So, the number of integers is 318 - 31 + 1.", "conclusion", False),  # unevaluated
    ("So the number of arrangements is 8!", "conclusion", False),
    ("So, applying the binomial theorem, the sum becomes:", "conclusion", False),
    ("So, I don't need to worry about the c terms.", "conclusion", False),
    ("So 750 + 6 is 756.", "conclusion", False),
    ("So that's 1 + 5 + 2 = 8 plates.", "conclusion", False),
    ("So, when n grows, x is smaller.", "conclusion", False),
    ("That means x = 1/(nπ).", "conclusion", False),
])
def test_lexicon_rules_for_real_steps(text, behaviour, expected):
    assert (behaviour in {h.behaviour for h in tag_step(text)}) == expected


def test_hits_say_which_rule_fired_and_equality_ignores_it():
    (hit,) = tag_step("Alternatively, count the complement.")
    assert hit.rule.startswith("alternative/patterns/")
    assert hit == TagHit("alternative", "Alternatively", 0, 13)


def test_tag_steps_tags_a_trace_with_context():
    texts = ["Find the product.", "Let me double-check.", "2 * 3 = 6."]
    steps, at = [], 0
    for i, t in enumerate(texts):
        steps.append(Step("q", i, t, at, at + len(t), " ", -1, -1))
        at += len(t) + 1
    tags = tag_steps("q", steps)
    assert [(t.step_index, t.behaviour) for t in tags] == [(2, "verification")]
    assert steps[2].text[tags[0].start:tags[0].end] == tags[0].cue
    assert tag_texts([]) == []


@pytest.mark.parametrize("context, match", [
    ({"signals": []}, "'signals' object"),
    ({"signals": {}, "max_check_steps": 0}, "max_check_steps"),
    ({"signals": {}, "operators": "+"}, "'operators' must be a list"),
    ({"signals": {"s": {"patterns": [{"phrase": "x", "colour": 1}]}}}, "unknown key"),
])
def test_malformed_context_section(context, match):
    with pytest.raises(LexiconError, match=match):
        Lexicon({"behaviours": {}, "context": context})


def test_codebook_benchmark_prints_the_issue_columns(tmp_path, capsys):
    rows = [
        {"trace": "t", "i": 1, "text": "2 * 3 = 6.", "labels_a": ["verification"], "labels_b": ["verification"]},
        {"trace": "t", "i": 0, "text": "Let me double-check.", "labels_a": [], "labels_b": []},
        {"trace": "t", "i": 2, "text": "So the answer is 6.", "labels_a": ["conclusion"], "labels_b": []},
    ]
    path = tmp_path / "steps.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "tagger_agreement.py"
    main = runpy.run_path(str(script), run_name="not_main")["main"]
    assert main(["--codebook", str(path)]) == 0
    out = capsys.readouterr().out
    assert "tag_texts" in out and "A vs B" in out and "A / B / tagger" in out
    line = next(x for x in out.splitlines() if x.startswith("verification"))
    assert line.split()[1:5] == ["1.00", "1.00", "1.00", "1.00"] and line.endswith("1 / 1 / 1")
    line = next(x for x in out.splitlines() if x.startswith("conclusion"))
    assert line.split()[1:5] == ["0.00", "1.00", "0.00", "0.50"]
    assert main(["--codebook", str(path), "--per-step"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("verification"))
    assert line.endswith("1 / 1 / 0")  # alone, "2 * 3 = 6." carries no cue
