"""The sampler against transformers' greedy generate, a full forward pass and hand-made logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reft_jax.errors import ReftError
from reft_jax.sampling import (OUT_MAJOR_MIN_ROWS, Sampler, SamplingSettings, bucket_length,
                               filter_logits)
from tests.tiny_hf import EOS, PAD, VOCAB, hf_config, save_tiny, tiny_tokenizer


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


def test_top_k_keeps_every_token_tied_with_the_kth():
    """As transformers' TopKLogitsWarper does: a tie at the k-th value keeps all the tied."""
    import torch
    from transformers.generation.logits_process import TopKLogitsWarper

    logits = np.array([[1.0, 3.0, 3.0, 3.0, 0.0, 2.0], [4.0, 4.0, 4.0, 4.0, 4.0, 4.0]], np.float32)
    for k in (1, 2, 3, 4):
        ours = np.isfinite(np.asarray(filter_logits(jnp.asarray(logits), top_k=k, top_p=1.0)))
        theirs = np.isfinite(TopKLogitsWarper(k)(None, torch.tensor(logits)).numpy())
        np.testing.assert_array_equal(ours, theirs)
    kept = np.isfinite(np.asarray(filter_logits(jnp.asarray(logits), top_k=2, top_p=1.0)))
    np.testing.assert_array_equal(kept, [[False, True, True, True, False, False], [True] * 6])


def test_top_k_then_top_p_by_hand_and_against_transformers():
    import torch
    from transformers.generation.logits_process import (TemperatureLogitsWarper, TopKLogitsWarper,
                                                        TopPLogitsWarper)

    probs = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
    logits = jnp.asarray(np.log(probs))[None]
    # top-p 0.55 alone keeps two (mass above: 0, .5, .7, ..); after top-k 3 the three left are
    # renormalised to .588, .235, .176, so the second has .588 > .55 above it: one is kept
    kept = lambda k, p: np.isfinite(np.asarray(filter_logits(logits, top_k=k, top_p=p)))[0].tolist()
    assert kept(0, 0.55) == [True, True, False, False, False]
    assert kept(3, 0.55) == [True, False, False, False, False]
    assert kept(3, 0.9) == [True, True, True, False, False]
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(64, 50)).astype(np.float32) * 2
    for temperature, k, p in [(1.0, 10, 0.8), (0.7, 20, 0.5), (1.3, 5, 0.95), (1.0, 0, 0.3)]:
        scaled = rows / temperature
        ours = np.isfinite(np.asarray(filter_logits(jnp.asarray(scaled), top_k=k, top_p=p)))
        theirs = TemperatureLogitsWarper(temperature)(None, torch.tensor(rows))
        if k:
            theirs = TopKLogitsWarper(k)(None, theirs)
        theirs = np.isfinite(TopPLogitsWarper(p)(None, theirs).numpy())
        np.testing.assert_array_equal(ours, theirs)


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


WIDTH = 32  # oracle forward passes run right-padded to this width: one compile for all of them


@jax.jit
def _log_softmax_forward(model, ids, mask):
    return jax.nn.log_softmax(model(ids, mask), axis=-1)


def full_log_probs(model, seqs) -> np.ndarray:
    """(rows, WIDTH, vocab) log-softmax of a plain forward pass over each whole sequence (causal:
    the padding on the right changes nothing before it)."""
    ids = np.full((len(seqs), WIDTH), PAD, np.int32)
    mask = np.zeros_like(ids)
    for row, seq in enumerate(seqs):
        ids[row, :len(seq)], mask[row, :len(seq)] = seq, 1
    return np.asarray(_log_softmax_forward(model, jnp.asarray(ids), jnp.asarray(mask)))


def allowed_tokens(log_probs: np.ndarray, temperature: float, top_k: int, top_p: float) -> set:
    """The tokens top-k then top-p keep at this temperature, in numpy (the documented rule: the
    nucleus keeps a token when the mass strictly above it is below top_p)."""
    scaled = log_probs.astype(np.float64) / max(temperature, 1e-9)
    keep = np.ones_like(scaled, bool)
    if top_k:
        keep &= scaled >= np.sort(scaled)[-top_k]
    if top_p < 1.0:
        probs = np.where(keep, np.exp(scaled - scaled.max()), 0.0)
        probs /= probs.sum()
        order = np.argsort(-probs, kind="stable")
        above = np.concatenate([[0.0], np.cumsum(probs[order])[:-1]])
        nucleus = np.zeros_like(keep)
        nucleus[order[above < top_p]] = True
        keep &= nucleus
    return set(np.flatnonzero(keep).tolist())


