"""GSM8K with natural-language chain of thought (N-CoT), the paper's settings."""

from reft_jax.config import default_config


def get_config():
    c = default_config()
    c.workdir = "runs/gsm8k_nl"
    c.data.dataset = "gsm8k"
    c.data.style = "nl"
    return c
