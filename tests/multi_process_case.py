"""One process of a two-process SFT run, two CPU devices each: launched by tests/test_parallel.py
as `python tests/multi_process_case.py <process id> <port> <folder> <model> <dataset>`."""

from __future__ import annotations

import os
import pathlib
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"  # before JAX starts
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def main():
    process_id, port, folder, model, dataset = sys.argv[1:]
    from reft_jax.main import run
    from tests.test_train_sft_stage import make_config

    config = make_config(pathlib.Path(folder), model, dataset)
    config.distributed.enabled = True
    config.distributed.coordinator_address = f"localhost:{port}"
    config.distributed.num_processes = 2
    config.distributed.process_id = int(process_id)
    config.mesh.data, config.mesh.fsdp = 2, 2
    run(config)


if __name__ == "__main__":
    main()
