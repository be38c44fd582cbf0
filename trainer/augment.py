"""Training-time augmentation of face-crop windows: a small shift and a horizontal flip.

Every frame of a window gets the same transform: the model looks at motion and
lip sync across frames, which a per-frame jitter would corrupt. The crop size
never changes (the model needs a fixed S): the shift pads by reflection and
crops back.

A shifted, reflected and possibly mirrored axis is at most three runs of
consecutive source pixels, so the transform is a handful of strided block copies,
and the loader folds them into the uint8 -> float copy it makes anyway
(:func:`write_planes`): augmentation then costs almost nothing extra. A separate
flip pass over interleaved RGB bytes is, with numpy, slower than the whole
float conversion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def default_max_shift(crop_size: int) -> int:
    """A few pixels: 4 at the default 112 crop, scaled with the crop, at least 1."""
    return max(1, round(crop_size * 4 / 112))


def reflect_index(index: np.ndarray, size: int) -> np.ndarray:
    """Map positions in ``[-(size - 1), 2 (size - 1)]`` into ``[0, size)`` by mirror
    reflection about the edge pixels (numpy's ``reflect`` padding)."""
    index = np.abs(index)
    return np.where(index > size - 1, 2 * (size - 1) - index, index)


def _runs(index: np.ndarray) -> list[tuple[slice, slice]]:
    """Split an index map into ``(out, src)`` slice pairs whose source step is +1 or -1."""
    runs = []
    begin = 0
    while begin < len(index):
        step = int(index[begin + 1] - index[begin]) if begin + 1 < len(index) else 1
        if step not in (1, -1):
            step = 1
        end = begin + 1
        while end < len(index) and index[end] - index[end - 1] == step:
            end += 1
        first, last = int(index[begin]), int(index[end - 1])
        stop = last + step
        runs.append((slice(begin, end), slice(first, None if stop < 0 else stop, step)))
        begin = end
    return runs


@dataclass(frozen=True)
class ShiftFlip:
    """``out[:, y, x] = video[:, r(y + dy), r(x' + dx)]``: ``r`` reflects at the borders,
    ``x' = S - 1 - x`` when ``flip`` else ``x``.

    Equivalent to padding each frame by ``max_shift`` pixels (reflection), cropping
    back at offset ``(max_shift + dy, max_shift + dx)`` and then mirroring.
    """

    dy: int = 0
    dx: int = 0
    flip: bool = False

    def blocks(self, size_y: int, size_x: int) -> list[tuple[slice, slice, slice, slice]]:
        """``(out_y, out_x, src_y, src_x)`` slices whose copies make up the transform."""
        if max(abs(self.dy), abs(self.dx)) >= min(size_y, size_x):
            raise ValueError(f"shift ({self.dy}, {self.dx}) too large for {size_y}x{size_x}")
        rows = reflect_index(np.arange(size_y) + self.dy, size_y)
        cols = reflect_index(np.arange(size_x) + self.dx, size_x)
        if self.flip:
            cols = cols[::-1]
        return [(oy, ox, sy, sx) for oy, sy in _runs(rows) for ox, sx in _runs(cols)]


def shift_flip(video: np.ndarray, dy: int, dx: int, max_shift: int, flip: bool) -> np.ndarray:
    """Apply :class:`ShiftFlip` to a window.

    Args:
        video: ``(T, S, S, C)`` array (any dtype).
        dy, dx: offsets in ``[-max_shift, max_shift]``.
        max_shift: the padding width; must be smaller than ``S``.
        flip: mirror left-right (the same for every frame).

    Returns:
        A new C-contiguous ``(T, S, S, C)`` array.
    """
    if not (abs(dy) <= max_shift and abs(dx) <= max_shift):
        raise ValueError(f"shift ({dy}, {dx}) exceeds max_shift {max_shift}")
    out = np.empty_like(video)
    for oy, ox, sy, sx in ShiftFlip(dy, dx, flip).blocks(video.shape[1], video.shape[2]):
        out[:, oy, ox] = video[:, sy, sx]
    return out


def write_planes(video: np.ndarray, out: np.ndarray, transform: ShiftFlip | None = None) -> None:
    """Copy a window into channel-first planes, converting dtype and applying ``transform``.

    Args:
        video: ``(T, S, S, C)`` source (e.g. uint8 memmap view).
        out: ``(C, T, S, S)`` destination (e.g. float32), written in full.
        transform: the shift/flip, or None for a plain copy.
    """
    channels = video.shape[3]
    if transform is None:
        for c in range(channels):
            out[c] = video[..., c]
        return
    for oy, ox, sy, sx in transform.blocks(video.shape[1], video.shape[2]):
        for c in range(channels):
            out[c, :, oy, ox] = video[:, sy, sx, c]


def random_shift_flip(
    rng: np.random.Generator, max_shift: int, flip_prob: float = 0.5
) -> ShiftFlip:
    """Draw a :class:`ShiftFlip`: shifts uniform in ``[-max_shift, max_shift]``, flip with
    ``flip_prob``. Exactly three draws are taken from ``rng`` (the caller seeds it per item)."""
    dy, dx = (int(v) for v in rng.integers(-max_shift, max_shift + 1, size=2))
    return ShiftFlip(dy, dx, bool(rng.random() < flip_prob))
