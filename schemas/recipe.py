"""The recipe: every setting that shapes a store's tensors and its clips' verdicts.

A store holds one recipe, recorded in its root ``zarr.json``; every clip's
fingerprint includes the recipe's hash, so resume and store fingerprints stay
truthful. :data:`PIPELINE_VERSION` versions the computation itself.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from schemas.cli_errors import UserError
from schemas.layout import StoreError

# The visual streams a store can hold, in canonical order: the table's visual arrays.
# ``face`` (the RGB face crops, the clip's ``video`` array) is always stored; ``mouth``
# adds the landmark-aligned grayscale mouth crops (needs ``landmarks``).
from schemas.streams import STREAMS as STREAMS

LAYOUTS = ("raw", "zstd")
AUDIO_FEATURES = ("mfcc", "fbank")


def software_version() -> str:
    """The installed mscct version, recorded in every store and run it writes."""
    try:
        from importlib.metadata import version

        return version("mscct")
    except Exception:  # running from a source tree that is not installed
        return "0+unknown"


#: Version of the computation of the stored tensors (decode, alignment, faces, crops,
#: features, trimming) and of the per-clip verdicts. Bump it with any change to that
#: code that can change a stored byte or a clip's ok/failed verdict: it is part of the
#: recipe, so a rerun on an older store refuses instead of mixing old and new clips,
#: and store fingerprints change with it.
PIPELINE_VERSION = 2

#: What the recipe fields of a store written before a field existed meant: the values
#: the code of that time behaved as. Fields not listed here had a fixed constant equal
#: to today's default. Version 1 had no audio coverage check and no face-rate flag.
LEGACY_RECIPE = {
    "pipeline_version": 1,
    "min_audio_coverage": 0.0,
    "min_face_rate": 0.0,
    "landmarks": False,
    "streams": ("face",),
    "decoder": "ffmpeg",
}

#: Fields that only add arrays beside ``video`` and ``audio`` and change none of their
#: bytes. At their legacy value they are left out of :meth:`Recipe.hash`, so a store
#: made before they existed keeps its hash: its clips stay current on resume and its
#: fingerprint does not move.
ADDITIVE_FIELDS = ("landmarks", "streams")
#: Every field left out of :meth:`Recipe.hash` at its legacy value: the additive ones,
#: and ``decoder``, whose legacy value is how every store before it was decoded.
UNHASHED_AT_LEGACY = (*ADDITIVE_FIELDS, "decoder")
#: How a clip is decoded: ``pyav`` inside the worker (``pipeline.media.inprocess``; a
#: file it does not decode exactly goes to an ffmpeg process), or ``ffmpeg``, one
#: supervised ffmpeg process per clip. The frames are the same; PyAV's AAC decoder
#: may round an audio sample one 16-bit step apart, so the choice is recorded.
DECODERS = ("pyav", "ffmpeg")

_FIELD_TYPES: dict[str, type] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "tuple[str, ...]": tuple,
}


@dataclass(frozen=True)
class Recipe:
    """Settings that determine the stored tensors and records. A store holds one recipe.

    Every setting that can change a stored tensor, or whether a clip is ok, is here,
    so that resume (a clip is current only for the same recipe hash) and store
    fingerprints stay truthful. These defaults are the one source of those numbers:
    the modules' constants (``pipeline.clip.faces.DEFAULT_MARGIN`` ...) are read from them
    (this module must not import the pipeline). ``min_face_rate`` flags a clip as ``low_face_rate`` in the
    manifest when its face detection rate is below it (``split`` leaves flagged clips
    out by default); ``min_audio_coverage`` fails a clip whose audio covers less
    than that fraction of its video frames.

    ``landmarks`` stores dlib's 68 facial landmarks per frame (``pipeline.clip.landmarks``;
    needs the ``landmarks`` extra) and the manifest's landmark flags; ``streams``
    names the visual streams stored: ``("face",)`` or ``("face", "mouth")`` (mouth
    crops, ``pipeline.clip.mouth``; needs ``landmarks``). Both default off, so that
    ``Recipe()`` means the same on every installation; the CLI turns landmarks on
    when the predictor is installed. ``decoder`` is one of :data:`DECODERS`.
    """

    features: str = "mfcc"  # mfcc | fbank
    crop_size: int = 112
    fps: int = 25
    sample_rate: int = 16000
    face_stride: int = 5
    trim_silence: bool = False
    audio_dtype: str = "float32"
    layout: str = "raw"  # raw (memmap-able) | zstd
    face_margin: float = 0.3  # pipeline.clip.faces.DEFAULT_MARGIN: crop side = (1 + margin) x box
    face_smooth: int = 5  # pipeline.clip.faces.DEFAULT_SMOOTH: frames averaged for box centres
    face_size_smooth: int = 25  # pipeline.clip.faces.SIZE_SMOOTH: frames averaged for box sizes
    silence_threshold_db: float = 30.0  # pipeline.clip.silence.DEFAULT_THRESHOLD_DB
    silent_clip_db: float = 30.0  # pipeline.clip.silence.SILENT_CLIP_DB
    max_seconds: float = 60.0  # pipeline.clip.transform.DEFAULT_MAX_SECONDS: longer clips are cut
    min_frames: int = 2  # pipeline.clip.transform.MIN_FRAMES: shorter clips fail
    min_audio_coverage: float = 0.9  # audio must cover this fraction of the video frames
    min_face_rate: float = 0.5  # below this face detection rate a clip is low_face_rate
    landmarks: bool = False  # dlib's 68 landmarks per frame, and the landmark flags
    streams: tuple[str, ...] = ("face",)  # ("face",) or ("face", "mouth")
    decoder: str = "pyav"  # pyav (in the worker, ffmpeg where it cannot) | ffmpeg (DECODERS)
    pipeline_version: int = PIPELINE_VERSION

    def __post_init__(self) -> None:
        self._check_types()
        if self.features not in AUDIO_FEATURES:
            raise UserError(f"features must be one of {AUDIO_FEATURES}, not {self.features!r}")
        if self.layout not in LAYOUTS:
            raise UserError(f"layout must be one of {LAYOUTS}, not {self.layout!r}")
        if self.decoder not in DECODERS:
            raise UserError(f"decoder must be one of {DECODERS}, not {self.decoder!r}")
        if self.audio_dtype not in ("float32", "float16"):
            raise UserError(f"audio_dtype must be float32 or float16, not {self.audio_dtype!r}")
        if self.crop_size < 16 or self.face_stride < 1 or self.fps < 1:
            raise UserError("crop_size must be >= 16, face_stride >= 1 and fps >= 1")
        if self.sample_rate < 1 or self.face_smooth < 1 or self.face_size_smooth < 1:
            raise UserError("sample_rate, face_smooth and face_size_smooth must be >= 1")
        if self.face_margin < 0 or not self.max_seconds > 0 or self.min_frames < 1:
            raise UserError("face_margin must be >= 0, max_seconds > 0 and min_frames >= 1")
        for name in ("min_audio_coverage", "min_face_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"{name} must be between 0 and 1, not {getattr(self, name)!r}")
        if self.pipeline_version < 1:
            raise UserError(f"pipeline_version must be >= 1, not {self.pipeline_version!r}")
        self._check_streams()

    def _check_streams(self) -> None:
        """Streams: known names, ``face`` among them, kept in :data:`STREAMS` order."""
        unknown = [s for s in self.streams if s not in STREAMS]
        if unknown or "face" not in self.streams or len(set(self.streams)) != len(self.streams):
            raise UserError(
                f"streams must be face or face,mouth (each once), not {','.join(self.streams)!r}"
            )
        object.__setattr__(self, "streams", tuple(s for s in STREAMS if s in self.streams))
        if "mouth" in self.streams and not self.landmarks:
            raise UserError("the mouth stream is aligned by landmarks: it needs landmarks=True")

    def _check_types(self) -> None:
        """Refuse a field of the wrong type (``"112"`` for an int); ints pass as floats.

        Float fields are stored as floats, so ``60`` and ``60.0`` hash alike.
        """
        for f in fields(self):
            kind = _FIELD_TYPES[str(f.type)]
            value = getattr(self, f.name)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
                continue
            if kind is tuple:
                if isinstance(value, list):  # JSON has no tuples
                    value = tuple(value)
                    object.__setattr__(self, f.name, value)
                if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
                    raise UserError(
                        f"recipe field {f.name!r} must be a list of strings, not {value!r}"
                    )
                continue
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise UserError(
                    f"recipe field {f.name!r} must be {kind.__name__}, "
                    f"not {type(value).__name__} {value!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Recipe:
        """The recipe a store recorded; missing later fields take their legacy meaning.

        Raises :class:`StoreError` (one line naming the field) for an unknown key or a
        value of the wrong type or range.
        """
        if not isinstance(data, dict):
            raise StoreError(f"store recipe must be a JSON object, not {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise StoreError(f"store recipe has unknown key(s) {sorted(unknown)}")
        legacy = {k: v for k, v in LEGACY_RECIPE.items() if k not in data}
        try:
            return cls(**{**legacy, **data})
        except (TypeError, ValueError) as exc:
            raise StoreError(f"store recipe: {exc}") from None

    def hash(self) -> str:
        """Short stable hash of the recipe; part of every clip's fingerprint.

        :data:`UNHASHED_AT_LEGACY` fields at their legacy value are left out (see there).
        """
        data = self.to_dict()
        for name in UNHASHED_AT_LEGACY:
            if data[name] == LEGACY_RECIPE[name]:
                del data[name]
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def diff(self, other: Recipe) -> list[str]:
        a, b = self.to_dict(), other.to_dict()
        return [f"{k}: {a[k]!r} != {b[k]!r}" for k in a if a[k] != b[k]]


def recipe_mismatch(store: Path, found: Recipe, wanted: Recipe) -> str:
    """One line saying why a store's clips cannot be reused with ``wanted``."""
    differences = "; ".join(found.diff(wanted))
    if found.pipeline_version < wanted.pipeline_version:
        return (
            f"store {store} predates pipeline_version {wanted.pipeline_version} (it was made "
            f"by version {found.pipeline_version}: {differences}); its clips would have to be "
            "recomputed: rerun with --overwrite to recompute them, or use another --store"
        )
    return (
        f"store {store} was made with another recipe ({differences}); "
        "use another --store or --overwrite"
    )
