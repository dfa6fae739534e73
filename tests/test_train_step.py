"""The SFT step against independent oracles: numpy cross entropy, hand-computed schedules,
one big batch versus accumulated micro-batches, and transformers + torch AdamW."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reft_jax.models import load_pretrained
from reft_jax.train.sft_step import make_sft_step, sft_loss_terms
from reft_jax.train.state import create_train_state, make_optimizer, make_schedule, merge_model
from tests.tiny_hf import PAD, VOCAB, save_tiny, torch_logits


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(folder, torch model) of a tiny random Llama."""
    folder = tmp_path_factory.mktemp("tiny_llama")
    return folder, save_tiny(folder, "llama")


def constant_adamw(lr, weight_decay=0.0, clip=1.0):
    return make_optimizer(lr, 100, 0.0, weight_decay, 1e-8, clip, schedule="constant")[0]


def sft_batch(rows, width, left=()):
    """Rows of (prompt, target) id lists, right-padded (left-padded for row indices in `left`);
    loss_mask marks the target tokens."""
    ids = np.full((len(rows), width), PAD, np.int32)
    attention = np.zeros_like(ids)
    loss = np.zeros_like(ids)
    for r, (prompt, target) in enumerate(rows):
        n = len(prompt) + len(target)
        start = width - n if r in left else 0
        ids[r, start:start + n] = prompt + target
        attention[r, start:start + n] = 1
        loss[r, start + len(prompt):start + n] = 1
    return {"input_ids": ids, "attention_mask": attention, "loss_mask": loss}


def random_rows(seed, shapes):
    rng = np.random.default_rng(seed)
    return [(list(rng.integers(4, VOCAB, p)), list(rng.integers(4, VOCAB, t))) for p, t in shapes]


def stack(*batches):
    """Micro-batches on a leading accumulation axis."""
    return {k: np.stack([b[k] for b in batches]) for k in batches[0]}


def snapshot(state):
    return jax.tree.map(lambda a: np.array(a, copy=True), state)


@pytest.mark.parametrize("tied", [False, True])  # the head is the lm_head kernel / the embeddings
def test_loss_terms_match_numpy_cross_entropy_on_targets_only(tmp_path, tied):
    save_tiny(tmp_path, "llama", seed=4, tie_word_embeddings=tied)
    model, _ = load_pretrained(tmp_path)
    assert (model.lm_head is None) == tied
    batch = sft_batch(random_rows(0, [(3, 4), (5, 1), (2, 6)]), 9, left=(1,))
    logits = np.asarray(model(jnp.asarray(batch["input_ids"]), jnp.asarray(batch["attention_mask"])))
    nll, count, _ = sft_loss_terms(model, {k: jnp.asarray(v) for k, v in batch.items()})
    expected, n = 0.0, 0
    for b in range(logits.shape[0]):
        for t in range(1, logits.shape[1]):
            if batch["loss_mask"][b, t]:
                row = logits[b, t - 1].astype(np.float64)
                log_probs = row - row.max() - np.log(np.exp(row - row.max()).sum())
                expected -= log_probs[batch["input_ids"][b, t]]
                n += 1
    assert n == 4 + 1 + 6 and float(count) == n
    np.testing.assert_allclose(float(nll), expected, rtol=1e-5)


def test_linear_and_constant_schedules():
    lr = make_schedule(1e-3, 100, 0.1, "linear")
    for step, expected in [(0, 0.0), (5, 5e-4), (10, 1e-3), (55, 5e-4), (100, 0.0)]:
        np.testing.assert_allclose(float(lr(step)), expected, atol=1e-12)
    const = make_schedule(3e-7, 100, 0.1, "constant")
    for step, expected in [(0, 0.0), (10, 3e-7), (55, 3e-7), (100, 3e-7)]:
        np.testing.assert_allclose(float(const(step)), expected, atol=1e-15)
    np.testing.assert_allclose(float(make_schedule(1e-5, 7, 0.0)(0)), 1e-5)


