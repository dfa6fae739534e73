"""The planner's printout: what is planned, each program's per-device memory, fits or not."""

from __future__ import annotations

from reft_jax.parallel import make_mesh
from reft_jax.plan.accelerators import GIB

MIB = 2**20

TITLES = {"sft": "SFT step", "sample": "PPO sample (prefill + decode)",
          "rollout_pass": "PPO no-grad pass", "update": "PPO update"}
COLUMNS = {"arguments": "args", "outputs": "outputs", "temporaries": "temps", "aliased": "aliased",
           "resident": "resident", "total": "total"}


def header(config, cfg, origin: str, device, kind: str, budget: int, margin: float) -> str:
    """What is planned: the model, the devices and mesh, the target and its budget."""
    size = (f"{cfg.num_params / 1e9:.2f}B" if cfg.num_params >= 1e8 else
            f"{cfg.num_params / 1e6:.2f}M")
    remat = f"remat {cfg.remat_policy}" if cfg.remat else "no remat"
    m = config.mesh
    mesh = make_mesh(m.data, m.fsdp, m.tensor)
    return "\n".join([
        f"model: {config.model.source} ({origin}): {cfg.family}, {size} parameters, params "
        f"{cfg.param_dtype}, compute {cfg.dtype}, {remat}",
        f"devices: {mesh.size} fake CPU device{'s' * (mesh.size > 1)}, mesh "
        + " ".join(f"{k}={v}" for k, v in mesh.shape.items())
        + f", traced as on {device.platform.upper()}",
        f"target: {kind} ({device.name}, {device.memory_gib:.1f} GiB); budget {amount(budget)} "
        f"per device (margin {margin:.0%} for the runtime, workspaces and fragmentation)"])


def closing_note(platform: str) -> str:
    if platform == "cpu":
        return "note: XLA's CPU compiler planned these numbers, as it would run them."
    return ("note: XLA's CPU compiler planned these numbers. A GPU or TPU compiler lays out, "
            "fuses and rematerialises differently (its totals are often lower, and cuDNN's fused "
            "attention needs less than XLA's), so take them as an estimate and keep the margin.")


def unit_of(largest: int) -> tuple[str, int]:
    """GiB, or MiB for a plan under 1 GiB (a test's tiny model)."""
    return ("GiB", GIB) if largest >= GIB else ("MiB", MIB)


def amount(size: int) -> str:
    name, unit = unit_of(size)
    return f"{size / unit:.1f} {name}"


def table(planned: dict, budget: int) -> str:
    """One row per program: batch shape, the memory columns, fits or not."""
    name, unit = unit_of(max(p.memory.total for p in planned.values()))
    head = f"{'per device, ' + name:<30} {'batch':<27}" + "".join(f"{h:>9}" for h in COLUMNS.values())
    lines = [head + "  fits"]
    for step, p in planned.items():
        cells = "".join(f"{getattr(p.memory, c) / unit:>9.2f}" for c in COLUMNS)
        verdict = "yes" if p.memory.total <= budget else "NO"
        lines.append(f"{TITLES[step]:<30} {p.shape:<27}{cells}  {verdict}")
    notes = [f"  resident in {TITLES[s]}: {p.resident_note}" for s, p in planned.items()
             if p.resident_note]
    return "\n".join(lines + (["resident = held by the run's other steps meanwhile:"] + notes
                              if notes else []))


def verdict(planned: dict, budget: int) -> str:
    over = [TITLES[s] for s, p in planned.items() if p.memory.total > budget]
    if not over:
        return f"fits: every step within {amount(budget)} per device"
    return f"does not fit within {amount(budget)} per device: {', '.join(over)}"
