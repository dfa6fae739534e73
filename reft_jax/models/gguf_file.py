"""Read a GGUF file's tensors as float32 arrays under Hugging Face names.

The `gguf` package dequantizes the blocks (Q4_1, Q8_0, ...). llama.cpp stores Llama's q and k
projections with rows permuted for its interleaved RoPE; we undo that so the weights match the
half-split RoPE of transformers (and of our decoder).
"""

from __future__ import annotations

import re

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


def read_gguf_tensors(path, num_heads: int, num_kv_heads: int) -> dict[str, np.ndarray]:
    """All tensors of a GGUF file, dequantized, keyed by their transformers names."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(str(path))
    arch_field = reader.fields.get("general.architecture")
    arch = bytes(arch_field.parts[arch_field.data[0]]).decode() if arch_field else "?"
    if arch not in SUPPORTED_ARCHS:
        raise ReftError(f"{path}: GGUF architecture {arch!r} is not supported; supported: "
                        f"{', '.join(SUPPORTED_ARCHS)}")
    tensors = {}
    for t in reader.tensors:
        name = _hf_name(t.name)
        if name is None:
            continue
        w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        if arch == "llama" and name.endswith(("q_proj.weight", "q_proj.bias")):
            w = _unpermute(w, num_heads)
        elif arch == "llama" and name.endswith(("k_proj.weight", "k_proj.bias")):
            w = _unpermute(w, num_kv_heads)
        tensors[name] = w
    return tensors
