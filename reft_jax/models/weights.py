"""Where each of our parameters lives in a Hugging Face checkpoint, and how to convert it.

Our linear kernels are (in..., out...) with heads split out, e.g. q: (embed, heads, head_dim);
transformers stores (out, in) matrices. Layer parameters are stacked on a leading axis here and
numbered `layers.{i}` there. The name tables below are the only per-family knowledge.
"""

from __future__ import annotations

from typing import Callable, Iterator, NamedTuple

import jax.numpy as jnp
import numpy as np

from reft_jax.errors import ReftError
from reft_jax.models.config import ModelConfig

_LLAMA_MODULES = {
    ("attn", "q"): "self_attn.q_proj", ("attn", "k"): "self_attn.k_proj",
    ("attn", "v"): "self_attn.v_proj", ("attn", "o"): "self_attn.o_proj",
    ("mlp", "gate"): "mlp.gate_proj", ("mlp", "up"): "mlp.up_proj", ("mlp", "down"): "mlp.down_proj",
    ("attn_norm",): "input_layernorm", ("mlp_norm",): "post_attention_layernorm",
}
_LLAMA_TOP = {("embed",): "model.embed_tokens.weight", ("final_norm",): "model.norm"}
_OPT_MODULES = {
    ("attn", "q"): "self_attn.q_proj", ("attn", "k"): "self_attn.k_proj",
    ("attn", "v"): "self_attn.v_proj", ("attn", "o"): "self_attn.out_proj",
    ("mlp", "up"): "fc1", ("mlp", "down"): "fc2",
    ("attn_norm",): "self_attn_layer_norm", ("mlp_norm",): "final_layer_norm",
}
_OPT_TOP = {
    ("embed",): "model.decoder.embed_tokens.weight",
    ("pos_embed",): "model.decoder.embed_positions.weight",
    ("final_norm",): "model.decoder.final_layer_norm",
}
_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias"}


class Mapping(NamedTuple):
    """One of our parameters and its Hugging Face tensor name (with `{i}` for stacked layers)."""

    path: tuple[str, ...]
    hf_name: str
    stacked: bool
    in_ndim: int | None  # kernels: how many leading axes are inputs; None for vectors/tables


def _family_tables(cfg: ModelConfig):
    if cfg.family == "opt":
        return _OPT_TOP, _OPT_MODULES, "model.decoder.layers.{i}."
    return _LLAMA_TOP, _LLAMA_MODULES, "model.layers.{i}."


def mapping_for(cfg: ModelConfig, paths) -> list[Mapping]:
    """Map each of our parameter paths (from the model's state) to a checkpoint name."""
    top, modules, layer_prefix = _family_tables(cfg)
    out = []
    for path in paths:
        in_ndim = (2 if path[-2] == "o" else 1) if path[-1] == "kernel" else None
        if path[0] == "lm_head":
            out.append(Mapping(path, "lm_head.weight", False, 1))
        elif path[:2] == ("trunk", "layers"):
            module = modules[tuple(path[2:-1])]
            out.append(Mapping(path, f"{layer_prefix}{module}.{_LEAF[path[-1]]}", True, in_ndim))
        elif tuple(path[1:]) in top:
            out.append(Mapping(path, top[tuple(path[1:])], False, in_ndim))
        else:
            module = top[tuple(path[1:-1])]
            out.append(Mapping(path, f"{module}.{_LEAF[path[-1]]}", False, in_ndim))
    return out


def hf_to_ours(tensor, shape: tuple[int, ...], in_ndim: int | None):
    """An (out, in) matrix or a flat vector into our layout of `shape`."""
    t = jnp.asarray(tensor)
    if in_ndim is not None:
        t = t.T
    if t.size != int(np.prod(shape)):
        raise ReftError(f"checkpoint tensor of shape {tuple(tensor.shape)} does not fit {shape}")
    return t.reshape(shape)


def ours_to_hf(array, in_ndim: int | None, is_table: bool):
    """Inverse of hf_to_ours: kernels back to (out, in) matrices, biases and scales flat."""
    if in_ndim is None:
        return array if is_table else array.reshape(-1)
    rows = int(np.prod(array.shape[:in_ndim]))
    return array.reshape(rows, -1).T


def load_tensors(mappings: list[Mapping], shapes: dict, num_layers: int,
                 get: Callable[[str], object], dtype) -> dict:
    """Our parameter arrays by path, read one checkpoint tensor at a time with `get(name)`."""
    arrays = {}
    for m in mappings:
        shape = shapes[m.path]
        if m.stacked:
            layers = [hf_to_ours(get(m.hf_name.format(i=i)), shape[1:], m.in_ndim).astype(dtype)
                      for i in range(num_layers)]
            arrays[m.path] = jnp.stack(layers)
        else:
            arrays[m.path] = hf_to_ours(get(m.hf_name), shape, m.in_ndim).astype(dtype)
    return arrays


def export_tensors(mappings: list[Mapping], arrays: dict, num_layers: int) -> Iterator[tuple[str, object]]:
    """(Hugging Face name, tensor) pairs for every parameter, layers unstacked."""
    for m in mappings:
        value = arrays[m.path]
        if m.stacked:
            for i in range(num_layers):
                yield m.hf_name.format(i=i), ours_to_hf(value[i], m.in_ndim, False)
        else:
            yield m.hf_name, ours_to_hf(value, m.in_ndim, m.path[-1] in ("embed", "pos_embed"))
