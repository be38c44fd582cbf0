"""Summaries of an ingest: counts per category, quality flags, failure reasons, a run's result.

They read a manifest (or an :class:`~pipeline.ingest.driver.IngestResult`) and write
nothing: the CLI prints them after ``ingest`` and in ``inspect``, and
``ingest --json`` prints :func:`result_dict`. They describe what a run left, so
they live apart from the driver (:mod:`pipeline.ingest.driver`) that makes it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from statistics import median
from typing import TYPE_CHECKING, Any

import pyarrow as pa

import schemas
from schemas import STATUS_FAILED, STATUS_OK

if TYPE_CHECKING:
    from pipeline.ingest.driver import IngestResult

#: The name of the unlabelled clips (category ``""``) in summaries.
UNLABELLED = "unlabelled"


@dataclass
class CategorySummary:
    ok: int = 0
    failed: int = 0
    frames: int = 0
    face_rate_sum: float = 0.0

    @property
    def mean_face_rate(self) -> float:
        return self.face_rate_sum / self.ok if self.ok else float("nan")


def summarize(manifest: pa.Table) -> dict[str, CategorySummary]:
    """Per-category counts of a manifest (plus ``unlabelled`` where it has unlabelled
    clips, category ``""``, and ``total``)."""
    counts = {c: CategorySummary() for c in (*schemas.CATEGORIES, UNLABELLED)}
    total = CategorySummary()
    for row in manifest.to_pylist():
        category = row["category"] or UNLABELLED
        for entry in (counts.setdefault(category, CategorySummary()), total):
            if row["status"] == STATUS_OK:
                entry.ok += 1
                entry.frames += row["num_frames"]
                entry.face_rate_sum += row["face_detection_rate"] or 0.0
            else:
                entry.failed += 1
    if not counts[UNLABELLED].ok and not counts[UNLABELLED].failed:
        del counts[UNLABELLED]  # a labelled dataset's summary stays as it always was
    return {**counts, "total": total}


def quality_summary(manifest: pa.Table) -> dict[str, Any]:
    """The landmark and track flags of a manifest's ok clips, summarised.

    ``landmark_rate`` / ``landmark_jitter``: mean, min / max and the number of clips
    that have them (None without landmarks); ``clips_with_cuts``: clips with a
    shot cut, of ``clips_checked`` (clips that record the count);
    ``clips_little_speech``: clips flagged ``little_speech``, of
    ``clips_speech_checked`` (clips that record the measure: not an older store's).
    The faces and the decoder (:func:`_face_summary`, :func:`_decoder_summary`) follow.
    """
    ok = [r for r in manifest.to_pylist() if r["status"] == STATUS_OK]

    def stats(name: str, worst: Callable[..., float], label: str) -> dict[str, Any] | None:
        values = [r[name] for r in ok if r.get(name) is not None]
        if not values:
            return None
        return {"mean": sum(values) / len(values), label: worst(values), "clips": len(values)}

    cuts = [r["shot_cuts"] for r in ok if r.get("shot_cuts") is not None]
    return {
        "landmark_rate": stats("landmark_rate", min, "min"),
        "landmark_jitter": stats("landmark_jitter", max, "max"),
        "clips_with_cuts": sum(1 for c in cuts if c > 0),
        "clips_checked": len(cuts),
        "clips_little_speech": sum(1 for r in ok if r.get("little_speech") is True),
        "clips_speech_checked": sum(1 for r in ok if r.get("little_speech") is not None),
        **_face_summary(ok),
        "decoded_by": _decoder_summary(ok),
    }


def _face_summary(ok: list[dict[str, Any]]) -> dict[str, Any]:
    """The head pose, faceless frames and face tracks of the ok clips.

    ``frontal_rate``: median and number of clips that record it (None without
    landmarks or in an older store), ``clips_low_frontal``: those flagged
    ``low_frontal_rate``; ``clips_faceless``: clips with a stored frame without a face,
    of ``clips_faceless_checked``; ``clips_several_faces``: clips with two face tracks
    or more in a shot, ``clips_no_speaker`` of them flagged ``no_speaker``, of
    ``clips_faces_checked`` (every count 0 where no clip records the column).
    """
    rates = [float(r["frontal_rate"]) for r in ok if r.get("frontal_rate") is not None]
    faceless = [r["faceless_frames"] for r in ok if r.get("faceless_frames") is not None]
    several = [r for r in ok if (r.get("face_tracks") or 0) > 1]
    return {
        "frontal_rate": {"median": median(rates), "clips": len(rates)} if rates else None,
        "clips_low_frontal": sum(1 for r in ok if r.get("low_frontal_rate") is True),
        "clips_faceless": sum(1 for n in faceless if n > 0),
        "clips_faceless_checked": len(faceless),
        "clips_several_faces": len(several),
        "clips_no_speaker": sum(1 for r in several if r.get("no_speaker") is True),
        "clips_faces_checked": sum(1 for r in ok if r.get("face_tracks") is not None),
    }


def _decoder_summary(ok: list[dict[str, Any]]) -> dict[str, int]:
    """How many ok clips each decoder (``decoded_by``: pyav, ffmpeg) decoded, by name;
    empty in a store older than the column."""
    counts = Counter(r["decoded_by"] for r in ok if r.get("decoded_by"))
    return dict(sorted(counts.items()))


def quality_line(summary: dict[str, Any]) -> str:
    """One line of :func:`quality_summary` for ``inspect``."""
    rate, jitter = summary["landmark_rate"], summary["landmark_jitter"]
    parts = ["landmarks: none stored"]
    if rate is not None and jitter is not None:
        parts = [
            f"landmark fit rate mean {rate['mean']:.2f} (min {rate['min']:.2f}) over "
            f"{rate['clips']} clips",
            f"jitter mean {jitter['mean']:.2f} crop px (max {jitter['max']:.2f})",
        ]
    if summary["clips_checked"]:
        parts.append(
            f"{summary['clips_with_cuts']} of {summary['clips_checked']} clips with shot cuts"
        )
    if summary.get("clips_speech_checked"):
        parts.append(
            f"{summary['clips_little_speech']} of {summary['clips_speech_checked']} clips "
            "with little speech"
        )
    return "quality: " + "; ".join(parts)


def quality_lines(summary: dict[str, Any]) -> list[str]:
    """:func:`quality_line`, then a ``faces:`` and a ``decoded by:`` line where the store
    records those columns (a store ingested before them has neither line)."""
    faces = []
    frontal = summary.get("frontal_rate")
    if frontal is not None:
        faces.append(
            f"frontal rate median {frontal['median']:.2f} over {frontal['clips']} clips, "
            f"{summary['clips_low_frontal']} flagged low_frontal_rate"
        )
    if summary.get("clips_faceless_checked"):
        faces.append(
            f"{summary['clips_faceless']} of {summary['clips_faceless_checked']} clips "
            "with faceless frames"
        )
    if summary.get("clips_faces_checked"):
        faces.append(
            f"{summary['clips_several_faces']} of {summary['clips_faces_checked']} clips "
            f"with several face tracks, {summary['clips_no_speaker']} of them flagged no_speaker"
        )
    lines = [quality_line(summary)]
    if faces:
        lines.append("faces: " + "; ".join(faces))
    decoders = summary.get("decoded_by")
    if decoders:
        lines.append(
            "decoded by: "
            + ", ".join(f"{name} {n} clip{'s' * (n != 1)}" for name, n in decoders.items())
        )
    return lines


def failure_reasons(manifest: pa.Table) -> Counter[str]:
    return Counter(r["error"] for r in manifest.to_pylist() if r["status"] == STATUS_FAILED)


def result_dict(result: IngestResult) -> dict[str, Any]:
    """A JSON-able summary of a run (used by ``--json`` and the benchmarks)."""
    return {
        "submitted": result.submitted,
        "skipped": result.skipped,
        "ok": result.ok,
        "failed": result.failed,
        "elapsed_s": round(result.elapsed_s, 3),
        "clips_per_s": round(result.submitted / result.elapsed_s, 3) if result.elapsed_s else None,
        "missing": result.scan.missing,
        "unlisted": result.scan.unlisted,
        "refused": result.scan.refused,
        "unsupported": result.scan.unsupported,
        "merged": result.scan.merged,
        "categories": {k: asdict(v) for k, v in summarize(result.manifest).items()},
    }
