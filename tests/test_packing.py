"""Packing prompts side by side: the layout by hand, and logits equal to separate forwards."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from reft_jax.models import load_pretrained
from reft_jax.sampling.packing import pack_prompts
from tests.tiny_hf import save_tiny


def test_first_fit_decreasing_layout():
    packed = pack_prompts([[11, 12], [21, 22, 23, 24, 25], [31, 32, 33]], width=6, pad_id=0,
                          row_multiple=1)
    # longest first: [21..25] opens row 0; [31..33] opens row 1; [11,12] fits after it
    np.testing.assert_array_equal(packed.ids, [[21, 22, 23, 24, 25, 0], [31, 32, 33, 11, 12, 0]])
    np.testing.assert_array_equal(packed.segments, [[2, 2, 2, 2, 2, 0], [3, 3, 3, 1, 1, 0]])
    np.testing.assert_array_equal(packed.positions, [[0, 1, 2, 3, 4, 0], [0, 1, 2, 0, 1, 0]])
    np.testing.assert_array_equal(packed.prompt_mask[0], [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(packed.src_row[0, 4:], [1, 1])
    np.testing.assert_array_equal(packed.src_col[0, 4:], [3, 4])
    np.testing.assert_array_equal(packed.last_row, [1, 0, 1])
    np.testing.assert_array_equal(packed.last_col, [4, 4, 2])
    assert pack_prompts([[1]] * 5, width=4, pad_id=0, row_multiple=4).ids.shape == (4, 4)


def test_packed_forward_equals_separate_forwards(tmp_path):
    save_tiny(tmp_path, "llama")
    model, _ = load_pretrained(tmp_path)
    prompts = [[5, 6, 7], [40, 41, 42, 43, 44], [9, 10]]
    packed = pack_prompts(prompts, width=8, pad_id=0, row_multiple=1)
    logits = np.asarray(model.forward(
        jnp.asarray(packed.ids), positions=jnp.asarray(packed.positions),
        attention_mask=jnp.asarray(packed.segments > 0),
        segment_ids=jnp.asarray(packed.segments)).logits)
    for i, prompt in enumerate(prompts):
        alone = np.asarray(model(jnp.asarray([prompt])))[0]
        row, end = packed.last_row[i], packed.last_col[i]
        np.testing.assert_allclose(logits[row, end - len(prompt) + 1:end + 1], alone, atol=1e-5)
