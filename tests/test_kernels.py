"""The hand-written CPU decode attention against numpy, and what happens when it cannot build."""

from __future__ import annotations

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reft_jax import kernels
from reft_jax.kernels import build
from reft_jax.models import layers
from tests.test_models_attention import heads_major, numpy_attention


@pytest.fixture
def kernel():
    if shutil.which("g++") is None:
        pytest.skip("no C++ compiler (g++) on this machine: the kernel cannot be built")
    if jax.default_backend() != "cpu":
        pytest.skip("the kernel is for XLA's CPU backend")
    assert kernels._register_decode_attention(), "g++ is here, so the kernel must build"
    return kernels.decode_attention_kernel


def spans_and_holes(rng, batch, slots):
    """Per row: a random span of valid slots (left padding, unwritten slots after it), with
    a few holes inside; one row sees a single slot and one row sees all of them."""
    mask = np.zeros((batch, slots), bool)
    for row in range(batch):
        lo = rng.integers(0, slots - 1)
        hi = rng.integers(lo + 1, slots + 1)
        mask[row, lo:hi] = rng.random(hi - lo) < 0.9
        mask[row, hi - 1] = True  # the slot being written is always valid
    mask[0] = False
    mask[0, slots // 2] = True
    mask[-1] = True
    return mask


@pytest.mark.parametrize("kv_heads, groups, dim", [(3, 3, 64), (2, 7, 64), (4, 1, 128), (1, 4, 128)])
def test_decode_kernel_matches_numpy(kernel, kv_heads, groups, dim):
    rng = np.random.default_rng(kv_heads * 100 + groups)
    batch, slots = 5, 41
    heads = kv_heads * groups
    q = rng.normal(size=(batch, 1, heads, dim)).astype(np.float32)
    k = rng.normal(size=(batch, slots, kv_heads, dim)).astype(np.float32)
    v = rng.normal(size=(batch, slots, kv_heads, dim)).astype(np.float32)
    mask = spans_and_holes(rng, batch, slots)
    expected = numpy_attention(q, k, v, mask[:, None])
    qg = jnp.asarray(q.reshape(batch, kv_heads, groups, dim) / np.sqrt(dim))
    got = jax.jit(kernel)(qg, heads_major(k), heads_major(v), jnp.asarray(mask))
    np.testing.assert_allclose(np.asarray(got).reshape(batch, 1, heads, dim), expected, atol=2e-5)
    # decode_attention takes the kernel here, and gives the same as its XLA formulation.
    assert layers.decode_attention_supported(heads_major(k))
    through_layer = layers.decode_attention(jnp.asarray(q), heads_major(k), heads_major(v),
                                            jnp.asarray(mask[:, None]))
    np.testing.assert_allclose(np.asarray(through_layer), expected, atol=2e-5)


def test_decode_kernel_rejects_mismatched_shapes(kernel):
    q = jnp.zeros((2, 3, 3, 64))
    k = jnp.zeros((2, 3, 10, 64))
    with pytest.raises(Exception, match="expected q \\(B,K,G,D\\), k and v \\(B,K,S,D\\)"):
        jax.jit(kernel)(q, k, k, jnp.ones((2, 9), bool)).block_until_ready()


def test_unsupported_inputs_fall_back_to_xla():
    assert not kernels.decode_attention_supported(jnp.zeros((1, 2, 5, 32)))  # head_dim 32
    assert not kernels.decode_attention_supported(jnp.zeros((1, 2, 5, 64), jnp.bfloat16))


def test_missing_compiler_is_a_clear_build_error(tmp_path, monkeypatch):
    monkeypatch.setenv("REFT_JAX_KERNEL_CACHE", str(tmp_path))  # nothing cached: must compile
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.raises(build.BuildError, match="cannot run the C\\+\\+ compiler"):
        build.compile_library(build.Path(kernels.__file__).parent / "decode_attention.cc")
    assert list(tmp_path.iterdir()) == []  # no half-written library left behind


def test_compile_error_names_the_command_and_keeps_no_file(tmp_path, monkeypatch):
    if shutil.which("g++") is None:
        pytest.skip("no C++ compiler (g++) on this machine")
    monkeypatch.setenv("REFT_JAX_KERNEL_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "broken.cc"
    source.write_text("this is not C++;\n")
    with pytest.raises(build.BuildError, match="broken.cc"):
        build.compile_library(source)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_failed_build_warns_and_decoding_uses_xla(tmp_path, monkeypatch):
    monkeypatch.setenv("REFT_JAX_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    kernels._register_decode_attention.cache_clear()
    try:
        with pytest.warns(UserWarning, match="decode attention kernel unavailable"):
            assert not kernels.decode_attention_supported(jnp.zeros((1, 1, 4, 64)))
    finally:
        kernels._register_decode_attention.cache_clear()  # later tests build it again


@pytest.mark.slow
def test_switching_the_kernel_off_gives_the_same_tokens_and_log_probs(kernel, tmp_path, monkeypatch):
    """REFT_JAX_CPU_KERNELS=0 decodes with XLA's attention: same greedy and sampled tokens, same
    log-probs (to float rounding) as the kernel path, on a model whose heads the kernel takes."""
    from reft_jax.models import load_pretrained
    from reft_jax.sampling import Sampler, SamplingSettings
    from tests.tiny_hf import EOS, PAD, save_tiny

    save_tiny(tmp_path, "llama", hidden_size=128, num_attention_heads=2, num_key_value_heads=1)
    model, _ = load_pretrained(tmp_path)
    assert model.config.head_dim == 64
    prompts = [[5, 17, 30, 8, 9, 44, 12], [61, 7], [33, 34, 35, 36]]
    settings = [SamplingSettings(max_new_tokens=12, temperature=0.0),
                SamplingSettings(max_new_tokens=12, num_samples=3)]

    def sample_all():
        return [Sampler(EOS, PAD)(model, prompts, jax.random.key(9), s) for s in settings]

    calls = []
    real_kernel = layers.decode_attention_kernel
    monkeypatch.setattr(layers, "decode_attention_kernel",
                        lambda *a: calls.append(1) or real_kernel(*a))
    jax.clear_caches()  # trace again, so the switch is read again
    with_kernel = sample_all()
    assert calls, "the kernel path should have been taken"
    monkeypatch.setenv("REFT_JAX_CPU_KERNELS", "0")
    kernels._register_decode_attention.cache_clear()
    jax.clear_caches()
    try:
        calls.clear()
        without = sample_all()
        assert not calls, "REFT_JAX_CPU_KERNELS=0 should keep the kernel out"
    finally:
        monkeypatch.delenv("REFT_JAX_CPU_KERNELS")
        kernels._register_decode_attention.cache_clear()
        jax.clear_caches()
    for a, b in zip(with_kernel, without):
        np.testing.assert_array_equal(a.tokens, b.tokens)
        np.testing.assert_array_equal(a.mask, b.mask)
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5)
