"""The LLM-judge tagger: parsing, resume, failures recorded, and a real model as judge."""

import json
from pathlib import Path

import pytest
from conftest import PROFILE

from cotprobe.forcing import Prober
from cotprobe.backends.scripted import ScriptedBackend
from cotprobe.tracing import GenerationSettings, generate
from cotprobe.judge import judge_key, load_judge_prompt, parse_behaviours
from cotprobe.records import Judgement, Question, Step, Tag, read_jsonl
from cotprobe.scales import VERBAL_10
from cotprobe.store import RunDir
from cotprobe.steps import Judge, tag_run
from cotprobe.tag import main


@pytest.mark.parametrize("answer, behaviours", [
    (" backtracking, verification", ["backtracking", "verification"]),
    ("Verification and backtracking.", ["backtracking", "verification"]),
    (" none", []),
    ("None.", []),
    ("hedging; hedging", ["hedging"]),
    (" **conclusion**", ["conclusion"]),
])
def test_parse_behaviours_accepts_lists_of_known_names(answer, behaviours):
    assert parse_behaviours(answer) == (behaviours, "")


@pytest.mark.parametrize("answer, error", [
    ("", "empty answer"),
    ("  ", "empty answer"),
    ("maybe", "not a behaviour: 'maybe'"),
    ("hedging, none", "not a behaviour: 'none'"),  # none with others is contradictory
    ("The step shows hedging", "not a behaviour: 'the step shows hedging'"),
])
def test_parse_behaviours_never_guesses(answer, error):
    assert parse_behaviours(answer) == ([], error)