def test_accumulated_micro_batches_equal_one_batch_with_unequal_targets(tiny):
    model, _ = load_pretrained(tiny[0])
    rows = random_rows(1, [(2, 7), (4, 1), (1, 3), (5, 2)])
    full = sft_batch(rows, 9, left=(2,))
    half = lambda sl: {k: v[sl] for k, v in full.items()}
    results = []
    for accum, batch in [(1, stack(full)), (2, stack(half(slice(0, 2)), half(slice(2, 4))))]:
        optimizer = constant_adamw(1e-4, weight_decay=0.1)
        graphdef, state = create_train_state(model, optimizer)
        state, metrics = make_sft_step(graphdef, optimizer, accum)(state, batch)
        results.append((snapshot(state), jax.device_get(metrics)))
    (one, m1), (two, m2) = results
    assert float(m1["tokens"]) == float(m2["tokens"]) == 7 + 1 + 3 + 2
    np.testing.assert_allclose(m1["loss"], m2["loss"], rtol=1e-6)
    np.testing.assert_allclose(m1["grad_norm"], m2["grad_norm"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(two.params)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_one_step_matches_transformers_and_torch_adamw(tmp_path):
    import torch

    lr, wd = 1e-3, 0.1
    ref = save_tiny(tmp_path, "llama", seed=3).train()
    model, _ = load_pretrained(tmp_path)
    batch = sft_batch(random_rows(2, [(3, 5), (6, 2), (2, 4)]), 8, left=(1,))
    optimizer = constant_adamw(lr, weight_decay=wd)
    graphdef, state = create_train_state(model, optimizer)
    state, metrics = make_sft_step(graphdef, optimizer)(state, stack(batch))

    ids, mask = batch["input_ids"], batch["attention_mask"]
    labels = np.where(batch["loss_mask"] > 0, ids, -100)
    torch_opt = torch.optim.AdamW(ref.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=wd)
    out = ref(input_ids=torch.tensor(ids, dtype=torch.long),
              attention_mask=torch.tensor(mask, dtype=torch.long),
              position_ids=torch.tensor(np.maximum(mask.cumsum(-1) - 1, 0), dtype=torch.long),
              labels=torch.tensor(labels, dtype=torch.long))
    out.loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
    torch_opt.step()
    np.testing.assert_allclose(float(metrics["loss"]), out.loss.item(), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["grad_norm"]), norm.item(), rtol=1e-4)
    assert float(metrics["grad_norm"]) > 1.0, "the clip should act in this test"
    np.testing.assert_allclose(float(metrics["learning_rate"]), lr, rtol=1e-6)

    ids, mask = batch["input_ids"], batch["attention_mask"]
    ours = np.asarray(merge_model(graphdef, state)(jnp.asarray(ids), jnp.asarray(mask)))
    theirs = torch_logits(ref.eval(), ids, mask)
    valid = mask.astype(bool)
    assert np.abs(ours - theirs)[valid].max() <= 1e-4
    assert int(state.step) == 1


def test_tiny_model_overfits_a_few_examples(tiny):
    model, _ = load_pretrained(tiny[0])
    batch = sft_batch(random_rows(4, [(3, 5), (2, 6), (4, 4), (1, 7)]), 8)
    optimizer = constant_adamw(1e-2)
    graphdef, state = create_train_state(model, optimizer)
    step = make_sft_step(graphdef, optimizer)
    for _ in range(100):
        state, metrics = step(state, stack(batch))
    assert float(metrics["loss"]) < 0.05
    logits = merge_model(graphdef, state)(jnp.asarray(batch["input_ids"]),
                                          jnp.asarray(batch["attention_mask"]))
    greedy = np.asarray(jnp.argmax(logits, axis=-1))[:, :-1]
    targets = batch["loss_mask"][:, 1:].astype(bool)
    np.testing.assert_array_equal(greedy[targets], batch["input_ids"][:, 1:][targets])


def test_non_finite_step_returns_the_input_state(tiny):
    model, _ = load_pretrained(tiny[0])
    batch = stack(sft_batch(random_rows(5, [(3, 4), (2, 5)]), 7))
    optimizer = constant_adamw(1e-3)
    graphdef, state = create_train_state(model, optimizer)
    step = make_sft_step(graphdef, optimizer)
    state, metrics = step(state, batch)
    assert float(metrics["finite"]) == 1.0
    before = snapshot(state)
    poisoned = dict(batch, input_ids=batch["input_ids"].copy())
    poisoned["input_ids"][0, 0, 2] = VOCAB + 5  # out of range: the embedding lookup gives NaN
    state, metrics = step(state, poisoned)
    assert float(metrics["finite"]) == 0.0 and not np.isfinite(float(metrics["loss"]))
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state)):
        np.testing.assert_array_equal(a, np.asarray(b))

    params = jax.tree.map(jnp.asarray, before.params)
    params["trunk"]["final_norm"]["scale"] = params["trunk"]["final_norm"]["scale"].at[0].set(jnp.nan)
    state = state.replace(params=params)
    before = snapshot(state)
    state, metrics = step(state, batch)
    assert float(metrics["finite"]) == 0.0 and int(state.step) == 1
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state)):
        np.testing.assert_array_equal(a, np.asarray(b))


