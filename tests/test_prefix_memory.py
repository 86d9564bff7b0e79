"""The HF backend's remembered prompt prefix (few-shot exemplars every prompt starts with): rows,
generation and hidden states over it agree with encoding everything afresh, and only the
tokens after it are run."""

import torch
from conftest import TIE_NATS_FP32, assert_greedy_agree

from cotprobe.backends import PrefixRemembering
from cotprobe.backends.hf import HFBackend
from cotprobe.tracing import MIN_SHARED_TOKENS, remember_shared_prompt

SHARED = list(range(5, 5 + 90))  # stands for the system prompt and the exemplars
PROMPTS = [SHARED + [200 + i, 250 + i, 300 + 2 * i][: 1 + i] for i in range(3)]


def test_rows_over_a_remembered_prefix_agree_with_a_fresh_encoding(tiny):
    ids = PROMPTS[2] + list(range(320, 360))
    lengths = [len(ids), len(ids) - 10, len(PROMPTS[2]) + 1]
    fresh = tiny.fork(ids, lengths, hidden_layers=[0, 1, 2])
    tiny.remember_prefix(SHARED)
    kept = tiny.fork(ids, lengths, hidden_layers=[0, 1, 2])
    assert kept.forwarded_tokens == len(ids) - len(SHARED) < fresh.forwarded_tokens == len(ids)
    assert torch.allclose(kept.last, fresh.last, atol=TIE_NATS_FP32)
    assert torch.allclose(kept.hidden, fresh.hidden, atol=1e-4)
    a, b = fresh.greedy(12, []), kept.greedy(12, [])
    for n, x, y in zip(lengths, a, b):
        assert_greedy_agree(tiny, ids[:n], x.token_ids, y.token_ids)
    options = [[7, 8], [9]]
    assert torch.allclose(torch.tensor(kept.score(options)), torch.tensor(fresh.score(options)), atol=1e-3)


def test_a_row_at_exactly_the_remembered_prefix_reads_its_stored_log_probs(tiny):
    tiny.remember_prefix(SHARED)
    rows = tiny.fork(SHARED + [370, 371], [len(SHARED), len(SHARED) + 2])
    fresh = HFBackend(tiny.model, tiny.tokenizer).fork(SHARED + [370, 371], [len(SHARED), len(SHARED) + 2])
    assert rows.forwarded_tokens == 2
    assert torch.allclose(rows.last, fresh.last, atol=TIE_NATS_FP32)


def test_generation_over_the_remembered_prefix_agrees_with_batched_generate(tiny):
    plain = tiny.generate(PROMPTS, 16, [])
    tiny.remember_prefix(SHARED)
    kept = tiny.generate(PROMPTS, 16, [])
    for prompt, a, b in zip(PROMPTS, plain, kept):
        assert_greedy_agree(tiny, prompt, a.token_ids, b.token_ids)
        if a.token_ids == b.token_ids:
            assert a.finish == b.finish
    other = [list(range(300, 390))]  # a prompt that does not start with it: the ordinary path
    assert tiny.generate(other, 4, [])[0].token_ids == HFBackend(tiny.model, tiny.tokenizer).generate(other, 4, [])[0].token_ids


def test_the_shared_start_of_the_prompts_is_what_is_remembered(tiny):
    class Ids:  # text "a b c" <-> ids [a, b, c]
        def __init__(self, backend):
            self.backend = backend

        def encode(self, text):
            return [int(t) for t in text.split()]

    texts = [" ".join(map(str, p)) for p in PROMPTS]
    tiny.encode = Ids(tiny).encode
    assert isinstance(tiny, PrefixRemembering)
    remember_shared_prompt(tiny, texts)
    assert tiny.known_prefix(PROMPTS[0], len(PROMPTS[0])).ids == tuple(SHARED)
    tiny.remember_prefix([])
    short = [" ".join(map(str, SHARED[:MIN_SHARED_TOKENS - 1] + [380 + i])) for i in range(2)]
    remember_shared_prompt(tiny, short)
    assert tiny.known_prefix(PROMPTS[0], len(PROMPTS[0])) is None  # too short to be worth it
    naive = HFBackend(tiny.model, tiny.tokenizer, reuse_cache=False)
    naive.remember_prefix(SHARED)
    assert naive.known_prefix(PROMPTS[0], len(PROMPTS[0])) is None  # naive mode re-encodes everything
