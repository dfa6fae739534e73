"""The reranker's reward model: its loss and metrics against hand values, that it learns, save/load
(the rm stage end to end is in test_rm_stage.py)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reft_jax.errors import ReftError
from reft_jax.eval.classification import average_ranks, binary_accuracy, roc_auc
from reft_jax.eval.rm_scores import classifier_ids, right_padded, score_sequences
from reft_jax.models import load_pretrained
from reft_jax.models.reward_model import (HEAD_FILE, RewardModel, last_token_index,
                                          load_reward_model, save_reward_model)
from reft_jax.train.rm_step import make_rm_step, rm_loss_terms
from reft_jax.train.state import create_train_state, make_optimizer
from tests.tiny_hf import save_tiny

W7 = 11  # the id of word w7 in the tiny tokenizer


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_llama")
    save_tiny(folder, "llama")
    return folder


# --- metrics against hand-computed values ----------------------------------------------------

def test_roc_auc_against_hand_examples():
    # positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of the 4 pairs are ordered right
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    # a tie between a positive and a negative counts one half: (0.5 + 1 + 2) / 4
    assert roc_auc([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1]) == pytest.approx(0.875)
    assert roc_auc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert roc_auc([0.1, 0.8, 0.9], [1, 0, 0]) == 0.0
    assert roc_auc([0.3, 0.7], [1, 1]) is None  # one class: undefined
    np.testing.assert_array_equal(average_ranks(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1, 3.5, 2])


def test_binary_accuracy_thresholds_at_one_half():
    assert binary_accuracy([0.2, 0.6, 0.5, 0.9], [0, 1, 1, 0]) == 0.5


def test_last_token_index_for_left_and_right_padding():
    mask = jnp.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 0, 0, 0, 0]])
    np.testing.assert_array_equal(last_token_index(mask), [2, 4, 0])


def test_classifier_ids_append_eos_and_keep_the_end(tiny):
    _, tok = load_pretrained(tiny)
    assert classifier_ids([5, 6], "w1 w2", tok, 10) == [5, 6, 5, 6, tok.eos_token_id]
    assert classifier_ids([5, 6], "w1 w2", tok, 3) == [5, 6, tok.eos_token_id]


# --- the module and its loss -----------------------------------------------------------------

def test_loss_terms_are_the_hand_computed_cross_entropy(tiny):
    lm, _ = load_pretrained(tiny)
    rm = RewardModel(lm, rngs=nnx.Rngs(0))
    ids, mask = right_padded([[5, 6, 7], [8, 9, 10, 12, 13], [14]], pad_id=0, multiple=8)
    labels = np.array([1, 0, 1], np.int32)
    total, count, sums = nnx.jit(rm_loss_terms)(rm, {"input_ids": ids, "attention_mask": mask,
                                                     "labels": labels})
    # oracle: the logits of each sequence alone, unpadded, at its last token
    one = nnx.jit(lambda m, i, a: m.class_logits(i, a))
    logits = np.stack([np.asarray(one(rm, ids[i:i + 1, :n], mask[i:i + 1, :n]))[0]
                       for i, n in enumerate([3, 5, 1])])
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(float(total), -log_probs[np.arange(3), labels].sum(), rtol=1e-5)
    assert float(count) == 3.0
    assert float(sums["accuracy"]) == float((logits.argmax(-1) == labels).sum())


def test_save_and_load_give_the_same_scores(tiny, tmp_path):
    lm, tok = load_pretrained(tiny)
    rm = RewardModel(lm, rngs=nnx.Rngs(1))
    sequences = [[5, 6, 7, 2], [8, 9, 2], [10, 11, 12, 13, 14, 2]]
    before = score_sequences(rm, sequences, tok.pad_token_id, rows=4)
    folder = save_reward_model(rm, tok, tmp_path / "rm")
    assert (folder / HEAD_FILE).exists() and (folder / "config.json").exists()
    loaded, _ = load_reward_model(folder)
    np.testing.assert_allclose(score_sequences(loaded, sequences, tok.pad_token_id, rows=4),
                               before, rtol=1e-5, atol=1e-6)
    with pytest.raises(ReftError, match="not a reward model"):
        load_reward_model(tiny)


def toy_batch(rng, n):
    """Random sequences of 6-12 words without w7; every other one gets w7 somewhere: label 1."""
    sequences, labels = [], []
    for i in range(n):
        seq = [int(x) for x in rng.integers(W7 + 1, 96, int(rng.integers(6, 13)))]
        if i % 2 == 0:
            seq[int(rng.integers(0, len(seq)))] = W7
        sequences.append(seq)
        labels.append(i % 2 == 0)
    return sequences, np.array(labels)


@pytest.mark.slow
def test_reward_model_learns_a_separable_labelling(tiny):
    """Sequences holding w7 are "correct": after 40 steps on fresh batches the classifier
    separates held-out sequences clearly better than chance (0.5)."""
    lm, _ = load_pretrained(tiny)
    rng = np.random.default_rng(0)
    steps = 40
    optimizer, _ = make_optimizer(3e-3, steps, 0.1, 0.0, 1e-8, 1.0)
    graphdef, state = create_train_state(RewardModel(lm, rngs=nnx.Rngs(0)), optimizer)
    step = make_rm_step(graphdef, optimizer)
    for _ in range(steps):
        sequences, labels = toy_batch(rng, 32)
        ids, mask = right_padded(sequences, pad_id=0)
        state, metrics = step(state, {"input_ids": ids[None], "attention_mask": mask[None],
                                      "labels": labels.astype(np.int32)[None]})
    held_out, labels = toy_batch(np.random.default_rng(123), 64)
    probs = score_sequences(nnx.merge(graphdef, state.params), held_out, 0, rows=32)
    assert binary_accuracy(probs, labels) >= 0.75
    assert roc_auc(probs, labels) >= 0.85
