import json
import runpy
from pathlib import Path

import pytest

from cotprobe.records import Step, Tag
from cotprobe.resources import data_path
from cotprobe.tags import (
    BEHAVIOURS,
    Lexicon,
    LexiconError,
    behaviour_counts,
    load_lexicon,
    tag_step,
    tag_steps,
)


def found(text):
    return {h.behaviour for h in tag_step(text)}


CASES = [
    # (text, behaviour, expected?, cue that must lie inside the hit)
    ("Wait, that's not right.", "backtracking", True, "wait"),
    ("Hmm, no, wait. The train leaves at 3 pm.", "backtracking", True, "wait"),
    ("But wait, the problem says at least two.", "backtracking", True, "wait"),
    ("Actually, no: the cone has a factor of 1/3.", "backtracking", True, "actually"),
    ("I made a mistake in the sign.", "backtracking", True, "made a mistake"),
    ("On second thought, lengths are positive.", "backtracking", True, "on second thought"),
    ("That’s wrong, since p > 1 is impossible.", "backtracking", True, "that’s wrong"),
    ("The wait time at the station is 7 minutes.", "backtracking", False, None),
    ("Tom had to wait for the bus.", "backtracking", False, None),
    ("Wait time is 5 minutes per customer.", "backtracking", False, None),
    ("This is actually Vieta's formula.", "backtracking", False, None),
    ("Actually computing the integral is messy.", "backtracking", False, None),
    ("Alternatively, use the quadratic formula.", "alternative", True, "alternatively"),
    ("Let me try a different approach.", "alternative", True, "different approach"),
    ("What if n is even?", "alternative", True, "what if"),
    ("Or maybe it asks for the perimeter.", "alternative", True, "or maybe"),
    ("On the other hand, the treaty was signed in 1783.", "alternative", True, "on the other hand"),
    ("The other side has length 4.", "alternative", False, None),
    ("Let me check the units.", "verification", False, None),  # announced: planning; the check follows
    ("Let me double-check that factorization.", "verification", False, None),
    ("I've verified each factor, so it holds.", "verification", True, "verified"),
    ("Plugging x = 3 back into the equation gives 11, which matches.", "verification", True, "back into"),
    ("That checks out.", "verification", True, "checks out"),
    ("The explorer sailed to Lisbon to verify the claims.", "verification", False, None),
    ("The student checked out three books.", "verification", False, None),
    ("Since I can't check, I'll answer Saturn.", "verification", False, None),
    ("I think the answer is 42.", "hedging", True, "i think"),
    ("The probability is maybe 0.3.", "hedging", True, "maybe"),
    ("If I recall correctly, it was 1066.", "hedging", True, "if i recall"),
    ("I'm fairly confident it is B.", "hedging", True, "fairly confident"),
    ("Each outcome is equally likely.", "hedging", False, None),
    ("The might of the Roman army was legendary.", "hedging", False, None),
    ("I think of it as a random walk.", "hedging", False, None),
    ("So the answer is 24.", "conclusion", True, "the answer is"),
    ("Therefore, the area is 25π.", "conclusion", True, "therefore"),
    ("**Final Answer**", "conclusion", True, "final answer"),
    ("\\boxed{24}", "conclusion", True, "\\boxed"),
    ("So, the total is 60 km.", "conclusion", True, "so"),
    ("So, 60 / 2 = 30 km.", "conclusion", False, None),  # a computation
    ("So I need to find x.", "conclusion", False, None),
    ("Thus far we have used two constraints.", "conclusion", False, None),
]


@pytest.mark.parametrize("text, behaviour, expected, cue", CASES)
def test_behaviour_cues(text, behaviour, expected, cue):
    hits = [h for h in tag_step(text) if h.behaviour == behaviour]
    assert bool(hits) == expected, hits
    for h in hits:
        assert text[h.start : h.end] == h.cue
    if cue:
        assert any(cue in h.cue.lower() for h in hits)


def test_hits_sorted_with_offsets_and_several_behaviours():
    text = "Hmm, wait, maybe I should double-check: is that right? So the answer is 5."
    hits = tag_step(text)
    assert [h.start for h in hits] == sorted(h.start for h in hits)
    assert {"backtracking", "hedging", "conclusion"} <= {h.behaviour for h in hits}
    assert all(text[h.start : h.end] == h.cue for h in hits)


def test_overlapping_hits_of_one_behaviour_keep_longest():
    lex = Lexicon({"behaviours": {"verification": {"patterns": [
        {"phrases": ["check", "let me check", "me check the"]},
    ]}}})
    hits = tag_step("Let me check the units, then check again.", lex)
    assert [h.cue for h in hits] == ["Let me check", "check"]


