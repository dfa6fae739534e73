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


def test_gguf_tokenizer_matches_transformers(smollm_gguf, gsm8k_dir):
    from transformers import AutoTokenizer

    from reft_jax.models.gguf_file import GGUFFile

    ours = GGUFFile(smollm_gguf).tokenizer()
    ref = AutoTokenizer.from_pretrained(smollm_gguf.parent, gguf_file=smollm_gguf.name)
    texts = gsm8k_prompts(gsm8k_dir) + ["Therefore, the answer is: 1,000.5 <|im_end|>\n  x"]
    assert [ours(t)["input_ids"] for t in texts] == [ref(t)["input_ids"] for t in texts]
    chat = [{"role": "user", "content": texts[0]}]
    assert ours.apply_chat_template(chat, tokenize=False) == ref.apply_chat_template(chat, tokenize=False)
    for name in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
        assert getattr(ours, name) == getattr(ref, name), name


def test_gguf_loads_without_torch(smollm_gguf):
    """load_pretrained needs no torch: run it where `import torch` fails."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "import jax.numpy as jnp\n"
            "from reft_jax.models import load_pretrained\n"
            f"model, tok = load_pretrained({str(smollm_gguf)!r})\n"
            "print(model(jnp.array([[tok.bos_token_id, 42]])).shape, tok.eos_token_id)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("(1, 2, 49152) 2")
