"""A tiny random-weight Llama student with a locally trained tokenizer, for fast offline tests.

It has the same on-disk layout as a real Hugging Face / MLX model folder (config.json,
model.safetensors, tokenizer.json, tokenizer_config.json with a ChatML template), so every code
path that loads, trains, fuses or queries a student runs on it unchanged, in seconds, with no
network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import numpy as np

from nanodistill.errors import NanodistillError

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
END_OF_TEXT = "<|endoftext|>"
SPECIAL_TOKENS = (END_OF_TEXT, IM_START, IM_END)
THINK_TOKENS = ("<think>", "</think>")

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

EMBEDDING_STD = 0.25
LINEAR_STD = 0.1

BUILTIN_CORPUS = (
    "You are a helpful assistant. Answer the question briefly and correctly.",
    "Classify the sentiment of the review as positive or negative.",
    "The movie was wonderful, the acting was great and I loved the ending.",
    "The food was terrible, the service was slow and I would not come back.",
    "What is the capital of France? The capital of France is Paris.",
    "Translate the sentence into French. Extract the names from the text.",
    "Summarize the following paragraph in one sentence for a busy reader.",
    "Let me think step by step about the problem before I give the answer.",
    "The answer is yes. The answer is no. The result is 42.",
    "system user assistant input output reasoning label category",
    "Please write a short and friendly reply to the customer email below.",
    "It is a good day: the weather is nice, and the children play outside.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000. Dates: 2024-01-31.",
    'JSON: {"label": "positive", "score": 0.9}, {"name": "Alice", "age": 30}.',
)


def build_tiny_student(
    path: Path,
    *,
    seed: int = 0,
    vocab_size: int = 384,
    hidden_size: int = 64,
    num_layers: int = 2,
    corpus: list[str] | None = None,
) -> Path:
    """Write a random-weight Llama model folder that `mlx_lm.load(path)` opens; same seed, same files."""
    if vocab_size < 256 + len(SPECIAL_TOKENS) + len(THINK_TOKENS):
        raise NanodistillError("vocab_size must be at least 263 (256 bytes plus the special tokens).")
    if hidden_size < 8 or hidden_size % 4:
        raise NanodistillError("hidden_size must be a multiple of 4, at least 8.")
    if num_layers < 1:
        raise NanodistillError("num_layers must be at least 1.")
    path.mkdir(parents=True, exist_ok=True)
    tokenizer_vocab = _write_tokenizer(path, vocab_size, [*BUILTIN_CORPUS, *(corpus or [])])
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden_size,
        "num_hidden_layers": num_layers,
        "intermediate_size": hidden_size * 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": hidden_size // 4,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab_size,
        "max_position_embeddings": 2048,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "bos_token_id": None,
        "eos_token_id": tokenizer_vocab[IM_END],
        "pad_token_id": tokenizer_vocab[END_OF_TEXT],
        "torch_dtype": "float32",
    }
    (path / "config.json").write_text(json.dumps(config, indent=2))
    _write_weights(path, config, seed)
    return path


def _write_tokenizer(path: Path, vocab_size: int, corpus: list[str]) -> dict[str, int]:
    """Train a byte-level BPE on the corpus; the chat markers are single tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(THINK_TOKENS),
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer)
    tokenizer.add_tokens([AddedToken(t, normalized=False, special=False) for t in THINK_TOKENS])
    tokenizer.save(str(path / "tokenizer.json"))
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": CHATML_TEMPLATE,
        "bos_token": None,
        "eos_token": IM_END,
        "pad_token": END_OF_TEXT,
        "unk_token": None,
        "add_bos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 2048,
    }
    (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    vocab: dict[str, int] = tokenizer.get_vocab()
    return vocab


def _write_weights(path: Path, config: dict[str, object], seed: int) -> None:
    """Normal weights from a seeded numpy generator, so the files depend on the seed only.

    The (tied) embeddings are large enough that the output layer can express confident
    predictions, which lets LoRA, which leaves them frozen, make the loss fall within a few
    dozen steps.
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models.llama import Model, ModelArgs

    model = Model(ModelArgs.from_dict(config))
    rng = np.random.default_rng(seed)
    weights = {}
    parameters = cast(list[tuple[str, Any]], tree_flatten(model.parameters()))
    for name, value in parameters:
        if name.endswith("norm.weight"):
            array = np.ones(value.shape, dtype=np.float32)
        else:
            std = EMBEDDING_STD if "embed_tokens" in name else LINEAR_STD
            array = rng.normal(0.0, std, size=value.shape).astype(np.float32)
        weights[name] = mx.array(array)
    mx.save_safetensors(str(path / "model.safetensors"), weights, metadata={"format": "mlx"})
