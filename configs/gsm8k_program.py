"""GSM8K with Python-program chain of thought (P-CoT): KL coefficient 0.01 as in the paper."""

from reft_jax.config import default_config


def get_config():
    c = default_config()
    c.workdir = "runs/gsm8k_program"
    c.data.dataset = "gsm8k"
    c.data.style = "program"
    c.reft.kl_coef = 0.01
    return c