def test_position_and_context_options():
    lex = Lexicon({"openers": ["okay"], "behaviours": {"b": {"patterns": [
        {"phrase": "go", "position": "sentence_initial"},
        {"phrase": "stop", "position": "clause_initial"},
        {"phrase": "look", "context": ["me"]},
    ]}}})
    cues = lambda t: [h.cue for h in tag_step(t, lex)]
    assert cues("Go now. Okay, go! They go.\n- go") == ["Go", "go", "go"]
    assert cues("Stop, x. Well, stop. They stop (stop)") == ["Stop", "stop", "stop"]
    assert cues("Let me look. They look.") == ["look"]


def test_empty_text_and_version():
    assert tag_step("") == []
    assert load_lexicon().version
    assert set(BEHAVIOURS) == set(load_lexicon().behaviours)


def test_tag_steps_and_counts():
    steps = [
        Step("q1", 0, "Okay, so I need x.", 0, 18, " ", -1, -1),
        Step("q1", 1, "Wait, that's wrong.", 19, 38, " ", -1, -1),
        Step("q1", 2, "So the answer is 3, I think.", 39, 67, "", -1, -1),
    ]
    tags = tag_steps("q1", steps)
    assert all(isinstance(t, Tag) for t in tags)
    assert {(t.step_index, t.behaviour) for t in tags} == {
        (1, "backtracking"), (2, "conclusion"), (2, "hedging")
    }
    version = load_lexicon().version
    for t in tags:
        assert t.tagger == f"rules@{version}"
        assert steps[t.step_index].text[t.start : t.end] == t.cue
    counts = behaviour_counts(tags, question_ids=["q1", "q2"])
    assert counts["q2"] == dict.fromkeys(BEHAVIOURS, 0)
    assert counts["q1"]["backtracking"] == 2 and counts["q1"]["verification"] == 0
    assert behaviour_counts([]) == {}


def test_lexicon_from_path_and_dict(tmp_path):
    path = tmp_path / "lex.json"
    path.write_text(json.dumps({"version": "x", "behaviours": {"hedging": {"patterns": [{"phrase": "hmm"}]}}}))
    assert [h.cue for h in tag_step("Hmm, ok", path)] == ["Hmm"]
    steps = [Step("q", 0, "hmm", 0, 3, "", -1, -1)]
    assert tag_steps("q", steps, str(path))[0].tagger == "rules@x"


@pytest.mark.parametrize(
    "behaviours, match",
    [
        ({"b": {"patterns": [{"phrase": "x", "position": "middle"}]}}, r"behaviour 'b', patterns pattern 0: position"),
        ({"b": {"patterns": [{"phrase": "x"}, {"tokens": [{"LOWR": "x"}]}]}}, r"behaviour 'b', patterns pattern 1: invalid token pattern"),
        ({"b": {"patterns": [{"phrase": "x", "phrases": ["y"]}]}}, r"pattern 0: needs exactly one of"),
        ({"b": {"patterns": [{"phrases": ["ok", "  "]}]}}, r"pattern 0: 'phrases' must be non-empty"),
        ({"b": {"patterns": [{"phrase": "x", "colour": "red"}]}}, r"pattern 0: unknown key\(s\) colour"),
        ({"b": {"patterns": [], "exceptions": ["wait"]}}, r"behaviour 'b', exceptions pattern 0: expected an object"),
        ({"b": {"patterns": [{"phrase": "x", "context": "me"}]}}, r"'context' must be a list"),
        ({"b": {}}, r"behaviour 'b': needs a 'patterns' list"),
    ],
)
def test_malformed_lexicon(tmp_path, behaviours, match):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"version": "1", "behaviours": behaviours}))
    with pytest.raises(LexiconError, match=match) as info:
        load_lexicon(path)
    assert str(path.resolve()) in str(info.value)


