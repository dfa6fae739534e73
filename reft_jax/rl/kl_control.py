"""KL-coefficient controllers: host-side Python floats, so a run saves `value` with its checkpoint.

The reference code keeps the coefficient fixed; the adaptive rule (Ziegler et al. 2019, as in
trl) is offered to steer the observed KL towards a target instead.
"""

from __future__ import annotations

from reft_jax.errors import ReftError


class FixedKLController:
    """A constant KL coefficient (ReFT's setting: 0.05 N-CoT, 0.01 P-CoT)."""

    def __init__(self, init_coef: float):
        self.value = float(init_coef)

    def update(self, observed_kl: float, n_steps: int) -> None:
        """Nothing to adapt; present so both controllers are used the same way."""

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, d: dict) -> None:
        self.value = float(d["value"])


class AdaptiveKLController(FixedKLController):
    """Proportional control of the KL coefficient towards `target` with time scale `horizon`.

    error = clip(observed / target - 1, -0.2, 0.2); value *= 1 + error * n_steps / horizon.
    The clip bounds how fast one noisy batch can move the coefficient.
    """

    def __init__(self, init_coef: float, target: float, horizon: float):
        if target <= 0 or horizon <= 0:
            raise ReftError(
                f"adaptive KL needs target > 0 and horizon > 0, got {target} and {horizon}")
        super().__init__(init_coef)
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, observed_kl: float, n_steps: int) -> None:
        error = min(max(float(observed_kl) / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
