import re
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cotprobe.records import Step
from cotprobe.segment import default_nlp, split_steps, step_token_spans, to_records


def texts(text, nlp=None):
    steps = split_steps(text, nlp=nlp)
    assert_lossless(text, steps)
    return [s.text for s in steps]


def assert_lossless(text, steps):
    if not steps:
        assert text.strip() == ""
        return
    assert text[: steps[0].start].strip() == ""
    assert text[: steps[0].start] + "".join(s.text + s.sep for s in steps) == text
    for i, s in enumerate(steps):
        assert text[s.start : s.end] == s.text
        assert s.text and s.text == s.text.strip()
        assert s.sep.strip() == ""
        nxt = steps[i + 1].start if i + 1 < len(steps) else len(text)
        assert s.end + len(s.sep) == nxt


R1_COT = """Okay, so I need to figure out how many divisors 360 has. First, factor it: $360 = 2^3 \\cdot 3^2 \\cdot 5$.

Wait, let me double-check. 2^3 is 8, and 8 * 45 = 360. Yes.

So the count is (3+1)(2+1)(1+1) = 24.
Hmm, maybe I should verify by listing them"""


def test_r1_style_cot():
    steps = split_steps(R1_COT)
    assert_lossless(R1_COT, steps)
    assert [s.text for s in steps] == [
        "Okay, so I need to figure out how many divisors 360 has.",
        "First, factor it: $360 = 2^3 \\cdot 3^2 \\cdot 5$.",
        "Wait, let me double-check.",
        "2^3 is 8, and 8 * 45 = 360.",
        "Yes.",
        "So the count is (3+1)(2+1)(1+1) = 24.",
        "Hmm, maybe I should verify by listing them",  # trailing, no full stop: kept
    ]
    assert steps[1].sep == "\n\n" and steps[-1].sep == ""


@pytest.mark.parametrize("text", ["", " ", "\n\n\t  \n", "\u00a0\u2028"])
def test_blank_text_has_no_steps(text):
    assert split_steps(text) == []


@pytest.mark.parametrize(
    "text, expected",
    [("Hello", ["Hello"]), ("  Hello world.  \n", ["Hello world."]), ("?", ["?"])],
)
def test_one_step(text, expected):
    steps = split_steps(text)
    assert [s.text for s in steps] == expected
    assert_lossless(text, steps)


def test_leading_trailing_and_multiple_blank_lines():
    text = "\n\n  First thought.\n\n\n\n   Second thought.   \n\n\n"
    steps = split_steps(text)
    assert [s.text for s in steps] == ["First thought.", "Second thought."]
    assert steps[0].start == 4 and steps[-1].sep == "   \n\n\n"
    assert_lossless(text, steps)


def test_nested_lists_each_item_is_a_step():
    text = (
        "We have cases:\n"
        "1. If x > 0, then f(x) = x. This is easy.\n"
        "   - sub-case a: x = 1\n"
        "   - sub-case b: x = 2\n"
        "2) Otherwise f(x) = 0\n"
        "a) first option\n"
        "* starred item\n"
        "(iv) roman item"
    )
    assert texts(text) == [
        "We have cases:",
        "1. If x > 0, then f(x) = x.",
        "This is easy.",
        "- sub-case a: x = 1",
        "- sub-case b: x = 2",
        "2) Otherwise f(x) = 0",
        "a) first option",
        "* starred item",
        "(iv) roman item",
    ]


def test_display_math_and_code_are_never_split():
    text = (
        "So the equation becomes:\n$$\nx^2 = 4. Then\n\nx = 2.\n$$\n"
        "and \\[ a. B \\] also \\begin{align*} y. Z \\end{align*} done.\n\n"
        "```python\nx = 1.  # comment. More\n\ny = 2\n```\n"
        "After code. Unclosed:\n~~~\nz = 3. W\n\nq"
    )
    steps = split_steps(text)
    assert_lossless(text, steps)
    assert [s.text for s in steps] == [
        "So the equation becomes:",
        "$$\nx^2 = 4. Then\n\nx = 2.\n$$",
        "and",
        "\\[ a. B \\]",
        "also",
        "\\begin{align*} y. Z \\end{align*}",
        "done.",
        "```python\nx = 1.  # comment. More\n\ny = 2\n```",
        "After code.",
        "Unclosed:",
        "~~~\nz = 3. W\n\nq",
    ]


