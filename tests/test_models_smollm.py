"""SmolLM2-135M from the shared GGUF file: our logits against transformers' on GSM8K prompts."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from tests.tiny_hf import torch_logits

pytestmark = pytest.mark.slow


def gsm8k_prompts(gsm8k_dir, n=8):
    lines = (gsm8k_dir / "test.jsonl").read_text().splitlines()[:n]
    return ["Question:\n" + json.loads(line)["question"].strip() + "\nAnswer reasoning:\n"
            for line in lines]


def test_smollm_logits_match_transformers(smollm_gguf, gsm8k_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from reft_jax.models import load_pretrained

    model, tok = load_pretrained(smollm_gguf)
    assert (tok.eos_token_id, tok.pad_token_id) == (2, 2)
    ref = AutoModelForCausalLM.from_pretrained(smollm_gguf.parent, gguf_file=smollm_gguf.name,
                                               dtype=torch.float32).eval()
    enc = tok(gsm8k_prompts(gsm8k_dir), return_tensors="np", padding=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert len(set(mask.sum(1))) > 1, "prompts of different lengths exercise left padding"
    ours = np.asarray(model(jnp.asarray(ids), jnp.asarray(mask)))
    theirs = torch_logits(ref, ids, mask)
    valid = mask.astype(bool)
    assert np.abs(ours - theirs)[valid].max() <= 1e-3
    np.testing.assert_array_equal(ours.argmax(-1)[valid], theirs.argmax(-1)[valid])
