"""Per-frame strips of ``mscct-pipeline show``: which frames have a face, where a new
shot may start, and which way the head turns, on the clip's time axis of ``T`` frames.

- ``face``: the stored ``face_valid`` (``schemas.read_face_valid``; a clip stored
  before it reads as a face in every frame): light where the frame has a face, red
  where its crop shows none (the trainer masks it).
- ``shot``: the store keeps the count of cuts (``shot_cuts``), not their frames. The
  frames drawn are those where one may start, from what is stored: a frame where a
  faceless run begins or ends, and a frame whose stored face box jumps from the
  previous one as :func:`pipeline.clip.shots.box_jumps` defines a jump (the boxes are
  interpolated and smoothed shot by shot, so within a shot they never jump). A cut
  that neither empties the frame of faces nor moves the face is not marked; a face
  lost within one shot is marked.
- ``yaw``: the head's yaw in degrees (``schemas.read_pose``, column 0), blue one
  way, red the other, grey where unknown; a store without pose says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import schemas
from pipeline.clip.shots import box_jumps

#: The yaw colour scale's ends, degrees either side of frontal.
YAW_RANGE = 60.0
ROWS = ("face", "shot", "yaw")


def shot_edges(valid: np.ndarray, boxes: np.ndarray | None) -> np.ndarray:
    """Frames ``(K,)`` where a new shot may start: a faceless run's first frame and the
    first frame after it, and a frame with a face whose box jumps from the previous
    frame's (both with a face). ``valid (T,)`` bool, ``boxes (T, 4)`` or None."""
    v = np.asarray(valid, np.bool_)
    edges = set((np.flatnonzero(v[1:] != v[:-1]) + 1).tolist())
    if boxes is not None and len(boxes) == len(v) > 1:
        both = v[1:] & v[:-1]
        edges |= set((np.flatnonzero(box_jumps(boxes) & both) + 1).tolist())
    return np.array(sorted(edges), np.int64)


def read_yaw(store: Any, clip_id: str) -> np.ndarray | None:
    """``(T,)`` yaw in degrees of the clip (NaN where unknown), or None where this store
    (or this version of ``schemas``) keeps no ``pose``."""
    reader = getattr(schemas, "read_pose", None)
    if reader is None:
        return None
    pose = np.asarray(reader(store, clip_id), np.float32)
    if pose.ndim != 2 or not np.isfinite(pose[:, 0]).any():
        return None  # a clip without pose reads as NaN in every frame: nothing to draw
    return np.asarray(pose[:, 0])


def draw_strips(
    ax: Any, valid: np.ndarray, boxes: np.ndarray | None, yaw: np.ndarray | None, cuts: Any
) -> None:
    """The three strips, top to bottom :data:`ROWS`, in ``ax`` over ``len(valid)`` frames;
    ``cuts`` is the manifest's ``shot_cuts`` (None in an older store)."""
    frames = len(valid)
    face = np.where(np.asarray(valid, np.bool_), 0.0, 1.0)[None, :]
    ax.imshow(face, cmap=_face_colours(), vmin=0, vmax=1, aspect="auto",
              extent=(0, frames, 1, 0), interpolation="nearest")  # fmt: skip
    edges = shot_edges(valid, boxes)
    ax.vlines(edges, 1.1, 1.9, color="black", lw=1.5)
    draw_yaw(ax, yaw, frames)
    ax.set_ylim(3, 0)
    ax.set_yticks([0.5, 1.5, 2.5], ["face", "shot", "yaw"], fontsize=7)
    counted = "n/a" if cuts is None else str(cuts)
    ax.set_ylabel(f"frames\n(cuts {counted})", fontsize=8)


def draw_yaw(ax: Any, yaw: np.ndarray | None, frames: int) -> None:
    """The yaw strip (row 2 of :func:`draw_strips`), or a note where no pose is stored."""
    if yaw is None:
        ax.text(frames / 2, 2.5, "no pose stored for this clip", ha="center", va="center",
                color="grey", fontsize=7)  # fmt: skip
        return
    import matplotlib

    cmap = matplotlib.colormaps["coolwarm"].with_extremes(bad="#bbbbbb")
    ax.imshow(np.ma.masked_invalid(yaw)[None, :], cmap=cmap, vmin=-YAW_RANGE,
              vmax=YAW_RANGE, aspect="auto", extent=(0, frames, 3, 2),
              interpolation="nearest")  # fmt: skip
    known = yaw[np.isfinite(yaw)]
    note = f"|yaw| median {np.median(np.abs(known)):.0f}°, colours ±{YAW_RANGE:.0f}°"
    ax.text(frames * 0.995, 2.5, note, fontsize=6, va="center", ha="right",
            bbox={"facecolor": "white", "alpha": 0.7, "lw": 0, "pad": 1})  # fmt: skip


def _face_colours() -> Any:
    from matplotlib.colors import ListedColormap

    return ListedColormap(["#d3f9d8", "#e03131"])
