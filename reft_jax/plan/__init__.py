"""The compile-only memory planner: `python -m reft_jax.plan --config=<config> --devices=8
--kind=h100-80g` (README "Planning memory").

It builds the run's parameters as shapes only (no weights read), lowers and compiles the very
steps a run jits (the SFT step, the PPO no-grad pass and update, the rollout sampler) for the
configured mesh on that many fake CPU devices, and reads each one's per-device memory from
XLA's `memory_analysis()`. Importing this package changes nothing: only `python -m
reft_jax.plan` asks XLA for fake devices, in its own process, before JAX starts.
"""
