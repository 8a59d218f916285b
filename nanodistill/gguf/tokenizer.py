"""Translate byte-level BPE tokenizers between GGUF metadata and Hugging Face files.

GGUF keeps a tokenizer as a vocabulary, a merge list, token types and a pre-tokenizer *name*
(``tokenizer.ggml.pre``); Hugging Face keeps a ``tokenizer.json`` with the pre-tokenizer spelled
out. The names below are llama.cpp's, each paired with the Hugging Face pre-tokenizer that
splits text the same way, so both directions use one table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nanodistill.errors import NanodistillError

_GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _byte_level(use_regex: bool) -> dict[str, Any]:
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": use_regex}


def _split_then_bytes(pattern: str) -> dict[str, Any]:
    split = {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}
    return {"type": "Sequence", "pretokenizers": [split, _byte_level(False)]}


_DIGITS_THEN_GPT2 = {
    "type": "Sequence",
    "pretokenizers": [{"type": "Digits", "individual_digits": True}, _byte_level(True)],
}

# llama.cpp pre-tokenizer name -> Hugging Face pre_tokenizer JSON with the same splits.
PRE_TOKENIZERS: dict[str, dict[str, Any]] = {
    "gpt-2": _byte_level(True),
    "smollm": _DIGITS_THEN_GPT2,
    "starcoder": _DIGITS_THEN_GPT2,
    "llama-bpe": _split_then_bytes(_LLAMA3_PATTERN),
    "qwen2": _split_then_bytes(_QWEN2_PATTERN),
}
# Llama 3's tokenizer looks whole words up in the vocabulary before merging.
_IGNORE_MERGES = {"llama-bpe"}

TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED = 1, 3, 4, 5


def _unsupported_model(what: str) -> NanodistillError:
    return NanodistillError(
        f"the tokenizer is {what}; only byte-level BPE vocabularies (GGUF 'gpt2': SmolLM, Llama 3, Qwen2) "
        "are converted. SentencePiece (GGUF 'llama') and other vocabularies are not supported."
    )


def write_hf_tokenizer(metadata: dict[str, Any], out_dir: Path, context_length: int) -> list[int]:
    """Write tokenizer.json and tokenizer_config.json from GGUF metadata; returns the eos ids."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, processors

    model = metadata.get("tokenizer.ggml.model")
    if model != "gpt2":
        raise _unsupported_model(f"GGUF tokenizer.ggml.model={model!r}")
    pre = str(metadata.get("tokenizer.ggml.pre", "gpt-2"))
    if pre not in PRE_TOKENIZERS:
        raise NanodistillError(
            f"tokenizer.ggml.pre is {pre!r}; supported pre-tokenizers: {', '.join(sorted(PRE_TOKENIZERS))}."
        )
    tokens: list[str] = metadata.get("tokenizer.ggml.tokens") or []
    merges: list[str] = metadata.get("tokenizer.ggml.merges") or []
    if not tokens or not merges:
        raise NanodistillError("the GGUF has no tokenizer.ggml.tokens or tokenizer.ggml.merges to rebuild from.")
    types: list[int] = metadata.get("tokenizer.ggml.token_type") or [TOKEN_NORMAL] * len(tokens)
    vocab = {tok: i for i, tok in enumerate(tokens)}
    if len(vocab) != len(tokens) or len(types) != len(tokens):
        raise NanodistillError("the GGUF vocabulary has duplicate tokens or a token_type list of another length.")
    if not all(" " in m for m in merges):
        raise NanodistillError("the GGUF merge list has an entry without a space between its two parts.")
    pairs = [(left, right) for left, _, right in (m.partition(" ") for m in merges)]

    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, ignore_merges=pre in _IGNORE_MERGES))
    tok.pre_tokenizer = _pre_tokenizer_from_json(PRE_TOKENIZERS[pre])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(
        [AddedToken(tokens[i], special=True, normalized=False) for i, t in enumerate(types) if t == TOKEN_CONTROL]
    )
    tok.add_tokens(
        [AddedToken(tokens[i], special=False, normalized=False) for i, t in enumerate(types) if t == TOKEN_USER_DEFINED]
    )

    def special(key: str) -> str | None:
        index = metadata.get(f"tokenizer.ggml.{key}_token_id")
        return tokens[index] if isinstance(index, int) and 0 <= index < len(tokens) else None

    bos, eos = special("bos"), special("eos")
    if metadata.get("tokenizer.ggml.add_bos_token") and bos is not None:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])]
        )
    tok.save(str(out_dir / "tokenizer.json"))

    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": context_length,
        "clean_up_tokenization_spaces": False,
        "add_bos_token": bool(metadata.get("tokenizer.ggml.add_bos_token", False)),
    }
    for key in ("bos", "eos", "unknown", "padding"):
        value = special(key)
        if value is not None:
            config[{"unknown": "unk_token", "padding": "pad_token"}.get(key, f"{key}_token")] = value
    if "tokenizer.chat_template" in metadata:
        config["chat_template"] = metadata["tokenizer.chat_template"]
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
    eos_ids = [vocab[eos]] if eos is not None else []
    eot = special("eot")
    if eot is not None and vocab[eot] not in eos_ids:
        eos_ids.append(vocab[eot])
    return eos_ids


