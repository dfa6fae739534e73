"""One decoder-only transformer for every supported family, with an optional KV cache.

The training forward and cached decoding run the same blocks: without a cache the keys are the
current chunk; with one, the chunk is written into the cache at `cache_index` and attends to
every valid slot up to itself. Layer parameters are stacked on a leading axis. Without a cache
the layers run under `lax.scan`, so training compiles in time independent of depth. With a cache
they run as a Python loop over per-layer parameters and per-layer cache buffers: under a scan,
XLA copies each layer's cache slice out of the stack on every decode step, which measured 3x
slower attention on a 2-core CPU (the decode step compiles once per shape, so the unrolled loop
costs a few seconds of compile time, not throughput).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from reft_jax.models.config import ModelConfig, resolve_dtype
from reft_jax.models.layers import (MLP, Attention, Dense, Norm, normal, on_cpu, param,
                                    rope_tables)
from reft_jax.models.token_log_probs import DEFAULT_CHUNK, token_entropies, token_log_probs
from reft_jax.parallel.activations import constrain_rows


# What the backward pass keeps of each layer under remat (the rest is recomputed): "full" only
# the layer's input (least memory); "dots" also its products with the weights. The PPO update
# of configs/paper.py:codellama7b,gsm8k,program (32 x 1019 tokens, bf16 compute, 8 fsdp
# devices), as `python -m reft_jax.plan` plans it for a GPU: 10.3 GiB of temporaries per
# device with full, 30.6 with dots, 100.2 without remat.
REMAT_POLICIES = {"full": None, "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable}


def apply_remat(lm: "CausalLM", settings) -> None:
    """Switch remat on in a loaded model as `config.model` says (remat, remat_policy):
    checkpoints do not store it."""
    if settings.remat:
        lm.config = lm.trunk.config = lm.config.replace(remat=True,
                                                        remat_policy=settings.remat_policy)


class KVCache(NamedTuple):
    """Keys and values, one buffer per layer, each (batch, kv_heads, max_length, head_dim)."""

    k: tuple[jax.Array, ...]
    v: tuple[jax.Array, ...]

    @staticmethod
    def layout(cfg: ModelConfig, batch: int, max_length: int, dtype=None):
        """(shape, dtype) of each buffer; the dtype defaults to the model's compute dtype."""
        return ((batch, cfg.num_kv_heads, max_length, cfg.head_dim),
                resolve_dtype(dtype if dtype is not None else cfg.dtype))

    @classmethod
    def zeros(cls, cfg: ModelConfig, batch: int, max_length: int, dtype=None) -> "KVCache":
        shape, dtype = cls.layout(cfg, batch, max_length, dtype)
        return cls(tuple(jnp.zeros(shape, dtype) for _ in range(cfg.num_layers)),
                   tuple(jnp.zeros(shape, dtype) for _ in range(cfg.num_layers)))

    def fits(self, cfg: ModelConfig, batch: int, max_length: int, dtype=None) -> bool:
        """Whether these buffers are what `zeros` with the same arguments would allocate."""
        shape, dtype = self.layout(cfg, batch, max_length, dtype)
        return len(self.k) == cfg.num_layers and all(
            a.shape == shape and a.dtype == dtype for a in (*self.k, *self.v))

    @property
    def batch(self) -> int:
        return self.k[0].shape[0]

    @property
    def length(self) -> int:
        return self.k[0].shape[2]


class DecoderOutput(NamedTuple):
    logits: jax.Array  # (batch, length, vocab), float32
    hidden: jax.Array  # (batch, length, hidden), the last hidden state after the final norm
    cache: KVCache | None


def positions_from_mask(attention_mask: jax.Array) -> jax.Array:
    """Per-row positions of left-padded rows: 0 at each row's first real token."""
    return jnp.maximum(jnp.cumsum(attention_mask.astype(jnp.int32), axis=-1) - 1, 0)


def attention_mask_3d(key_mask, query_start, num_queries, sliding_window=None, segment_ids=None):
    """(batch, queries, keys) mask: a valid key at a slot no later than the query's slot.

    segment_ids (batch, length), for sequences packed side by side in one row, also keeps each
    token's attention inside its own sequence.
    """
    q_slots = query_start + jnp.arange(num_queries)
    k_slots = jnp.arange(key_mask.shape[-1])
    allowed = k_slots[None, :] <= q_slots[:, None]
    if sliding_window is not None:
        allowed &= k_slots[None, :] > q_slots[:, None] - sliding_window
    mask = allowed[None] & key_mask.astype(bool)[:, None, :]
    if segment_ids is not None:
        mask &= segment_ids[:, :, None] == segment_ids[:, None, :]
    return mask


