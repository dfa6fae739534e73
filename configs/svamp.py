"""SVAMP with N-CoT (train from mwp_ReFT's svamp_nl.json, test from svamp_test_set.json)."""

from reft_jax.config import default_config


def get_config():
    c = default_config()
    c.workdir = "runs/svamp_nl"
    c.data.dataset = "svamp"
    c.data.style = "nl"
    return c
