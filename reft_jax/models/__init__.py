"""Decoder-only transformers (Llama, Mistral, Qwen2, OPT families) and their checkpoints."""

from reft_jax.models.checkpoints import load_pretrained, save_pretrained
from reft_jax.models.config import ModelConfig
from reft_jax.models.heads import ClassifierHead, PolicyWithValue, ValueHead
from reft_jax.models.transformer import CausalLM, DecoderOutput, KVCache, positions_from_mask

__all__ = [
    "CausalLM", "ClassifierHead", "DecoderOutput", "KVCache", "ModelConfig", "PolicyWithValue",
    "ValueHead", "load_pretrained", "positions_from_mask", "save_pretrained",
]
