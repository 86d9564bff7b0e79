"""A tiny random-weight Llama model and a real BPE tokenizer, built in-process.

They exercise the real transformers code path (batching, caches, chat templates, special
think tags) in seconds, for tests and for GPU smoke checks of the same code.
"""

from __future__ import annotations

from typing import Any

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
CORPUS = [
    "Question: What is the capital of France? Let me think. Wait, maybe it is Paris.",
    "**Answer**: Paris\n**Confidence**: Almost certain",
    "Almost no chance. Highly unlikely. Chances are slight. Unlikely. Less than even.",
    "Better than even. Likely. Very good chance. Highly likely. Almost certain.",
    "Alternatively, let me double-check: 12 + 7 = 19. Hmm, so the answer is 19.",
    "A. B. C. D. 0 1 2 3 4 5 6 7 8 9 the a an of to in is it that",
]


def tiny_tokenizer(vocab_size: int = 400) -> Any:
    """A byte-level BPE tokenizer trained on a small corpus, with ChatML and think tags."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS * 4, vocab_size=vocab_size, min_frequency=1, special_tokens=SPECIAL)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<think>", "</think>"],
    )
    tok.chat_template = CHATML
    return tok


def tiny_model(tokenizer: Any, seed: int = 0, layers: int = 2, hidden: int = 64,
               attn_implementation: str | None = None) -> Any:
    """A randomly initialised Llama of a few layers over the tokenizer's vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=4096, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )
    if attn_implementation:
        config._attn_implementation = attn_implementation
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model