def _pre_tokenizer_from_json(spec: dict[str, Any]) -> Any:
    from tokenizers import Tokenizer

    shell = {"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}, "pre_tokenizer": spec}
    return Tokenizer.from_str(json.dumps(shell)).pre_tokenizer


def _signature(spec: dict[str, Any] | None) -> list[tuple[str, str]]:
    """What makes two pre-tokenizers split alike, ignoring offset-only options."""
    if spec is None:
        return []
    if spec.get("type") == "Sequence":
        return [s for part in spec.get("pretokenizers", []) for s in _signature(part)]
    kind = str(spec.get("type"))
    if kind == "Split":
        pattern = spec.get("pattern", {})
        return [(kind, f"{pattern.get('Regex', pattern.get('String'))}|{spec.get('behavior')}")]
    if kind == "ByteLevel":
        return [(kind, f"regex={spec.get('use_regex', True)}|prefix={spec.get('add_prefix_space', False)}")]
    if kind == "Digits":
        return [(kind, f"individual={spec.get('individual_digits', False)}")]
    return [(kind, json.dumps(spec, sort_keys=True))]


def gguf_tokenizer_metadata(model_dir: Path) -> dict[str, Any]:
    """GGUF ``tokenizer.*`` metadata for a folder's byte-level BPE tokenizer.json."""
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise NanodistillError(f"{model_dir} has no tokenizer.json; only fast (tokenizer.json) tokenizers export.")
    spec = json.loads(path.read_text(encoding="utf-8"))
    model = spec.get("model") or {}
    decoder = spec.get("decoder") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback") or decoder.get("type") != "ByteLevel":
        raise _unsupported_model(
            f"{model.get('type')} with a {decoder.get('type')} decoder (byte_fallback={model.get('byte_fallback')})"
        )
    wanted = _signature(spec.get("pre_tokenizer"))
    pre = next((name for name, pre_spec in PRE_TOKENIZERS.items() if _signature(pre_spec) == wanted), None)
    if pre is None:
        raise NanodistillError(
            f"{path}'s pre-tokenizer matches none llama.cpp knows here "
            f"({', '.join(sorted(PRE_TOKENIZERS))}); exporting it would tokenize differently in llama.cpp."
        )
    vocab: dict[str, int] = dict(model.get("vocab") or {})
    added = spec.get("added_tokens") or []
    for entry in added:
        vocab[entry["content"]] = entry["id"]
    size = max(vocab.values()) + 1
    tokens = [""] * size
    for text, index in vocab.items():
        tokens[index] = text
    types = [TOKEN_NORMAL] * size
    for i in [i for i, t in enumerate(tokens) if t == ""]:
        tokens[i], types[i] = f"[PAD{i}]", TOKEN_UNUSED
    for entry in added:
        types[entry["id"]] = TOKEN_CONTROL if entry.get("special") else TOKEN_USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    post = spec.get("post_processor") or {}
    steps = post.get("processors", []) if post.get("type") == "Sequence" else [post]
    template = next((p for p in steps if p.get("type") == "TemplateProcessing"), {})
    first = (template.get("single") or [{}])[0]
    return {
        "tokenizer.ggml.add_bos_token": "SpecialToken" in first,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre,
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": merges,
    }
