"""The `check` stage: load the configured model and show it works, before spending hours."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from reft_jax.data.batching import encode_prompt
from reft_jax.data.records import Example
from reft_jax.models import load_pretrained

SAMPLE_QUESTION = ("Natalia sold clips to 48 of her friends in April, and then she sold half as "
                   "many clips in May. How many clips did Natalia sell altogether in April and May?")


def run_check(config, log=print) -> None:
    start = time.perf_counter()
    model, tokenizer = load_pretrained(config.model.source, dtype=config.model.dtype,
                                       param_dtype=config.model.param_dtype)
    cfg = model.config
    log(f"model: {config.model.source} ({cfg.family}, {cfg.num_params / 1e6:.1f}M parameters, "
        f"{cfg.num_layers} layers, params {cfg.param_dtype}, compute {cfg.dtype}) "
        f"loaded in {time.perf_counter() - start:.1f}s on {jax.devices()[0].platform}")
    log(f"tokenizer: vocab {len(tokenizer)}, eos {tokenizer.eos_token_id}, "
        f"pad {tokenizer.pad_token_id}")
    # The prompt exactly as a rollout builds it (style, chat template, P-CoT header included).
    example = Example(id="check_0", question=SAMPLE_QUESTION, answer="72")
    prompt = encode_prompt(example, tokenizer, config.data.style, config.data.chat_template)
    ids = jnp.asarray([prompt])
    logits = np.asarray(jax.jit(lambda m, x: m(x))(model, ids))[0, -1]
    top = np.argsort(-logits)[:5]
    log("next-token candidates after the sample prompt: "
        + ", ".join(f"{tokenizer.decode([int(t)])!r}" for t in top))
