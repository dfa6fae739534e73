"""Fast sampling: one jitted prefill, then a `lax.while_loop` decode over a preallocated KV cache.

Prompts are packed side by side for the prefill (no compute on padding) and their keys and
values laid into a left-padded cache of bucketed length, so a run compiles a handful of shapes.
Each prompt is prefilled once and its cache repeated for `num_samples` samples. Rows stop at EOS (or at
their length limit) and the loop ends when every row is done. Besides the tokens, the sampler
returns each token's log-probability under the model at temperature 1 before top-k/top-p, which
is what PPO's old log-probs need. Everything array-valued happens inside one jitted function with
no per-device Python, so the same call runs sharded on a mesh.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from reft_jax.errors import ReftError
from reft_jax.models import CausalLM, KVCache
from reft_jax.models.layers import on_cpu
from reft_jax.sampling.packing import PackedPrompts, pack_prompts
from reft_jax.parallel import BATCH_AXES, put_global, rows_per_batch_multiple
from reft_jax.parallel.hosts import to_host


@dataclasses.dataclass(frozen=True)
class SamplingSettings:
    """How to pick tokens. temperature 0 is greedy; top_k 0 and top_p 1.0 switch those off."""

    max_new_tokens: int
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    num_samples: int = 1
    stop_at_eos: bool = True

    def __post_init__(self):
        if self.max_new_tokens <= 0:
            raise ReftError(f"max_new_tokens must be positive, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ReftError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ReftError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ReftError(f"top_p must be in (0, 1] (1 = off), got {self.top_p}")
        if self.num_samples < 1:
            raise ReftError(f"num_samples must be >= 1, got {self.num_samples}")


class SampleOutput(NamedTuple):
    """Per sample (prompt-major: the samples of prompt i are rows i*n .. i*n+n-1)."""

    tokens: np.ndarray  # (rows, max_new_tokens), pad after the end
    mask: np.ndarray  # 1 on response tokens, the EOS included
    logprobs: np.ndarray  # log p(token) at temperature 1 before filtering; 0 off the mask
    lengths: np.ndarray  # number of response tokens


def filter_logits(logits: jax.Array, top_k: int, top_p: float) -> jax.Array:
    """Set logits outside the top-k and outside the top-p nucleus to -inf (0 and 1.0: off)."""
    neg_inf = jnp.asarray(-jnp.inf, logits.dtype)
    if top_k > 0:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, neg_inf, logits)
    if top_p < 1.0:
        sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
        probs = jax.nn.softmax(sorted_logits, axis=-1)
        before = jnp.cumsum(probs, axis=-1) - probs  # mass strictly above each token
        keep = before < top_p  # the most likely token always stays
        threshold = jnp.min(jnp.where(keep, sorted_logits, jnp.inf), axis=-1, keepdims=True)
        logits = jnp.where(logits < threshold, neg_inf, logits)
    return logits


def choose_tokens(logits: jax.Array, key: jax.Array, settings: SamplingSettings) -> jax.Array:
    if settings.temperature == 0.0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    filtered = filter_logits(logits / settings.temperature, settings.top_k, settings.top_p)
    return sample_inverse_cdf(filtered, key)


def sample_inverse_cdf(logits: jax.Array, key: jax.Array, block: int = 256) -> jax.Array:
    """One draw per row from softmax(logits), by inverse CDF in two levels: a block of `block`
    tokens by its mass, then a token inside that block.

    Same distribution as `jax.random.categorical`, which draws a Gumbel number for every
    vocabulary entry. On a 2-core CPU at batch 64 over 49k tokens that took 46 ms per step, a
    cumulative sum over the whole vocabulary 17 ms, these two short ones about 1 ms.
    """
    rows, vocab = logits.shape
    block = min(block, vocab)
    blocks = -(-vocab // block)
    if blocks * block != vocab:
        logits = jnp.pad(logits, ((0, 0), (0, blocks * block - vocab)), constant_values=-jnp.inf)
    weights = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True)).reshape(rows, blocks, block)
    block_mass = jnp.sum(weights, axis=-1)
    cumulative = jnp.cumsum(block_mass, axis=-1)
    # u in (0, total]: the first block whose cumulative mass reaches u holds the draw. Requiring
    # positive mass keeps a zero-probability entry out even where rounding ties two sums.
    u = (1.0 - jax.random.uniform(key, (rows, 1), cumulative.dtype)) * cumulative[:, -1:]
    chosen = jnp.argmax((cumulative >= u) & (block_mass > 0), axis=-1)
    inside = jnp.take_along_axis(weights, chosen[:, None, None], axis=1)[:, 0]  # (rows, block)
    inner = jnp.cumsum(inside, axis=-1)
    below = jnp.take_along_axis(cumulative - block_mass, chosen[:, None], axis=-1)
    rest = jnp.clip(u - below, jnp.finfo(inner.dtype).tiny, inner[:, -1:])
    offset = jnp.argmax((inner >= rest) & (inside > 0), axis=-1)
    return (chosen * block + offset).astype(jnp.int32)


def token_logprobs(logits: jax.Array, tokens: jax.Array) -> jax.Array:
    """log softmax(logits)[token] per row, without materialising the whole log-softmax (which
    `jax.nn.log_softmax` does: 10 ms per step at batch 64 on a 2-core CPU, this under 1 ms)."""
    top = jnp.max(logits, axis=-1)
    log_total = top + jnp.log(jnp.sum(jnp.exp(logits - top[:, None]), axis=-1))
    return jnp.take_along_axis(logits, tokens[:, None], axis=-1)[:, 0] - log_total


# From this many rows up, a CPU decode multiplies by output-major kernels (`Dense.make_out_major`):
# sampling 128 tokens from SmolLM2 on 2 cores took 14.6 against 15.4 s at 64 rows, the same at
# 32, and 3.5% longer at 16 rows (2% at one).
OUT_MAJOR_MIN_ROWS = 32


class _LoopState(NamedTuple):
    step: jax.Array
    token: jax.Array  # (rows,) drawn for this step from the last step's logits (carrying
    logp: jax.Array  # the token, not the (rows, vocab) logits, saves a logits copy per step)
    cache: KVCache
    key_mask: jax.Array  # (rows, cache_length): which cache slots hold real tokens
    tokens: jax.Array
    mask: jax.Array
    logprobs: jax.Array
    done: jax.Array
    rng: jax.Array


def _generate(graphdef, state, cache, packed: PackedPrompts, row_limits, rng, *,
              settings: SamplingSettings, eos_id: int, pad_id: int, rows_sharding=None):
    model = nnx.merge(graphdef, state)

    def on_rows(tree):  # keep every per-row array split over the mesh's batch axes
        if rows_sharding is None:
            return tree
        return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, rows_sharding), tree)

    blocks = model.trunk.layer_blocks(out_major=on_cpu() and cache.batch >= OUT_MAJOR_MIN_ROWS)
    prompt_mask = packed.prompt_mask
    prompt_len = prompt_mask.shape[1]
    # Prefill the packed rows, then gather each prompt's keys/values into left-padded slots.
    hidden, packed_cache = model.trunk(packed.ids, packed.positions, packed.segments > 0,
                                       segment_ids=packed.segments, return_kv=True)
    valid = prompt_mask.astype(bool)[:, None, :, None]

    def unpack(c):  # (rows, K, width, D) -> (prompts, K, width, D)
        gathered = c[packed.src_row, :, packed.src_col]  # (prompts, width, K, D)
        return jnp.where(valid, gathered.transpose(0, 2, 1, 3), 0).astype(cache.k[0].dtype)

    prefill_cache = KVCache(tuple(map(unpack, packed_cache.k)), tuple(map(unpack, packed_cache.v)))
    last_hidden = hidden[packed.last_row, packed.last_col]  # (prompts, E)
    first_logits = model.logits(last_hidden[:, None])[:, 0]
    # One prefill per prompt; each of its samples continues from a copy of that cache, written
    # into the donated buffers. Slots past the prompt are masked until a token fills them.
    repeat = lambda x, axis=0: jnp.repeat(x, settings.num_samples, axis=axis)
    fill = lambda full, part: full.at[:, :, :prompt_len].set(repeat(part))
    cache = on_rows(KVCache(tuple(map(fill, cache.k, prefill_cache.k)),
                            tuple(map(fill, cache.v, prefill_cache.v))))
    rows, steps = cache.batch, settings.max_new_tokens
    key_mask = jnp.zeros((rows, cache.length), jnp.int32).at[:, :prompt_len].set(repeat(prompt_mask))
    next_pos, limits = repeat(jnp.sum(prompt_mask, axis=-1)), repeat(row_limits)

    def draw(logits, rng):
        rng, sub = jax.random.split(rng)
        token = choose_tokens(logits, sub, settings)
        return token, token_logprobs(logits, token), rng

    first_token, first_logp, rng = draw(on_rows(repeat(first_logits)), rng)
    init = _LoopState(
        jnp.zeros((), jnp.int32), *on_rows((
            first_token, first_logp, cache, key_mask, jnp.full((rows, steps), pad_id, jnp.int32),
            jnp.zeros((rows, steps), jnp.int32), jnp.zeros((rows, steps), jnp.float32),
            jnp.zeros((rows,), bool))), rng=rng)

    def cond(s: _LoopState):
        return (s.step < steps) & ~jnp.all(s.done)

    def body(s: _LoopState):
        alive = ~s.done
        token = jnp.where(alive, s.token, pad_id)
        done = s.done | (s.step + 1 >= limits)
        if settings.stop_at_eos:
            done |= token == eos_id
        slot = prompt_len + s.step
        key_mask = jax.lax.dynamic_update_slice(s.key_mask, jnp.ones((rows, 1), jnp.int32), (0, slot))
        out = model.forward(token[:, None], positions=(next_pos + s.step)[:, None], cache=s.cache,
                            cache_index=slot, key_mask=key_mask, blocks=blocks)
        next_token, next_logp, rng = draw(out.logits[:, 0], s.rng)
        rows_state = on_rows((next_token, next_logp, out.cache, key_mask,
                              s.tokens.at[:, s.step].set(token),
                              s.mask.at[:, s.step].set(alive.astype(jnp.int32)),
                              s.logprobs.at[:, s.step].set(jnp.where(alive, s.logp, 0.0)), done))
        return _LoopState(s.step + 1, *rows_state[:4], *rows_state[4:], rng=rng)

    final = jax.lax.while_loop(cond, body, init)
    return final.cache, final.tokens, final.mask, final.logprobs


_generate_jit = jax.jit(_generate, static_argnums=(0,),
                        static_argnames=("settings", "eos_id", "pad_id", "rows_sharding"),
                        donate_argnums=(2,))


def bucket_length(n: int, multiple: int = 32) -> int:
    """Round a prompt length up to a power of two below `multiple`, else to a multiple of it."""
    if n <= multiple:
        return 1 << max(0, math.ceil(math.log2(max(n, 1))))
    return -(-n // multiple) * multiple


class Sampler:
    """Generates from a CausalLM, reusing the donated KV-cache buffer of the last call.

    Only the last call's buffer is kept: one per shape would hold a buffer for every prompt
    bucket an RL run meets (about 0.85 GB each for SmolLM2 at batch 64 in float32).

    With a `mesh` the sample rows (and their cache) are split over its data x fsdp devices, each
    device decoding its own rows with the parameters where they live; the row count must divide
    by that many devices. Over several processes every process passes the same prompts and gets
    every row back.
    """

    def __init__(self, eos_id: int, pad_id: int, max_length: int | None = None,
                 bucket: int = 32, cache_dtype=None, mesh=None):
        self.eos_id, self.pad_id = int(eos_id), int(pad_id)
        self.max_length, self.bucket, self.cache_dtype = max_length, bucket, cache_dtype
        self.mesh = mesh if mesh is not None and mesh.size > 1 else None
        self._cache: KVCache | None = None

    def __call__(self, model: CausalLM, prompts: Sequence[Sequence[int]], rng: jax.Array,
                 settings: SamplingSettings) -> SampleOutput:
        packed, limits = self._pack(model, prompts, settings)
        rows = len(prompts) * settings.num_samples
        cache_len = packed.prompt_mask.shape[1] + settings.max_new_tokens
        cache, self._cache = self._cache, None
        if cache is None or not cache.fits(model.config, rows, cache_len, self.cache_dtype):
            cache = None  # dropped before the new one is allocated
            cache = self._new_cache(model, rows, cache_len)
        graphdef, state = nnx.split(model)
        inputs = (PackedPrompts(*map(jnp.asarray, packed)), jnp.asarray(limits))
        rows_sharding, whole = self._shardings()
        if self.mesh is not None:
            inputs = jax.tree.map(lambda a: put_global(np.asarray(a), whole), (packed, limits))
            rng = jax.random.wrap_key_data(put_global(np.asarray(jax.random.key_data(rng)), whole))
        cache, tokens, resp_mask, logprobs = _generate_jit(
            graphdef, state, cache, *inputs, rng, settings=settings, eos_id=self.eos_id,
            pad_id=self.pad_id, rows_sharding=rows_sharding)
        self._cache = cache
        tokens, resp_mask, logprobs = to_host((tokens, resp_mask, logprobs))
        return SampleOutput(tokens, resp_mask, logprobs, resp_mask.sum(-1))

    def lower(self, model: CausalLM, num_prompts: int, prompt_width: int,
              settings: SamplingSettings) -> jax.stages.Lowered:
        """The program a call with `num_prompts` prompts bucketed to `prompt_width` tokens runs,
        lowered from shapes alone, each prompt packed in a row of its own (the most rows a
        packing takes). `model` may be abstract (`nnx.eval_shape`), its parameters
        ShapeDtypeStructs that carry their shardings: the memory planner's entry."""
        rows = num_prompts * settings.num_samples
        self._check_rows(rows)
        rows_sharding, whole = self._shardings()
        shaped = lambda x, sharding: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)
        packed = pack_prompts([[self.pad_id] * prompt_width] * num_prompts, prompt_width,
                              self.pad_id)
        cache = jax.eval_shape(lambda: KVCache.zeros(
            model.config, rows, prompt_width + settings.max_new_tokens, self.cache_dtype))
        inputs = (packed, np.zeros(num_prompts, np.int32), jax.eval_shape(jax.random.key, 0))
        graphdef, state = nnx.split(model)
        return _generate_jit.lower(
            graphdef, state, jax.tree.map(lambda x: shaped(x, rows_sharding), cache),
            *jax.tree.map(lambda x: shaped(x, whole), inputs), settings=settings,
            eos_id=self.eos_id, pad_id=self.pad_id, rows_sharding=rows_sharding)

    def _shardings(self):
        """(rows split over the mesh's batch axes, whole on every device), or Nones without one."""
        if self.mesh is None:
            return None, None
        return (NamedSharding(self.mesh, PartitionSpec(BATCH_AXES)),
                NamedSharding(self.mesh, PartitionSpec()))

    def _check_rows(self, rows: int) -> None:
        split = 1 if self.mesh is None else rows_per_batch_multiple(self.mesh)
        if rows % split:
            raise ReftError(f"{rows} sample rows do not split over the mesh's {split} data x fsdp "
                            "devices")

    def _new_cache(self, model, rows: int, length: int) -> KVCache:
        """A zero cache placed as the decode loop returns it, so the call that donates it back
        compiles to the same program (a cache committed to another sharding than the first one
        made every second call recompile: 12 s for SmolLM2 on CPU)."""
        self._check_rows(rows)
        sharding = self._shardings()[0] if self.mesh is not None else _replicated_on_params_mesh(model)
        zeros = lambda: KVCache.zeros(model.config, rows, length, self.cache_dtype)
        return zeros() if sharding is None else jax.jit(zeros, out_shardings=sharding)()

    def _pack(self, model, prompts, settings):
        if len(prompts) == 0:
            raise ReftError("no prompts to sample from")
        lengths = [len(p) for p in prompts]
        if min(lengths) == 0:
            raise ReftError(f"prompt {lengths.index(0)} is empty; every prompt needs a token")
        max_total = self.max_length if self.max_length is not None else model.config.max_position_embeddings
        if max(lengths) >= max_total:
            worst = int(np.argmax(lengths))
            raise ReftError(f"prompt {worst} has {lengths[worst]} tokens, which leaves no room "
                            f"under the maximum length {max_total}")
        packed = pack_prompts(prompts, bucket_length(max(lengths), self.bucket), self.pad_id)
        limits = np.minimum(settings.max_new_tokens, max_total - np.asarray(lengths)).astype(np.int32)
        return packed, limits


def _replicated_on_params_mesh(model) -> NamedSharding | None:
    """Replicated on the mesh of a model whose parameters carry a NamedSharding (a run's placed
    train state, on a one-device mesh when the sampler has none), else None (plain arrays)."""
    leaf = jax.tree.leaves(nnx.state(model))[0]
    sharding = getattr(leaf, "sharding", None)
    if isinstance(sharding, NamedSharding):
        return NamedSharding(sharding.mesh, PartitionSpec())
    return None
