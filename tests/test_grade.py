"""Graders: normalisation, alias / multiple-choice / numeric grading and dispatch."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cotprobe.data import arithmetic, load_dataset
from cotprobe.grade import (
    AliasGrader,
    Grade,
    NumericGrader,
    extract_letter,
    extract_number,
    get_grader,
    grade,
    normalize_answer,
)
from cotprobe.records import Question

PARIS = Question("q1", "What is the capital of France?", "Paris", aliases=["Paris, France"])
DA_VINCI = Question("q2", "Who painted the Mona Lisa?", "Leonardo da Vinci",
                    aliases=["da Vinci", "Leonardo"])
MC = Question("q3", "Capital of France?", "C", kind="mc",
              choices=["Berlin", "Madrid", "Paris", "Rome"])
NUM = Question("q4", "What is 617 × 2?", "1234", kind="numeric")


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Beatles", "beatles"),
        ("  a   cat  ", "cat"),
        ("An Apple!", "apple"),
        ("Pelé", "pele"),
        ("Zoë  Saldaña", "zoe saldana"),
        ("U.S.A.", "usa"),
        ("O'Neill", "oneill"),
        ("Jean-Paul Sartre", "jean paul sartre"),
        ("1,000 years", "1000 years"),
        ("**Paris**.", "paris"),
        ("", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_normalize_answer_keeps_article_letters_inside_words():
    assert normalize_answer("Theatre and Anthem") == "theatre and anthem"


# --------------------------------------------------------------------------- alias grader


@pytest.mark.parametrize(
    "answer",
    ["Paris", "paris", "The Paris.", "PARIS!!", "Paris, France", "It is Paris", "**Paris**"],
)
def test_alias_grader_accepts(answer):
    result = grade(PARIS, answer)
    assert result.correct and result.grader == "alias@3"


@pytest.mark.parametrize("answer", ["Lyon", "Parisian", "France", "Par is"])
def test_alias_grader_rejects(answer):
    assert not grade(PARIS, answer).correct


def test_alias_grader_uses_aliases_and_accents():
    assert grade(DA_VINCI, "da Vinci").correct
    assert grade(DA_VINCI, "Leonardo").correct
    assert grade(DA_VINCI, "Léonardo da Vinci").correct
    assert not grade(DA_VINCI, "Michelangelo").correct


def test_alias_span_only_inside_short_answers():
    long_answer = "I am not at all sure but my best guess after some thought would be Paris"
    assert len(normalize_answer(long_answer).split()) > 10
    assert not grade(PARIS, long_answer).correct
    assert AliasGrader(max_span_tokens=20)(PARIS, long_answer).correct


def test_alias_grader_ignores_trivial_aliases_in_spans():
    question = Question("q", "Symbol of oxygen?", "O", aliases=["it"])
    assert grade(question, "O").correct
    assert not grade(question, "o is wrong, it is N").correct
    assert not grade(question, "it was nitrogen").correct


def test_alias_grader_reads_only_the_first_line():
    assert grade(PARIS, "Paris\n**Confidence**: Likely").correct
    assert not grade(PARIS, "Lyon\nNot Paris").correct


# --------------------------------------------------------------------------- mc grader


@pytest.mark.parametrize(
    "answer",
    ["C", "c", "(C)", "C.", "C) Paris", "C. Paris", "**C**", "The answer is C",
     "answer: (C)", "Option C", "Paris", "paris", "C\n**Confidence**: Likely"],
)
def test_mc_grader_accepts_letter_formats(answer):
    result = grade(MC, answer)
    assert result.correct, answer
    assert result.parsed == "C" and result.grader == "mc@3"


@pytest.mark.parametrize("answer, parsed", [("B", "B"), ("(A) Berlin", "A"), ("Rome", "D"),
                                             ("The answer is B", "B"), ("E", None)])  # E: past the 4 options
def test_mc_grader_rejects_other_letters(answer, parsed):
    result = grade(MC, answer)
    assert not result.correct and result.parsed == parsed


@pytest.mark.parametrize("answer", ["", "   ", "I'm not sure", "A good guess would be Lyon"])
def test_mc_grader_unparseable_is_incorrect(answer):
    assert grade(MC, answer) == Grade(False, "mc@3", None)


def test_extract_letter_prefers_exact_option_text():
    choices = ["-3", "3", "9"]
    assert extract_letter("-3", choices) == "A"
    assert extract_letter("3", choices) == "B"
    people = ["Ivan Pavlov", "B. F. Skinner", "Jean Piaget"]
    assert extract_letter("B. F. Skinner", people) == "B"
    assert extract_letter("b. f. skinner", ["A. Turing", "B. F. Skinner"]) == "B"
    assert extract_letter("A. Turing", ["B. F. Skinner", "A. Turing"]) == "B"


# --------------------------------------------------------------------------- numeric grader


@pytest.mark.parametrize(
    "answer",
    ["1234", "1,234", "The answer is 1234.", "617 × 2 = 1234", "$1,234", "1234.0",
     "1234 apples\nbecause 5 + 7", "**1234**"],
)
def test_numeric_grader_accepts(answer):
    result = grade(NUM, answer)
    assert result.correct, answer
    assert result.parsed == "1234"


@pytest.mark.parametrize("answer", ["-1234", "1235", "123", "12,34", "1234 or 1235"])
def test_numeric_grader_rejects(answer):
    assert not grade(NUM, answer).correct


def test_numeric_negatives_decimals_fractions_and_words():
    assert grade(Question("n", "?", "-5", kind="numeric"), "x = -5").correct
    assert not grade(Question("n", "?", "5", kind="numeric"), "x = -5").correct
    assert grade(Question("n", "?", "0.75", kind="numeric"), "3/4").correct
    assert grade(Question("n", "?", "2.5", kind="numeric"), "2.50").correct
    assert grade(Question("n", "?", "12", kind="numeric"), "twelve").correct
    assert grade(Question("n", "?", "0", kind="numeric"), "0.0").correct
    assert extract_number("7 - 3 = 4") == 4
    assert extract_number("2-3") == 3


def test_numeric_tolerance_is_configurable():
    question = Question("n", "?", "100", kind="numeric")
    assert not grade(question, "100.5").correct
    assert NumericGrader(rel_tol=0.01)(question, "100.5").correct


@pytest.mark.parametrize("answer", ["", "no idea", "\n\n", None])
def test_numeric_unparseable_is_incorrect(answer):
    assert grade(NUM, answer) == Grade(False, "numeric@2", None)


# --------------------------------------------------------------------------- dispatch


def test_unknown_kind_names_known_kinds():
    with pytest.raises(ValueError, match="known kinds"):
        get_grader("essay")


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80))
def test_grade_never_raises(text):
    for question in (PARIS, MC, NUM):
        result = grade(question, text)
        assert isinstance(result.correct, bool)
        assert result.parsed is None or isinstance(result.parsed, str)


def test_bundled_gold_answers_grade_correct():
    for question in load_dataset("trivia"):
        for gold in [question.answer, *question.aliases]:
            assert grade(question, gold).correct, (question.id, gold)
        assert not grade(question, "zzzz qqqq").correct
    for question in load_dataset("mc"):
        index = "ABCDEFGHIJ".index(question.answer)
        assert grade(question, question.answer).correct, question.id
        assert grade(question, question.choices[index]).correct, question.id
        wrong = "A" if question.answer != "A" else "B"
        assert not grade(question, wrong).correct
    for question in arithmetic(50, 5, seed=3):
        assert grade(question, f"The answer is {int(question.answer):,}.").correct


# --------------------------------------------------------------------------- reasoning models' answers

TEN = Question("q10", "Pick one.", "J", kind="mc", choices=[f"option {k}" for k in range(10)])


@pytest.mark.parametrize("answer, letter", [
    (r"\boxed{C}", "C"), (r"$\boxed{C}$", "C"), (r"\boxed{\text{C}}", "C"), (r"$\boxed{\textbf{C}}$", "C"),
    ("C (Paris)", "C"), ("Paris (C)", "C"), ("It's (C) Paris", "C"), ("I think it's C", "C"),
    ("it is C", "C"), ("The answer is (C) Paris", "C"), (r"The answer is $\boxed{C}$.", "C"),
])
def test_mc_grader_reads_reasoning_model_formats(answer, letter):
    result = grade(MC, answer)
    assert result.parsed == letter and result.correct, answer


@pytest.mark.parametrize("answer", ["A/C", "C/A", "(A) or (C)", "A or C", "C or D", "(C) or (B)"])
def test_mc_hedge_between_letters_is_wrong(answer):
    assert grade(MC, answer) == Grade(False, "mc@3", None)


@pytest.mark.parametrize("answer", ["J", "(J)", r"\boxed{J}", "The answer is J", "option 9", "J) option 9"])
def test_mc_ten_options_up_to_j(answer):
    assert grade(TEN, answer).correct, answer
    assert not grade(TEN, "I").correct


SOLON = Question("q5", "Who reformed Athens' constitution in 594 BC?", "Solon")


@pytest.mark.parametrize("answer", ["Solon or Cleisthenes", "Cleisthenes or Solon", "Solon/Cleisthenes",
                                    "Solon; Cleisthenes", "either Solon or Draco"])
def test_open_hedge_naming_several_candidates_is_wrong(answer):
    assert not grade(SOLON, answer).correct


def test_open_answers_read_boxed_text_and_keep_gold_with_or():
    assert grade(SOLON, r"\boxed{\text{Solon}}").correct
    assert grade(SOLON, r"$\boxed{\text{Solon}}$").correct
    assert grade(PARIS, r"\boxed{Paris}").correct
    war = Question("q6", "Tolstoy's longest novel?", "War and Peace", aliases=["Peace or War"])
    assert grade(war, "Peace or War").correct  # a gold answer itself is no hedge
    assert grade(Question("n", "?", "0.5", kind="numeric"), r"\boxed{1/2}").correct
    assert grade(Question("n", "?", "42", kind="numeric"), r"$\boxed{42}$").correct


@pytest.mark.parametrize("answer", ["Solon (or Cleisthenes)", "Solon and Cleisthenes", "Solon, Cleisthenes",
                                    "Solon & Cleisthenes", "Cleisthenes and Solon", "Solon, Cleisthenes and Draco"])
def test_open_answer_listing_several_candidates_is_wrong(answer):
    assert not grade(SOLON, answer).correct


@pytest.mark.parametrize("answer, correct", [
    ("Cleisthenes, not Solon", False), ("Not Cleisthenes, it was Solon", True), ("Solon, not Cleisthenes", True),
    ("Not Solon, it was Cleisthenes", False), ("It was not Cleisthenes but Solon", True), ("Not Solon", False),
    ("Solon but not Draco", True), ("Not sure, maybe Solon", True),
])
def test_open_answer_rejecting_a_candidate_names_the_other(answer, correct):
    result = grade(SOLON, answer)
    assert result.correct is correct and result.grader == "alias@3", answer


@pytest.mark.parametrize("question, answer", [
    (SOLON, "Solon, the Athenian lawgiver"), (SOLON, "Solon, I think"), (DA_VINCI, "Leonardo da Vinci, Italian painter"),
    (Question("q", "What is the capital of France?", "Paris"), "Paris, France"),  # France is in the question
    (Question("q", "Where is the Louvre?", "Paris"), "Paris, France"),  # a place, placed
    (Question("q", "Which duo sang The Boxer?", "Simon and Garfunkel"), "Simon and Garfunkel, the duo"),
    (Question("q", "Who wrote the Federalist Papers with Madison?", "Hamilton"), "Hamilton and Madison"),
])
def test_open_answer_describing_or_placing_its_one_candidate_is_right(question, answer):
    assert grade(question, answer).correct, answer


def test_open_answer_naming_a_second_place_with_and_is_wrong():
    assert not grade(Question("q", "Where is the Louvre?", "Paris"), "Paris and Lyon").correct
    assert not grade(DA_VINCI, "Leonardo da Vinci and Michelangelo").correct


@pytest.mark.parametrize("answer", ["B, Paris", "I would say B", "Definitely B", "B is correct", "I'd go with B",
                                    "It's definitely B", "B is the right answer", "(B) is correct", "B, I think"])
def test_mc_grader_reads_letters_said_in_words(answer):
    question = Question("q", "Capital of France?", "B", kind="mc", choices=["Lyon", "Paris", "Nice", "Metz"])
    result = grade(question, answer)
    assert result == Grade(True, "mc@3", "B"), answer


@pytest.mark.parametrize("answer", ["A, C", "B or C is correct", "Probably not B", "I, for one, am unsure"])
def test_mc_hedges_and_letters_past_the_options_read_no_letter(answer):
    question = Question("q", "Capital of France?", "B", kind="mc", choices=["Lyon", "Paris", "Nice", "Metz"])
    assert grade(question, answer) == Grade(False, "mc@3", None), answer
