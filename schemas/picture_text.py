"""Text that a picture draws: one line, of bounded length, drawn exactly as written.

Clip ids, paths, methods, identities and error reasons come from the dataset, so they
may be anything a file name or a metadata cell can hold: 120,000 characters, newlines,
control characters, or ``$...$`` that matplotlib would parse as mathtext (and fail on,
or draw as something else). Every text the pictures draw (contact sheets, ``show``,
the HTML report's histograms and tables, ``predict --plot``) goes through :func:`plain`
first, and every matplotlib figure is drawn under :data:`LITERAL_TEXT_RC`. Cutting
first keeps the cost of laying a text out independent of the text's length.

Pure Python: both the pipeline's report and the trainer's plots use it.
"""

from __future__ import annotations

from typing import Any

#: The longest text a picture draws, in characters (an ellipsis ends a longer one).
MAX_CHARS = 160

#: matplotlib settings under which a text is drawn as written: ``$`` is a dollar sign,
#: not mathtext, and nothing is handed to LaTeX (whatever the user's matplotlibrc says).
LITERAL_TEXT_RC: dict[Any, bool] = {"text.parse_math": False, "text.usetex": False}

ELLIPSIS = "…"

# Control characters (C0, DEL, C1), line and paragraph separators and the bidirectional
# overrides and isolates (which could reorder what is shown) become spaces.
_INVISIBLE = [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F)]
_SPACES = dict.fromkeys([*_INVISIBLE, *range(0x2066, 0x206A)], " ")


def plain(value: object, limit: int = MAX_CHARS) -> str:
    """``value`` as one line of at most ``limit`` characters, control characters shown
    as spaces, cut with an ellipsis when longer (``limit >= 1``)."""
    text = str(value)
    if len(text) > limit:
        # Cut before translating: the work is bounded by ``limit``, not by the input.
        return text[: limit - 1].translate(_SPACES) + ELLIPSIS
    return text.translate(_SPACES)
