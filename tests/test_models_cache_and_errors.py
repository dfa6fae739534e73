"""KV-cache decoding equals the full forward; bad model sources give clear errors."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from reft_jax.errors import ReftError
from reft_jax.models import KVCache, load_pretrained, positions_from_mask
from tests.tiny_hf import left_padded_batch, save_tiny


@pytest.mark.parametrize("out_major", [False, True])
@pytest.mark.parametrize("family", ["llama", "opt"])
def test_incremental_decoding_matches_full_forward(tmp_path, family, out_major):
    save_tiny(tmp_path, family)
    model, _ = load_pretrained(tmp_path)
    ids, mask = left_padded_batch(lengths=(10, 6, 3))
    full = np.asarray(model(jnp.asarray(ids), jnp.asarray(mask)))
    prompt = 5  # prefill the first 5 slots (some rows are all padding there), then one at a time
    max_len = ids.shape[1] + 2
    key_mask = np.zeros((ids.shape[0], max_len), np.int32)
    key_mask[:, :prompt] = mask[:, :prompt]
    positions = np.asarray(positions_from_mask(jnp.asarray(mask)))
    out = model.forward(jnp.asarray(ids[:, :prompt]), positions=jnp.asarray(positions[:, :prompt]),
                        cache=KVCache.zeros(model.config, ids.shape[0], max_len),
                        cache_index=0, key_mask=jnp.asarray(key_mask))
    steps, cache = [np.asarray(out.logits)], out.cache
    blocks = model.trunk.layer_blocks(out_major=out_major)  # how the sampler's loop decodes
    for t in range(prompt, ids.shape[1]):
        key_mask[:, t] = mask[:, t]
        out = model.forward(jnp.asarray(ids[:, t:t + 1]), positions=jnp.asarray(positions[:, t:t + 1]),
                            cache=cache, cache_index=t, key_mask=jnp.asarray(key_mask), blocks=blocks)
        steps.append(np.asarray(out.logits))
        cache = out.cache
    incremental = np.concatenate(steps, axis=1)
    valid = mask.astype(bool)
    assert np.abs(incremental - full)[valid].max() <= 1e-4


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(ReftError, match="does not exist"):
        load_pretrained(tmp_path / "nowhere")


def test_folder_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(ReftError, match="no config.json"):
        load_pretrained(tmp_path)


def test_unsupported_architecture_names_the_supported_ones(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "bert", "architectures": ["BertForMaskedLM"], "vocab_size": 10,
        "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 16}))
    with pytest.raises(ReftError, match="'bert' is not supported.*llama.*qwen2.*opt"):
        load_pretrained(tmp_path)


def test_non_gguf_file_is_rejected(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\0" * 8)
    with pytest.raises(ReftError, match=".gguf"):
        load_pretrained(path)


def test_folder_without_safetensors_is_a_clear_error(tmp_path):
    from tests.tiny_hf import hf_config

    hf_config("llama").save_pretrained(tmp_path)
    with pytest.raises(ReftError, match="no \\*.safetensors"):
        load_pretrained(tmp_path)
