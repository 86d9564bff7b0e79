"""The default experiment (`python -m cotprobe.truncate` with no arguments) spreads its cuts over
the whole chain of thought when the CoT is long, as the in-context slow-thinking style makes it."""

from cotprobe.forcing import Prober
from cotprobe.backends.scripted import ScriptedBackend
from cotprobe.config import DEFAULT_EXPERIMENT, default_experiment
from cotprobe.tracing import GenerationSettings, generate
from cotprobe.experiment import default_profile
from cotprobe.profiles import for_style
from cotprobe.records import Question
from cotprobe.scales import VERBAL_10
from cotprobe.store import RunDir
from cotprobe.summary import cut_metrics
from cotprobe.truncate import build_parser
from cotprobe.cuts import Sweep, parse_fractions, truncate

# A hesitant thought of uneven steps, as slow-think exemplars elicit (about 150 tokens).
LONG = ("Okay, so I need to figure out which city is the capital of France. "
        "Hmm, my first thought is Lyon, because it is a large city. "
        "Wait, no. "
        "Lyon is big, but the government does not sit there. "
        "Let me think about where the president lives and where the parliament meets. "
        "That is Paris, I am fairly sure of it. "
        "But let me double-check: could it be Marseille? "
        "No, Marseille is a port in the south. "
        "So the capital is Paris.\n\n"
        "Actually, let me also recall the history. "
        "Paris has been the capital for most of the last thousand years. "
        "Yes, I am now quite confident.")
SHORT = "The answer to this question is Paris."


def scripted(tokenizer, thought):
    """Question i thinks `thought` with its sentences rotated by i (steps of other lengths in
    another order, as real traces differ)."""
    sentences = [s + "." for s in thought.replace("\n\n", " ").split(". ") if s]
    sentences[-1] = sentences[-1].rstrip(".") + "." if sentences[-1].endswith("..") else sentences[-1]

    def respond(context: str) -> str:
        if context.endswith("**Confidence**:"):
            return " Likely\n"
        if context.endswith("**Answer**:"):
            return " Paris\n"
        i = int(context.split("Question ", 1)[1].split(":", 1)[0]) if "Question " in context else 0
        k = i % len(sentences)
        return " ".join(sentences[k:] + sentences[:k]) + "\n</think>\n\n**Answer**: Paris"
    return ScriptedBackend(respond, tokenizer)


def realised_levels(tokenizer, thought, tmp_path, n=8):
    parser = build_parser()
    args = parser.parse_args(default_experiment(parser, []))
    assert (args.dataset, args.style, args.limit, args.budget, args.batch_size) == tuple(DEFAULT_EXPERIMENT.values())
    backend = scripted(tokenizer, thought)
    profile = for_style(default_profile(args.model, args.profile), args.style)
    questions = [Question(id=f"q{i}", question=f"Question {i}: what is the capital of France?", answer="Paris")
                 for i in range(n)]
    with RunDir(tmp_path / "run") as run:
        traces = generate(Prober(backend, profile, VERBAL_10, GenerationSettings(style=args.style, budget=args.budget).force), questions, run, GenerationSettings(style=args.style, budget=args.budget))
        probes = truncate(Prober(backend, profile, VERBAL_10), traces, {q.id: q for q in questions}, run, Sweep(parse_fractions(args.fractions), args.cut))
    assert len(traces[0].cot_token_ids) >= 60
    return [row["fraction_realised"] for row in cut_metrics(probes, n_resamples=20)["levels"]]


def test_default_settings_spread_cuts_over_a_long_cot(tiny_parts, tmp_path):
    realised = realised_levels(tiny_parts[1], LONG, tmp_path)
    assert len(realised) == 11
    assert len({round(f, 1) for f in realised}) >= 8  # distinct tenths among the 11 levels
    assert realised == sorted(realised) and realised[0] == 0.0 and realised[-1] == 1.0


def test_default_experiment_applies_only_to_an_empty_command_line():
    parser = build_parser()
    args = parser.parse_args(default_experiment(parser, ["--out", "x"]))
    assert args.style == "cot"  # any argument: the options' own defaults (the paper's prompt)


def test_a_one_sentence_cot_collapses_the_cuts(tiny_parts, tmp_path):
    """The failure the default experiment avoids: step cuts of a one-step CoT land on its two ends."""
    tokenizer = tiny_parts[1]
    parser = build_parser()
    args = parser.parse_args(default_experiment(parser, []))
    backend = scripted(tokenizer, SHORT)
    profile = for_style(default_profile(args.model, args.profile), args.style)
    questions = [Question(id="q0", question="Question 0: what is the capital of France?", answer="Paris")]
    with RunDir(tmp_path / "run") as run:
        traces = generate(Prober(backend, profile, VERBAL_10, GenerationSettings(style=args.style).force), questions, run, GenerationSettings(style=args.style))
        probes = truncate(Prober(backend, profile, VERBAL_10), traces, {"q0": questions[0]}, run, Sweep(parse_fractions(args.fractions), args.cut))
    assert {round(p.fraction_realised, 1) for p in probes} <= {0.0, 0.9, 1.0}  # the two ends only
