"""Pack prompts of different lengths side by side into a few rows, for prefill.

Left-padding a batch to its longest prompt makes the prefill compute the padding too: on GSM8K
prompts (mean 69 tokens, longest 136, bucketed to 160) more than half of it. Packed rows cost
only the real tokens; segment ids keep each prompt's attention to itself, and index maps move
each prompt's keys and values into the left-padded cache layout the decode loop uses.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np


class PackedPrompts(NamedTuple):
    ids: np.ndarray  # (rows, width) packed tokens, pad elsewhere
    positions: np.ndarray  # (rows, width) position of each token within its prompt
    segments: np.ndarray  # (rows, width) 1 + prompt index, 0 on padding
    src_row: np.ndarray  # (prompts, width): packed row of cache slot j of prompt i
    src_col: np.ndarray  # (prompts, width): packed column of it
    prompt_mask: np.ndarray  # (prompts, width) 1 where the left-padded slot holds a token
    last_row: np.ndarray  # (prompts,) packed row of each prompt's last token
    last_col: np.ndarray  # (prompts,)


def pack_prompts(prompts: Sequence[Sequence[int]], width: int, pad_id: int,
                 row_multiple: int = 2) -> PackedPrompts:
    """First-fit-decreasing packing into rows of `width`; the row count is rounded up to
    `row_multiple` so a run compiles few shapes. Cache slots are left-padded to `width`."""
    lengths = [len(p) for p in prompts]
    if max(lengths) > width:
        raise ValueError(f"a prompt of {max(lengths)} tokens does not fit rows of {width}")
    free: list[int] = []  # free space left in each row
    placement = [(0, 0)] * len(prompts)
    for i in sorted(range(len(prompts)), key=lambda i: -lengths[i]):
        row = next((r for r, space in enumerate(free) if space >= lengths[i]), None)
        if row is None:
            free.append(width)
            row = len(free) - 1
        placement[i] = (row, width - free[row])
        free[row] -= lengths[i]
    rows = -(-len(free) // row_multiple) * row_multiple
    ids = np.full((rows, width), pad_id, np.int32)
    positions = np.zeros((rows, width), np.int32)
    segments = np.zeros((rows, width), np.int32)
    src_row = np.zeros((len(prompts), width), np.int32)
    src_col = np.zeros((len(prompts), width), np.int32)
    prompt_mask = np.zeros((len(prompts), width), np.int32)
    for i, (row, col) in enumerate(placement):
        n = lengths[i]
        ids[row, col:col + n] = prompts[i]
        positions[row, col:col + n] = np.arange(n)
        segments[row, col:col + n] = i + 1
        src_row[i, width - n:] = row
        src_col[i, width - n:] = np.arange(col, col + n)
        prompt_mask[i, width - n:] = 1
    last_row = np.array([row for row, _ in placement], np.int32)
    last_col = np.array([col + n - 1 for (_, col), n in zip(placement, lengths)], np.int32)
    return PackedPrompts(ids, positions, segments, src_row, src_col, prompt_mask, last_row, last_col)
