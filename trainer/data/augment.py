"""Training-time augmentation of visual windows: a small shift and a horizontal flip.

Both streams get both (:mod:`trainer.data.streams`): face crops ``(.., S, S, 3)`` and
grayscale mouth crops ``(.., 88, 88, 1)``, whose shift the dataset makes by moving
the crop inside the stored 96 × 96 mouth (so only the flip is left for here). There
is no colour augmentation, which would make no sense for grayscale mouths anyway.

Every frame of a window gets the same transform: the model looks at motion and
lip sync across frames, which a per-frame jitter would corrupt. The crop size
never changes (the model needs a fixed S): the shift pads by reflection and
crops back.

The dataset only *draws* each window's transform (from the item's own random stream,
so runs and resumes are exact); :func:`shift_flip` applies it to the whole batch
on the training device, in the one copy that also produces the model's
channel-first float layout. Rearranging interleaved RGB bytes costs a CPU core about
as much as reading the window ten times over, while on a GPU it is free, and a
uint8 window crosses to the device in a quarter of the bytes of a float one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainer.data.draws import ItemDraws


def default_max_shift(crop_size: int) -> int:
    """A few pixels: 4 at the default 112 crop, scaled with the crop, at least 1."""
    return max(1, round(crop_size * 4 / 112))


def draw_shift_flip(
    draws: ItemDraws, max_shift: int, flip_prob: float = 0.5
) -> tuple[int, int, int]:
    """``(dy, dx, flip)``: shifts uniform in ``[-max_shift, max_shift]``, flip (0 or 1) with
    ``flip_prob``. Exactly three draws are taken from the item's ``draws``."""
    dy = draws.integer(-max_shift, max_shift)
    dx = draws.integer(-max_shift, max_shift)
    return dy, dx, int(draws.uniform() < flip_prob)


def reflect_index(index: Tensor, size: int) -> Tensor:
    """Map positions in ``[-(size - 1), 2 (size - 1)]`` into ``[0, size)`` by mirror
    reflection about the edge pixels (numpy's ``reflect`` padding)."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


def source_maps(params: Tensor, size_y: int, size_x: int) -> tuple[Tensor, Tensor]:
    """Source row and column of every output pixel, per window.

    Args:
        params: ``(B, 3)`` integer ``(dy, dx, flip)`` per window.

    Returns:
        ``rows (B, size_y)`` and ``cols (B, size_x)`` int64 on ``params``' device:
        ``out[b, :, y, x] = video[b, :, rows[b, y], cols[b, x]]``.
    """
    # Shifts must stay below the size (the dataset draws them so); not checked here,
    # since reading a GPU tensor's values would stall the device every batch.
    params = params.long()
    dy, dx, flip = params[:, 0:1], params[:, 1:2], params[:, 2:3].bool()
    y = torch.arange(size_y, device=params.device)
    x = torch.arange(size_x, device=params.device)
    rows = reflect_index(y[None, :] + dy, size_y)
    x = torch.where(flip, size_x - 1 - x[None, :], x[None, :])  # mirror the output
    return rows, reflect_index(x + dx, size_x)


def shift_flip(video: Tensor, params: Tensor | None, dtype: torch.dtype | None = None) -> Tensor:
    """Apply each window's shift and flip and move channels first, in one copy.

    Args:
        video: ``(B, T, S, S, C)`` windows as stored (any dtype, any device).
        params: ``(B, 3)`` ``(dy, dx, flip)`` per window, or None for no augmentation.
        dtype: dtype of the result (the copy converts on the way); default ``video``'s.

    Returns:
        ``(B, C, T, S, S)`` contiguous: ``out[b, :, :, y, x]`` is the source pixel at
        ``(r(y + dy), r(x' + dx))``, where ``r`` reflects at the borders and
        ``x' = S - 1 - x`` when flipped. Equivalent to padding each frame by the
        shift (reflection), cropping back at offset ``(dy, dx)`` and then mirroring.
    """
    dtype = dtype or video.dtype
    if params is None:
        return video.permute(0, 4, 1, 2, 3).to(dtype, memory_format=torch.contiguous_format)
    rows, cols = source_maps(params.to(video.device), video.shape[2], video.shape[3])
    # On a GPU one gather kernel; on a CPU that gather is 4x slower than two
    # index_selects per window.
    gather = gather_batch if video.is_cuda else gather_per_window
    return gather(video, rows, cols, dtype)


def gather_batch(video: Tensor, rows: Tensor, cols: Tensor, dtype: torch.dtype) -> Tensor:
    """:func:`shift_flip`'s copy as one advanced-indexing gather over the batch."""
    b = torch.arange(video.shape[0], device=video.device)[:, None, None]
    # Advanced indices on dims 0, 2, 3 around a slice give (B, Sy, Sx, T, C).
    picked = video[b, :, rows[:, :, None], cols[:, None, :]].permute(0, 4, 3, 1, 2)
    return picked.to(dtype, memory_format=torch.contiguous_format)


def gather_per_window(video: Tensor, rows: Tensor, cols: Tensor, dtype: torch.dtype) -> Tensor:
    """:func:`shift_flip`'s copy window by window, with two ``index_select`` each."""
    batch, frames, size_y, size_x, channels = video.shape
    out = torch.empty((batch, channels, frames, size_y, size_x), dtype=dtype, device=video.device)
    for i in range(batch):
        out[i] = video[i].index_select(1, rows[i]).index_select(2, cols[i]).permute(3, 0, 1, 2)
    return out
