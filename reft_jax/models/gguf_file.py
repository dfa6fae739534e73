"""Read a GGUF file (llama.cpp's format) into a transformers config, tokenizer and tensors.

Nothing here needs torch: the `gguf` package reads and dequantizes (Q4_1, Q8_0, ...), and the
tokenizer is built by transformers' own GGUF tokenizer converter from the metadata. llama.cpp
stores Llama's q and k rows permuted for its interleaved RoPE; we undo that so the weights
match the half-split RoPE of transformers and of our decoder.
"""

from __future__ import annotations

import pathlib
import re
from typing import Any

import numpy as np

from reft_jax.errors import ReftError

_TOP = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_LAYER = {
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}
SUPPORTED_ARCHS = ("llama", "qwen2")
_CONFIG_KEYS = {  # GGUF key (after "<arch>.") -> transformers config field
    "context_length": "max_position_embeddings", "embedding_length": "hidden_size",
    "feed_forward_length": "intermediate_size", "block_count": "num_hidden_layers",
    "attention.head_count": "num_attention_heads", "attention.head_count_kv": "num_key_value_heads",
    "attention.layer_norm_rms_epsilon": "rms_norm_eps",
}
_SPECIAL_TOKENS = {"bos_token": "bos_token_id", "eos_token": "eos_token_id",
                   "unk_token": "unknown_token_id", "pad_token": "padding_token_id"}


class GGUFFile:
    """One GGUF file: its architecture, metadata and tensors."""

    def __init__(self, path: pathlib.Path):
        from gguf import GGUFReader

        self.path = path
        try:
            self.reader = GGUFReader(str(path))
        except (ValueError, OSError) as err:
            raise ReftError(f"{path}: not a readable GGUF file ({err})") from None
        self.meta = {k: f.contents() for k, f in self.reader.fields.items()
                     if not k.startswith("tokenizer.ggml.") or k.rsplit(".", 1)[-1] in
                     ("tokens", "merges", "model", "pre", "token_type", "scores")
                     or k.endswith("_id") or "add_" in k}
        self.arch = self.meta.get("general.architecture", "?")
        if self.arch not in SUPPORTED_ARCHS:
            raise ReftError(f"{path}: GGUF architecture {self.arch!r} is not supported; "
                            f"supported: {', '.join(SUPPORTED_ARCHS)}")

    def hf_config(self) -> Any:
        from transformers import AutoConfig

        fields = {hf: self.meta[f"{self.arch}.{key}"] for key, hf in _CONFIG_KEYS.items()
                  if f"{self.arch}.{key}" in self.meta}
        names = {t.name for t in self.reader.tensors}
        embed = next(t for t in self.reader.tensors if t.name == "token_embd.weight")
        fields["vocab_size"] = int(embed.shape[-1])
        fields["tie_word_embeddings"] = "output.weight" not in names
        theta = float(self.meta.get(f"{self.arch}.rope.freq_base", 10000.0))
        fields["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
        if self.arch == "llama":
            heads = fields["num_attention_heads"]
            fields["head_dim"] = int(self.meta.get("llama.rope.dimension_count",
                                                   fields["hidden_size"] // heads))
        for name, key in _SPECIAL_TOKENS.items():
            if f"tokenizer.ggml.{key}" in self.meta:
                fields[f"{name}_id"] = int(self.meta[f"tokenizer.ggml.{key}"])
        return AutoConfig.for_model(self.arch, **fields)

    def tokenizer(self):
        """The tokenizer the metadata describes, built by transformers' GGUF converter."""
        from transformers import PreTrainedTokenizerFast
        from transformers.integrations.gguf.gguf_tokenizer_mapping import (
            GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer)

        groups = {group: {name: self.meta[f"tokenizer.{key}"] for key, name in renames.items()
                          if f"tokenizer.{key}" in self.meta}
                  for group, renames in GGUF_TOKENIZER_MAPPING.items()}
        tokenizer_dict, config = groups["tokenizer"], groups["tokenizer_config"]
        template = self.reader.fields.get("tokenizer.chat_template")
        if template is not None:
            config["chat_template"] = template.contents()
        backend, extra = convert_gguf_tokenizer(self.arch, tokenizer_dict)
        tokens = tokenizer_dict["tokens"]
        for name, key in _SPECIAL_TOKENS.items():
            token_id = self.meta.get(f"tokenizer.ggml.{key}")
            if token_id is not None:
                config[name] = tokens[token_id]
        return PreTrainedTokenizerFast(tokenizer_object=backend, **config, **extra)

    def tensors(self, num_heads: int, num_kv_heads: int) -> dict[str, np.ndarray]:
        """All tensors, dequantized to float32, keyed by their transformers names."""
        from gguf.quants import dequantize

        out = {}
        for t in self.reader.tensors:
            name = _hf_name(t.name)
            if name is None:
                continue
            w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
            if self.arch == "llama" and ".q_proj." in name:
                w = _unpermute(w, num_heads)
            elif self.arch == "llama" and ".k_proj." in name:
                w = _unpermute(w, num_kv_heads)
            out[name] = w
        return out


def _hf_name(name: str) -> str | None:
    if name in _TOP:
        return _TOP[name]
    m = re.fullmatch(r"blk\.(\d+)\.(\w+)\.(weight|bias)", name)
    if m and m.group(2) in _LAYER:
        return f"model.layers.{m.group(1)}.{_LAYER[m.group(2)]}.{m.group(3)}"
    return None


def _unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of llama.cpp's convert-time permutation of q/k rows."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
