"""Load Hugging Face checkpoints (safetensors folders, hub ids, GGUF files); save HF folders.

`load_pretrained` never needs torch: weights come through safetensors or gguf, configs and
tokenizers through transformers. `save_pretrained` writes a folder that transformers, vLLM or
lm-eval-harness can load.
"""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from reft_jax.errors import ReftError
from reft_jax.models.config import resolve_dtype
from reft_jax.models.families import from_hf_config, to_hf_config
from reft_jax.models.gguf_file import GGUFFile
from reft_jax.models.transformer import CausalLM
from reft_jax.models.weights import export_tensors, load_tensors, mapping_for

SAFETENSORS_INDEX = "model.safetensors.index.json"
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]


def load_pretrained(source: str | pathlib.Path, dtype: Any = "float32",
                    param_dtype: Any = None) -> tuple[CausalLM, Any]:
    """(model, tokenizer) from a local HF folder, a `.gguf` file, or a hub id.

    `dtype` is the compute dtype; `param_dtype` (default: the same) is the storage dtype.
    """
    dtype_name = resolve_dtype(dtype).name
    param_name = resolve_dtype(param_dtype if param_dtype is not None else dtype).name
    path = _resolve_source(source)
    if path.is_file():
        if path.suffix != ".gguf":
            raise ReftError(f"{path}: a file source must be a .gguf file; for safetensors give "
                            "the folder that holds config.json")
        return _load_gguf(path, dtype_name, param_name)
    return _load_folder(path, dtype_name, param_name)


def load_tokenizer(source: str | pathlib.Path):
    """The tokenizer of a model source, prepared as `load_pretrained` prepares it, without
    reading any weights."""
    path = _resolve_source(source)
    if path.is_file():
        return _prepare_tokenizer(GGUFFile(path).tokenizer(), path)
    return _tokenizer(path)


def _resolve_source(source) -> pathlib.Path:
    path = pathlib.Path(source).expanduser()
    if path.exists():
        return path
    text = str(source)
    if re.fullmatch(r"[\w.-]+/[\w.-]+", text) and not text.startswith("."):
        try:
            from huggingface_hub import snapshot_download

            return pathlib.Path(snapshot_download(text, allow_patterns=HUB_PATTERNS))
        except Exception as err:  # network or auth failures all mean "cannot get it"
            raise ReftError(f"{text!r} is not a local path and could not be downloaded from the "
                            f"Hugging Face hub ({type(err).__name__}: {str(err)[:200]})") from None
    raise ReftError(f"model source {text!r} does not exist; give a Hugging Face folder "
                    "(config.json + safetensors), a .gguf file, or a hub id like org/name")


def _abstract_model(cfg):
    return nnx.eval_shape(lambda: CausalLM(cfg, rngs=nnx.Rngs(0)))


def _build(cfg, get) -> CausalLM:
    """Create the model with parameters read through `get(hf_name)`, never randomly initialised."""
    graphdef, state = nnx.split(_abstract_model(cfg))
    flat = dict(nnx.to_flat_state(state))
    shapes = {path: tuple(var.get_value().shape) for path, var in flat.items()}
    mappings = mapping_for(cfg, list(flat))
    arrays = load_tensors(mappings, shapes, cfg.num_layers, get, resolve_dtype(cfg.param_dtype))
    for path, var in flat.items():
        var.set_value(arrays[path])
    return nnx.merge(graphdef, state)


def _load_folder(folder: pathlib.Path, dtype: str, param_dtype: str):
    from transformers import AutoConfig

    if not (folder / "config.json").exists():
        raise ReftError(f"{folder}: no config.json; a model folder needs config.json and "
                        "safetensors weights (or give a .gguf file)")
    try:
        hf_config = AutoConfig.from_pretrained(folder)
    except (ValueError, KeyError, OSError) as err:
        raise ReftError(f"{folder}/config.json could not be read: {err}") from None
    cfg = from_hf_config(hf_config, param_dtype=param_dtype, dtype=dtype)
    model = _build(cfg, _safetensors_getter(folder))
    return model, _tokenizer(folder)


def _safetensors_getter(folder: pathlib.Path):
    """get(name) over a single model.safetensors or a sharded index, opening files lazily."""
    from safetensors import safe_open

    index = folder / SAFETENSORS_INDEX
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
    else:
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise ReftError(f"{folder}: no *.safetensors weights (pytorch .bin files are not "
                            "read; convert them with transformers' save_pretrained)")
        weight_map = {}
        for f in files:
            with safe_open(f, framework="flax") as handle:
                weight_map.update({k: f.name for k in handle.keys()})
    handles = {}

    def get(name: str):
        key = name if name in weight_map else name.removeprefix("model.")
        if key not in weight_map:
            raise ReftError(f"{folder}: checkpoint has no tensor {name!r}")
        file = weight_map[key]
        if file not in handles:
            handles[file] = safe_open(folder / file, framework="flax")
        return handles[file].get_tensor(key)

    return get


def _load_gguf(path: pathlib.Path, dtype: str, param_dtype: str):
    gguf = GGUFFile(path)
    cfg = from_hf_config(gguf.hf_config(), param_dtype=param_dtype, dtype=dtype)
    tensors = gguf.tensors(cfg.num_heads, cfg.num_kv_heads)

    def get(name):
        if name not in tensors:
            raise ReftError(f"{path}: GGUF file has no tensor for {name!r}")
        return tensors[name]

    return _build(cfg, get), _prepare_tokenizer(gguf.tokenizer(), path)


def _tokenizer(folder: pathlib.Path):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as err:
        raise ReftError(f"{folder}: no usable tokenizer files ({str(err).splitlines()[0]})") from None
    return _prepare_tokenizer(tok, folder)


def _prepare_tokenizer(tok, folder):
    """Left padding, and a pad token (EOS when the tokenizer has none)."""
    if tok.eos_token_id is None:
        raise ReftError(f"{folder}: the tokenizer defines no EOS token; it is needed to end samples")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def save_pretrained(model: CausalLM, tokenizer, folder: str | pathlib.Path,
                    max_shard_bytes: int = 5 * 2**30) -> pathlib.Path:
    """Write config.json, safetensors (sharded past max_shard_bytes) and the tokenizer files."""
    from safetensors.flax import save_file

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    to_hf_config(cfg).save_pretrained(folder)
    flat = dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))
    arrays = {path: var.get_value() for path, var in flat.items()}
    shards, current, size = [], {}, 0
    for name, tensor in export_tensors(mapping_for(cfg, list(flat)), arrays, cfg.num_layers):
        nbytes = tensor.size * tensor.dtype.itemsize
        if current and size + nbytes > max_shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[name] = jnp.asarray(jax.device_get(tensor))
        size += nbytes
    shards.append(current)
    if len(shards) == 1:
        save_file(shards[0], folder / "model.safetensors", metadata={"format": "pt"})
    else:
        weight_map = {}
        for i, shard in enumerate(shards, 1):
            name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, folder / name, metadata={"format": "pt"})
            weight_map.update({k: name for k in shard})
        (folder / SAFETENSORS_INDEX).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2))
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder
