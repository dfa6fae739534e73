"""The model's shape for a plan, from its config alone: no weights are read.

`config.model.source` is looked up in order: a local folder's config.json, a .gguf file's
metadata, the built-in table of the paper's models (so planning works offline), and last the
hub, from which only config.json is fetched. The shape goes through the same family code as a
real load (`from_hf_config`), with the run's dtypes and remat setting.
"""

from __future__ import annotations

import pathlib

from reft_jax.errors import ReftError
from reft_jax.models.config import ModelConfig
from reft_jax.models.families import from_hf_config

_CODELLAMA_7B = dict(
    model_type="llama", vocab_size=32016, hidden_size=4096, intermediate_size=11008,
    num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
    max_position_embeddings=16384, rms_norm_eps=1e-5, rope_theta=1e6, tie_word_embeddings=False,
    bos_token_id=1, eos_token_id=2)
_GALACTICA_6_7B = dict(
    model_type="opt", vocab_size=50000, hidden_size=4096, ffn_dim=16384, num_hidden_layers=32,
    num_attention_heads=32, max_position_embeddings=2048, word_embed_proj_dim=4096,
    activation_function="gelu", do_layer_norm_before=True, enable_bias=True,
    bos_token_id=0, pad_token_id=1, eos_token_id=2)
_QWEN = dict(model_type="qwen2", vocab_size=151936, max_position_embeddings=32768,
             rms_norm_eps=1e-6, rope_theta=1e6, tie_word_embeddings=True, eos_token_id=151643)
_QWEN2_5_0_5B = dict(_QWEN, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                     num_attention_heads=14, num_key_value_heads=2)
_QWEN2_5_1_5B = dict(_QWEN, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                     num_attention_heads=12, num_key_value_heads=2)

# The paper's models and the one-GPU ones, as their Hugging Face config.json says.
BUILT_IN = {
    "codellama/codellama-7b-hf": _CODELLAMA_7B,
    "codellama/codellama-7b-python-hf": dict(_CODELLAMA_7B, vocab_size=32000),
    "facebook/galactica-6.7b": _GALACTICA_6_7B,
    "qwen/qwen2.5-0.5b": _QWEN2_5_0_5B,
    "qwen/qwen2.5-0.5b-instruct": _QWEN2_5_0_5B,
    "qwen/qwen2.5-1.5b": _QWEN2_5_1_5B,
    "qwen/qwen2.5-1.5b-instruct": _QWEN2_5_1_5B,
}
SCRATCH_VOCAB = 512  # a from-scratch model before its tokenizer exists (the quickstart's ~100)


def hf_config_of(config):
    """(transformers config, where it came from) for `config.model.source`."""
    from transformers import AutoConfig

    source = str(config.model.source)
    path = pathlib.Path(source).expanduser()
    if source == "scratch":
        path = pathlib.Path(config.workdir) / "scratch"
        if not (path / "config.json").exists():
            return _scratch(config.scratch), f"config.scratch, vocabulary {SCRATCH_VOCAB} assumed"
    if path.is_dir() and (path / "config.json").exists():
        return AutoConfig.from_pretrained(path), f"{path / 'config.json'}"
    if path.is_file() and path.suffix == ".gguf":
        from reft_jax.models.gguf_file import GGUFFile

        return GGUFFile(path).hf_config(), f"{path} metadata"
    if source.lower() in BUILT_IN:
        fields = dict(BUILT_IN[source.lower()])
        return AutoConfig.for_model(fields.pop("model_type"), **fields), "built-in table"
    return _from_hub(source), "config.json from the hub"


def model_shape(hf, config) -> ModelConfig:
    """The model of a transformers config in the run's dtypes and remat settings."""
    cfg = from_hf_config(hf, param_dtype=config.model.param_dtype, dtype=config.model.dtype)
    return cfg.replace(remat=bool(config.model.remat), remat_policy=config.model.remat_policy)


def _scratch(s):
    from transformers import AutoConfig

    return AutoConfig.for_model(
        "llama", vocab_size=SCRATCH_VOCAB, hidden_size=s.hidden_size, num_hidden_layers=s.num_layers,
        num_attention_heads=s.num_heads, num_key_value_heads=s.num_heads,
        intermediate_size=s.intermediate_size, max_position_embeddings=s.max_positions,
        tie_word_embeddings=True)


def _from_hub(source: str):
    from transformers import AutoConfig

    try:
        from huggingface_hub import hf_hub_download

        return AutoConfig.from_pretrained(pathlib.Path(hf_hub_download(source, "config.json")).parent)
    except Exception as err:  # not a hub id, no network, no access: all "no shape"
        raise ReftError(f"config.model.source={source!r}: no local config.json, not in the "
                        f"built-in table ({', '.join(BUILT_IN)}), and its config.json could not be "
                        f"fetched from the hub ({type(err).__name__})") from None
