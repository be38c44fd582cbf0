"""Where one stored tensor of a clip lies: :class:`ArraySpec` (``schemas.array_spec``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ArraySpec:
    """Where and how one stored tensor lies on disk."""

    path: Path
    shape: tuple[int, ...]
    dtype: np.dtype
    raw: bool  # True: the single chunk file is the array (memmap-able)
    chunk_shape: tuple[int, ...] = ()
    clip_id: str = ""  # for errors: the clip and store it belongs to
    store: str = ""
    # A clip of a packed store (format 4): the byte offset of its first row in the
    # shard's chunk file, and that chunk's key (``c.0.0…``); None: the file is the array.
    offset: int | None = None
    chunk_key: str = ""

    @property
    def chunk_file(self) -> Path:
        if self.chunk_key:
            return self.path / self.chunk_key
        return self.path.joinpath(
            "c", *(["0"] * len(self.shape))
        )  # Zarr v3 key of chunk (0, ..., 0)
