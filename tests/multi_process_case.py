"""One process of a local two-process run, two CPU devices each (as two hosts), through the
command-line entry: started by tests/multi_process.py as
`python tests/multi_process_case.py <case> <process id> <port> <case args...> [key=value ...]`.

Cases: `sft <folder> <model> <dataset>` trains the SFT stage of tests/test_train_sft_stage.py on
a (data 2, fsdp 2) mesh; `reft <root> <workdir>` runs the one PPO iteration of
tests/test_parallel_rl.py on a (fsdp 2, tensor 2) mesh, so parameters are split across the
processes. `section.key=value` overrides a config value; `stall_after=<step>` makes process 1
stop answering after its checkpoint at that step, as a host about to be lost;
`fail_before_loop=1` makes process 1 raise after its model and data are ready, before its run loop
starts (as a file only that host cannot read would).
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"  # before JAX starts
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def sft_config(folder, model, dataset):
    from tests.test_train_sft_stage import make_config

    config = make_config(pathlib.Path(folder), model, dataset)
    config.mesh.data, config.mesh.fsdp = 2, 2
    return config


def reft_config(root, workdir):
    from tests.test_parallel_rl import one_iteration_config

    config = one_iteration_config(pathlib.Path(root), pathlib.Path(workdir))
    config.stages = "reft"
    config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 1, 2, 2
    return config


CASES = {"sft": sft_config, "reft": reft_config}


def stall_after(step: int) -> None:
    """Process 1 hangs (its watchdog thread still alive) once its checkpoint at `step` is saved."""
    import jax

    from reft_jax.train.loop import RunLoop

    save = RunLoop.save

    def save_then_stall(loop, state):
        save(loop, state)
        if loop.position.step == step and jax.process_index() == 1:
            print(f"stalled after step {step}", flush=True)
            time.sleep(600)

    RunLoop.save = save_then_stall


def fail_before_loop() -> None:
    """Process 1 raises where a stage builds its run loop, outside the loop's own error handling."""
    import jax

    from reft_jax.train.loop import RunLoop

    build = RunLoop.__init__

    def build_or_fail(loop, *args, **kwargs):
        if jax.process_index() == 1:
            raise RuntimeError("injected failure on process 1 before its run loop")
        build(loop, *args, **kwargs)

    RunLoop.__init__ = build_or_fail


def main():
    case, process_id, port, *args = sys.argv[1:]
    overrides = dict(a.split("=", 1) for a in args if "=" in a)
    config = CASES[case](*(a for a in args if "=" not in a))
    if "stall_after" in overrides:
        stall_after(int(overrides.pop("stall_after")))
    if overrides.pop("fail_before_loop", "0") == "1":
        fail_before_loop()
    for key, value in overrides.items():
        section, name = key.split(".")
        config[section][name] = type(config[section][name])(value)
    config.distributed.enabled = True
    config.distributed.coordinator_address = f"localhost:{port}"
    config.distributed.num_processes = 2
    config.distributed.process_id = int(process_id)
    from reft_jax.main import run

    run(config)


if __name__ == "__main__":
    main()