def test_packed_row_gives_the_same_loss_terms_as_separate_rows(tiny):
    model, _ = load_pretrained(tiny[0])
    rows = random_rows(6, [(3, 2), (2, 3)])
    separate = sft_batch(rows, 5)
    packed = {k: v.reshape(1, -1) for k, v in separate.items()}
    packed["segment_ids"] = np.repeat(np.array([[1, 2]], np.int32), 5, axis=1)
    packed["positions"] = np.tile(np.arange(5, dtype=np.int32), 2)[None]
    optimizer = constant_adamw(1e-3)
    results = []
    for batch in (separate, packed):
        graphdef, state = create_train_state(model, optimizer)
        results.append(jax.device_get(make_sft_step(graphdef, optimizer)(state, stack(batch))[1]))
    for key in ("loss", "tokens", "grad_norm"):
        np.testing.assert_allclose(results[0][key], results[1][key], rtol=1e-5)


def test_grad_clip_zero_means_no_clipping():
    import optax

    from reft_jax.train.state import make_optimizer

    grads = {"w": jnp.full((3,), 100.0)}
    params = {"w": jnp.zeros((3,))}
    for clip, expect_clipped in ((0.0, False), (1.0, True)):
        opt, _ = make_optimizer(1.0, 10, 0.0, 0.0, 1e-8, clip, schedule="constant")
        state = opt.init(params)
        _, state = opt.update(grads, state, params)
        # AdamW's first moment after one step is (1 - b1) * the (clipped) gradient
        mu = optax.tree_utils.tree_get(state, "mu")["w"]
        expected = 0.1 * (grads["w"] / jnp.linalg.norm(grads["w"]) if expect_clipped else grads["w"])
        np.testing.assert_allclose(mu, expected, rtol=1e-5)