def test_inline_math_and_code_are_not_split():
    text = "Consider $x = 1. Y = 2$ as given. Use `a. B` here. It costs $5. Then $10 more."
    assert texts(text) == [
        "Consider $x = 1. Y = 2$ as given.",
        "Use `a. B` here.",
        "It costs $5.",
        "Then $10 more.",
    ]


def test_abbreviations_initials_and_glued_periods():
    text = (
        "Use e.g. a table, i.e. a grid. See Fig. 3 and approx. 2 steps. "
        "George W. Bush met J. K. Rowling. The answer is B. Wait, so x. Then $y = 2$. Next."
    )
    assert texts(text) == [
        "Use e.g. a table, i.e. a grid.",
        "See Fig. 3 and approx. 2 steps.",
        "George W. Bush met J. K. Rowling.",
        "The answer is B.",
        "Wait, so x.",
        "Then $y = 2$.",
        "Next.",
    ]


def test_headings_quotes_and_unicode():
    text = "### Step 1: Setup\nLet’s go… Ça marche! 数学很难。 (Really.) \"Quoted.\" Done 🎉"
    steps = split_steps(text)
    assert_lossless(text, steps)
    assert steps[0].text == "### Step 1: Setup"
    assert "(Really.)" in [s.text for s in steps]
    assert '"Quoted."' in [s.text for s in steps]
    assert steps[-1].text.endswith("🎉")


def test_custom_nlp_is_used():
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer", config={"punct_chars": [";"]})
    assert texts("One. Two; three.", nlp=nlp) == ["One. Two;", "three."]


def test_a_long_cot_splits_into_its_sentences():
    # (its speed is measured by benchmarks/segment_cost.py, not asserted here)
    sentence = "Wait, so if $x = 3$, then 2x + 5 = 11, which matches the value we had before. "
    text = "\n\n".join(sentence * 4 for _ in range(30))  # ~2,000 words
    steps = split_steps(text)
    assert len(steps) == 120
    assert_lossless(text, steps)


FRAGMENTS = [
    "Wait", "so", "x", " ", "  ", "\n", "\n\n", "\t", "\r\n", "\u00a0", ".", ". ", "!", "?",
    "...", "e.g.", "B.", "1.", "a)", "- ", "* ", "# ", "$", "$$", "`", "```", "~~~", "\\[",
    "\\]", "\\(", "\\)", "\\begin{eq}", "\\end{eq}", "(", ")", '"', "'", "’", ",", ":", "—",
    "Then", "é", "数", "🎉", "3.14", "Dr.",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join), st.text(max_size=80)))
def test_lossless_on_arbitrary_text(text):
    assert_lossless(text, split_steps(text))


def test_step_token_spans_tile():
    text = " Hello world. Wait, no.\n\nDone"
    starts = [m.start() for m in re.finditer(r"\s*\S+", text)]  # GPT-style " word" tokens
    steps = split_steps(text)
    spans = step_token_spans(steps, starts, len(text))
    assert [text[starts[a] : starts[b] if b < len(starts) else len(text)] for a, b in spans] == [
        " Hello world.",
        " Wait, no.",
        "\n\nDone",
    ]
    assert spans[0][0] == 0 and spans[-1][1] == len(starts)
    assert all(e == s for (_, e), (s, _) in pairwise(spans))