def check_against_forward(model, out, prompts, samples, temperature=1.0, top_k=0, top_p=1.0):
    """Log-probs are the plain temperature-1 ones, every token one the settings allow."""
    seqs, rows = [], range(out.tokens.shape[0])
    for row in rows:
        n = int(out.lengths[row])
        assert n > 0 and out.mask[row, :n].all() and not out.mask[row, n:].any()
        assert (out.logprobs[row, n:] == 0).all()
        seqs.append(list(prompts[row // samples]) + out.tokens[row, :n].tolist())
    logp = full_log_probs(model, seqs)
    for row in rows:
        start, n = len(prompts[row // samples]), int(out.lengths[row])
        steps = [logp[row, start - 1 + t] for t in range(n)]
        tokens = out.tokens[row, :n]
        np.testing.assert_allclose(out.logprobs[row, :n], [lp[tok] for lp, tok in zip(steps, tokens)],
                                   atol=1e-4)
        for lp, tok in zip(steps, tokens):
            assert int(tok) in allowed_tokens(lp, temperature, top_k, top_p)


@pytest.mark.parametrize("samples", [2, OUT_MAJOR_MIN_ROWS // len(PROMPTS) + 1])
def test_logprobs_equal_a_full_forward_pass(tiny, samples):
    """Also with enough rows for the CPU decode's output-major kernels."""
    model, _ = tiny
    out = Sampler(EOS, PAD)(model, PROMPTS, jax.random.key(3),
                            SamplingSettings(max_new_tokens=12, temperature=1.0, num_samples=samples))
    assert out.tokens.shape == (len(PROMPTS) * samples, 12)
    check_against_forward(model, out, PROMPTS, samples)


@pytest.mark.slow
@pytest.mark.parametrize("temperature, top_k, top_p", [(0.6, 0, 1.0), (1.0, 0, 0.5), (1.5, 6, 0.7)])
def test_logprobs_stay_the_temperature_one_unfiltered_ones(tiny, temperature, top_k, top_p):
    """Sampling with temperature, top-k and top-p changes which tokens are drawn, never the
    log-probs reported for them (PPO's old log-probs are the model's own)."""
    model, _ = tiny
    samples = 4
    settings = SamplingSettings(max_new_tokens=10, temperature=temperature, top_k=top_k,
                                top_p=top_p, num_samples=samples)
    out = Sampler(EOS, PAD)(model, PROMPTS, jax.random.key(11), settings)
    check_against_forward(model, out, PROMPTS, samples, temperature, top_k, top_p)
    if top_k or top_p < 1.0:  # the filter really acted: some reported log-prob is not the max
        assert (out.logprobs[out.mask > 0] < -1e-3).any()


def test_fixed_key_reproduces_and_samples_differ(tiny):
    model, _ = tiny
    sampler, settings = Sampler(EOS, PAD), SamplingSettings(max_new_tokens=10, num_samples=3)
    a = sampler(model, PROMPTS, jax.random.key(7), settings)
    b = sampler(model, PROMPTS, jax.random.key(7), settings)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert not np.array_equal(a.tokens[0], a.tokens[1]), "samples of one prompt should differ"


def test_a_placed_model_compiles_once_across_calls(tiny):
    """An RL run samples from parameters placed on a (one-device) mesh and donates the KV cache
    back each call: the second call must reuse the first call's program (it used to recompile,
    12 s for SmolLM2 on CPU, because the first cache was placed otherwise than the returned one)."""
    from flax import nnx

    from reft_jax.parallel import make_mesh, param_shardings
    from reft_jax.sampling.sampler import _generate_jit

    model, _ = tiny
    graphdef, state = nnx.split(model)
    placed = jax.device_put(nnx.to_pure_dict(state), param_shardings(model, make_mesh(1, 1, 1)))
    nnx.replace_by_pure_dict(state, placed)
    model = nnx.merge(graphdef, state)
    sampler, settings = Sampler(EOS, PAD), SamplingSettings(max_new_tokens=9, num_samples=2)
    first = sampler(model, PROMPTS, jax.random.key(1), settings)
    compiled = _generate_jit._cache_size()
    for key in (2, 3):
        again = sampler(model, PROMPTS, jax.random.key(key), settings)
    assert _generate_jit._cache_size() == compiled
    assert again.tokens.shape == first.tokens.shape


def test_temperature_zero_is_greedy_and_stops_at_eos(tiny):
    """Greedy rows against a greedy loop over full forward passes: tokens, lengths, masks and
    padding, for rows that meet EOS and rows that run to max_new_tokens."""
    model, _ = tiny
    steps = 8
    out = Sampler(EOS, PAD)(model, PROMPTS, jax.random.key(0),
                            SamplingSettings(max_new_tokens=steps, temperature=0.0))
    seqs, expected = [list(p) for p in PROMPTS], [[] for _ in PROMPTS]
    for _ in range(steps):
        logp = full_log_probs(model, seqs)
        for row, seq in enumerate(seqs):
            if expected[row] and expected[row][-1] == EOS:
                continue
            nxt = int(np.argmax(logp[row, len(seq) - 1]))
            expected[row].append(nxt)
            seq.append(nxt)
    for row, want in enumerate(expected):
        n = len(want)
        assert int(out.lengths[row]) == n
        assert out.tokens[row, :n].tolist() == want
        assert (out.tokens[row, n:] == PAD).all() and (out.logprobs[row, n:] == 0).all()
        np.testing.assert_array_equal(out.mask[row], [1] * n + [0] * (steps - n))
    assert {len(w) for w in expected} != {steps} or EOS not in sum(expected, [])


# A model whose next token is certain and depends only on the current one: one-hot embeddings,
# attention and MLP outputs zeroed, and a head that maps token t to NEXT[t] with logit BIG (every
# other logit 0). Tokens 4..20 count up to 20, whose successor is EOS; EOS is followed by 60;
# from 21 up they count on and never reach EOS.
BIG = 40.0
NEXT = {t: t + 1 for t in range(VOCAB)}
NEXT.update({20: EOS, EOS: 60, VOCAB - 1: 21, PAD: 4, 1: 4, 3: 4})
CERTAIN_LOGP = -np.log1p((VOCAB - 1) * np.exp(-BIG))  # by hand: about -4e-16


@pytest.fixture(scope="module")
def counter(tmp_path_factory):
    import torch
    from transformers import AutoModelForCausalLM

    from reft_jax.models import load_pretrained

    folder = tmp_path_factory.mktemp("counter")
    hidden = 128
    cfg = hf_config("llama", hidden_size=hidden, num_attention_heads=4, num_key_value_heads=2,
                    num_hidden_layers=2, max_position_embeddings=64)
    ref = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval()
    with torch.no_grad():
        ref.model.embed_tokens.weight.copy_(torch.eye(VOCAB, hidden))
        for layer in ref.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        head = torch.zeros(VOCAB, hidden)
        for t, u in NEXT.items():
            head[u, t] = BIG / hidden ** 0.5  # the final RMSNorm scales a one-hot row by sqrt(H)
        ref.lm_head.weight.copy_(head)
    ref.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    model, _ = load_pretrained(folder)
    return model


def chain(last: int, steps: int, stop_at_eos: bool = True) -> list[int]:
    out = []
    while len(out) < steps:
        last = NEXT[last]
        out.append(last)
        if last == EOS and stop_at_eos:
            break
    return out


def assert_rows(out, expected, steps):
    """Each row: its tokens, then padding; mask 1 exactly on them; log-probs certain, then 0."""
    assert out.tokens.shape == (len(expected), steps)
    for row, want in enumerate(expected):
        n = len(want)
        assert int(out.lengths[row]) == n, (row, out.tokens[row])
        assert out.tokens[row].tolist() == want + [PAD] * (steps - n)
        np.testing.assert_array_equal(out.mask[row], [1] * n + [0] * (steps - n))
        np.testing.assert_allclose(out.logprobs[row, :n], CERTAIN_LOGP, atol=1e-5)
        assert (out.logprobs[row, n:] == 0).all()


COUNTER_PROMPTS = [[5, 17], [9, 20], [3, 30], [12], [40, 41, 42, 43, 19]]


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, 0, 1.0), (0.0, 0, 1.0), (0.7, 3, 0.9)])
def test_eos_at_a_known_step_ends_the_row(counter, temperature, top_k, top_p):
    steps, samples = 8, 2
    settings = SamplingSettings(max_new_tokens=steps, temperature=temperature, top_k=top_k,
                                top_p=top_p, num_samples=samples)
    out = Sampler(EOS, PAD)(counter, COUNTER_PROMPTS, jax.random.key(5), settings)
    # by hand: 17 -> 18 19 20 EOS; 20 -> EOS; 30 -> 31..38; 12 -> 13..20 (EOS would be the 9th)
    expected = [[18, 19, 20, EOS], [EOS], list(range(31, 39)), list(range(13, 21)), [20, EOS]]
    assert [chain(p[-1], steps) for p in COUNTER_PROMPTS] == expected
    assert_rows(out, [e for e in expected for _ in range(samples)], steps)


def test_the_length_limit_ends_a_row_before_eos(counter):
    # max_length 6: a 2-token prompt has room for 4 new tokens, a 5-token prompt for 1
    out = Sampler(EOS, PAD, max_length=6)(counter, [[5, 15], [12], [40, 41, 42, 43, 19]],
                                           jax.random.key(0), SamplingSettings(max_new_tokens=8))
    assert_rows(out, [[16, 17, 18, 19], [13, 14, 15, 16, 17], [20]], 8)


def test_stop_at_eos_false_runs_on_past_eos(counter):
    settings = SamplingSettings(max_new_tokens=6, stop_at_eos=False)
    out = Sampler(EOS, PAD)(counter, [[5, 18], [9, 20]], jax.random.key(0), settings)
    expected = [[19, 20, EOS, 60, 61, 62], [EOS, 60, 61, 62, 63, 64]]
    assert [chain(18, 6, False), chain(20, 6, False)] == expected
    assert_rows(out, expected, 6)


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


@pytest.mark.slow
def test_mistral_sliding_window_holds_while_decoding(tmp_path):
    """Decoding past a 4-token window: log-probs and greedy tokens as transformers' full forward
    pass with the window gives them, and not as it gives them without the window."""
    import torch

    from reft_jax.models import load_pretrained

    ref = save_tiny(tmp_path, "mistral", sliding_window=4)
    model, _ = load_pretrained(tmp_path)
    assert model.config.sliding_window == 4
    prompts = [[5, 17, 30, 8, 9, 44], [61, 7, 3]]
    sampler = Sampler(EOS, PAD)
    sampled = sampler(model, prompts, jax.random.key(2),
                      SamplingSettings(max_new_tokens=10, num_samples=2, stop_at_eos=False))
    greedy = sampler(model, prompts, jax.random.key(0),
                     SamplingSettings(max_new_tokens=10, temperature=0.0, stop_at_eos=False))

    def torch_log_probs(seq):
        with torch.no_grad():
            logits = ref(input_ids=torch.tensor([seq])).logits[0].double()
        return torch.log_softmax(logits, -1).numpy()

    window_mattered = False
    for out, samples in ((sampled, 2), (greedy, 1)):
        for row in range(out.tokens.shape[0]):
            prompt = prompts[row // samples]
            response = out.tokens[row].tolist()
            assert int(out.lengths[row]) == 10
            logp = torch_log_probs(prompt + response)
            steps = logp[len(prompt) - 1:-1]
            np.testing.assert_allclose(out.logprobs[row], steps[np.arange(10), response], atol=1e-4)
            if samples == 1:
                assert response == steps.argmax(-1).tolist()
            ref.config.sliding_window = None  # the same weights attending to everything
            unwindowed = torch_log_probs(prompt + response)[len(prompt) - 1:-1]
            ref.config.sliding_window = 4
            gap = np.abs(unwindowed[np.arange(10), response] - out.logprobs[row]).max()
            window_mattered |= gap > 1e-2
    assert window_mattered, "the test should see a difference the window makes"


@pytest.mark.slow
def test_a_bfloat16_cache_keeps_the_log_probs_close(tiny):
    """Log-probs of the sampled tokens under a bfloat16 cache against a float32 forward pass."""
    model, _ = tiny
    sampler = Sampler(EOS, PAD, cache_dtype=jnp.bfloat16)
    out = sampler(model, PROMPTS, jax.random.key(4),
                  SamplingSettings(max_new_tokens=10, num_samples=2))
    assert sampler._cache.k[0].dtype == jnp.bfloat16
    seqs = [PROMPTS[row // 2] + out.tokens[row, :int(out.lengths[row])].tolist()
            for row in range(out.tokens.shape[0])]
    logp = full_log_probs(model, seqs)
    errors = []
    for row, seq in enumerate(seqs):
        start, n = len(PROMPTS[row // 2]), int(out.lengths[row])
        want = [logp[row, start - 1 + t, seq[start + t]] for t in range(n)]
        errors.append(np.abs(out.logprobs[row, :n] - want).max())
        assert out.mask[row, :n].all() and not out.mask[row, n:].any()
    # keys and values rounded to bfloat16 (8 bits of mantissa) move this model's log-probs by
    # about 1e-4 (measured); a cache read wrongly moves them by whole units
    assert max(errors) < 2e-3
