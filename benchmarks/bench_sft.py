"""SFT training speed: our jitted step against transformers + torch AdamW, same weights, same run.

SmolLM2-135M in float32 from the shared GGUF; one global batch of 8 x 256 tokens (the first
GSM8K train question + answer texts, truncated or right-padded, loss on every real token);
AdamW with clipping. Prints tokens/s of both (real tokens over the timed steps), the ratio, our
compile time and model FLOPs utilisation against the measured matmul peak.
Last line: sft_speedup=<ratio>.
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np

from benchmarks.common import GGUF, SHARED, measured_peak_flops, require_shared

BATCH, LENGTH = 8, 256
OUR_STEPS, TORCH_STEPS = 5, 3
GSM8K_TRAIN = SHARED / "data" / "gsm8k" / "train.jsonl"


def training_batch(tok) -> dict[str, np.ndarray]:
    """(1, BATCH, LENGTH) arrays: right-padded rows, the loss on every real token."""
    lines = GSM8K_TRAIN.read_text().splitlines()[:BATCH]
    texts = [json.loads(x)["question"].strip() + "\n" + json.loads(x)["answer"].strip() for x in lines]
    ids = np.full((BATCH, LENGTH), tok.pad_token_id, np.int32)
    mask = np.zeros_like(ids)
    for row, text in enumerate(texts):
        tokens = tok(text, add_special_tokens=False)["input_ids"][:LENGTH]
        ids[row, :len(tokens)] = tokens
        mask[row, :len(tokens)] = 1
    return {"input_ids": ids[None], "attention_mask": mask[None], "loss_mask": mask[None].copy()}


def ours(model, batch):
    from reft_jax.train.sft_step import make_sft_step
    from reft_jax.train.state import create_train_state, make_optimizer

    optimizer, _ = make_optimizer(1e-5, 100, 0.0, 0.0, 1e-8, 1.0, schedule="constant")
    graphdef, state = create_train_state(model, optimizer)
    step = make_sft_step(graphdef, optimizer)
    start = time.perf_counter()
    compiled = step.lower(state, batch).compile()
    compile_s = time.perf_counter() - start
    state, metrics = compiled(state, batch)  # first run: allocation, not timed
    first_loss = float(metrics["loss"])
    start = time.perf_counter()
    for _ in range(OUR_STEPS):
        state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    elapsed = (time.perf_counter() - start) / OUR_STEPS
    return elapsed, compile_s, first_loss


def reference(hf_model, batch):
    import torch

    ids = torch.tensor(batch["input_ids"][0], dtype=torch.long)
    mask = torch.tensor(batch["attention_mask"][0], dtype=torch.long)
    labels = torch.where(torch.tensor(batch["loss_mask"][0]) > 0, ids, torch.tensor(-100))
    optimizer = torch.optim.AdamW(hf_model.parameters(), lr=1e-5, eps=1e-8, weight_decay=0.0)
    hf_model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = hf_model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf_model.parameters(), 1.0)
        optimizer.step()
        return loss.item()

    first_loss = step()
    start = time.perf_counter()
    for _ in range(TORCH_STEPS):
        step()
    return (time.perf_counter() - start) / TORCH_STEPS, first_loss


def train_flops(cfg, tokens: int, length: int) -> float:
    """6 N per token for the weights plus the attention score and value products (causal: half)."""
    attention = 6 * cfg.num_layers * cfg.num_heads * cfg.head_dim * length
    return tokens * (6 * cfg.num_params + attention)


def main():
    import torch
    from transformers import AutoModelForCausalLM

    from reft_jax.models import load_pretrained

    require_shared()
    model, tok = load_pretrained(GGUF)
    hf_model = AutoModelForCausalLM.from_pretrained(GGUF.parent, gguf_file=GGUF.name,
                                                    dtype=torch.float32)
    peak = measured_peak_flops()
    print(f"device: {jax.devices()[0].device_kind}, torch threads {torch.get_num_threads()}, "
          f"measured float32 matmul peak {peak / 1e9:.0f} GFLOP/s")
    batch = training_batch(tok)
    real = int(batch["attention_mask"].sum())
    total = BATCH * LENGTH
    print(f"batch {BATCH} x {LENGTH}: {real} real tokens of {total}")
    our_s, compile_s, our_loss = ours(model, batch)
    ref_s, ref_loss = reference(hf_model, batch)
    flops = train_flops(model.config, total, LENGTH)
    for name, seconds, loss in (("ours", our_s, our_loss), ("transformers", ref_s, ref_loss)):
        print(f"{name:12s}: {seconds:6.2f} s/step, {real / seconds:7.1f} real tok/s, "
              f"{total / seconds:7.1f} padded tok/s, MFU {100 * flops / seconds / peak:4.1f}%, "
              f"loss before the first update {loss:.4f}")
    print(f"our compile time {compile_s:.1f}s; compute bound {peak / (flops / total):.0f} tok/s; "
          f"load average {os.getloadavg()[0]:.1f} (a busy machine slows both sides)")
    print(f"sft_speedup={ref_s / our_s:.2f}")


if __name__ == "__main__":
    main()
