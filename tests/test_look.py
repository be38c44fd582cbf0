"""Pictures of a store: contact sheet, one clip over time, predict's window plot, HTML report.

On the real store ingested from the synthetic dataset (``ingested_store``); the HTML
report is opened in headless Chromium where it is installed (always in CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import markupsafe
import numpy as np
import pytest
from cli_helpers import call_main, run_cli
from PIL import Image, ImageColor
from trainer_fixtures import build_store

import schemas
from pipeline.report import html_report, sheet
from pipeline.report.clips import choose, stream
from schemas.picture_text import MAX_CHARS

ODD_ID = "id<b>&\"q'_x"
ODD_REASON = "cannot decode: <script>alert('x')</script> & more"


def _png(path: Path) -> Image.Image:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(path)
    image.verify()  # a truncated or corrupt PNG raises here
    return Image.open(path)


def _not_blank(image: Image.Image) -> bool:
    colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    return colours is None or len(colours) > 50


def _has_mouth(store: Path, groups: dict[str, list[dict]]) -> bool:
    return any(stream(store, r["clip_id"], "mouth") is not None for m in groups.values() for r in m)


@pytest.fixture(scope="module")
def rows(ingested_store: Path) -> list[dict]:
    return schemas.read_manifest(ingested_store).to_pylist()


@pytest.mark.parametrize(("per_category", "sort"), [(2, "worst"), (1, "random")])
def test_sheet_has_one_row_per_clip_shown(
    ingested_store: Path, rows: list[dict], tmp_path: Path, per_category: int, sort: str
) -> None:
    out = tmp_path / "sheet.png"
    args = ["--per-category", str(per_category), "--sort", sort]
    run_cli("mscct-pipeline", "inspect", "--store", ingested_store, "--sheet", out, *args)
    groups = choose(rows, per_category, sort)
    shown = sum(len(m) for m in groups.values())
    assert shown == per_category * len(schemas.CATEGORIES)  # every category has ok clips
    columns = sheet.FRAMES + int(_has_mouth(ingested_store, groups))
    image = _png(out)
    assert image.size == (
        sheet.LABEL_W + columns * (sheet.TILE + sheet.GAP) + sheet.GAP,
        sheet.TITLE_H + len(groups) * sheet.GROUP_H + shown * (sheet.TILE + sheet.GAP) + sheet.GAP,
    )
    # The first tile of the first clip holds a face crop, not the background.
    x0, y0 = sheet.LABEL_W + sheet.GAP, sheet.TITLE_H + sheet.GROUP_H + sheet.GAP
    assert _not_blank(image.crop((x0, y0, x0 + sheet.TILE, y0 + sheet.TILE)))


def test_sort_worst_puts_lowest_rate_then_most_jitter_first() -> None:
    def row(clip_id: str, rate: float, jitter: float | None = None) -> dict:
        return {"clip_id": clip_id, "category": "RARV", "status": "ok",
                "face_detection_rate": rate, "landmark_jitter": jitter}  # fmt: skip

    rows = [row("a", 0.9), row("b", 0.4), row("c", 0.9, 3.0), row("d", 1.0, 9.0)]
    assert [r["clip_id"] for r in choose(rows, None, "worst")["RARV"]] == ["b", "c", "a", "d"]
    assert [r["clip_id"] for r in choose(rows, 2, "worst")["RARV"]] == ["b", "c"]
    shuffled = [r["clip_id"] for r in choose(rows, None, "random", seed=3)["RARV"]]
    assert shuffled == [r["clip_id"] for r in choose(rows, None, "random", seed=3)["RARV"]]
    assert sorted(shuffled) == ["a", "b", "c", "d"]


def test_sheet_options_are_checked(ingested_store: Path, tmp_path: Path) -> None:
    for bad in (["--sort", "best"], ["--per-category", "0"]):
        proc = run_cli("mscct-pipeline", "inspect", "--store", ingested_store,
                       "--sheet", tmp_path / "x.png", *bad, check=False)  # fmt: skip
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert not (tmp_path / "x.png").exists()


def test_show_draws_one_clip(ingested_store: Path, rows: list[dict], tmp_path: Path) -> None:
    clip_id = next(r["clip_id"] for r in rows if r["status"] == "ok" and r["category"] == "FAFV")
    out = tmp_path / "deeper" / "clip.png"
    proc = run_cli("mscct-pipeline", "show", clip_id, "--store", ingested_store, "--out", out)
    assert "1200x800" in proc.stdout
    image = _png(out)
    assert image.size == (1200, 800) and _not_blank(image)
    missing = run_cli("mscct-pipeline", "show", "no_such_clip", "--store", ingested_store,
                      "--out", tmp_path / "y.png", check=False)  # fmt: skip
    assert missing.returncode == 2
    assert missing.stderr.strip() == "error: clip 'no_such_clip' is not in the manifest"


def test_inspect_reports_faces_speech_and_decoders(ingested_store: Path, rows: list[dict]) -> None:
    ok = [r for r in rows if r["status"] == schemas.STATUS_OK]
    n, decoders = len(ok), sorted({r["decoded_by"] for r in ok})
    text = run_cli("mscct-pipeline", "inspect", "--store", ingested_store).stdout
    # The synthetic clips: frontal, one face in every frame, speech. Head pose needs
    # landmarks (stored where the landmarks extra is installed).
    posed = any(r["frontal_rate"] is not None for r in ok)
    assert f"0 of {n} clips with little speech" in text
    faces = f"0 of {n} clips with faceless frames; 0 of {n} clips with several face tracks, "
    frontal = f"frontal rate median 1.00 over {n} clips, 0 flagged low_frontal_rate; "
    assert "faces: " + frontal * posed + faces + "0 of them flagged no_speaker\n" in text
    assert "decoded by: " + ", ".join(f"{d} {n} clips" for d in decoders) in text
    proc = run_cli("mscct-pipeline", "inspect", "--store", ingested_store, "--json")
    quality = __import__("json").loads(proc.stdout)["quality"]
    assert quality["frontal_rate"] == ({"median": 1.0, "clips": n} if posed else None)
    assert quality["clips_low_frontal"] == 0
    assert quality["clips_faceless"] == quality["clips_several_faces"] == 0
    assert quality["clips_faceless_checked"] == quality["clips_faces_checked"] == n
    assert quality["clips_no_speaker"] == quality["clips_little_speech"] == 0
    assert quality["decoded_by"] == {d: n for d in decoders}


def test_quality_lines_count_flagged_clips_and_skip_older_columns() -> None:
    import pyarrow as pa

    from pipeline.ingest.summary import quality_lines, quality_summary

    fine = {"status": "ok", "frontal_rate": 1.0, "low_frontal_rate": False, "face_tracks": 1,
            "faceless_frames": 0, "no_speaker": None, "decoded_by": "pyav"}  # fmt: skip
    odd = {"status": "ok", "frontal_rate": 0.2, "low_frontal_rate": True, "face_tracks": 2,
           "faceless_frames": 4, "no_speaker": True, "decoded_by": "ffmpeg"}  # fmt: skip
    failed = {"status": "failed", "frontal_rate": None, "decoded_by": None}
    summary = quality_summary(pa.Table.from_pylist([fine, odd, fine, failed]))
    assert summary["frontal_rate"] == {"median": 1.0, "clips": 3}
    assert quality_lines(summary)[1:] == [
        "faces: frontal rate median 1.00 over 3 clips, 1 flagged low_frontal_rate; 1 of 3 "
        "clips with faceless frames; 1 of 3 clips with several face tracks, 1 of them "
        "flagged no_speaker",
        "decoded by: ffmpeg 1 clip, pyav 2 clips",
    ]
    older = quality_summary(pa.Table.from_pylist([{"status": "ok", "shot_cuts": None}]))
    assert quality_lines(older) == ["quality: landmarks: none stored"]
    assert older["decoded_by"] == {} and older["frontal_rate"] is None


def test_predict_plots_window_scores(synth_root: Path, tmp_path: Path) -> None:
    from trainer.cli import main

    store = build_store(
        tmp_path / "store", crop_size=24, frames=16, counts={"train": 2, "val": 1, "test": 1}
    )
    run = tmp_path / "run"
    settings = ["--set", "epochs=1", "--set", "window=8", "--set", "batch_size=8"]
    assert call_main(main, ["run", "--store", str(store), "--out", str(run), *settings]) == 0
    video = sorted(synth_root.rglob("*.mp4"))[0]
    out = tmp_path / "windows.png"
    best = run / "checkpoints" / "best.pt"
    proc = run_cli("mscct-train", "predict", best, video, "--plot", out, "--json")
    (row,) = __import__("json").loads(proc.stdout)
    assert row["error"] is None and 0.0 <= row["fake"] <= 1.0
    image = _png(out)
    assert image.size == (960, 432) and _not_blank(image)  # figsize (8, 3.6) at 120 dpi
    two = run_cli("mscct-train", "predict", best, video, video, "--plot", out, check=False)
    assert (
        two.returncode == 2 and two.stderr.strip() == "error: --plot draws one video; 2 were given"
    )


def test_window_scores_mean_is_predict_arrays() -> None:
    import torch

    from trainer.config.settings import load_config
    from trainer.evaluate.inference import predict_arrays, window_scores
    from trainer.model import MSCT

    cfg = load_config("tiny", ["window=8", "eval_stride=4"])
    torch.manual_seed(0)
    model = MSCT(cfg.model).eval()
    rng = np.random.default_rng(0)
    video = rng.integers(0, 255, (21, 32, 32, 3), dtype=np.uint8)
    audio = rng.standard_normal((21, schemas.AUDIO_CHANNELS)).astype(np.float32)
    scores = window_scores(model, cfg, video, audio)
    assert scores.starts.tolist() == [0, 4, 8, 12, 13]  # the last window flush with the end
    assert scores.prob.shape == (5, 3)
    assert scores.mean() == pytest.approx(predict_arrays(model, cfg, video, audio))


class _Page(HTMLParser):
    """The ``<img src>`` and the table rows (as cell texts) of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.rows: dict[str, list[list[str]]] = {}
        self._table: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values["src"] or "")
        elif tag == "table":
            self._table = values.get("id") or ""
            self.rows[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.rows[self._table].append([])

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._table is not None and self.rows[self._table] and data.strip():
            self.rows[self._table][-1].append(data)


@pytest.fixture(scope="module")
def report(ingested_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML report of a copy of the store whose manifest also names a failed clip
    with an id and a reason full of HTML's special characters."""
    store = tmp_path_factory.mktemp("odd") / "store"
    shutil.copytree(ingested_store, store)
    rows = schemas.read_manifest(store).to_pylist()
    odd = {**rows[0], "clip_id": ODD_ID, "status": schemas.STATUS_FAILED, "error": ODD_REASON,
           "num_frames": 0}  # fmt: skip
    schemas.write_manifest(store, schemas.rows_to_table([*rows, odd], schemas.MANIFEST_SCHEMA))
    folder = store.parent / "report"
    run_cli("mscct-pipeline", "inspect", "--store", store, "--html", folder, "--per-category", "2")
    return folder / "index.html"


def rows0(report: Path, column: str) -> str:
    """A column of the odd row: that of the manifest's first row, which it copies."""
    return str(schemas.read_manifest(report.parent.parent / "store").column(column)[0])


def test_html_report_links_existing_images_and_escapes(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    assert len(page.images) >= 4  # two histograms at least, two contact sheets
    # The synthetic store has speech measures, face counts and head pose where it has
    # landmarks, no speaker correlation (one face per clip): histograms of what it has.
    hists = {src for src in page.images if src.startswith("hist_")}
    assert {"hist_speech_fraction.png", "hist_faceless_frames.png"} <= hists
    posed = rows0(report, "frontal_rate") != "None"
    assert ("hist_frontal_rate.png" in hists) == posed
    assert "hist_speaker_correlation.png" not in hists
    assert "0 of 12 clips with faceless frames;" in text and "<li>faces: " in text
    assert "clips with little speech</li>" in text and "<li>decoded by: " in text
    for src in page.images:
        assert _png(report.parent / src)
    counts = page.rows["counts"]
    assert [r[0] for r in counts[1:]] == [*schemas.CATEGORIES, "total"]
    assert counts[-1][1:3] == ["12", "1"]  # ok, failed
    # Verbatim, with the failed clip's file name.
    odd_row = [ODD_ID, rows0(report, "path"), rows0(report, "category"), ODD_REASON]
    assert page.rows["failures"][1] == odd_row
    assert "<script>" not in text and ODD_ID not in text
    assert str(markupsafe.escape(ODD_ID)) in text


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed, and CI must run the HTML report test")
        pytest.skip("chromium not installed: apt-get install chromium")
    return found


def test_html_report_renders_in_chromium(report: Path, tmp_path: Path) -> None:
    browser = _chromium()
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2400"]  # fmt: skip
    url = report.resolve().as_uri()
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=90)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = _Page()
    page.feed(dom.stdout)
    assert [r[0] for r in page.rows["counts"][1:]] == [*schemas.CATEGORIES, "total"]
    assert page.rows["failures"][1][0] == ODD_ID
    assert len(page.images) >= 4
    shot = tmp_path / "page.png"
    proc = subprocess.run([*base, f"--screenshot={shot}", url], capture_output=True, timeout=90)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    image = _png(shot)
    assert image.size == (1280, 2400)
    # The page's own style has neither colour: the histograms' bars and the contact
    # sheets' category bands are on screen only when the images loaded.
    pixels = np.asarray(image.convert("RGB")).astype(int)
    for colour in (ImageColor.getrgb(html_report.HIST_COLOUR), sheet.GROUP_BAND):
        near = np.abs(pixels - np.array(colour)).max(axis=-1) <= 6
        assert near.sum() > 2000, f"no image painted in {colour} on the page"


def test_landmark_measures_are_not_flags() -> None:
    from pipeline.report.clips import flags, measures

    fine = {"low_face_rate": False, "cut": False, "landmark_rate": 0.98, "landmark_jitter": 0.5}
    assert flags(fine) == [] and measures(fine) == ["landmarks 0.98", "jitter 0.50px"]
    posed = {**fine, "speech_fraction": 0.8, "frontal_rate": 0.4, "low_frontal_rate": True,
             "speaker_correlation": 0.31, "faceless_frames": 2}  # fmt: skip
    numbers = ["speech 0.80", "frontal 0.40", "speaker r 0.31", "landmarks 0.98", "jitter 0.50px"]
    assert measures(posed) == numbers and len(", ".join(numbers)) < MAX_CHARS // 2
    assert flags(posed) == ["low_frontal_rate", "faceless_frames 2"]
    cut = {**fine, "cut": True, "shot_cuts": 2}
    assert flags(cut) == ["cut", "shot_cuts 2"]


def test_faceless_frames_and_little_speech_are_flags_and_labelled_is_not() -> None:
    from pipeline.report.clips import flags, measures

    row = {"low_face_rate": False, "labelled": True, "little_speech": True,
           "speech_fraction": 0.05, "shot_cuts": 2, "faceless_frames": 5}  # fmt: skip
    assert flags(row) == ["little_speech", "shot_cuts 2", "faceless_frames 5"]
    assert flags({**row, "little_speech": False, "faceless_frames": 0}) == ["shot_cuts 2"]
    assert measures(row) == ["speech 0.05"]


def test_show_reads_a_log_mel_envelope_back_from_mfcc(synth_root: Path) -> None:
    """The envelope ``show`` draws for an mfcc store is close to the log filter banks an
    fbank store keeps for the same audio (real media, the pipeline's own decoder)."""
    from pipeline import media
    from pipeline.clip.audio_features import frame_features
    from pipeline.report.audio_view import loudness_db, mel_db

    clip = media.decode_any(sorted(synth_root.rglob("*.mp4"))[0], 25.0, 16000, 60.0)
    frames = len(clip.frames)
    mfcc, fbank = (frame_features(clip.samples, 16000, frames, f) for f in ("mfcc", "fbank"))
    envelope, banks = mel_db(mfcc, "mfcc"), mel_db(fbank, "fbank")
    assert envelope.shape == banks.shape == (4 * frames, 26)
    assert np.median(np.abs(envelope - banks)) < 3.0  # dB (measured: 1.0-1.6)
    assert np.corrcoef(envelope.ravel(), banks.ravel())[0, 1] > 0.98
    loud = loudness_db(mfcc, "mfcc"), loudness_db(fbank, "fbank")
    assert np.corrcoef(*loud)[0, 1] > 0.98