def test_judge_prompt_must_have_a_step_placeholder(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"instruction": "Label it.", "open": "B:", "close": "\n"}))
    with pytest.raises(ValueError, match=r"no \{step\} placeholder"):
        load_judge_prompt(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read the judge prompt"):
        load_judge_prompt(bad)


def judge_respond(calls):
    """A scripted judge: 'Wait' steps are backtracking, 'check' verification, a step mentioning
    Paris gets an answer that does not parse, everything else none."""
    def answer(context: str) -> str:
        calls.append(context)
        step = context.rsplit("Step: ", 1)[1]
        if "Wait" in step:
            return " backtracking\n"
        if "check" in step:
            return " verification, conclusion\n"
        if "Paris" in step:
            return " it is about Paris\n"
        return " none\n"
    return answer


def test_judge_tags_every_step_records_failures_and_resumes(scripted_run, tiny_parts):
    backend, path, *_ = scripted_run  # three scripted traces, segmented (and rule-tagged)
    calls: list[str] = []
    prompt = load_judge_prompt()
    judge = Judge(ScriptedBackend(judge_respond(calls), tiny_parts[1], name="judge"), "judge-model", "hf", prompt,
                  batch_size=2)
    with RunDir(path) as rd:
        tagged = tag_run(rd, backend=backend, judge=judge)
    steps = read_jsonl(path / "steps.jsonl", Step)
    judgements = read_jsonl(path / "judgements.jsonl", Judgement)
    assert [(j.question_id, j.step_index) for j in judgements] == [(s.question_id, s.index) for s in steps]
    assert len(calls) == len(steps)
    key = judge_key("judge-model", prompt)
    assert {j.judge for j in judgements} == {key}
    failed = [j for j in judgements if j.error]
    assert failed and all("Paris" in next(s.text for s in steps if (s.question_id, s.index) ==
                                          (j.question_id, j.step_index)) for j in failed)
    assert tagged.settings["unparsed"] == len(failed) and tagged.settings["judged_steps"] == len(steps)
    tags = read_jsonl(path / "tags.jsonl", Tag)
    text = {(s.question_id, s.index): s.text for s in steps}
    for tag in tags:
        assert tag.tagger == key and tag.start == 0 and tag.end == len(text[(tag.question_id, tag.step_index)])
    assert {(t.question_id, t.step_index) for t in tags if t.behaviour == "backtracking"} == \
        {k for k, v in text.items() if "Wait" in v}
    # the previous step is shown as context; the first step says it has none
    assert "Previous step: (none: this is the first step)" in calls[0]
    assert f"Previous step: {steps[0].text}\nStep: {steps[1].text}" in calls[1]

    # a re-run asks nothing again; an interrupted one asks only what is missing
    with RunDir(path) as rd:
        tag_run(rd, backend=backend, judge=judge)
    assert len(calls) == len(steps)
    lines = (path / "judgements.jsonl").read_text().splitlines(keepends=True)
    (path / "judgements.jsonl").write_text("".join(lines[:2]) + lines[2][:10])  # torn last line
    with RunDir(path) as rd:
        tag_run(rd, backend=backend, judge=judge)
    assert len(calls) == 2 * len(steps) - 2
    again = read_jsonl(path / "judgements.jsonl", Judgement)
    assert sorted((j.question_id, j.step_index) for j in again) == sorted((j.question_id, j.step_index)
                                                                          for j in judgements)


def test_embedded_model_as_judge_through_the_command(embedded, tmp_path, capsys):
    """A real model judges real steps: every step gets a judgement, parsed or recorded as unparsed."""
    cot = ("Let me think about where the Eiffel Tower is. I believe it is in Paris.\n\n"
           "Wait, let me double-check that. Yes, it was built for the 1889 World's Fair in Paris.\n\n"
           "So the answer is Paris.")

    def write(context: str) -> str:
        if context.endswith("**Confidence**:"):
            return " Almost certain\n"
        return " Paris\n" if context.endswith("**Answer**:") else cot + "</think>\n\n**Answer**: Paris\n"

    writer = ScriptedBackend(write, embedded.tokenizer, name=embedded.name)
    path = tmp_path / "run"
    with RunDir(path) as rd:
        rd.start_stage("generate", {"model": embedded.name})
        generate(Prober(writer, PROFILE, VERBAL_10, GenerationSettings(budget=200).force), [Question("q1", "Where is the Eiffel Tower?", "Paris")], rd, GenerationSettings(budget=200))
    assert main([str(path), "--judge", embedded.name, "--resamples", "50"]) == 0
    out = capsys.readouterr().out
    judgements = read_jsonl(path / "judgements.jsonl", Judgement)
    steps = read_jsonl(path / "steps.jsonl", Step)
    assert len(judgements) == len(steps) >= 5
    assert all(j.behaviours or j.error or j.answer.strip(" .").lower() == "none" for j in judgements)
    section = json.loads((path / "metrics.json").read_text())["behaviours"]
    assert section["tagger"].startswith(f"judge:{embedded.name}@")
    assert section["unparsed"] == sum(1 for j in judgements if j.error)
    assert f"did not parse: {section['unparsed']} of {len(steps)} steps" in out


# ------------------------------------------------------------------------------ grading judge


def test_grading_judge_verdicts_cached_resumable_and_unparsed_counted(tiny_parts, tmp_path):
    from cotprobe.backends.scripted import ScriptedBackend
    from cotprobe.grade import grade
    from cotprobe.judge import AnswerJudge, grading_section, load_grader_prompt, parse_verdict
    from cotprobe.records import Question, Verdict, read_jsonl

    assert parse_verdict(" A") == ("correct", "") and parse_verdict("**B**")[0] == "incorrect"
    assert parse_verdict("C.")[0] == "not_attempted" and parse_verdict("NOT_ATTEMPTED")[0] == "not_attempted"
    assert parse_verdict("maybe")[0] is None and parse_verdict("")[1] == "empty verdict"
    asked = []
    def respond(context):
        asked.append(context)
        answer = context.split("Predicted answer: ")[1].split("\n")[0]
        return {"Paris": " A\n", "Lyon": " B\n", "(no answer)": " C\n"}.get(answer, " perhaps\n")
    backend = ScriptedBackend(respond, tiny_parts[1])
    question = Question("q1", "What is the capital of France?", "Paris", aliases=["Paris, France"])
    cache = tmp_path / "verdicts.jsonl"
    judge = AnswerJudge(backend, "scripted", load_grader_prompt(), cache)
    grades = [judge(question, a) for a in ("Paris", "Lyon", "", "Paris or Lyon")]
    assert [g.correct for g in grades] == [True, False, False, False]
    assert [g.parsed for g in grades] == ["correct", "incorrect", "not_attempted", None]
    assert "Gold answer: Paris, or Paris, France (Any of these answers are acceptable.)\n" in asked[0]
    assert grades[0].grader.startswith("judge:scripted@")
    assert judge.counts() == {"verdicts": 4, "unparsed": 1, "asked": 4}
    assert grading_section(judge) == {"judge": judge.key, "prompt_version": "2.0", "verdicts": 4, "unparsed": 1,
                                      "asked": 4}
    assert grade(question, "Paris\n**Confidence**: Likely", judge).correct and len(asked) == 4  # cached
    again = AnswerJudge(backend, "scripted", load_grader_prompt(), cache)  # resumed from verdicts.jsonl
    assert again(question, "Lyon").parsed == "incorrect" and len(asked) == 4
    records = read_jsonl(cache, Verdict)
    assert len(records) == 4 and records[3].error.startswith("not a verdict")


def test_gold_answers_read_as_the_authors_present_them():
    from cotprobe.judge import gold_text
    from cotprobe.records import Question

    assert gold_text(Question("q", "Capital of France?", "Paris")) == "Paris"
    assert gold_text(Question("q", "Capital of France?", "Paris", aliases=["Paris, France", "Paris"])) == (
        "Paris, or Paris, France (Any of these answers are acceptable.)")
    assert gold_text(Question("q", "Who?", "Solon", aliases=["Solon of Athens", "Solon the lawgiver"])) == (
        "Solon, or Solon of Athens, or Solon the lawgiver (Any of these answers are acceptable.)")
    assert gold_text(Question("q", "Largest?", "b", kind="mc", choices=["Mars", "Jupiter"])) == "B. Jupiter"


def test_grader_prompt_carries_simpleqa_rules_with_worked_examples(tmp_path):
    """The grading judge's prompt states each of SimpleQA's grading rules and shows worked
    examples of all three grades; its hash (the verdict cache's key) follows its text."""
    from cotprobe.judge import load_grader_prompt

    prompt = load_grader_prompt()
    text = prompt.instruction
    for rule in ("CORRECT", "INCORRECT", "NOT_ATTEMPTED", "last significant figure", "rounds to the gold number",
                 "small misspelling", "more detail than the question asks", "several candidates",
                 "hedges toward a wrong candidate", "partial answer"):
        assert rule in text, rule
    examples = text.split("Worked examples", 1)[1].split("Now grade this one.", 1)[0]
    assert all(examples.count(f"-> {letter}") >= 3 for letter in "ABC")
    assert text.index("Worked examples") < text.index("Question: {question}")  # the case to grade comes last
    assert text.endswith("Reply with one letter: A for CORRECT, B for INCORRECT, C for NOT_ATTEMPTED.")
    assert (prompt.open, prompt.close, prompt.version) == ("Grade:", "\n", "2.0")
    edited = tmp_path / "grader.json"
    edited.write_text(Path(prompt.source).read_text(encoding="utf-8").replace("Worked examples", "Examples"),
                      encoding="utf-8")
    other = load_grader_prompt(edited)
    assert other.instruction != text and other.sha256 != prompt.sha256


def test_grader_options_need_a_judge_model(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "cotprobe.generate", "--model", "tiny-random", "--grader", "judge",
                           "--out", str(tmp_path / "r")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == "error: --grader judge needs --judge-model MODEL"
    help_text = subprocess.run([sys.executable, "-m", "cotprobe.generate", "--help"], capture_output=True,
                               text=True, timeout=120).stdout
    for option in ("--grader", "--judge-model", "--cue-budget", "--prompt-template"):
        assert option in help_text


def test_two_experiments_in_one_process_grade_each_with_its_own_grader(tiny_parts, tmp_path):
    """Graders travel in each experiment's Prober: setting up a judged experiment leaves a
    rules-graded one (made before or after it) grading by the rules, and the other way round."""
    from dataclasses import replace

    from cotprobe.config import RunConfig
    from cotprobe.experiment import setup
    from cotprobe.grade import RULES, Graders
    from cotprobe.judge import AnswerJudge, load_grader_prompt

    def write(context: str) -> str:  # the model under test always answers Paris
        if context.endswith("**Confidence**:"):
            return " Likely\n"
        return " Paris\n" if context.endswith("**Answer**:") else "It is Paris.</think>\n\n**Answer**: Paris\n"

    strict = ScriptedBackend(lambda context: " B\n", tiny_parts[1])  # a judge that finds every answer incorrect
    judge = Graders.every_kind(AnswerJudge(strict, "strict", load_grader_prompt(), tmp_path / "verdicts.jsonl"))
    writer = ScriptedBackend(write, tiny_parts[1])
    question = Question("q1", "What is the capital of France?", "Paris")
    settings = GenerationSettings(budget=50)
    grades = {}
    for name, grader in [("rules", RULES), ("judge", judge), ("rules again", RULES)]:
        with RunDir(tmp_path / name) as run:
            (trace,) = generate(Prober(writer, PROFILE, VERBAL_10, settings.force, grader), [question], run, settings)
        grades[name] = (trace.correct, trace.grader.split("@")[0])
    assert grades == {"rules": (True, "alias"), "judge": (False, "judge:strict"), "rules again": (True, "alias")}

    config = RunConfig(model="tiny-random", dataset="trivia", limit=2, budget=8)
    ruled = setup(config, tmp_path / "a", new_traces=False)
    judged = setup(replace(config, grader="judge", judge_model="tiny-random"), tmp_path / "b", new_traces=False)
    assert ruled.prober.grader is RULES and ruled.recorded["grader"] == "rules"
    assert isinstance(judged.prober.grader, Graders) and judged.prober.grader.name == "judge"
    assert ruled.prober.grade(question, "Paris").correct  # still the rules after the judge was set up
    judged.prober.grade(question, "Paris")  # one verdict (the random tiny judge's, parsed or not)
    judged.report_grading(tmp_path / "b")
    section = json.loads((tmp_path / "b" / "metrics.json").read_text())["grading"]
    assert section["verdicts"] == 1 and section["unparsed"] in (0, 1)
