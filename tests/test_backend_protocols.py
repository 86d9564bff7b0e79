"""Every concrete backend, its sessions and its rows satisfy the Protocols in `backends.protocols`.

Checked twice: `isinstance` against the runtime-checkable Protocols (the members exist), and
`conformance` (each method takes the parameters the Protocol names), which must also catch an
object that does not conform.
"""

from __future__ import annotations

import pytest

from cotprobe.backends import TINY_MODEL, SequentialRows, fork, load_backend, protocols
from cotprobe.backends.hf import HFBackend
from cotprobe.backends.openai import OpenAIBackend
from cotprobe.backends.protocols import conformance
from cotprobe.backends.recording_server import RecordingServer
from cotprobe.backends.scripted import ScriptedBackend


def conforms(obj, *protocols) -> None:
    for protocol in protocols:
        assert isinstance(obj, protocol), (type(obj).__name__, protocol.__name__)
        assert conformance(obj, protocol) == [], conformance(obj, protocol)


def check_backend(backend, *extra) -> None:
    conforms(backend, protocols.Backend, *extra)
    ids = backend.encode("Let me think. Wait, maybe it is Paris.")
    conforms(backend.session(ids), protocols.Session)
    conforms(fork(backend, ids, [2, len(ids)]), protocols.Rows)


def test_hf_backend_its_sessions_and_rows(tiny_parts):
    backend = HFBackend(*tiny_parts, name="tiny")
    check_backend(backend, protocols.ForkingBackend, protocols.HiddenStatesBackend)
    ids = backend.encode("Let me think.")
    conforms(backend.session(ids), protocols.SamplingSession)
    conforms(backend.fork(ids, [1, len(ids)]), protocols.SamplingRows)
    naive = HFBackend(*tiny_parts, name="tiny", reuse_cache=False)
    rows = fork(naive, ids, [1, len(ids)])
    assert isinstance(rows, SequentialRows)
    conforms(rows, protocols.SamplingRows)


def test_tiny_backend_loaded_by_name():
    check_backend(load_backend(TINY_MODEL), protocols.ForkingBackend, protocols.HiddenStatesBackend)


def test_scripted_backend_gets_sequential_rows(tiny_parts):
    backend = ScriptedBackend(lambda context: "Paris", tiny_parts[1])
    check_backend(backend)
    assert not isinstance(backend, protocols.ForkingBackend)
    ids = backend.encode("Question")
    conforms(backend.session(ids), protocols.SamplingSession)
    conforms(fork(backend, ids, [1]), protocols.SamplingRows)


def test_openai_backend_its_sessions_and_rows(tiny_parts):
    tokenizer = tiny_parts[1]
    with RecordingServer(tokenizer, "synthetic") as server:
        backend = OpenAIBackend(server.url, "synthetic", tokenizer)
        try:
            check_backend(backend, protocols.ForkingBackend)
            assert not isinstance(backend, protocols.HiddenStatesBackend)  # a server returns tokens only
        finally:
            backend.close()


class Lacking:
    """Tokenizer operations, a generate without its stop argument, and no session at all."""

    name = "lacking"
    context_length = 10

    def encode(self, text):
        return []

    def decode(self, ids):
        return ""

    def chat_prompt(self, messages):
        return ""

    def generate(self, prompts, max_new_tokens):
        return []


@pytest.mark.parametrize("protocol", [protocols.Backend, protocols.ForkingBackend])
def test_conformance_names_what_is_missing(protocol):
    problems = conformance(Lacking(), protocol)
    assert "Lacking has no session" in problems
    assert "Lacking.generate takes no 'stop'" in problems
    assert "Lacking.chat_prompt takes no 'template_kwargs'" in problems
    assert not isinstance(Lacking(), protocol)
