"""Tiny random Hugging Face checkpoints (built with transformers in PyTorch) for oracle tests."""

from __future__ import annotations

import pathlib

import numpy as np

VOCAB = 96
EOS, PAD = 2, 0


def tiny_tokenizer():
    """A word-level tokenizer with the special tokens a checkpoint folder needs."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "<s>", "</s>", "<unk>"] + [f"w{i}" for i in range(VOCAB - 4)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def hf_config(family: str, **overrides):
    from transformers import AutoConfig

    common = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                  max_position_embeddings=64, eos_token_id=EOS, pad_token_id=PAD, bos_token_id=1)
    if family == "opt":
        kw = dict(ffn_dim=48, word_embed_proj_dim=32, do_layer_norm_before=True,
                  activation_function="relu", enable_bias=True)
    else:
        kw = dict(intermediate_size=48, num_key_value_heads=2, rms_norm_eps=1e-5,
                  tie_word_embeddings=False)
    kw.update(common)
    kw.update(overrides)
    return AutoConfig.for_model(family, **kw)


def save_tiny(folder: pathlib.Path, family: str, seed: int = 0, **overrides):
    """Build a randomly initialised transformers model, save it with its tokenizer; return it."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    cfg = hf_config(family, **overrides)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval()
    with torch.no_grad():  # norms start at 1 / 0; randomise them so a mix-up is visible
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return model


def left_padded_batch(seed: int = 0, lengths=(9, 5, 1, 7)):
    """Random ids, left-padded to the longest row, with the matching attention mask."""
    rng = np.random.default_rng(seed)
    width = max(lengths)
    ids = np.full((len(lengths), width), PAD, np.int32)
    mask = np.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, width - n:] = rng.integers(4, VOCAB, n)
        mask[row, width - n:] = 1
    return ids, mask


def torch_logits(model, ids, mask):
    """transformers' logits with the positions `generate` uses for left padding."""
    import torch

    pos = np.maximum(mask.cumsum(-1) - 1, 0)
    kwargs = dict(input_ids=torch.tensor(ids, dtype=torch.long),
                  attention_mask=torch.tensor(mask, dtype=torch.long))
    if model.config.model_type != "opt":  # OPT derives positions from the mask itself
        kwargs["position_ids"] = torch.tensor(pos, dtype=torch.long)
    with torch.no_grad():
        return model(**kwargs).logits.float().numpy()