def test_weight_decay_matches_torch_adamw_where_it_shows(tmp_path):
    """Decoupled decay large enough to matter (lr x wd = 0.1 shrinks every weight by 10%): for
    every parameter, by Hugging Face name, the step with decay minus the step without is
    -lr * wd * p0, by hand, in ours and in torch's AdamW (the gradients, and so Adam's part of the
    update, are the same in both steps); and the decayed step matches torch's."""
    import torch
    from safetensors.numpy import load_file

    from reft_jax.models import save_pretrained

    lr, wd = 1e-2, 10.0
    ref = save_tiny(tmp_path / "src", "llama", seed=5)
    initial = {k: v.detach().numpy().copy() for k, v in ref.state_dict().items()}
    batch = sft_batch(random_rows(7, [(3, 5), (6, 2), (2, 4)]), 8, left=(1,))
    ids, mask = batch["input_ids"], batch["attention_mask"]
    labels = np.where(batch["loss_mask"] > 0, ids, -100)

    def torch_step(weight_decay):
        ref.load_state_dict({k: torch.tensor(v) for k, v in initial.items()})
        ref.train().zero_grad()
        opt = torch.optim.AdamW(ref.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8,
                                weight_decay=weight_decay)
        ref(input_ids=torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.tensor(mask, dtype=torch.long),
            position_ids=torch.tensor(np.maximum(mask.cumsum(-1) - 1, 0), dtype=torch.long),
            labels=torch.tensor(labels, dtype=torch.long)).loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        opt.step()
        return {k: v.detach().numpy().copy() for k, v in ref.state_dict().items()}

    model, tokenizer = load_pretrained(tmp_path / "src")

    def our_step(weight_decay, folder):
        optimizer = constant_adamw(lr, weight_decay=weight_decay)
        graphdef, state = create_train_state(model, optimizer)
        state, _ = make_sft_step(graphdef, optimizer)(state, stack(batch))
        save_pretrained(merge_model(graphdef, state), tokenizer, folder)
        return load_file(folder / "model.safetensors")

    theirs, theirs_plain = torch_step(wd), torch_step(0.0)
    ours, ours_plain = our_step(wd, tmp_path / "ours"), our_step(0.0, tmp_path / "ours_plain")
    assert sorted(ours) == sorted(theirs) == sorted(initial)
    for name, p0 in initial.items():
        decay = -lr * wd * p0  # by hand
        np.testing.assert_allclose(theirs[name] - theirs_plain[name], decay, atol=5e-7, err_msg=name)
        np.testing.assert_allclose(ours[name] - ours_plain[name], decay, atol=5e-7, err_msg=name)
        # Adam's own update is lr * m / (sqrt(v) + eps): within float noise of a gradient near 0
        # it can move by up to lr, so the whole step is compared at 1e-4 (the decay is ~2e-3)
        np.testing.assert_allclose(ours[name], theirs[name], atol=1e-4, err_msg=name)
    assert max(np.abs(lr * wd * p0).max() for p0 in initial.values()) > 1e-2


def test_bfloat16_compute_is_as_close_as_a_bfloat16_reference(tmp_path):
    """bf16 compute against transformers run in bf16: our logits (std ~0.1) and SFT loss are as
    close to the float32 truth as that reference is (max error ~3e-3), and really bf16 (our float32
    run is within 1e-6). A tolerance of 0.1 on these logits would accept almost anything."""
    import copy

    import torch

    from tests.tiny_hf import left_padded_batch

    ref = save_tiny(tmp_path, "llama")
    ref_bf16 = copy.deepcopy(ref).to(torch.bfloat16)
    ids, mask = left_padded_batch()
    valid = mask.astype(bool)
    truth = torch_logits(ref, ids, mask)[valid]
    reference = torch_logits(ref_bf16, ids, mask)[valid]
    ours_model, _ = load_pretrained(tmp_path, dtype="bfloat16")
    ours = np.asarray(ours_model(jnp.asarray(ids), jnp.asarray(mask)))[valid]
    f32_model, _ = load_pretrained(tmp_path)
    ours_f32 = np.asarray(f32_model(jnp.asarray(ids), jnp.asarray(mask)))[valid]
    ref_error = np.abs(reference - truth)
    our_error = np.abs(ours - truth)
    assert np.abs(ours_f32 - truth).max() < 1e-6
    assert our_error.max() > 1e-4  # the bf16 model does compute in bf16
    assert our_error.max() <= 1.5 * ref_error.max() and our_error.mean() <= 1.5 * ref_error.mean()
    assert np.abs(ours - reference).max() <= 2 * ref_error.max()

    batch = sft_batch(random_rows(3, [(3, 5), (6, 2), (2, 4)]), 8, left=(1,))
    labels = torch.tensor(np.where(batch["loss_mask"] > 0, batch["input_ids"], -100), dtype=torch.long)
    kwargs = dict(input_ids=torch.tensor(batch["input_ids"], dtype=torch.long),
                  attention_mask=torch.tensor(batch["attention_mask"], dtype=torch.long),
                  position_ids=torch.tensor(np.maximum(batch["attention_mask"].cumsum(-1) - 1, 0)),
                  labels=labels)
    with torch.no_grad():
        true_loss, ref_loss = (float(m(**kwargs).loss) for m in (ref, ref_bf16))
    nll, count, _ = sft_loss_terms(ours_model, {k: jnp.asarray(v) for k, v in batch.items()})
    our_loss = float(nll) / float(count)
    assert abs(our_loss - true_loss) <= max(1.5 * abs(ref_loss - true_loss), 2e-3)
