"""Pictures of a feature store, for looking at what an ingest stored.

:mod:`pipeline.report.clips` reads the manifest and a clip's arrays (through ``schemas``
only) and picks the clips to show; :mod:`pipeline.report.sheet` draws a contact sheet
(one row of face crops per clip); :mod:`pipeline.report.clip_view` draws one clip over
time (crops, landmarks, audio features, face-box track); :mod:`pipeline.report.html_report`
writes a static HTML report (counts, failures, histograms, contact sheets).

Figures are drawn with Pillow and matplotlib's non-interactive Agg backend: no display.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

PALETTE = 256


def agg_pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_png(image: Any, path: Path) -> None:
    """Write a PIL image as a PNG with an adaptive ``PALETTE``-colour palette.

    A picture is an overview, not data (the store holds the exact crops): the palette
    makes a sheet of many clips about three times smaller than full colour.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    paletted = image.convert("RGB").quantize(PALETTE, dither=0)  # 0: Image.Dither.NONE
    paletted.save(path, format="PNG", optimize=True)


def save_figure(fig: Any, path: Path, dpi: int) -> None:
    """Write a matplotlib figure through :func:`save_png` (exactly ``figsize * dpi`` pixels)."""
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)  # no bbox_inches: the size stays fixed
    buffer.seek(0)
    with Image.open(buffer) as image:
        save_png(image, path)