def test_step_token_spans_gap_tokens_and_straddling_token():
    text = "ab.\n\ncd"
    steps = split_steps(text)
    # tokens "ab." "\n\n" "cd": the gap token lies between the spans
    assert step_token_spans(steps, [0, 3, 5], len(text)) == [(0, 1), (2, 3)]
    # tokens "ab" ".\n\nc" "d": the straddling token goes to the later step
    assert step_token_spans(steps, [0, 2, 6], len(text)) == [(0, 1), (1, 3)]
    assert step_token_spans([], [0, 1], 2) == []
    assert step_token_spans(steps, [], len(text)) == [(0, 0), (0, 0)]
    # a decoded text longer than the CoT: tokens past its end come after every step
    assert step_token_spans(split_steps("ab"), [0, 1, 5], 2) == [(0, 2)]


def test_step_token_spans_rejects_bad_input():
    steps = split_steps("a. b.")
    with pytest.raises(ValueError, match="non-decreasing"):
        step_token_spans(steps, [0, 3, 2], 5)
    with pytest.raises(ValueError, match="outside"):
        step_token_spans(steps, [0, 3], 4)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join), st.data())
def test_step_token_spans_invariants(text, data):
    steps = split_steps(text)
    cuts = data.draw(st.sets(st.integers(0, max(len(text) - 1, 0))))
    starts = sorted(cuts | {0}) if text else []
    spans = step_token_spans(steps, starts, len(text))
    flat = [i for span in spans for i in span]
    assert flat == sorted(flat) and all(0 <= i <= len(starts) for i in flat)
    ends = starts[1:] + [len(text)]
    gaps = list(zip([0] + [e for _, e in spans], [s for s, _ in spans] + [len(starts)]))
    for a, b in gaps:  # tokens outside every span are whitespace only
        assert all(text[starts[j] : ends[j]].strip() == "" for j in range(a, b))


def test_to_records():
    text = "Okay. Wait, no.\n\nDone"
    recs = to_records("q1", text)
    assert all(isinstance(r, Step) for r in recs)
    assert [(r.index, r.text, r.start, r.end, r.sep) for r in recs] == [
        (0, "Okay.", 0, 5, " "),
        (1, "Wait, no.", 6, 15, "\n\n"),
        (2, "Done", 17, 21, ""),
    ]
    assert {(r.token_start, r.token_end) for r in recs} == {(-1, -1)}
    starts = [m.start() for m in re.finditer(r"\s*\S+", text)]
    assert [(r.token_start, r.token_end) for r in to_records("q1", text, starts)] == [
        (0, 1), (1, 3), (3, 4)
    ]


def test_default_pipeline_is_cached():
    assert default_nlp() is default_nlp()


def test_real_reasoning_text_factorials_units_and_lead_ins():
    text = (
        "The pressure is 101,325 Pa. So, if I calculate the force, I get 5 N. "
        "There are 9! / (5! * 2! * 2!) = 756 arrangements, and (n-1)! ways around a table. "
        "Each block (100-199, 200-299, etc.), the tens digit cycles. Dr. Smith agrees! Great.\n\n"
        "So,\n\n-2k = 0\n\nThen:\n\\[ k = 0 \\]\nThat is what I had:\n\\[ a = 1 \\]"
    )
    assert texts(text) == [
        "The pressure is 101,325 Pa.",
        "So, if I calculate the force, I get 5 N.",
        "There are 9! / (5! * 2! * 2!) = 756 arrangements, and (n-1)! ways around a table.",
        "Each block (100-199, 200-299, etc.), the tens digit cycles.",
        "Dr. Smith agrees!",
        "Great.",
        "So,\n\n-2k = 0",  # a lead-in ending on a comma goes with what it leads into
        "Then:\n\\[ k = 0 \\]",  # a one- or two-word lead-in goes with its display math
        "That is what I had:",
        "\\[ a = 1 \\]",
    ]


def test_list_items_are_not_led_into():
    assert texts("We get:\n- a,\n- b") == ["We get:", "- a,", "- b"]


def test_fillers_and_one_word_lead_ins_join_what_follows():
    text = "The sum is odd. Hmm.\n\nAlternatively, pair the terms.\n\nSo:\n\n-3/8 + c = 1\n\nWhere:\n- r is the rate"
    assert texts(text) == [
        "The sum is odd.",
        "Hmm.\n\nAlternatively, pair the terms.",
        "So:\n\n-3/8 + c = 1",
        "Where:\n- r is the rate",  # one connective word leads even into a list item
    ]
    assert texts("Output:\n```\nx = 1\n```") == ["Output:", "```\nx = 1\n```"]  # a label before code


