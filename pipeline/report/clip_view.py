"""One clip over time: face crops (landmarks drawn where stored), mouth crops, a log-mel
picture of its audio with the loudness under it, per-frame strips (face found, where a
shot may start, head yaw) and the face-box track, all on one time axis of ``T`` frames.

The picture is ``FIGSIZE * DPI`` pixels (1200 x 800) whatever the clip. Crop ``k`` of
the ``STRIP`` crops fills frames ``[k T/n, (k+1) T/n)`` of the axis and shows the frame at
the span's centre, so a crop sits right above the sound of its own frames. The audio is
read from the stored features (:mod:`pipeline.report.audio_view`), the strips from the
stored per-frame arrays (:mod:`pipeline.report.frame_strips`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import schemas
from pipeline.report import agg_pyplot, save_figure
from pipeline.report.audio_view import draw_loudness, draw_spectrogram
from pipeline.report.clips import flags, frame_indices, measures, stream
from pipeline.report.frame_strips import draw_strips, read_yaw
from schemas.picture_text import plain

STRIP = 10
FIGSIZE = (12.0, 8.0)
DPI = 100


def write_clip_view(
    store: Path, row: dict[str, Any], out: Path, recipe: schemas.Recipe
) -> tuple[int, int]:
    """Draw the clip of manifest ``row`` into ``out`` (PNG); returns its ``(width, height)``."""
    plt = agg_pyplot()
    clip_id = row["clip_id"]
    video, audio = schemas.open_clip(store, clip_id)
    mouth = stream(store, clip_id, "mouth")
    boxes = stream(store, clip_id, "face_boxes")
    panels = ["face"] + (["mouth"] if mouth is not None else []) + ["audio", "speech"]
    panels += ["strips", "track"]
    ratios = {"face": 1.1, "mouth": 1.1, "audio": 1.8, "speech": 0.7, "strips": 0.6, "track": 1.2}
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=FIGSIZE,
        sharex=True,
        gridspec_kw={"height_ratios": [ratios[p] for p in panels]},
    )
    ax = dict(zip(panels, axes, strict=True))
    frames = video.shape[0]
    _strip(ax["face"], video, stream(store, clip_id, "landmarks"), "face crops")
    if mouth is not None:
        _strip(ax["mouth"], mouth, None, "mouth crops")
    fig.subplots_adjust(left=0.08, right=0.93, top=0.90, bottom=0.07, hspace=0.12)
    features = np.asarray(audio, np.float32)
    draw_spectrogram(fig, ax["audio"], features, recipe.features, recipe.sample_rate)
    draw_loudness(ax["speech"], features, recipe.features, row.get("speech_fraction"))
    valid = schemas.read_face_valid(store, clip_id)
    draw_strips(ax["strips"], valid, boxes, read_yaw(store, clip_id), row.get("shot_cuts"))
    _track(ax["track"], boxes, frames)
    ax["track"].set_xlim(0, frames)
    fps = recipe.fps
    ax["track"].set_xlabel(f"frame (recipe: {fps} frames per second; {frames / fps:.2f} s)")
    fig.suptitle(_title(row), fontsize=10, x=0.01, ha="left")
    save_figure(fig, out, DPI)
    plt.close(fig)
    return int(FIGSIZE[0] * DPI), int(FIGSIZE[1] * DPI)


def _title(row: dict[str, Any]) -> str:
    verdict = {0: "real", 1: "fake", None: "unknown"}  # None: an unlabelled clip
    # Texts from the dataset, each cut to a bounded length (drawn as written: agg_pyplot).
    first = (
        f"{plain(row['clip_id'])}   {plain(row['category'])}: audio "
        f"{verdict[row['audio_label']]}, video {verdict[row['video_label']]}, "
        f"overall {verdict[row['label']]}"
    )
    rate = row.get("face_detection_rate")
    second = (
        f"identity {plain(row['identity'], 60)}, method {plain(row['method'], 60)}, "
        f"{row['num_frames']} frames, "
        f"face detection rate {'n/a' if rate is None else f'{rate:.2f}'}"
    )
    marks, numbers = flags(row), measures(row)
    second += f"; flags: {', '.join(marks)}" if marks else ""
    second += f"; {', '.join(numbers)}" if numbers else ""
    return "\n".join([first, second])


def _strip(ax: Any, crops: np.ndarray, landmarks: np.ndarray | None, name: str) -> None:
    """``STRIP`` crops of ``(T, S, S, 3)`` or ``(T, S, S)`` side by side along the time axis;
    ``landmarks (T, 68, 2)`` (crop pixels) drawn on each where given."""
    frames, size = crops.shape[0], crops.shape[1]
    span = frames / STRIP
    for k, index in enumerate(frame_indices(frames, STRIP)):
        left = k * span
        picture = np.asarray(crops[index])
        ax.imshow(
            picture,
            cmap="gray" if picture.ndim == 2 else None,
            vmin=0,
            vmax=255,
            extent=(left, left + span, 1.0, 0.0),
            aspect="auto",
            interpolation="bilinear",
        )
        if landmarks is not None and index < landmarks.shape[0]:
            points = np.asarray(landmarks[index], np.float32)
            ax.scatter(
                left + points[:, 0] / size * span, points[:, 1] / size, s=2, c="#39ff14", lw=0
            )
    ax.set_ylim(1.0, 0.0)
    ax.set_yticks([])
    ax.set_ylabel(name + ("\n+ landmarks" if landmarks is not None else ""), fontsize=8)


def _track(ax: Any, boxes: np.ndarray | None, frames: int) -> None:
    """Face-box centre x, y and size (``sqrt(w h)``) over time, source pixels, from
    ``boxes (T, 4)`` = ``(x0, y0, x1, y1)``; a note when the store has no boxes."""
    ax.set_ylabel("face box\n(source px)", fontsize=8)
    if boxes is None:
        ax.text(
            frames / 2,
            0.5,
            "no face_boxes stored for this clip",
            ha="center",
            va="center",
            color="grey",
        )
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        return
    b = np.asarray(boxes, np.float32)
    t = np.arange(b.shape[0]) + 0.5
    ax.plot(t, (b[:, 0] + b[:, 2]) / 2, label="centre x", lw=1.2)
    ax.plot(t, (b[:, 1] + b[:, 3]) / 2, label="centre y", lw=1.2)
    size = np.sqrt(np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None))
    ax.plot(t, size, label="size", lw=1.2)
    ax.legend(loc="upper right", fontsize=7, ncol=3)
    ax.grid(alpha=0.3)
