"""Math word-problem data: loaders (GSM8K, mwp_ReFT files, synthetic), P-CoT for GSM8K, prompts.

Plain host code: imports nothing from models, training or jax.
"""

from reft_jax.data.gsm8k import load_gsm8k_hub, load_gsm8k_jsonl
from reft_jax.data.loading import NAMES, default_data_dir, load_examples, load_file
from reft_jax.data.mwp import load_mwp_json
from reft_jax.data.numbers import first_number, parse_number
from reft_jax.data.pcot_gsm8k import gsm8k_program, load_gsm8k_programs
from reft_jax.data.prompts import (
    ANSWER_MARKER,
    build_prompt,
    build_rl_prompt,
    build_sft_prompt,
    build_target,
    program_header,
    wrap_chat,
)
from reft_jax.data.records import CHOICE, NL, NUMERIC, PROGRAM, DataError, Example
from reft_jax.data.synthetic import generate as generate_synthetic

__all__ = [
    "ANSWER_MARKER", "CHOICE", "NAMES", "NL", "NUMERIC", "PROGRAM", "DataError", "Example",
    "build_prompt", "build_rl_prompt", "build_sft_prompt", "build_target", "default_data_dir",
    "first_number", "generate_synthetic", "gsm8k_program", "load_examples", "load_file",
    "load_gsm8k_hub", "load_gsm8k_jsonl", "load_gsm8k_programs", "load_mwp_json", "parse_number",
    "program_header", "wrap_chat",
]