class Block(nnx.Module):
    """Pre-norm residual block: x + attn(norm(x)), then h + mlp(norm(h))."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.attn_norm = Norm(cfg, rngs)
        self.attn = Attention(cfg, rngs)
        self.mlp_norm = Norm(cfg, rngs)
        self.mlp = MLP(cfg, rngs)

    def __call__(self, x, rope, mask, cache=None, cache_index=None):
        attn_out, kv = self.attn(self.attn_norm(x), rope, mask, cache, cache_index)
        h = x + attn_out
        return h + self.mlp(self.mlp_norm(h)), kv


class Decoder(nnx.Module):
    """Embeddings, the stacked blocks and the final norm: the trunk shared by every head."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.config = cfg
        pdt = resolve_dtype(cfg.param_dtype)
        self.embed = param(rngs, normal, (cfg.vocab_size, cfg.hidden_size), ("vocab", "embed"), pdt)
        rows = cfg.max_position_embeddings + cfg.position_offset
        self.pos_embed = (param(rngs, normal, (rows, cfg.hidden_size), ("positions", "embed"), pdt)
                          if cfg.position == "learned" else None)

        @nnx.split_rngs(splits=cfg.num_layers)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def make_blocks(rngs):
            return Block(cfg, rngs)

        self.layers = make_blocks(rngs)
        for _, node in nnx.iter_graph(self.layers):
            if isinstance(node, nnx.Variable):
                node.set_metadata("logical_axes", ("layers", *node.get_metadata()["logical_axes"]))
        self.final_norm = Norm(cfg, rngs)

    def layer_blocks(self, out_major: bool = False) -> list[Block]:
        """The stacked layers as separate blocks with their own parameter arrays.

        Called once per generation, outside the decode loop, so the loop body reads each
        layer's weights directly instead of slicing the stack on every step. out_major stores
        their dense kernels for `Dense.make_out_major`'s product.
        """
        graphdef, state = nnx.split(self.layers)
        blocks = [nnx.merge(graphdef, jax.tree.map(lambda a: a[i], state))
                  for i in range(self.config.num_layers)]
        if out_major:
            for block in blocks:
                for _, node in nnx.iter_graph(block):
                    if isinstance(node, Dense):
                        node.make_out_major()
        return blocks

    def __call__(self, input_ids, positions, key_mask, cache: KVCache | None = None,
                 cache_index=0, blocks: list[Block] | None = None, segment_ids=None,
                 return_kv: bool = False):
        """Hidden states (B,T,E) and the updated cache; key_mask covers the cache's slots.

        return_kv (no cache): run the scanned layers and also return every layer's keys and
        values of this chunk as a KVCache, each (B,K,T,D). A prefill does this rather than write
        into a cache: on a 2-core CPU the scan ran a packed GSM8K prefill in 3.1 s against 3.7 s
        for the per-layer loop the cache needs.
        """
        cfg = self.config
        dtype = resolve_dtype(cfg.dtype)
        x = constrain_rows(jnp.take(self.embed[...], input_ids, axis=0).astype(dtype))
        rope = None
        if self.pos_embed is not None:
            x = x + jnp.take(self.pos_embed[...], positions + cfg.position_offset, axis=0).astype(dtype)
        else:
            rope = rope_tables(positions, cfg)
        mask = attention_mask_3d(key_mask, cache_index, input_ids.shape[1], cfg.sliding_window,
                                 segment_ids)
        if cache is not None:
            blocks = blocks if blocks is not None else self.layer_blocks()
            keys, values = [], []
            for block, k, v in zip(blocks, cache.k, cache.v):
                x, (k, v) = block(x, rope, mask, (k, v), cache_index)
                keys.append(k)
                values.append(v)
            return self.final_norm(x), KVCache(tuple(keys), tuple(values))
        graphdef, layer_state = nnx.split(self.layers)

        def body(h, state):
            h, kv = nnx.merge(graphdef, state)(h, rope, mask)
            return constrain_rows(h), kv if return_kv else None

        # On a CPU the backward pass keeps each layer's weight-matmul outputs and recomputes
        # the rest (norms, activations, attention): keeping everything measured 8% slower per
        # SFT step on 2 cores, as XLA then rebuilt the MLP activations into transposed copies for
        # the weight gradients (1.5 s of a 10 s step). On a GPU recomputing costs more than it
        # saves. remat recomputes as its policy says, everywhere.
        if cfg.remat:
            body = jax.checkpoint(body, prevent_cse=False, policy=REMAT_POLICIES[cfg.remat_policy])
        elif on_cpu():
            body = jax.checkpoint(body, prevent_cse=False, policy=REMAT_POLICIES["dots"])
        x, kv = jax.lax.scan(body, x, layer_state)
        if return_kv:
            return self.final_norm(x), KVCache(tuple(kv[0]), tuple(kv[1]))
        return self.final_norm(x), None


