"""`python -m reft_jax.plan --config=configs/gsm8k_program.py --devices=8 --kind=h100-80g`

Prints each step's per-device memory as XLA plans it for the configured mesh on `--devices`
fake CPU devices, whether it fits `--kind` less `--margin`, and for a plan that does not fit,
the settings that make it fit, found by compiling again with them. Config overrides work as in
`reft_jax.main` (`--config.mesh.fsdp=8`). Nothing is downloaded but config.json (or nothing,
for the built-in shapes) and no weights are read.
"""

from __future__ import annotations

import os
import re
import sys

from absl import app, flags

from reft_jax.errors import ReftError
from reft_jax.main import _CONFIG, _one_line, _parse_flags  # the run's --config and its errors

_DEVICES = flags.DEFINE_integer("devices", 8, "How many devices to plan for (faked on the CPU).")
_KIND = flags.DEFINE_string("kind", "h100-80g", "The accelerator to judge against: "
                            "h100-80g, h200, a100-80g, a100-40g, v4, v5e, v5p or cpu.")
_MARGIN = flags.DEFINE_float("margin", 0.10, "Share of the device's memory kept free.")
_STEPS = flags.DEFINE_string("steps", "sft,sample,rollout_pass,update", "Steps to plan.")
_SUGGEST = flags.DEFINE_boolean("suggest", True, "For a plan that does not fit, try changes.")


def fake_devices(count: int) -> None:
    """Ask XLA for `count` CPU devices; only works before JAX starts its backend, so this runs
    first thing in the planner's own process (never at import of the package)."""
    kept = re.sub(r"--xla_force_host_platform_device_count=\S+", "", os.environ.get("XLA_FLAGS", ""))
    os.environ["XLA_FLAGS"] = f"{kept} --xla_force_host_platform_device_count={count}".strip()
    os.environ["JAX_PLATFORMS"] = "cpu"


def start_jax(devices: int) -> None:
    """Start JAX on `devices` fake CPU devices, or fail when it had started already."""
    fake_devices(devices)
    import jax

    if jax.device_count() != devices:
        raise ReftError(f"JAX started with {jax.device_count()} devices before the planner could "
                        f"ask for {devices}: run `python -m reft_jax.plan` in its own process")


def run(config, devices: int, kind: str, margin: float, steps: list[str], suggest: bool) -> None:
    from reft_jax.plan.accelerators import accelerator, budget_bytes

    if devices < 1:
        raise ReftError(f"--devices={devices} must be >= 1")
    device = accelerator(kind, devices)  # a bad --kind fails before anything slow
    budget = budget_bytes(device, margin)
    start_jax(devices)
    from reft_jax.config_check import check_values
    from reft_jax.plan.code_paths import code_paths_of
    from reft_jax.plan.fixes import find_fit, flags as as_flags
    from reft_jax.plan.programs import STEPS, plan
    from reft_jax.plan.report import closing_note, header, table, verdict
    from reft_jax.plan.shapes import hf_config_of, model_shape

    unknown = [s for s in steps if s not in STEPS]
    if unknown or not steps:
        raise ReftError(f"--steps: {', '.join(unknown) or 'none'}; choose from {', '.join(STEPS)}")
    check_values(config)
    hf, origin = hf_config_of(config)

    def plan_steps(trial, names):
        with code_paths_of(device.platform):
            return plan(trial, model_shape(hf, trial), [s for s in STEPS if s in names])

    print(header(config, model_shape(hf, config), origin, device, kind, budget, margin))
    planned = plan_steps(config, steps)
    print(table(planned, budget))
    print(verdict(planned, budget))
    if suggest and any(p.memory.total > budget for p in planned.values()):
        print("trying changes for the steps that do not fit (each compiled again):")
        chosen, fixed = find_fit(config, plan_steps, budget, planned)
        if chosen:
            print(f"with {as_flags(chosen)}:")
            print(table(fixed, budget))
            print(verdict(fixed, budget))
        else:
            print("no change tried helped: use more devices or a larger --kind")
    print(closing_note(device.platform))


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        config = _CONFIG.value
        if config is None:
            raise app.UsageError("--config=configs/<name>.py is required")
        steps = [s.strip() for s in _STEPS.value.split(",") if s.strip()]
        run(config, _DEVICES.value, _KIND.value, _MARGIN.value, steps, _SUGGEST.value)
    except OSError as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        sys.exit(2)
    except ReftError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
