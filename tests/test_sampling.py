"""The sampler against transformers' greedy generate, a full forward pass and hand-made logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reft_jax.errors import ReftError
from reft_jax.sampling import (OUT_MAJOR_MIN_ROWS, Sampler, SamplingSettings, bucket_length,
                               filter_logits)
from tests.tiny_hf import EOS, PAD, save_tiny


def test_top_k_keeps_exactly_the_k_largest():
    logits = jnp.array([[1.0, 5.0, 3.0, 4.0, 2.0]])
    out = np.asarray(filter_logits(logits, top_k=2, top_p=1.0))
    np.testing.assert_array_equal(np.isfinite(out), [[False, True, False, True, False]])
    np.testing.assert_array_equal(out[np.isfinite(out)], [5.0, 4.0])


def test_top_p_keeps_the_smallest_nucleus():
    probs = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
    logits = jnp.asarray(np.log(probs))[None]
    # mass before each token: 0, .5, .7, .85, .95 -> top_p=0.7 keeps the first two
    kept = np.isfinite(np.asarray(filter_logits(logits, top_k=0, top_p=0.7)))
    np.testing.assert_array_equal(kept, [[True, True, False, False, False]])
    kept = np.isfinite(np.asarray(filter_logits(logits, top_k=0, top_p=0.71)))
    np.testing.assert_array_equal(kept, [[True, True, True, False, False]])
    kept = np.isfinite(np.asarray(filter_logits(logits, top_k=0, top_p=0.01)))
    np.testing.assert_array_equal(kept, [[True, False, False, False, False]])


def test_off_values_change_nothing():
    logits = jax.random.normal(jax.random.key(0), (3, 11))
    np.testing.assert_array_equal(np.asarray(filter_logits(logits, 0, 1.0)), np.asarray(logits))


def test_bucket_lengths():
    assert [bucket_length(n, 32) for n in (1, 3, 17, 32, 33, 64, 65)] == [1, 4, 32, 32, 64, 64, 96]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from reft_jax.models import load_pretrained

    folder = tmp_path_factory.mktemp("tiny_llama")
    ref = save_tiny(folder, "llama")
    model, _ = load_pretrained(folder)
    return model, ref


PROMPTS = [[5, 17, 30, 8, 9, 44, 12], [61, 7], [33, 34, 35, 36]]


@pytest.mark.parametrize("samples", [2, OUT_MAJOR_MIN_ROWS // len(PROMPTS) + 1])
def test_logprobs_equal_a_full_forward_pass(tiny, samples):
    """Also with enough rows for the CPU decode's output-major kernels."""
    model, _ = tiny
    out = Sampler(EOS, PAD)(model, PROMPTS, jax.random.key(3),
                            SamplingSettings(max_new_tokens=12, temperature=1.0, num_samples=samples))
    rows = len(PROMPTS) * samples
    assert out.tokens.shape == (rows, 12)
    for row in range(rows):
        prompt = PROMPTS[row // samples]
        n = int(out.lengths[row])
        assert n > 0 and out.mask[row, :n].all() and not out.mask[row, n:].any()
        seq = np.asarray(prompt + out.tokens[row, :n].tolist())[None]
        logp = jax.nn.log_softmax(model(jnp.asarray(seq)), axis=-1)[0]
        expected = [float(logp[len(prompt) - 1 + t, seq[0, len(prompt) + t]]) for t in range(n)]
        np.testing.assert_allclose(out.logprobs[row, :n], expected, atol=1e-4)
        assert (out.logprobs[row, n:] == 0).all()


def test_fixed_key_reproduces_and_samples_differ(tiny):
    model, _ = tiny
    sampler, settings = Sampler(EOS, PAD), SamplingSettings(max_new_tokens=10, num_samples=3)
    a = sampler(model, PROMPTS, jax.random.key(7), settings)
    b = sampler(model, PROMPTS, jax.random.key(7), settings)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert not np.array_equal(a.tokens[0], a.tokens[1]), "samples of one prompt should differ"


def test_temperature_zero_is_greedy_and_stops_at_eos(tiny):
    model, _ = tiny
    out = Sampler(EOS, PAD)(model, PROMPTS[:1], jax.random.key(0),
                            SamplingSettings(max_new_tokens=8, temperature=0.0))
    seq = list(PROMPTS[0])
    for t in range(int(out.lengths[0])):
        nxt = int(np.argmax(np.asarray(model(jnp.asarray([seq])))[0, -1]))
        assert nxt == out.tokens[0, t]
        seq.append(nxt)
        if nxt == EOS:
            break


def test_eos_ends_a_row_and_the_length_limit_holds(tiny):
    model, _ = tiny
    # Forcing EOS as a likely token: sample many rows, every row must end at its first EOS.
    out = Sampler(EOS, PAD, max_length=12)(model, PROMPTS, jax.random.key(1),
                                           SamplingSettings(max_new_tokens=10, num_samples=8))
    for row in range(out.tokens.shape[0]):
        n = int(out.lengths[row])
        toks = out.tokens[row, :n].tolist()
        assert EOS not in toks[:-1]
        assert n <= 12 - len(PROMPTS[row // 8])  # prompt + response within max_length
        assert toks[-1] == EOS or n == min(10, 12 - len(PROMPTS[row // 8]))


def test_bad_input_is_a_clear_error(tiny):
    model, _ = tiny
    sampler = Sampler(EOS, PAD, max_length=16)
    settings = SamplingSettings(max_new_tokens=4)
    with pytest.raises(ReftError, match="empty"):
        sampler(model, [[5, 6], []], jax.random.key(0), settings)
    with pytest.raises(ReftError, match="maximum length 16"):
        sampler(model, [list(range(4, 24))], jax.random.key(0), settings)
    with pytest.raises(ReftError, match="max_new_tokens"):
        SamplingSettings(max_new_tokens=0)
    with pytest.raises(ReftError, match="top_p"):
        SamplingSettings(max_new_tokens=4, top_p=0.0)


@pytest.mark.slow
def test_greedy_matches_transformers_generate_on_smollm(smollm_gguf, gsm8k_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from reft_jax.models import load_pretrained
    from tests.test_models_smollm import gsm8k_prompts

    model, tok = load_pretrained(smollm_gguf)
    ref = AutoModelForCausalLM.from_pretrained(smollm_gguf.parent, gguf_file=smollm_gguf.name,
                                               dtype=torch.float32).eval()
    prompts = [tok(p)["input_ids"] for p in gsm8k_prompts(gsm8k_dir)]
    assert len({len(p) for p in prompts}) > 1
    out = Sampler(tok.eos_token_id, tok.pad_token_id)(
        model, prompts, jax.random.key(0), SamplingSettings(max_new_tokens=64, temperature=0.0))
    enc = tok.pad([{"input_ids": p} for p in prompts], return_tensors="pt")
    with torch.no_grad():
        gen = ref.generate(**enc, max_new_tokens=64, do_sample=False,
                           pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    theirs = gen[:, enc["input_ids"].shape[1]:].numpy()
    for row in range(len(prompts)):
        n = int(out.lengths[row])
        np.testing.assert_array_equal(out.tokens[row, :n], theirs[row, :n])
        if n < 64:  # we stopped at EOS; transformers pads after it
            assert theirs[row, n - 1] == tok.eos_token_id


def test_draws_follow_the_filtered_distribution():
    from reft_jax.sampling import choose_tokens

    probs = np.array([0.5, 0.3, 0.15, 0.05, 0.0])
    logits = jnp.asarray(np.log(np.maximum(probs, 1e-30)))[None].repeat(20000, axis=0)
    draws = np.asarray(choose_tokens(logits, jax.random.key(0), SamplingSettings(max_new_tokens=1)))
    np.testing.assert_allclose(np.bincount(draws, minlength=5) / len(draws), probs, atol=0.015)
    top2 = np.asarray(choose_tokens(logits, jax.random.key(1), SamplingSettings(max_new_tokens=1, top_k=2)))
    np.testing.assert_allclose(np.bincount(top2, minlength=5) / len(top2), [0.625, 0.375, 0, 0, 0],
                               atol=0.015)
    hot = np.asarray(choose_tokens(logits, jax.random.key(2),
                                   SamplingSettings(max_new_tokens=1, temperature=0.5)))
    sharpened = probs ** 2 / np.sum(probs ** 2)
    np.testing.assert_allclose(np.bincount(hot, minlength=5) / len(hot), sharpened, atol=0.015)


def test_draws_cross_blocks_and_never_pick_zero_probability_tokens():
    from reft_jax.sampling import sample_inverse_cdf

    vocab = 1000  # blocks of 256: the mass sits at block edges and in the padded last block
    probs = np.zeros(vocab)
    support = [3, 255, 256, 600, 999]
    probs[support] = [0.1, 0.2, 0.3, 0.15, 0.25]
    with np.errstate(divide="ignore"):
        logits = jnp.asarray(np.log(probs), jnp.float32)[None].repeat(40000, axis=0)
    draws = np.asarray(sample_inverse_cdf(logits, jax.random.key(3)))
    assert set(np.unique(draws)) <= set(support)
    np.testing.assert_allclose(np.bincount(draws, minlength=vocab)[support] / len(draws),
                               probs[support], atol=0.01)


def test_token_logprobs_match_a_numpy_log_softmax():
    from reft_jax.sampling import token_logprobs

    logits = np.random.default_rng(0).normal(size=(4, 300)).astype(np.float32) * 5
    tokens = np.array([0, 17, 299, 150])
    shifted = logits - logits.max(-1, keepdims=True)
    expected = (shifted - np.log(np.exp(shifted).sum(-1, keepdims=True)))[np.arange(4), tokens]
    got = np.asarray(token_logprobs(jnp.asarray(logits), jnp.asarray(tokens)))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_calls_of_other_shapes_give_the_same_samples(tiny):
    """The sampler reuses the last call's cache buffer: a call of another shape in between,
    which replaces it, must not change what the next call returns."""
    model, _ = tiny
    settings = SamplingSettings(max_new_tokens=6, temperature=0.0)
    sampler = Sampler(EOS, PAD)
    first = sampler(model, PROMPTS, jax.random.key(0), settings)
    sampler(model, PROMPTS[:1], jax.random.key(0), SamplingSettings(max_new_tokens=9))
    again = sampler(model, PROMPTS, jax.random.key(0), settings)
    fresh = Sampler(EOS, PAD)(model, PROMPTS, jax.random.key(0), settings)
    np.testing.assert_array_equal(again.tokens, first.tokens)
    np.testing.assert_array_equal(again.tokens, fresh.tokens)
    np.testing.assert_allclose(again.logprobs, fresh.logprobs, atol=1e-6)
