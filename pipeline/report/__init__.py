"""Pictures of a feature store, for looking at what an ingest stored.

:mod:`pipeline.report.clips` reads the manifest and a clip's arrays (through ``schemas``
only) and picks the clips to show; :mod:`pipeline.report.sheet` draws a contact sheet
(one row of face crops per clip); :mod:`pipeline.report.clip_view` draws one clip over
time (crops, landmarks, audio features, face-box track); :mod:`pipeline.report.html_report`
writes a static HTML report (counts, failures, histograms, contact sheets).

Figures are drawn with Pillow and matplotlib's non-interactive Agg backend: no display.
Every text a figure draws comes from the store, so it is cut to a bounded length and drawn
as written (:mod:`schemas.picture_text`); where a picture may be written is checked by
:mod:`schemas.output_targets`, and a failed write (a full disk) is one line.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from schemas.output_targets import writing
from schemas.picture_text import LITERAL_TEXT_RC

PALETTE = 256


def agg_pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (imported on first use),
    drawing every text as written (no mathtext, no LaTeX: texts come from the store)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    matplotlib.rcParams.update(LITERAL_TEXT_RC)
    import matplotlib.pyplot as plt

    return plt


def save_png(image: Any, path: Path) -> None:
    """Write a PIL image as a PNG with an adaptive ``PALETTE``-colour palette.

    A picture is an overview, not data (the store holds the exact crops): the palette
    makes a sheet of many clips about three times smaller than full colour.
    """
    paletted = image.convert("RGB").quantize(PALETTE, dither=0)  # 0: Image.Dither.NONE
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        paletted.save(path, format="PNG", optimize=True)


def save_figure(fig: Any, path: Path, dpi: int) -> None:
    """Write a matplotlib figure through :func:`save_png` (exactly ``figsize * dpi`` pixels)."""
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)  # no bbox_inches: the size stays fixed
    buffer.seek(0)
    with Image.open(buffer) as image:
        save_png(image, path)
