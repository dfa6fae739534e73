"""Hugging Face configs to ModelConfig and back, for each supported model_type.

Llama covers Llama 1/2/3, CodeLlama and SmolLM2; Mistral adds a sliding window; Qwen2 adds q/k/v
biases; OPT (and Galactica, which is OPT) uses learned positions, LayerNorm and a plain MLP.
"""

from __future__ import annotations

from typing import Any

from reft_jax.errors import ReftError
from reft_jax.models.config import ModelConfig

LLAMA_LIKE = ("llama", "mistral", "qwen2")
SUPPORTED = LLAMA_LIKE + ("opt",)
SUPPORTED_TEXT = (
    "llama (Llama 1/2/3, CodeLlama, SmolLM2), mistral, qwen2 (Qwen2, Qwen2.5), opt (OPT, Galactica)"
)


def _get(hf: Any, name: str, default: Any = None) -> Any:
    value = getattr(hf, name, None)
    return default if value is None else value


def _rope(hf: Any) -> tuple[float, dict | None]:
    """Read rope theta and scaling from either transformers 4 or 5 field names."""
    params = dict(_get(hf, "rope_parameters", None) or {})
    scaling = dict(_get(hf, "rope_scaling", None) or {})
    merged = {**scaling, **params}
    theta = float(merged.pop("rope_theta", _get(hf, "rope_theta", 10000.0)))
    rope_type = merged.get("rope_type", merged.get("type", "default"))
    if rope_type == "default":
        return theta, None
    if rope_type not in ("linear", "llama3"):
        raise ReftError(f"rope scaling {rope_type!r} is not supported; supported: linear, llama3")
    merged["rope_type"] = rope_type
    merged.pop("type", None)
    return theta, merged


def from_hf_config(hf: Any, *, param_dtype: str = "float32", dtype: str = "float32") -> ModelConfig:
    """Build our config from a transformers PretrainedConfig."""
    family = getattr(hf, "model_type", None)
    if family not in SUPPORTED:
        raise ReftError(
            f"model_type {family!r} is not supported; supported decoder families: {SUPPORTED_TEXT}"
        )
    common = dict(family=family, vocab_size=hf.vocab_size, hidden_size=hf.hidden_size,
                  num_layers=hf.num_hidden_layers, num_heads=hf.num_attention_heads,
                  tie_embeddings=bool(_get(hf, "tie_word_embeddings", False)),
                  max_position_embeddings=hf.max_position_embeddings,
                  param_dtype=param_dtype, dtype=dtype)
    if family == "opt":
        return _from_opt(hf, common)
    theta, scaling = _rope(hf)
    window = _get(hf, "sliding_window", None)
    if family == "qwen2" and not _get(hf, "use_sliding_window", False):
        window = None
    attention_bias = bool(_get(hf, "attention_bias", False))
    return ModelConfig(
        **common,
        intermediate_size=hf.intermediate_size,
        num_kv_heads=_get(hf, "num_key_value_heads", hf.num_attention_heads),
        head_dim=_get(hf, "head_dim", hf.hidden_size // hf.num_attention_heads),
        norm="rms", norm_eps=float(_get(hf, "rms_norm_eps", 1e-6)),
        mlp="gated", activation=_get(hf, "hidden_act", "silu"),
        position="rope", rope_theta=theta, rope_scaling=scaling,
        qkv_bias=True if family == "qwen2" else attention_bias,
        out_bias=False if family == "qwen2" else attention_bias,
        mlp_bias=bool(_get(hf, "mlp_bias", False)),
        sliding_window=window,
        extra={k: _get(hf, k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")},
    )


def _from_opt(hf: Any, common: dict) -> ModelConfig:
    if not _get(hf, "do_layer_norm_before", True):
        raise ReftError("OPT with do_layer_norm_before=False (opt-350m) is not supported")
    if _get(hf, "word_embed_proj_dim", hf.hidden_size) != hf.hidden_size:
        raise ReftError("OPT with word_embed_proj_dim != hidden_size (opt-350m) is not supported")
    if not _get(hf, "layer_norm_elementwise_affine", True):
        raise ReftError("OPT without elementwise-affine layer norms is not supported")
    bias = bool(_get(hf, "enable_bias", True))
    common["tie_embeddings"] = bool(_get(hf, "tie_word_embeddings", True))
    return ModelConfig(
        **common,
        intermediate_size=hf.ffn_dim,
        num_kv_heads=hf.num_attention_heads,
        head_dim=hf.hidden_size // hf.num_attention_heads,
        norm="layer", norm_eps=1e-5,
        mlp="plain", activation=_get(hf, "activation_function", "relu"),
        position="learned", position_offset=2,
        qkv_bias=bias, out_bias=bias, mlp_bias=bias,
        extra={k: _get(hf, k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")},
    )


def to_hf_config(cfg: ModelConfig) -> Any:
    """The transformers config that describes the same model, for save_pretrained."""
    from transformers import AutoConfig

    torch_dtype = cfg.param_dtype
    ids = {k: v for k, v in dict(cfg.extra).items() if v is not None}
    if cfg.family == "opt":
        return AutoConfig.for_model(
            "opt", vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
            ffn_dim=cfg.intermediate_size, max_position_embeddings=cfg.max_position_embeddings,
            activation_function=cfg.activation, do_layer_norm_before=True,
            word_embed_proj_dim=cfg.hidden_size, enable_bias=cfg.qkv_bias,
            tie_word_embeddings=cfg.tie_embeddings, dtype=torch_dtype, **ids)
    rope = {"rope_type": "default", "rope_theta": cfg.rope_theta}
    if cfg.rope_scaling:
        rope = {**dict(cfg.rope_scaling), "rope_theta": cfg.rope_theta}
    kwargs = dict(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_position_embeddings, rms_norm_eps=cfg.norm_eps,
        hidden_act=cfg.activation, tie_word_embeddings=cfg.tie_embeddings,
        rope_parameters=rope, dtype=torch_dtype, **ids)
    if cfg.family == "llama":
        kwargs.update(head_dim=cfg.head_dim, attention_bias=cfg.qkv_bias, mlp_bias=cfg.mlp_bias)
    elif cfg.family == "mistral":
        kwargs.update(head_dim=cfg.head_dim, sliding_window=cfg.sliding_window)
    elif cfg.family == "qwen2":
        kwargs.update(use_sliding_window=cfg.sliding_window is not None,
                      sliding_window=cfg.sliding_window)
    return AutoConfig.for_model(cfg.family, **kwargs)
