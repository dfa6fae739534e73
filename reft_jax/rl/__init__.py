"""ReFT's RL math: pure jnp functions on response-aligned (rows, T) arrays (column j is a row's
j-th response token, `mask` 1 on response tokens including EOS), plus the host-side KL controllers.

advantages.py: KL-penalised per-token rewards, GAE, masked statistics and whitening, critic-free
group advantages. losses.py: the clipped PPO policy and value losses. kl_control.py: fixed and
adaptive KL coefficients.
"""

from reft_jax.rl.advantages import (
    GROUP_KINDS,
    KL_ESTIMATORS,
    gae,
    group_advantages,
    kl_penalized_rewards,
    kl_penalty,
    last_masked_column,
    masked_mean,
    masked_var,
    masked_whiten,
    sequence_advantages_to_tokens,
)
from reft_jax.rl.kl_control import AdaptiveKLController, FixedKLController
from reft_jax.rl.losses import ppo_loss, ppo_row_losses

__all__ = [
    "GROUP_KINDS",
    "KL_ESTIMATORS",
    "AdaptiveKLController",
    "FixedKLController",
    "gae",
    "group_advantages",
    "kl_penalized_rewards",
    "kl_penalty",
    "last_masked_column",
    "masked_mean",
    "masked_var",
    "masked_whiten",
    "ppo_loss",
    "ppo_row_losses",
    "sequence_advantages_to_tokens",
]
