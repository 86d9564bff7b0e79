"""The paper template keeps the authors' instructions on the answer lines and in the restating turn."""

import pytest

from cotprobe.prompts import STYLES, get_template, prompt_spec
from cotprobe.records import Question
from cotprobe.scales import VERBAL_10

ONLY_THE_LINES = "Output only the answer and confidence and nothing else."
SHORT = "The answer should be short and concise."


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("reasoning", [True, False])
def test_every_paper_instruction_asks_for_a_short_answer_and_the_two_lines_only(style, reasoning):
    text = prompt_spec(style, VERBAL_10, "paper", reasoning).instruction()
    assert SHORT in text
    # a model that reasons in the open (non-reasoning, cot or slow-think) writes its reasoning first,
    # then nothing after the two lines; otherwise the two lines are all it outputs
    visible = not reasoning and style != "direct"
    assert (ONLY_THE_LINES in text) is not visible
    assert ("write exactly these two lines and nothing after them" in text) is visible
    assert text.endswith("**Answer**: <your answer>\n**Confidence**: <the class name only>")
    assert text.index(SHORT) < text.index("**Answer**:")


def test_the_restating_turn_asks_for_a_best_guess_when_there_is_no_answer_yet():
    restate = prompt_spec("cot", VERBAL_10, "paper", reasoning=False).restate_message()
    assert restate.startswith("Now restate your final answer and your confidence in exactly this format:\n"
                              "**Answer**: <your answer>\n**Confidence**: <the class name only>\n")
    for instruction in ("give me your best guess", "you must give an answer and its confidence", SHORT,
                        "give only the letter of the option", "Do not explain any further."):
        assert instruction in restate, instruction
    assert prompt_spec("cot", VERBAL_10, "paper", reasoning=True).restate_message() is None


def test_the_paper_prompt_reads_whole_with_its_question():
    question = Question("q", "Which planet is largest?", "B", kind="mc", choices=["Mars", "Jupiter"])
    message = prompt_spec("cot", VERBAL_10, "paper", reasoning=True).user_message(question)
    assert message.endswith(f"{ONLY_THE_LINES} {SHORT}\n**Answer**: <your answer>\n**Confidence**: "
                            "<the class name only>\n\nQuestion: Which planet is largest?\nA. Mars\nB. Jupiter\n\n"
                            "Answer with the letter of the correct option.")
    assert get_template("compact").restate is None  # the compact template is left as it was