class CausalLM(nnx.Module):
    """The trunk plus a language-model head (tied to the embeddings or its own matrix)."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.config = cfg
        self.trunk = Decoder(cfg, rngs)
        self.lm_head = (None if cfg.tie_embeddings else
                        Dense((cfg.hidden_size,), (cfg.vocab_size,), ("embed",), ("vocab",),
                              bias=False, cfg=cfg, rngs=rngs))

    def logits(self, hidden: jax.Array) -> jax.Array:
        """float32 logits (B,T,V) from final hidden states."""
        if self.lm_head is not None:
            return self.lm_head(hidden).astype(jnp.float32)
        embed = self.trunk.embed[...].astype(hidden.dtype)
        return jnp.einsum("bte,ve->btv", hidden, embed, preferred_element_type=jnp.float32)

    def token_log_probs(self, hidden: jax.Array, targets: jax.Array,
                        chunk: int = DEFAULT_CHUNK) -> jax.Array:
        """float32 log p(targets[b, t] | hidden[b, t]) without materialising all the logits."""
        if self.lm_head is None:
            return token_log_probs(hidden, self.trunk.embed[...], targets, vocab_axis=0, chunk=chunk)
        return token_log_probs(hidden, self.lm_head.kernel[...], targets, vocab_axis=1, chunk=chunk)

    def token_entropies(self, hidden: jax.Array, chunk: int = DEFAULT_CHUNK) -> jax.Array:
        """float32 entropy of the next-token distribution at each position, chunked."""
        if self.lm_head is None:
            return token_entropies(hidden, self.trunk.embed[...], vocab_axis=0, chunk=chunk)
        return token_entropies(hidden, self.lm_head.kernel[...], vocab_axis=1, chunk=chunk)

    def next_token_log_probs(self, hidden: jax.Array, input_ids: jax.Array, start: int = 0,
                             chunk: int = DEFAULT_CHUNK) -> jax.Array:
        """log p(input_ids[:, t + 1] | input_ids[:, :t + 1]) for t = start .. length - 2, shape
        (batch, length - 1 - start): the one place that owns the t -> t + 1 shift, for SFT's
        targets and for the policy's and reference's response tokens alike."""
        return self.token_log_probs(hidden[:, start:-1], input_ids[:, start + 1:], chunk=chunk)

    def forward(self, input_ids, *, attention_mask=None, positions=None, cache=None,
                cache_index=0, key_mask=None, blocks=None, segment_ids=None) -> DecoderOutput:
        """The general entry: training (no cache) or prefill/decode (cache given).

        Without a cache, attention_mask (B,T) marks real tokens (left padding). With a cache,
        key_mask (B,S) marks the valid cache slots after this chunk is written at cache_index;
        `blocks` (from `trunk.layer_blocks()`) saves re-splitting the layers on every step.
        segment_ids (B,T) separate sequences packed into one row (pass their positions too).
        """
        hidden, cache = self.hidden_states(
            input_ids, attention_mask=attention_mask, positions=positions, cache=cache,
            cache_index=cache_index, key_mask=key_mask, blocks=blocks, segment_ids=segment_ids)
        return DecoderOutput(self.logits(hidden), hidden, cache)

    def hidden_states(self, input_ids, *, attention_mask=None, positions=None, cache=None,
                      cache_index=0, key_mask=None, blocks=None, segment_ids=None):
        """(final hidden states, cache) as in `forward`, for losses that pick their own logits."""
        if attention_mask is None:
            attention_mask = jnp.ones(input_ids.shape, jnp.int32)
        if positions is None:
            positions = positions_from_mask(attention_mask)
        if key_mask is None:
            key_mask = attention_mask
        return self.trunk(input_ids, positions, key_mask, cache, cache_index, blocks, segment_ids)

    def __call__(self, input_ids, attention_mask=None) -> jax.Array:
        """Logits (batch, length, vocab) for left-padded input ids."""
        return self.forward(input_ids, attention_mask=attention_mask).logits
