"""Which settings make a plan fit, found by compiling again with each, not by guessing.

The changes are tried in a fixed order, the ones that leave the method's numbers alone first:
fsdp over all devices, remat (keeping the weight products, then whole layers), a bfloat16
reference and KV cache, more micro-batches (the same update in smaller pieces), bfloat16 compute
(what the paper trains in), bfloat16 sampler weights. A change is tried only for steps that do
not fit and that it can affect; it is kept when it lowers the largest total among them, and the
micro-batch count doubles while that helps.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from reft_jax.config_check import check_values
from reft_jax.errors import ReftError
from reft_jax.plan.report import amount
from reft_jax.train.ppo import minibatch_rows, reference_dtype

RL_STEPS = ("sample", "rollout_pass", "update")
ALL_STEPS = ("sft",) + RL_STEPS


@dataclasses.dataclass(frozen=True)
class Change:
    label: str
    steps: tuple[str, ...]  # the programs it can change
    propose: Callable  # config -> {dotted key: value}, or None when it does not apply
    repeat: bool = False  # try again after it helped (doubling micro-batches)


def _fsdp(config):
    m = config.mesh
    return None if m.data == 1 and m.fsdp == -1 else {"mesh.data": 1, "mesh.fsdp": -1}


def _unless(key: str, value, current=None):
    def propose(config):
        section, name = key.split(".")
        now = current(config) if current else config[section][name]
        return None if now == value else {key: value}
    return propose


def _remat(policy: str):
    def propose(config):
        m = config.model
        return (None if m.remat and m.remat_policy in (policy, "full") else
                {"model.remat": True, "model.remat_policy": policy})
    return propose


def _double_sft_accum(config):
    c = config.sft
    return ({"sft.grad_accum": 2 * c.grad_accum} if c.batch_size % (2 * c.grad_accum) == 0
            else None)


def _double_reft_accum(config):
    r = config.reft
    return ({"reft.grad_accum": 2 * r.grad_accum} if minibatch_rows(config) % (2 * r.grad_accum) == 0
            else None)


CHANGES = (
    Change("fsdp over all devices", ALL_STEPS, _fsdp),
    Change("remat keeping the weight products", ("sft", "update"), _remat("dots")),
    Change("remat of whole layers", ("sft", "update"), _remat("full")),
    Change("bfloat16 reference", RL_STEPS, _unless("reft.ref_dtype", "bfloat16", reference_dtype)),
    Change("bfloat16 KV cache", RL_STEPS,
           _unless("reft.kv_cache_dtype", "bfloat16",
                   lambda c: c.reft.kv_cache_dtype or c.model.dtype)),
    Change("twice the SFT micro-batches", ("sft",), _double_sft_accum, repeat=True),
    Change("twice the PPO update's micro-batches", ("update",), _double_reft_accum, repeat=True),
    Change("bfloat16 compute", ALL_STEPS, _unless("model.dtype", "bfloat16")),
    Change("bfloat16 sampler weights", ("sample",), _unless("reft.sampler_dtype", "bfloat16")),
)


def with_overrides(config, overrides: dict):
    """A copy of the config with the dotted keys set."""
    trial = config.copy_and_resolve_references()
    for key, value in overrides.items():
        section, name = key.split(".")
        trial[section][name] = value
    return trial


def flags(overrides: dict) -> str:
    return " ".join(f"--config.{key}={value}" for key, value in overrides.items())


def find_fit(config, plan_steps, budget: int, planned: dict, log=print):
    """(overrides that made it fit or got closest, the plan with them). `plan_steps(config,
    steps)` compiles the named steps; `planned` is the plan of `config` as given."""
    chosen: dict = {}
    for change in CHANGES:
        while True:
            failing = [s for s in change.steps if s in planned and planned[s].memory.total > budget]
            overrides = change.propose(config) if failing else None
            if not overrides:
                break
            trial = with_overrides(config, overrides)
            try:
                check_values(trial)
                replanned = plan_steps(trial, [s for s in change.steps if s in planned])
            except ReftError as err:
                log(f"  {change.label}: does not apply ({err})")
                break
            before = max(planned[s].memory.total for s in failing)
            after = max(replanned[s].memory.total for s in failing)
            kept = after < before
            log(f"  {change.label} ({flags(overrides)}): largest failing total "
                f"{amount(before)} -> {amount(after)}, {'kept' if kept else 'dropped'}")
            if not kept:
                break
            config, planned = trial, {**planned, **replanned}
            chosen.update(overrides)
            if not change.repeat:
                break
    return chosen, planned
