"""The ReFT stage: PPO on the policy's own sampled reasoning, as the paper runs it.

Per rollout batch: sample and judge (`rl_stage`), then one jitted no-grad pass for old
log-probs, values and the frozen reference's log-probs, KL-penalised rewards, GAE and whitening
(`ppo_step.rollout_pass`), then `reft.ppo_epochs` passes over the rollout in minibatches of
`reft.minibatch_size` rows (default: the whole batch, one update per epoch as the paper), each a
pure jitted update with the state donated. The policy carries a value head on its trunk; the
reference is a frozen copy of the warm-up checkpoint in `reft.ref_dtype`.
"""

from __future__ import annotations

import pathlib
import time

import jax
import numpy as np
from flax import nnx

from reft_jax.errors import ReftError
from reft_jax.models import PolicyWithValue, load_pretrained
from reft_jax.parallel import param_shardings
from reft_jax.parallel.hosts import to_host
from reft_jax.rl import AdaptiveKLController, FixedKLController
from reft_jax.rl.rollout import Rollout
from reft_jax.train.loop import Position
from reft_jax.train.ppo_step import PPOSettings, make_rollout_pass, ppo_loss_terms
from reft_jax.train.rl_stage import RLRun, run_rl_stage
from reft_jax.train.state import TrainState
from reft_jax.train.step import make_train_step

UPDATE_INPUTS = ("input_ids", "attention_mask", "mask", "old_logprobs", "old_values",
                 "advantages", "returns")


def minibatch_rows(config) -> int:
    r = config.reft
    rows = r.rollout_batch * r.samples_per_question
    size = r.minibatch_size if r.minibatch_size > 0 else rows
    if rows % size:
        raise ReftError(f"config.reft.minibatch_size={size} does not divide the rollout's {rows} "
                        "rows (rollout_batch x samples_per_question)")
    if size % r.grad_accum:
        raise ReftError(f"config.reft.grad_accum={r.grad_accum} does not divide minibatches of "
                        f"{size} rows")
    return size


def reference_dtype(config) -> str:
    """The frozen reference's storage and compute dtype: `reft.ref_dtype`, else model.dtype."""
    return config.reft.ref_dtype or config.model.dtype


class PPOLearner:
    stage = "reft"
    rows_key = "reft.rollout_batch"
    postfix = ("score", "accuracy", "kl")
    plot_keys = ("score", "accuracy", "kl", "pg_loss", "vf_loss", "response_length")

    def __init__(self, config):
        self.config = config
        self.settings = PPOSettings.from_config(config.reft)
        r = config.reft
        if r.samples_per_question < 2 and r.advantage in ("rloo", "grpo"):
            raise ReftError(f"config.reft.advantage={r.advantage!r} compares the samples of a "
                            "question: set config.reft.samples_per_question >= 2")
        self.kl = (AdaptiveKLController(r.kl_coef, r.kl_target, r.kl_horizon) if r.adaptive_kl
                   else FixedKLController(r.kl_coef))

    def policy(self, lm):
        if self.settings.uses_critic:
            return PolicyWithValue(lm, rngs=nnx.Rngs(self.config.seed))
        return lm

    def micro_rows(self, config) -> int:
        return minibatch_rows(config) // config.reft.grad_accum

    def prepare(self, run: RLRun) -> None:
        self.run = run
        ref_dtype = reference_dtype(self.config)
        reference, _ = load_pretrained(run.warmup, dtype=ref_dtype, param_dtype=ref_dtype)
        ref_graphdef, ref_params = nnx.split(reference)
        shardings = param_shardings(reference, run.placement.mesh)
        self.ref_params = jax.device_put(nnx.to_pure_dict(ref_params), shardings)
        self.build_passes(run, ref_graphdef, shardings)

    def build_passes(self, run: RLRun, ref_graphdef, ref_shardings) -> None:
        """The jitted no-grad pass and update (the memory planner lowers these two)."""
        self.rollout_pass = make_rollout_pass(run.graphdef, ref_graphdef, self.settings,
                                              run.placement, ref_shardings)
        self.update = make_train_step(run.graphdef, run.optimizer,
                                      lambda model, micro: ppo_loss_terms(model, micro, self.settings),
                                      self.config.reft.grad_accum, run.placement,
                                      count_name="sequences")

    def resume(self, extra: dict) -> None:
        if "kl_coef" in extra:
            self.kl.load_state_dict(extra["kl_coef"])

    def learn(self, state: TrainState, rollout: Rollout, position: Position):
        r, placement = self.config.reft, self.run.placement
        start = time.perf_counter()
        arrays = rollout.arrays()
        scores = rollout.scores
        inputs, pass_metrics = self.rollout_pass(
            state.params, self.ref_params, placement.put_rows(arrays),
            placement.put_rows({"scores": scores})["scores"], np.float32(self.kl.value))
        batch = {**arrays, **to_host(inputs)}
        pass_metrics = {k: float(v) for k, v in to_host(pass_metrics).items()}
        pass_metrics["time_no_grad"] = time.perf_counter() - start
        update_start = time.perf_counter()
        rows, size = len(scores), minibatch_rows(self.config)
        totals: dict[str, float] = {}
        updates = 0
        for epoch in range(r.ppo_epochs):
            order = (np.arange(rows) if size == rows else
                     np.random.default_rng([self.config.seed, position.step, epoch]).permutation(rows))
            for first in range(0, rows, size):
                chosen = order[first:first + size]
                micro = {k: v[chosen].reshape(r.grad_accum, size // r.grad_accum, *v.shape[1:])
                         for k, v in batch.items() if k in UPDATE_INPUTS}
                state, metrics = self.update(state, placement.put_batch(micro))
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                if updates == 0:
                    totals["first_approx_kl"] = metrics.get("approx_kl", 0.0)
                for key, value in metrics.items():
                    totals[key] = totals.get(key, 0.0) + value
                updates += 1
                if not metrics["finite"]:
                    return state, {**pass_metrics, "finite": 0.0}
        averaged = {k: (v / updates if k != "first_approx_kl" else v) for k, v in totals.items()}
        averaged["finite"] = 1.0
        averaged["time_update"] = time.perf_counter() - update_start
        averaged["kl_coef"] = self.kl.value
        self.kl.update(pass_metrics["kl"], rows)
        return state, {**pass_metrics, **averaged}

    def extra(self) -> dict:
        return {"kl_coef": self.kl.state_dict()}


def run_reft(config, log=print, **kwargs) -> pathlib.Path:
    """`stages=reft`: PPO from the warm-up checkpoint; outputs under `<workdir>/reft/` (metrics,
    checkpoints, `best` chosen on validation, `last`)."""
    return run_rl_stage(config, PPOLearner(config), log, **kwargs)
