"""The programs a run compiles, lowered from shapes by the run's own builders, and their memory.

SFT: `make_sft_step` on (grad_accum, micro, sft.max_length). ReFT: the learner's
`build_passes` (no-grad pass and update) and the rollout sampler of `rollout_sampler`, at their
widest: prompts bucketed from `reft.max_prompt_length`, responses of `reft.max_length - 1`
tokens. The policy (with its value head), its AdamW state and the reference are
`jax.eval_shape`s placed by the run's `Placement`, so no weight exists and nothing runs.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from reft_jax.models import CausalLM, KVCache, ModelConfig
from reft_jax.parallel import param_shardings
from reft_jax.plan.memory import Memory, bytes_per_device, with_shardings
from reft_jax.sampling import bucket_length
from reft_jax.train.placement import Placement
from reft_jax.train.ppo import UPDATE_INPUTS, PPOLearner, reference_dtype
from reft_jax.train.rl_stage import RLRun, language_model
from reft_jax.train.rollout_sampling import rollout_sampler, sampling_weights
from reft_jax.train.sft_step import make_sft_step
from reft_jax.train.state import create_train_state, make_optimizer

STEPS = ("sft", "sample", "rollout_pass", "update")
I32, F32 = jnp.int32, jnp.float32
# Stands in for a schedule's length: a step's memory does not depend on it.
PLANNED_STEPS = 1000


@dataclasses.dataclass(frozen=True)
class Planned:
    step: str  # one of STEPS
    shape: str  # the batch it was planned for, e.g. "48 x 1024"
    memory: Memory
    resident_note: str = ""  # what the resident bytes are


def abstract_train_state(make_module: Callable[[], nnx.Module], optimizer):
    """(abstract module, graphdef, TrainState of ShapeDtypeStructs) as `create_train_state`
    would make them."""
    module = nnx.eval_shape(make_module)
    graphdef = nnx.split(module, nnx.Param, ...)[0]
    state = jax.eval_shape(lambda: create_train_state(make_module(), optimizer)[1])
    return module, graphdef, state


def shaped(shape, dtype=I32) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(shape), dtype)


def plan_sft(config, cfg: ModelConfig) -> Planned:
    c = config.sft
    optimizer, _ = make_optimizer(c.learning_rate, PLANNED_STEPS, c.warmup_ratio, c.weight_decay,
                                  c.adam_eps, c.grad_clip)
    model, graphdef, state = abstract_train_state(lambda: CausalLM(cfg, rngs=nnx.Rngs(0)),
                                                  optimizer)
    micro = c.batch_size // c.grad_accum
    placement = Placement.for_run(config.mesh, model, state, micro)
    step = make_sft_step(graphdef, optimizer, c.grad_accum, placement)
    batch = {k: shaped((c.grad_accum, micro, c.max_length))
             for k in ("input_ids", "attention_mask", "loss_mask")}
    memory = Memory.of(step.lower(state, batch).compile())
    return Planned("sft", f"{c.grad_accum} x {micro} x {c.max_length}", memory)


class ReftPrograms:
    """The ReFT iteration's three programs over one abstract run (policy, state, reference)."""

    def __init__(self, config, cfg: ModelConfig):
        r = self.r = config.reft
        self.config, self.learner = config, PPOLearner(config)
        optimizer, _ = make_optimizer(r.learning_rate, PLANNED_STEPS, 0.0, r.weight_decay,
                                      r.adam_eps, r.grad_clip, schedule="constant")
        module, graphdef, self.state = abstract_train_state(
            lambda: self.learner.policy(CausalLM(cfg, rngs=nnx.Rngs(config.seed))), optimizer)
        self.placement = Placement.for_run(config.mesh, module, self.state,
                                           self.learner.micro_rows(config),
                                           batch_key=self.learner.rows_key)
        ref_dtype = reference_dtype(config)
        reference = nnx.eval_shape(lambda: CausalLM(
            cfg.replace(dtype=ref_dtype, param_dtype=ref_dtype, remat=False), rngs=nnx.Rngs(0)))
        ref_graphdef, ref_params = nnx.split(reference)
        ref_shardings = param_shardings(reference, self.placement.mesh)
        self.ref_params = with_shardings(nnx.to_pure_dict(ref_params), ref_shardings)
        self.params = with_shardings(self.state.params, self.placement.state.params)
        self.graphdef, self.cfg = graphdef, cfg
        self.learner.build_passes(RLRun(config, None, None, graphdef, optimizer, self.placement),
                                  ref_graphdef, ref_shardings)
        self.sampler, self.settings = rollout_sampler(config, eos_id=1, pad_id=0,
                                                      mesh=self.placement.mesh)
        self.rows = r.rollout_batch * r.samples_per_question
        self.prompt_width = bucket_length(r.max_prompt_length)
        self.width = r.max_length - 1  # the longest response the sampler can return

    def bytes(self, name: str) -> int:
        """Per-device bytes of what a step may leave on the device for the others."""
        if name == "reference":
            return bytes_per_device(self.ref_params)
        if name == "optimizer state":
            return bytes_per_device(with_shardings(self.state.opt_state,
                                                   self.placement.state.opt_state))
        if name == "policy":
            return bytes_per_device(self.params)
        shape, dtype = KVCache.layout(self.cfg, self.rows, self.prompt_width + self.width,
                                      self.sampler.cache_dtype)
        cache = jax.ShapeDtypeStruct(shape, dtype, sharding=self.placement.rows_at(0))
        return 2 * self.cfg.num_layers * bytes_per_device(cache)

    def resident(self, *names: str) -> tuple[int, str]:
        return sum(self.bytes(n) for n in names), " + ".join(names)

    def plan_sample(self) -> Planned:
        r = self.r
        weights = self.params
        if r.sampler_dtype:  # a copy: the train state's parameters stay where they are
            cast = jax.eval_shape(partial(sampling_weights, dtype=r.sampler_dtype), self.params)
            weights = with_shardings(cast, self.placement.state.params)
        lm = language_model(nnx.merge(self.graphdef, weights))
        compiled = self.sampler.lower(lm, r.rollout_batch, self.prompt_width, self.settings).compile()
        held = ("policy",) if r.sampler_dtype else ()
        resident, note = self.resident(*held, "optimizer state", "reference")
        return Planned("sample", f"{self.rows} rows, {self.prompt_width} + {self.width} tokens",
                       Memory.of(compiled, resident), note)

    def plan_rollout_pass(self) -> Planned:
        length = self.prompt_width + self.width
        batch = {"input_ids": shaped((self.rows, length)),
                 "attention_mask": shaped((self.rows, length)),
                 "mask": shaped((self.rows, self.width), F32)}
        compiled = self.learner.rollout_pass.lower(
            self.params, self.ref_params, batch, shaped((self.rows,), F32), shaped((), F32)).compile()
        resident, note = self.resident("optimizer state", "KV cache")
        return Planned("rollout_pass", f"{self.rows} x {length}", Memory.of(compiled, resident), note)

    def plan_update(self) -> Planned:
        accum = self.r.grad_accum
        micro = self.learner.micro_rows(self.config)
        length = self.prompt_width + self.width
        tokens, per_token = shaped((accum, micro, length)), shaped((accum, micro, self.width), F32)
        critic = self.learner.settings.uses_critic
        batch = {k: tokens if k in ("input_ids", "attention_mask") else per_token
                 for k in UPDATE_INPUTS if critic or k not in ("old_values", "returns")}
        compiled = self.learner.update.lower(self.state, batch).compile()
        resident, note = self.resident("reference", "KV cache")
        return Planned("update", f"{accum} x {micro} x {length}", Memory.of(compiled, resident),
                       note)


def plan(config, cfg: ModelConfig, steps=STEPS) -> dict[str, Planned]:
    """{step: Planned} for the chosen steps, in STEPS order."""
    out = {}
    if "sft" in steps:
        out["sft"] = plan_sft(config, cfg)
    rl = [s for s in STEPS if s != "sft" and s in steps]
    if rl:
        programs = ReftPrograms(config, cfg)
        for step in rl:
            out[step] = getattr(programs, f"plan_{step}")()
    return out
