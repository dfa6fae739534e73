"""The reward model's loss: cross entropy of its 2-class logits, as `loss_terms` of the shared step.

Each sequence counts once (the class is read at its last real token), so the loss is returned as
(sum of per-sequence NLL, number of sequences) and `make_train_step` divides once over the whole
global batch, exactly as with accumulated micro-batches.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from reft_jax.train.step import make_train_step


def rm_loss_terms(model, micro: dict) -> tuple[jax.Array, jax.Array, dict]:
    """(sum of NLL, sequences, {"accuracy": correctly classified}) of a micro-batch with
    input_ids, attention_mask (B, T) and labels (B,) in {0, 1} (1 = the sample is correct)."""
    logits = model.class_logits(micro["input_ids"], micro["attention_mask"])
    labels = micro["labels"].astype(jnp.int32)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(log_probs, labels[:, None], axis=-1)[:, 0]
    right = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    return jnp.sum(nll), jnp.float32(labels.shape[0]), {"accuracy": jnp.sum(right)}


def make_rm_step(graphdef, optimizer, grad_accum: int = 1, placement=None):
    """The shared step with the classifier loss: batch arrays (grad_accum, micro_batch, ...)."""
    return make_train_step(graphdef, optimizer, rm_loss_terms, grad_accum, placement,
                           count_name="sequences")
