"""Shared fixtures: a tiny random model (real transformers code path, seconds) and the embedded model."""

import pytest

from cotprobe.forcing import Prober
from cotprobe.backends.hf import HFBackend
from cotprobe.backends.scripted import ScriptedBackend
from cotprobe.backends.tiny import tiny_model, tiny_tokenizer
from cotprobe.profiles import get_profile
from cotprobe.records import Question
from cotprobe.scales import VERBAL_10
from cotprobe.steps import tag_run
from cotprobe.store import RunDir
from cotprobe.tracing import GenerationSettings, generate


@pytest.fixture(scope="session")
def tiny_parts():
    tokenizer = tiny_tokenizer()
    return tiny_model(tokenizer), tokenizer


@pytest.fixture()
def tiny(tiny_parts):
    model, tokenizer = tiny_parts
    return HFBackend(model, tokenizer, name="tiny")


@pytest.fixture(scope="session")
def embedded_parts():
    from cotprobe import models

    return models.load(models.DEFAULT_MODEL)


@pytest.fixture()
def embedded(embedded_parts):
    model, tokenizer = embedded_parts
    return HFBackend(model, tokenizer, name="smollm2-135m-instruct")


@pytest.fixture()
def questions():
    return [
        Question(id="q1", question="What is the capital of France?", answer="Paris", aliases=["Paris, France"]),
        Question(id="q2", question="What is 2 + 3?", answer="5", kind="numeric"),
        Question(id="q3", question="Which planet is largest?", answer="B", kind="mc",
                 choices=["Mars", "Jupiter", "Venus", "Earth"]),
    ]


# Three scripted traces with known behaviours (backtracking, alternatives, verification, hedging),
# written by a ScriptedBackend over the tiny tokenizer: the ablation, tagging and judge tests' run.
COTS = {
    "France": ("The capital of France is Lyon. Wait, that's not right: Lyon is a big city, but the capital "
               "is Paris. Let me double-check: the government is indeed in Paris.\n\nI think the answer is Paris."),
    "2 + 3": ("Two plus three. Maybe it is 6. Actually, no, 2 + 3 = 5. Alternatively, count up from 3: 4, 5. "
              "Both ways give 5. So the answer is 5."),
    "planet": "The largest planet is probably Jupiter. Jupiter is option B. So the answer is B.",
}
PROFILE = get_profile("think-prefill")
ANSWERS = {"France": " Paris\n", "2 + 3": " 5\n", "planet": " B\n"}


def _key(context: str) -> str:
    question = context.rsplit("Question:", 1)[-1]
    return next(k for k in COTS if k in question)


def respond(context: str) -> str:
    if context.endswith("**Confidence**:"):
        return " Highly likely\n" if "Wait" in context else " Almost certain\n"
    if context.endswith("**Answer**:"):
        return ANSWERS[_key(context)]
    return COTS[_key(context)] + "</think>\n\n**Answer**:" + ANSWERS[_key(context)]


@pytest.fixture()
def scripted_traces(tiny_parts, questions, tmp_path):
    """A run directory of three scripted traces (think-prefill profile), recorded as made by
    tiny-random (so commands load its tokenizer): (backend, path, traces, questions by id)."""
    backend = ScriptedBackend(respond, tiny_parts[1], name="tiny-random")
    path = tmp_path / "run"
    with RunDir(path) as run:
        run.start_stage("generate", {"model": "tiny-random"})
        traces = generate(Prober(backend, PROFILE, VERBAL_10, GenerationSettings(budget=400).force), questions, run, GenerationSettings(budget=400))
    return backend, path, traces, {q.id: q for q in questions}


@pytest.fixture()
def scripted_run(scripted_traces):
    """The scripted traces, segmented and tagged: (backend, path, traces, tagged, questions by id)."""
    backend, path, traces, by_id = scripted_traces
    with RunDir(path) as run:
        tagged = tag_run(run, backend=backend)
    return backend, path, traces, tagged, by_id


# Comparing two numerical implementations (shared-prefix vs naive attention, batched vs one at a
# time, llama.cpp vs transformers): their greedy choices may part wherever two tokens are nearly
# tied, and where depends on the CPU's kernels. So greedy outputs are never compared for exact
# equality across implementations; instead, where they part, the reference must have been near a tie.

TIE_NATS_FP32 = 1e-3  # fp32 paths of one model differ by ~1e-6 in log-probability (measured)


def assert_greedy_agree(backend, context: list[int], a: list[int], b: list[int], tie: float = TIE_NATS_FP32):
    """Greedy continuations ``a`` and ``b`` of ``context`` agree, or first part where ``backend``
    (teacher-forced with their common prefix) scores the two diverging tokens within ``tie`` nats."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    if n == len(a) == len(b):
        return
    if n == min(len(a), len(b)):  # one stopped where the other went on: nothing to tie-break here
        raise AssertionError(f"greedy continuations part after {n} tokens: one stops, the other does not")
    here = backend.session(context + a[:n]).score([[a[n]], [b[n]]])
    assert abs(here[0] - here[1]) < tie, (n, a[n], b[n], here)
