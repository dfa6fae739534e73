"""SFT training speed: our jitted step against transformers + torch AdamW, same weights, same run.

SmolLM2-135M in float32 from the shared GGUF (or `--model`, `--dtype`); one global batch of
8 x 256 tokens (`--batch`, `--length`): rows filled with consecutive GSM8K train question +
answer texts, the loss on every token; AdamW with clipping. In bfloat16 our parameters stay
float32 with bfloat16 compute, and transformers runs under torch autocast, the same recipe.
Prints tokens/s of both, the ratio, our compile time and model FLOPs utilisation against the
measured matmul peak (and, on an H100/H200, against the datasheet bf16 peak).
Last line: sft_speedup=<ratio>.
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np

from benchmarks.common import (GSM8K_TRAIN, describe_model, load_pair, measured_peak_flops,
                               parse_args, require, spec_bf16_peak, synchronize, torch_device)


def training_batch(tok, batch: int, length: int) -> dict[str, np.ndarray]:
    """(1, batch, length) arrays, every row filled with whole texts (each ended by EOS)."""
    require(GSM8K_TRAIN)
    texts = (json.loads(x) for x in GSM8K_TRAIN.read_text().splitlines())
    ids = np.zeros((batch, length), np.int32)
    for row in range(batch):
        filled = 0
        while filled < length:
            text = next(texts)
            tokens = tok(text["question"].strip() + "\n" + text["answer"].strip(),
                         add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            take = min(len(tokens), length - filled)
            ids[row, filled:filled + take] = tokens[:take]
            filled += take
    mask = np.ones_like(ids)
    return {"input_ids": ids[None], "attention_mask": mask[None], "loss_mask": mask[None].copy()}


def ours(model, batch, steps: int):
    from reft_jax.train.sft_step import make_sft_step
    from reft_jax.train.state import create_train_state, make_optimizer

    optimizer, _ = make_optimizer(1e-5, 100, 0.0, 0.0, 1e-8, 1.0, schedule="constant")
    graphdef, state = create_train_state(model, optimizer)
    step = make_sft_step(graphdef, optimizer)
    batch = jax.device_put(batch)
    start = time.perf_counter()
    compiled = step.lower(state, batch).compile()
    compile_s = time.perf_counter() - start
    state, metrics = compiled(state, batch)  # first run: allocation, not timed
    first_loss = float(metrics["loss"])
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    elapsed = (time.perf_counter() - start) / steps
    return elapsed, compile_s, first_loss


def reference(hf_model, batch, steps: int, dtype: str):
    import torch

    device = torch_device()
    ids = torch.tensor(batch["input_ids"][0], dtype=torch.long, device=device)
    mask = torch.tensor(batch["attention_mask"][0], dtype=torch.long, device=device)
    labels = torch.where(torch.tensor(batch["loss_mask"][0], device=device) > 0, ids, -100)
    optimizer = torch.optim.AdamW(hf_model.parameters(), lr=1e-5, eps=1e-8, weight_decay=0.0)
    hf_model.train()
    autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16,
                              enabled=dtype == "bfloat16")

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = hf_model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf_model.parameters(), 1.0)
        optimizer.step()
        return loss.item()

    first_loss = step()
    synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    return (time.perf_counter() - start) / steps, first_loss


def train_flops(cfg, tokens: int, length: int) -> float:
    """6 N per token for the weights plus the attention score and value products (causal: half)."""
    attention = 6 * cfg.num_layers * cfg.num_heads * cfg.head_dim * length
    return tokens * (6 * cfg.num_params + attention)


def main():
    import torch

    args = parse_args(__doc__, batch=(8, "rows per step"), length=(256, "tokens per row"),
                      steps=(5, "timed steps of ours"), torch_steps=(3, "timed steps of torch"))
    model, tok, hf_model = load_pair(args.model, args.dtype)
    peak = measured_peak_flops(args.dtype)
    spec = spec_bf16_peak() if args.dtype == "bfloat16" else None
    print(f"device: {jax.devices()[0].device_kind}, torch on {torch_device()} "
          f"({torch.get_num_threads()} threads), measured {args.dtype} matmul peak "
          f"{peak / 1e12:.2f} TFLOP/s" + (f", datasheet {spec / 1e12:.0f}" if spec else ""))
    print(f"model: {describe_model(model)}, compute {args.dtype}, parameters float32")
    batch = training_batch(tok, args.batch, args.length)
    tokens = args.batch * args.length
    print(f"batch {args.batch} x {args.length} = {tokens} tokens")
    our_s, compile_s, our_loss = ours(model, batch, args.steps)
    ref_s, ref_loss = reference(hf_model, batch, args.torch_steps, args.dtype)
    flops = train_flops(model.config, tokens, args.length)
    for name, seconds, loss in (("ours", our_s, our_loss), ("transformers", ref_s, ref_loss)):
        spec_mfu = f" ({100 * flops / seconds / spec:4.1f}% of the datasheet peak)" if spec else ""
        print(f"{name:12s}: {seconds:7.3f} s/step, {tokens / seconds:9.1f} tok/s, "
              f"MFU {100 * flops / seconds / peak:4.1f}%{spec_mfu}, "
              f"loss before the first update {loss:.4f}")
    print(f"our compile time {compile_s:.1f}s; compute bound {peak / (flops / tokens):.0f} tok/s; "
          f"load average {os.getloadavg()[0]:.1f} (a busy machine slows both sides)")
    print(f"sft_speedup={ref_s / our_s:.2f}")


if __name__ == "__main__":
    main()