@pytest.mark.parametrize("text", [
    "Wait, 9! is 362880. Hmm — so 5! * 2! = 240, and 362880 / 240 = 1512.",
    "Café au lait ☕ costs 3 €; naïve 日本語の文です。 Then 😀 ends.\n\n  Next line.",
    "",
])
def test_token_char_starts_matches_decoding_every_prefix(text):
    from cotprobe.backends.tiny import tiny_tokenizer
    from cotprobe.segment import token_char_starts
    from cotprobe.steps import TokenizerBackend

    backend = TokenizerBackend(tiny_tokenizer())
    ids = backend.encode(text)
    prefix = []
    for k in range(len(ids)):
        prefix.append(max([0] + [len(backend.decode(ids[: j + 1])) for j in range(k)]))
    assert token_char_starts(backend, ids) == prefix
    # a decode_many that decodes one piece at a time gives the same offsets as the batched one
    plain = type("Plain", (), {"decode_many": staticmethod(lambda pieces: [backend.decode(p) for p in pieces])})()
    assert token_char_starts(plain, ids) == prefix


# ------------------------------------------------------------------ Chinese and Japanese

ZH = ("我需要找出法国的首都。首先，我记得巴黎是一个很大的城市！但它是首都吗？"
      "让我再想想；里昂也很有名。不过政府在巴黎，所以答案是巴黎。")
JA = ("フランスの首都を考えます。最初はリヨンだと思いました！でも本当でしょうか？"
      "いいえ、政府はパリにあります。　だから答えはパリです。")


def test_chinese_and_japanese_paragraphs_split_into_their_sentences():
    assert texts(ZH) == ["我需要找出法国的首都。", "首先，我记得巴黎是一个很大的城市！", "但它是首都吗？",
                         "让我再想想；", "里昂也很有名。", "不过政府在巴黎，所以答案是巴黎。"]
    assert texts(JA) == ["フランスの首都を考えます。", "最初はリヨンだと思いました！", "でも本当でしょうか？",
                         "いいえ、政府はパリにあります。", "だから答えはパリです。"]  # a full-width space between


def test_cjk_sentences_keep_quoted_speech_inline_math_and_latin_neighbours():
    # a sentence mark before a closing quote ends the quotation, not the sentence
    assert texts("彼は「パリだ。」と言った。次に確認する。") == ["彼は「パリだ。」と言った。", "次に確認する。"]
    assert texts("他说：“是巴黎。”我同意。") == ["他说：“是巴黎。”我同意。"]
    assert texts("面积是 $a。b$ 吗？是的。") == ["面积是 $a。b$ 吗？", "是的。"]  # never inside inline math
    assert texts("Let me check. 巴黎是首都。对！Yes, Paris.\n\n- 第一项。第二句。") == [
        "Let me check.", "巴黎是首都。", "对！", "Yes, Paris.", "- 第一项。", "第二句。"]
    assert texts("答案是巴黎。") == ["答案是巴黎。"]  # a last mark cuts nothing


def test_cjk_steps_map_onto_a_real_tokenizer():
    from cotprobe.backends.scripted import ScriptedBackend
    from cotprobe.reference import r1_tokenizer
    from cotprobe.segment import token_char_starts

    backend = ScriptedBackend(lambda context: "", r1_tokenizer())
    ids = backend.encode(ZH)
    assert backend.decode(ids) == ZH
    steps = split_steps(ZH)
    spans = step_token_spans(steps, token_char_starts(backend, ids), len(ZH))
    assert spans[0][0] == 0 and spans[-1][1] == len(ids)
    assert all(a < b for a, b in spans) and all(b <= c for (_, b), (c, _) in pairwise(spans))
    for step, (a, b) in zip(steps, spans):
        assert step.text in backend.decode(ids[max(a - 1, 0):b])  # the step's tokens (one may straddle)
