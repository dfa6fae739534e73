"""Sharded training on 4 CPU devices; run by tests/test_parallel.py in a child process that sets
XLA_FLAGS (the device count is fixed when JAX starts). Not collected on its own."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from reft_jax.errors import ReftError
from reft_jax.models import load_pretrained
from reft_jax.parallel import batch_sharding, logical_spec, make_mesh
from reft_jax.train.sft import epoch_folder, run_sft
from reft_jax.train.sft_step import make_sft_step
from reft_jax.train.placement import Placement, train_state_shardings
from reft_jax.train.state import create_train_state
from tests.test_train_sft_stage import final_params, make_config, write_dataset
from tests.test_train_step import constant_adamw, random_rows, sft_batch, stack
from tests.tiny_hf import save_tiny

pytestmark = pytest.mark.skipif(jax.device_count() != 4, reason="needs 4 devices (XLA_FLAGS)")

MESHES = [(4, 1, 1), (2, 2, 1), (1, 2, 2)]  # (data, fsdp, tensor)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    save_tiny(folder, "llama", hidden_size=64, intermediate_size=128)
    return folder


def test_mesh_sizes_and_errors_name_the_config():
    assert dict(make_mesh().shape) == {"data": 4, "fsdp": 1, "tensor": 1}
    assert dict(make_mesh(data=1, fsdp=2, tensor=-1).shape) == {"data": 1, "fsdp": 2, "tensor": 2}
    for sizes in [dict(data=3), dict(data=-1, fsdp=3), dict(data=-1, fsdp=-1), dict(tensor=0)]:
        with pytest.raises(ReftError, match="config.mesh"):
            make_mesh(**sizes)


def test_logical_axes_map_to_mesh_axes():
    mesh = make_mesh(1, 2, 2)
    assert logical_spec(("layers", "embed", "mlp"), (3, 64, 128), mesh) == P(None, "fsdp", "tensor")
    assert logical_spec(("vocab", "embed"), (96, 64), mesh) == P("tensor", "fsdp")
    # 3 KV heads do not split over 2 devices; an axis is never used twice
    assert logical_spec(("embed", "kv_heads", "head_dim"), (64, 3, 16), mesh) == P("fsdp", None, None)
    assert logical_spec(("embed", "embed"), (64, 64), mesh) == P("fsdp", None)


# (mesh sizes, micro-batches): every layout with one micro-batch, two layouts accumulating
CASES = [(sizes, 1) for sizes in MESHES] + [((2, 2, 1), 2), ((1, 2, 2), 4)]


@pytest.mark.parametrize("sizes, accum", CASES, ids=[f"{s}x{a}" for s, a in CASES])
def test_sharded_steps_equal_one_device_and_split_the_work(tiny, sizes, accum):
    """Three steps on the mesh (the 8 rows as `accum` micro-batches) against three one-device
    steps on the 8 rows at once: loss, token count, gradient norm (which Adam's update would hide
    a uniformly scaled gradient from) and parameters."""
    model, _ = load_pretrained(tiny)
    full = sft_batch(random_rows(0, [(3, 5), (2, 7), (4, 1), (6, 3)] * 2), 16, left=(1, 5))
    rows = len(full["input_ids"]) // accum
    micro = stack(*[{k: v[i * rows:(i + 1) * rows] for k, v in full.items()} for i in range(accum)])
    results = {}
    for name in ("one device", "mesh"):
        optimizer = constant_adamw(1e-3, weight_decay=0.1)
        graphdef, state = create_train_state(model, optimizer)
        if name == "mesh":
            mesh = make_mesh(*sizes)
            placement = Placement(mesh, train_state_shardings(model, state, mesh),
                                  batch_sharding(mesh, 1))
            state, inputs = placement.put_state(state), placement.put_batch(micro)
            step = make_sft_step(graphdef, optimizer, accum, placement)
        else:
            step, inputs = make_sft_step(graphdef, optimizer), stack(full)
        compiled = step.lower(state, inputs).compile()
        cost = compiled.cost_analysis()
        flops = (cost[0] if isinstance(cost, list) else cost)["flops"]
        history = []
        for _ in range(3):
            state, metrics = compiled(state, inputs)
            history.append({k: float(metrics[k]) for k in ("loss", "grad_norm", "tokens")})
        results[name] = (flops, history, state)
    (one_flops, one_history, one), (mesh_flops, mesh_history, sharded) = results.values()
    for want, got in zip(one_history, mesh_history):
        assert got["tokens"] == want["tokens"]
        np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5)
        np.testing.assert_allclose(got["grad_norm"], want["grad_norm"], rtol=1e-5)
    assert one_history[0]["grad_norm"] > 1.0  # clipped: a scaled gradient would move parameters too
    for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(sharded.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4)
    assert mesh_flops < 0.5 * one_flops  # each device does a share, not the whole step
    up = sharded.params["trunk"]["layers"]["mlp"]["up"]["kernel"]
    fsdp, tensor = sizes[1] > 1, sizes[2] > 1
    assert up.sharding.spec == P(None, "fsdp" if fsdp else None, "tensor" if tensor else None)
    mu = sharded.opt_state.inner_state[1][0].mu["trunk"]["layers"]["mlp"]["up"]["kernel"]
    assert mu.sharding == up.sharding  # Adam's moments live with their parameters


def test_sharded_stage_resumes_to_the_same_parameters(tmp_path, tiny):
    data = write_dataset(tmp_path / "train.jsonl")
    runs = []
    for name, stop in (("straight", 0), ("interrupted", 3)):
        config = make_config(tmp_path / name, tiny, data)
        config.mesh.data, config.mesh.fsdp = 2, 2
        config.sft.stop_after_step = stop
        run_sft(config, log=lambda *_: None)
        if stop:
            assert not epoch_folder(tmp_path / name / "run", 2).exists()
            config.sft.stop_after_step = 0
            messages = []
            run_sft(config, log=messages.append)
            assert any("resuming from step 3" in m for m in messages)
        runs.append(final_params(config))
    straight, resumed = runs
    for key in straight:
        np.testing.assert_array_equal(straight[key], resumed[key], err_msg=key)
    lines = (tmp_path / "straight" / "run" / "sft" / "metrics.jsonl").read_text().splitlines()
    kinds = [json.loads(line)["kind"] for line in lines]
    assert kinds.count("validation") == 2 and kinds.count("test") == 1  # eval on sharded weights


def test_batch_that_does_not_split_over_the_mesh_is_a_clear_error(tmp_path, tiny):
    config = make_config(tmp_path, tiny, write_dataset(tmp_path / "train.jsonl"))
    config.sft.batch_size = 6  # 6 rows over data x fsdp = 4 devices
    with pytest.raises(ReftError, match="config.sft.batch_size gives micro-batches of 6 rows"):
        run_sft(config, log=lambda *_: None)
