"""How an RL stage samples its rollouts: the sampler, its settings and the weights it reads.

Two memory options live here, so the run and the memory planner (`reft_jax.plan`) build the
very same thing: `reft.kv_cache_dtype` (the KV cache's dtype; "" = the compute dtype) and
`reft.sampler_dtype` (sample from a copy of the policy's weights in this dtype, made once per
rollout with each array where the train state keeps it; "" = read the train state's own).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from reft_jax.models.config import resolve_dtype
from reft_jax.sampling import Sampler, SamplingSettings


def rollout_sampler(config, eos_id: int, pad_id: int, mesh=None) -> tuple[Sampler, SamplingSettings]:
    """The rollouts' sampler and settings: `reft.samples_per_question` samples of up to
    `reft.max_length` tokens in all, rows split over the mesh's data x fsdp devices."""
    r = config.reft
    sampler = Sampler(eos_id, pad_id, max_length=r.max_length, mesh=mesh,
                      cache_dtype=resolve_dtype(r.kv_cache_dtype) if r.kv_cache_dtype else None)
    settings = SamplingSettings(max_new_tokens=r.max_length - 1, temperature=r.temperature,
                                top_k=r.top_k, top_p=r.top_p, num_samples=r.samples_per_question)
    return sampler, settings


def sampling_weights(params: Any, dtype: str) -> Any:
    """The parameters the sampler reads: `params` itself, or with `dtype` ("bfloat16") a copy
    of its floating-point arrays in that dtype, each sharded as its source."""
    if not dtype:
        return params
    return _cast(params, resolve_dtype(dtype))


def _cast_leaves(params, dtype):
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a,
                        params)


_cast = jax.jit(_cast_leaves, static_argnums=1)