def test_malformed_lexicon_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"behaviours": {')
    with pytest.raises(LexiconError, match="not valid JSON"):
        load_lexicon(path)
    with pytest.raises(LexiconError, match="'behaviours' object"):
        Lexicon({"patterns": []})
    with pytest.raises(FileNotFoundError):
        load_lexicon(tmp_path / "missing.json")


def test_lexicon_file_edits_are_picked_up(tmp_path):
    path = tmp_path / "lex.json"
    path.write_text(json.dumps({"version": "1", "behaviours": {"b": {"patterns": [{"phrase": "one"}]}}}))
    assert load_lexicon(path).version == "1"
    path.write_text(json.dumps({"version": "2", "behaviours": {"b": {"patterns": [{"phrase": "two"}]}}}))
    import os

    os.utime(path, ns=(1, 10**18))
    assert load_lexicon(path).version == "2"


def test_data_path():
    assert data_path("behaviours.json").name == "behaviours.json"
    with pytest.raises(FileNotFoundError, match="no_such_file.json"):
        data_path("no_such_file.json")


def test_eval_set_and_benchmark_run(capsys):
    rows = [json.loads(line) for line in data_path("behaviour_eval.jsonl").read_text().splitlines()]
    assert len(rows) >= 80
    assert all(set(r["labels"]) <= set(BEHAVIOURS) for r in rows)
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "tagger_agreement.py"
    runpy.run_path(str(script), run_name="not_main")["main"]([])
    out = capsys.readouterr().out
    assert all(b in out for b in BEHAVIOURS) and "precision" in out


@pytest.mark.parametrize("text, expected", [
    ("Hmm, that's confusing.", {"hedging"}),
    ("I'm getting a bit stuck here.", {"hedging"}),
    ("This is tricky because the plates are identical.", {"hedging"}),
    ("I'm not completely confident about the last step.", {"hedging"}),
    ("Is there any trick here that I'm missing?", {"hedging"}),
    ("Wait, is that correct?", {"backtracking", "hedging"}),
    ("That seems reasonable.", {"verification"}),
    ("So 3 * 8 = 24 ✓", {"verification"}),
    ("I should double-check the units.", set()),  # an announced check is planning
    ("Let's check with some examples.", set()),
    ("Maybe I can use the binomial theorem here.", set()),  # a plan, not a hedge
    ("So, 8! / (5! * 2!) = 40320 / 240 = 168.", set()),  # computation, not a conclusion
    ("So, the answer is 168.", {"conclusion"}),
    ("Wait, I think I made a mistake.", {"backtracking", "hedging"}),
    ("Therefore, 7 * 12 = 84.", set()),  # an operator follows: computation
    ("So, the number of seatings is 6!", set()),
    ("Thus, x = 7.", {"conclusion"}),  # a value, not a computation
    ("Therefore, the area is **48**.", {"conclusion"}),  # bold marks are no operators
    ("Therefore, in 100-150:\n- 7s: 6\n- 9s: 5", {"conclusion"}),  # a range and a summing-up list
    ("Therefore, 900 - 125 = 775.", set()),  # a spaced minus is one
    ("Thus the speed is about 12.5 m/s.", {"conclusion"}),  # a unit's slash is none
    ("This gives a total of 31 handshakes.", {"conclusion"}),
    ("Let me try to remember how that works.", set()),  # not a verdict
    ("But does that mean every term has a factor of x, so the sum is even?", {"hedging"}),
    ("That means the sum is even.", {"conclusion"}),
    ("That means I need to handle n = 0 separately.", set()),  # a plan
    ("Therefore, perhaps I should reconsider the base case.", {"backtracking"}),  # not a result
    ("Maybe it's simpler to list the cases by hand.", set()),  # a method choice, not a hedge
    ("Perhaps using complementary counting.", set()),
    ("I think the best approach is to solve for y first.", set()),
    ("I think it's correct now.", {"verification"}),  # the verdict of a check
    ("This also looks correct.", {"verification"}),
    ("It seems to make sense for negative n too.", {"verification"}),
    ("A hexagon has 9 diagonals, right?", {"hedging"}),
    ("Now I have two different answers, 14 and 16.", {"hedging"}),
    ("So the mass is 2.35 kg when rounded to the nearest hundredth.", {"conclusion"}),
    ("Let me recap the cases.", {"conclusion"}),
    ("Unless I made a sign error in line two.", {"backtracking"}),
    ("We're overcounting the squares on the diagonal.", {"backtracking"}),
])


def test_real_trace_cues(text, expected):
    assert {h.behaviour for h in tag_step(text)} == expected


def test_without_option_looks_to_the_end_of_the_sentence():
    lex = Lexicon({"behaviours": {"b": {"patterns": [{"phrase": "so", "without": ["+"]}]}}})
    cues = lambda t: [h.cue for h in tag_step(t, lex)]
    assert cues("So x is 2. Then 1 + 1.") == ["So"]
    assert cues("So x is:\n1 + 1 = 2") == []  # a line break does not end the sentence
    with pytest.raises(LexiconError, match="'without' must be a list"):
        Lexicon({"behaviours": {"b": {"patterns": [{"phrase": "so", "without": "+"}]}}})


def test_tag_question_cue_leaves_out_the_comma():
    hits = [h for h in tag_step("That is 12, right?") if h.behaviour == "hedging"]
    assert [h.cue for h in hits] == ["right"]
