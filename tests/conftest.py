"""Shared fixtures: a tiny random model (real transformers code path, seconds) and the embedded model."""

import pytest

from cotprobe.backends.hf import HFBackend
from cotprobe.backends.tiny import tiny_model, tiny_tokenizer
from cotprobe.records import Question


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
