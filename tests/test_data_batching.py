"""SFT encoding at the prompt/response boundary and deterministic, bucketed batches."""

from __future__ import annotations

import numpy as np
import pytest

from reft_jax.data import DataError, Example
from reft_jax.data.batching import SFTBatches, encode_all, encode_prompt, encode_sft, split_validation
from tests.tiny_hf import EOS, PAD, tiny_tokenizer


def example(i=0, words=3):
    cot = " ".join(f"w{10 + i + j}" for j in range(words))
    return Example(id=f"e{i}", question=f"w5 w{6 + i}", answer=str(i), answer_type="numeric",
                   cot=cot, style="nl")


def test_sft_ids_are_the_rollout_prompt_then_the_target_then_eos():
    tok = tiny_tokenizer()
    ex = example()
    enc = encode_sft(ex, tok, "nl")
    prompt = encode_prompt(ex, tok, "nl")
    target = tok("w10 w11 w12\nTherefore, the answer is: 0", add_special_tokens=False)["input_ids"]
    assert list(enc.ids) == prompt + target + [EOS]
    assert enc.target_start == len(prompt)


def test_program_header_goes_to_the_prompt():
    tok = tiny_tokenizer()
    q = "w5 w6"
    ex = Example(id="p", question=q, answer="1", answer_type="numeric", style="program",
                 cot=f'def solution():\n    """{q}"""\n    w7 = 1\n    return w7')
    enc = encode_sft(ex, tok, "program")
    prompt = encode_prompt(ex, tok, "program")  # ends with the header
    assert list(enc.ids[:enc.target_start]) == prompt
    body = tok("    w7 = 1\n    return w7", add_special_tokens=False)["input_ids"]
    assert list(enc.ids[enc.target_start:]) == body + [EOS]


def test_batches_mask_the_prompt_and_are_deterministic():
    tok = tiny_tokenizer()
    encoded = encode_all([example(i, 1 + i % 5) for i in range(10)], tok, "nl", max_length=64)
    batches = SFTBatches(encoded, batch_size=4, grad_accum=2, seed=3, pad_id=PAD, length_multiple=8)
    assert batches.steps_per_epoch == 2
    first, again = batches.epoch_order(0), batches.epoch_order(0)
    assert all((a == b).all() for a, b in zip(first, again))
    assert any((a != b).any() for a, b in zip(first, batches.epoch_order(1)))
    batch = batches.make_batch(first[0])
    assert batch["input_ids"].shape[:2] == (2, 2) and batch["input_ids"].shape[2] % 8 == 0
    ids, loss = batch["input_ids"].reshape(4, -1), batch["loss_mask"].reshape(4, -1)
    for row, index in enumerate(first[0]):
        e = encoded[index]
        expected = np.zeros(ids.shape[1], int)
        expected[e.target_start:len(e.ids)] = 1
        np.testing.assert_array_equal(loss[row], expected)
        np.testing.assert_array_equal(ids[row, :len(e.ids)], e.ids)


def test_bad_sizes_are_clear_errors():
    tok = tiny_tokenizer()
    encoded = encode_all([example(i) for i in range(3)], tok, "nl", max_length=64)
    with pytest.raises(DataError, match="larger than the dataset"):
        SFTBatches(encoded, batch_size=8, grad_accum=1, seed=0, pad_id=PAD)
    with pytest.raises(DataError, match="divisible"):
        SFTBatches(encoded, batch_size=3, grad_accum=2, seed=0, pad_id=PAD)
    with pytest.raises(DataError, match="no training examples"):
        encode_all([example(0)], tok, "nl", max_length=2, log=lambda *_: None)


def test_validation_split_is_seeded_and_disjoint():
    exs = [example(i) for i in range(20)]
    train, val = split_validation(exs, 0.25, seed=1)
    assert len(val) == 5 and len(train) == 15
    assert {e.id for e in train}.isdisjoint({e.id for e in val})
    assert [e.id for e in split_validation(exs, 0.25, seed=1)[1]] == [e.id for e in val]
