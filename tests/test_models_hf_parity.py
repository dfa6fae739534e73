"""Our decoder against transformers (PyTorch) on tiny random checkpoints of each family."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from reft_jax.models import load_pretrained, save_pretrained
from tests.tiny_hf import left_padded_batch, save_tiny, torch_logits

FAMILIES = {
    "llama": dict(),
    "llama3_rope_tied": dict(
        tie_word_embeddings=True, head_dim=16,
        rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0,
                             low_freq_factor=1.0, high_freq_factor=4.0,
                             original_max_position_embeddings=8)),
    "llama_biases": dict(attention_bias=True, mlp_bias=True,
                         rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=2.0)),
    "qwen2": dict(tie_word_embeddings=True),
    "mistral_window": dict(sliding_window=4),
    "opt": dict(),
    "opt_gelu": dict(activation_function="gelu", tie_word_embeddings=False),
}


def family_of(name: str) -> str:
    return name.split("_")[0].replace("llama3", "llama")


@pytest.mark.parametrize("name", list(FAMILIES))
def test_logits_match_transformers_with_left_padding(tmp_path, name):
    ref = save_tiny(tmp_path, family_of(name), **FAMILIES[name])
    model, tok = load_pretrained(tmp_path)
    ids, mask = left_padded_batch()
    ours = np.asarray(model(jnp.asarray(ids), jnp.asarray(mask)))
    theirs = torch_logits(ref, ids, mask)
    valid = mask.astype(bool)
    assert ours.shape == (*ids.shape, ref.config.vocab_size)
    np.testing.assert_array_less(np.abs(ours - theirs)[valid].max(), 1e-4)
    assert tok.pad_token_id == ref.config.pad_token_id and tok.padding_side == "left"


@pytest.mark.parametrize("name", ["llama", "opt"])
def test_left_padding_does_not_change_a_row(tmp_path, name):
    save_tiny(tmp_path, family_of(name))
    model, _ = load_pretrained(tmp_path)
    ids, mask = left_padded_batch(lengths=(8, 5))
    padded = np.asarray(model(jnp.asarray(ids), jnp.asarray(mask)))[1, 3:]
    alone = np.asarray(model(jnp.asarray(ids[1:, 3:])))[0]
    np.testing.assert_allclose(padded, alone, atol=1e-5)


@pytest.mark.parametrize("name", ["llama3_rope_tied", "qwen2", "opt"])
def test_save_pretrained_round_trips_through_transformers(tmp_path, name):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    save_tiny(tmp_path / "src", family_of(name), **FAMILIES[name])
    model, tok = load_pretrained(tmp_path / "src")
    # A small shard limit forces the sharded layout with an index file.
    save_pretrained(model, tok, tmp_path / "out", max_shard_bytes=20_000)
    assert (tmp_path / "out" / "model.safetensors.index.json").exists()
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "out", dtype=torch.float32).eval()
    ids, mask = left_padded_batch(seed=3)
    ours = np.asarray(model(jnp.asarray(ids), jnp.asarray(mask)))
    valid = mask.astype(bool)
    np.testing.assert_array_less(np.abs(torch_logits(back, ids, mask) - ours)[valid].max(), 1e-4)
    assert AutoTokenizer.from_pretrained(tmp_path / "out").eos_token_id == tok.eos_token_id
    reloaded, _ = load_pretrained(tmp_path / "out")
    np.testing.assert_array_equal(np.asarray(reloaded(jnp.asarray(ids), jnp.asarray(mask))), ours)


def test_bfloat16_compute_stays_close(tmp_path):
    ref = save_tiny(tmp_path, "llama")
    model, _ = load_pretrained(tmp_path, dtype="bfloat16")
    assert model.trunk.embed[...].dtype == jnp.bfloat16
    ids, mask = left_padded_batch()
    ours = np.asarray(model(jnp.asarray(ids), jnp.asarray(mask)))
    assert ours.dtype == np.float32
    valid = mask.astype(bool)
    assert np.abs(ours - torch_logits(ref, ids, mask))[valid].max() < 0.1
