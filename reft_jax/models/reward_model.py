"""The reranker's reward model: a causal LM's trunk and a 2-class head, saved beside each other.

The paper's Rerank@k scores each sampled (question, reasoning) with a classifier initialised from
the model being reranked and picks the sample most likely correct. Here the classifier is the
whole CausalLM (its LM head unused but kept, so the folder stays a loadable Hugging Face model and
carries the tokenizer) plus a `ClassifierHead` read at each sequence's last real token.

On disk: the LM as a Hugging Face folder (`save_pretrained`) and the head as
`classifier_head.safetensors` in the same folder. Class 1 means "correct".
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from reft_jax.errors import ReftError
from reft_jax.models.checkpoints import load_pretrained, save_pretrained
from reft_jax.models.heads import ClassifierHead
from reft_jax.models.transformer import CausalLM

HEAD_FILE = "classifier_head.safetensors"
CORRECT = 1  # the class index of "the sample's answer is correct"


def last_token_index(attention_mask: jax.Array) -> jax.Array:
    """Per row, the column of the last real token (works for left and right padding alike)."""
    length = attention_mask.shape[-1]
    return length - 1 - jnp.argmax(attention_mask[:, ::-1] > 0, axis=-1)


class RewardModel(nnx.Module):
    """Trunk + 2-class head; `class_logits` gives (batch, 2) float32 logits per sequence."""

    def __init__(self, lm: CausalLM, *, rngs: nnx.Rngs):
        self.lm = lm
        self.head = ClassifierHead(lm.config, 2, rngs=rngs)

    def class_logits(self, input_ids: jax.Array, attention_mask: jax.Array) -> jax.Array:
        hidden, _ = self.lm.hidden_states(input_ids, attention_mask=attention_mask)
        last = hidden[jnp.arange(hidden.shape[0]), last_token_index(attention_mask)]  # (B, E)
        return self.head(last)

    def prob_correct(self, input_ids: jax.Array, attention_mask: jax.Array) -> jax.Array:
        """P(class CORRECT) per sequence: the score reranking sorts by."""
        return jax.nn.softmax(self.class_logits(input_ids, attention_mask), axis=-1)[:, CORRECT]


def save_reward_model(rm: RewardModel, tokenizer: Any, folder: str | pathlib.Path) -> pathlib.Path:
    """The LM as a Hugging Face folder, the head as `classifier_head.safetensors` inside it."""
    from safetensors.numpy import save_file

    folder = save_pretrained(rm.lm, tokenizer, folder)
    head = {"kernel": rm.head.proj.kernel[...], "bias": rm.head.proj.bias[...]}
    save_file({k: np.asarray(jax.device_get(v)) for k, v in head.items()}, folder / HEAD_FILE)
    return folder


def is_reward_model(folder: str | pathlib.Path) -> bool:
    return (pathlib.Path(folder) / HEAD_FILE).is_file()


def load_reward_model(folder: str | pathlib.Path, dtype: Any = "float32",
                      param_dtype: Any = None) -> tuple[RewardModel, Any]:
    """(reward model, tokenizer) from a folder written by `save_reward_model`."""
    from safetensors.numpy import load_file

    folder = pathlib.Path(folder)
    if not is_reward_model(folder):
        raise ReftError(f"{folder} is not a reward model folder (no {HEAD_FILE}); train one with "
                        "stages=rm")
    lm, tokenizer = load_pretrained(folder, dtype=dtype, param_dtype=param_dtype)
    rm = RewardModel(lm, rngs=nnx.Rngs(0))
    tensors = load_file(folder / HEAD_FILE)
    for name in ("kernel", "bias"):
        var = getattr(rm.head.proj, name)
        value = tensors.get(name)
        if value is None or value.shape != var[...].shape:
            raise ReftError(f"{folder / HEAD_FILE}: {name} has shape "
                            f"{None if value is None else value.shape}, expected {var[...].shape} "
                            "(a head saved for another model?)")
        var.set_value(jnp.asarray(value, var[...].dtype))
    return rm, tokenizer
