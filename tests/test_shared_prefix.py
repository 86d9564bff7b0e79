"""The shared-prefix attention on random-weight models of the architectures users bring.

Cut rows decoded over one shared prefix must give what each prefix run on its own gives (float32,
max log-prob gap <= 1.4e-6, the gap measured on eight tiny architectures); attention the shared
path does not implement must be refused, with a message, and run row by row instead.
"""

import pytest
import torch
import transformers

from cotprobe.backends import SequentialRows, fork, hf
from cotprobe.backends.hf import HFBackend, HFRows
from cotprobe.backends.tiny import tiny_tokenizer

BOUND = 1.4e-6
SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, max_position_embeddings=512)
FULL2 = ["full_attention", "full_attention"]
SUPPORTED = {
    "llama": (transformers.LlamaConfig, {}),
    "qwen2": (transformers.Qwen2Config, {}),
    "qwen3": (transformers.Qwen3Config, {}),
    "phi3": (transformers.Phi3Config, {}),
    "glm4": (transformers.Glm4Config, {}),
    "mistral-no-window": (transformers.MistralConfig, {"sliding_window": None}),
    "gemma2-no-softcap": (transformers.Gemma2Config, {"attn_logit_softcapping": None, "layer_types": FULL2}),
    "gemma3-global": (transformers.Gemma3TextConfig, {"layer_types": FULL2}),
}
REFUSED = {
    "gemma2": (transformers.Gemma2Config, {}, "sliding_attention"),
    "gemma3": (transformers.Gemma3TextConfig, {}, "sliding_attention"),
    "gemma2-global-softcap": (transformers.Gemma2Config, {"layer_types": FULL2}, "soft-caps"),
    "mistral-window": (transformers.MistralConfig, {"sliding_window": 16}, "sliding-window"),
    "qwen2-window": (transformers.Qwen2Config, {"use_sliding_window": True, "sliding_window": 16,
                                               "max_window_layers": 1}, "sliding_attention"),
    "falcon": (transformers.FalconConfig, {"num_kv_heads": 2, "new_decoder_architecture": True}, "bypassing"),
    "bloom": (transformers.BloomConfig, {"n_head": 4, "n_layer": 2}, "bypassing"),
}


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def build(config_class, extra, tokenizer, attn="eager"):
    torch.manual_seed(0)
    ids = dict(pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    small = {k: v for k, v in SMALL.items() if not isinstance(getattr(config_class, k, None), property)}
    config = config_class(vocab_size=len(tokenizer), **small, **ids, **extra)
    config._attn_implementation = attn
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return HFBackend(model, tokenizer, name="random")


def sequence(n, vocab, seed=1):
    return torch.randint(5, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def gap_against_sessions(backend, ids, lengths, suffix, options):
    """Max |log-prob| gap between shared rows and one fresh session per row, after `suffix`, for
    the next-token distribution and for option scores."""
    rows = fork(backend, ids, lengths)
    assert isinstance(rows, HFRows)
    own = [suffix[: 1 + k] for k in range(len(lengths))]  # rows of different lengths
    rows.extend(own)
    rows.extend([[suffix[-1]] if k != 1 else [] for k in range(len(lengths))])  # row 1 sits this one out
    own = [o + [suffix[-1]] if k != 1 else o for k, o in enumerate(own)]
    rows.extend([suffix[:2] if k != 0 else [] for k in range(len(lengths))])  # several tokens, row 0 out
    own = [o + suffix[:2] if k != 0 else o for k, o in enumerate(own)]
    shared_scores = rows.score(options)
    gap = 0.0
    for k, n in enumerate(lengths):
        session = backend.session(ids[:n] + own[k])
        alone = session._logprobs_from(len(session.ids) - 1)[-1]
        gap = max(gap, float((rows.last[k] - alone).abs().max()))
        gap = max(gap, max(abs(a - b) for a, b in zip(shared_scores[k], session.score(options))))
    return gap


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_shared_rows_match_fresh_runs_on_real_architectures(name, tokenizer):
    config_class, extra = SUPPORTED[name]
    backend = build(config_class, extra, tokenizer)
    assert backend.shared_prefix_refusal is None
    ids = sequence(48, len(tokenizer))
    options = [tokenizer.encode(" " + label) for label in ("Likely", "Almost certain", "Highly unlikely")]
    assert any(len(o) > 1 for o in options)
    assert gap_against_sessions(backend, ids, [12, 30, 48], sequence(4, len(tokenizer), seed=2), options) <= BOUND


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unimplemented_attention_is_refused_and_runs_row_by_row(name, tokenizer, capsys):
    config_class, extra, reason = REFUSED[name]
    backend = build(config_class, extra, tokenizer)
    assert reason in (backend.shared_prefix_refusal or "")
    ids = sequence(24, len(tokenizer))
    rows = fork(backend, ids, [8, 24])
    assert isinstance(rows, SequentialRows)
    err = capsys.readouterr().err
    assert err.count("cut rows run one at a time") == 1 and reason in err
    rows.extend([[7], [7]])
    (a, b) = rows.greedy(3, [])
    assert len(a.token_ids) == len(b.token_ids) == 3


def test_runtime_guard_refuses_what_the_configuration_check_missed(tokenizer, monkeypatch):
    """Arguments the attention would have to drop, or layers that never call it, are caught on the
    first shared step even when the configuration looks plain."""
    monkeypatch.setattr(hf, "shared_prefix_refusal", lambda model: None)
    softcap = build(transformers.Gemma2Config, {"layer_types": FULL2}, tokenizer)
    assert "soft-capping" in softcap.shared_prefix_refusal
    for name in ("falcon", "bloom"):
        bypass = build(*REFUSED[name][:2], tokenizer)
        assert name in bypass.shared_prefix_refusal
        assert isinstance(fork(bypass, sequence(10, len(tokenizer)), [5, 10]), SequentialRows)


def test_prefix_pass_computes_logits_only_at_the_cuts(tokenizer, monkeypatch):
    backend = build(transformers.LlamaConfig, {}, tokenizer)
    shapes = []
    head = backend.model.lm_head
    monkeypatch.setattr(head, "forward", lambda x: shapes.append(tuple(x.shape)) or torch.nn.Linear.forward(head, x))
    HFRows(backend, sequence(40, len(tokenizer)), [10, 20, 40])
    assert shapes == [(1, 3, SMALL["hidden_size"])]


def test_sequential_scoring_keeps_one_cache(tokenizer):
    """The row-by-row path scores options over its own cache, cropped back after each: the cache
    never grows beyond the sequence plus one option, and no copy is repeated per option."""
    backend = build(transformers.LlamaConfig, {}, tokenizer)
    ids = sequence(30, len(tokenizer))
    session = backend.session(ids)
    options = [tokenizer.encode(" " + label) for label in ("Likely", "Almost certain", "Highly unlikely")]
    scores = session.score(options)
    assert session.cache.get_seq_length() == len(ids) == len(session.ids)
    rows = HFRows(backend, ids, [len(ids)])
    assert max(abs(a - b) for a, b in zip(scores, rows.score(options)[0])) <= BOUND
