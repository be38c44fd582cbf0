"""Pictures and reports against hostile input: texts that are too long or hold markup,
output paths that are not ours to write, a full disk, flags that are not flags.

On copies of the real store ingested from the synthetic dataset (``ingested_store``),
with the hostile values written into their manifests; pictures drawn through the CLI.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli

import schemas
from pipeline.report.clips import LOW_LANDMARK_RATE, NOT_FLAGS, QUALITY_FLAGS, flags
from schemas.output_targets import REPORT_MARKER
from schemas.picture_text import MAX_CHARS, plain

LONG_METHOD = "faceswap-" + "x" * 120_000  # one legal meta_data.csv cell


def _copy_with_rows(source: Path, store: Path, edit: dict[str, object], failed: list[dict]) -> Path:
    """A copy of ``source`` whose ok rows get ``edit`` and whose manifest gains ``failed``."""
    import shutil

    shutil.copytree(source, store)
    rows = [{**r, **edit} for r in schemas.read_manifest(store).to_pylist()]
    template = {**rows[0], "status": schemas.STATUS_FAILED, "num_frames": 0}
    rows += [{**template, **row} for row in failed]
    schemas.write_manifest(store, schemas.rows_to_table(rows, schemas.MANIFEST_SCHEMA))
    return store


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]


def _tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative name -> sha256): to show nothing changed."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ------------------------------------------------------------------ texts a picture draws


def test_plain_text_is_one_bounded_line() -> None:
    assert plain("clip $\\notacommand$.mp4") == "clip $\\notacommand$.mp4"  # as written
    cut = plain(LONG_METHOD)
    assert len(cut) == MAX_CHARS and cut.endswith("…") and cut.startswith("faceswap-x")
    assert plain("a\nb\tc\x00d\u2028e\u202eF") == "a b c d e F"


def test_a_long_method_cell_draws_in_bounded_time(ingested_store: Path, tmp_path: Path) -> None:
    """High 8: a 120,000-character method cell once made the label fitting quadratic
    (hours for one sheet); now the sheet and the report take seconds."""
    store = _copy_with_rows(ingested_store, tmp_path / "store", {"method": LONG_METHOD}, [])
    sheet = tmp_path / "sheet.png"
    args = ("--store", store, "--per-category", "1")
    run_cli("mscct-pipeline", "inspect", *args, "--sheet", sheet, timeout=120)
    run_cli("mscct-pipeline", "inspect", *args, "--html", tmp_path / "report", timeout=120)
    assert sheet.stat().st_size > 0 and (tmp_path / "report" / "index.html").is_file()


def test_mathtext_in_a_plot_title_is_drawn_literally(tmp_path: Path) -> None:
    """Medium 3: ``predict --plot`` on ``clip $\\notacommand$.mp4`` raised matplotlib's
    mathtext ValueError; the name is now drawn as written."""
    from trainer.evaluate.plots import plot_window_scores

    starts = np.arange(0, 48, 8)
    prob = np.linspace(0.1, 0.9, 3 * len(starts)).reshape(-1, 3)
    out = tmp_path / "plot.png"
    title = "clip $\\notacommand$.mp4: 6 windows of 8 frames"
    plot_window_scores(out, starts, 8, 48, prob, fps=25, title=title)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_window_plot_keeps_its_legend_off_the_curves() -> None:
    """Issue 30 item 7: the legend stood inside the axes, over the curves."""
    from trainer.evaluate.plots import _pyplot, window_figure

    starts = np.arange(0, 48, 8)
    prob = np.tile([[0.95, 0.9, 0.97]], (len(starts), 1))  # curves along the top edge
    fig = window_figure(starts, 8, 48, prob, fps=25, title="clip.mp4")
    try:
        renderer = fig.canvas.get_renderer()
        axes, legend = fig.axes[0], fig.axes[0].get_legend()
        box, legend_box = axes.get_window_extent(renderer), legend.get_window_extent(renderer)
        assert not box.overlaps(legend_box), (box, legend_box)
        assert fig.bbox.contains(legend_box.x1 - 1, legend_box.y0 + 1)  # still on the page
    finally:
        _pyplot().close(fig)


# ------------------------------------------------------------------ flags


def test_only_quality_columns_are_flags() -> None:
    """Medium 7: every healthy clip showed a red ``labelled`` flag."""
    healthy = {"labelled": True, "low_face_rate": False, "cut": False, "landmark_rate": 0.98}
    assert flags(healthy) == []
    assert flags({**healthy, "landmark_rate": 0.35}) == ["low_landmark_rate"]
    assert flags({**healthy, "landmark_rate": LOW_LANDMARK_RATE}) == []
    assert flags({**healthy, "low_face_rate": True, "shot_cuts": 1}) == [
        "low_face_rate",
        "shot_cuts 1",
    ]
    booleans = {f.name for f in schemas.MANIFEST_SCHEMA if str(f.type) == "bool"}
    assert booleans <= {*QUALITY_FLAGS, *NOT_FLAGS}, "classify each new boolean column"


def test_the_ingested_store_raises_no_labelled_flag(ingested_store: Path, tmp_path: Path) -> None:
    folder = tmp_path / "report"
    run_cli("mscct-pipeline", "inspect", "--store", ingested_store, "--html", folder)
    text = (folder / "index.html").read_text(encoding="utf-8")
    assert "labelled" not in text
    rows = schemas.read_manifest(ingested_store).to_pylist()
    assert all(flags(r) == [] for r in rows if r["status"] == schemas.STATUS_OK)


# ------------------------------------------------------------------ where pictures go


@pytest.fixture
def store(ingested_store: Path, tmp_path: Path) -> Path:
    failed = [{"clip_id": "broken_clip", "error": "cannot decode:\n  moov atom not found\n"}]
    return _copy_with_rows(ingested_store, tmp_path / "store", {}, failed)


def test_picture_targets_that_are_not_files_are_one_line(store: Path, tmp_path: Path) -> None:
    """Medium 3: ``--html`` onto a file, ``--sheet`` or ``show --out`` onto a folder."""
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine\n")
    a_folder = tmp_path / "folder"
    a_folder.mkdir()
    inspect = ("mscct-pipeline", "inspect", "--store", store)
    proc = run_cli(*inspect, "--html", a_file, check=False)
    _one_line_error(proc, "--html", "is not a folder")
    proc = run_cli(*inspect, "--sheet", a_folder, check=False)
    _one_line_error(proc, "--sheet", "is a directory")
    clip = next(
        r["clip_id"] for r in schemas.read_manifest(store).to_pylist() if r["status"] == "ok"
    )
    proc = run_cli("mscct-pipeline", "show", clip, "--store", store, "--out", a_folder, check=False)
    _one_line_error(proc, "--out", "is a directory")
    assert a_file.read_text() == "mine\n" and list(a_folder.iterdir()) == []


def test_predict_plot_onto_a_folder_is_one_line_before_the_model_runs(tmp_path: Path) -> None:
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"not read: the --plot target is checked first")
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    proc = run_cli("mscct-train", "predict", checkpoint, video, "--plot", tmp_path, check=False)
    _one_line_error(proc, "--plot", "is a directory")


def test_html_never_overwrites_a_users_folder(store: Path, tmp_path: Path) -> None:
    """Medium 9: ``--html DIR`` replaced a user's index.html and pictures."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "index.html").write_text("<p>my page</p>")
    (folder / "hist_face_detection_rate.png").write_bytes(b"my picture")
    before = _tree_digest(folder)
    proc = run_cli("mscct-pipeline", "inspect", "--store", store, "--html", folder, check=False)
    _one_line_error(proc, "not an mscct report", "index.html")
    assert _tree_digest(folder) == before


def test_html_replaces_only_its_own_previous_report(store: Path, tmp_path: Path) -> None:
    folder = tmp_path / "report"
    args = ("mscct-pipeline", "inspect", "--store", store, "--per-category", "1", "--html", folder)
    run_cli(*args)
    marker = json.loads((folder / REPORT_MARKER).read_text())
    assert "index.html" in marker["files"] and "sheet_random.png" in marker["files"]
    (folder / "my_notes.txt").write_text("keep me")
    # A file an earlier report wrote and this one will not: named by the marker, removed.
    (folder / "hist_retired.png").write_bytes(b"old")
    marker["files"].append("hist_retired.png")
    (folder / REPORT_MARKER).write_text(json.dumps(marker))
    run_cli(*args)
    assert (folder / "my_notes.txt").read_text() == "keep me"
    assert not (folder / "hist_retired.png").exists()
    assert sorted(json.loads((folder / REPORT_MARKER).read_text())["files"]) == sorted(
        p.name for p in folder.iterdir() if p.name not in (REPORT_MARKER, "my_notes.txt")
    )


def test_pictures_are_never_written_inside_a_store(store: Path) -> None:
    """Medium 9: a report inside a store left foreign files there, after which
    ``ingest --overwrite`` refused the store."""
    before = _tree_digest(store)
    inspect = ("mscct-pipeline", "inspect", "--store", store)
    proc = run_cli(*inspect, "--html", store / "report", check=False)
    _one_line_error(proc, "--html", "inside the feature store")
    proc = run_cli(*inspect, "--sheet", store / "clips" / "sheet.png", check=False)
    _one_line_error(proc, "--sheet", "inside the feature store")
    assert _tree_digest(store) == before and not (store / "report").exists()


@contextlib.contextmanager
def _small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI is root)")
def test_a_full_disk_during_html_is_one_line(store: Path, tmp_path: Path) -> None:
    with _small_tmpfs(tmp_path / "small", "64k") as mount:
        proc = run_cli("mscct-pipeline", "inspect", "--store", store, "--html", mount / "r",
                       check=False)  # fmt: skip
        _one_line_error(proc, "No space left on device")


def test_show_of_a_failed_clip_with_a_multi_line_reason_is_one_line(store: Path) -> None:
    """Low 3: ``show`` printed a failed clip's stored multi-line reason over several lines."""
    proc = run_cli("mscct-pipeline", "show", "broken_clip", "--store", store, "--out",
                   store.parent / "x.png", check=False)  # fmt: skip
    _one_line_error(proc, "failed at ingest: cannot decode: moov atom not found")


# ------------------------------------------------------------------ markup in the report

XSS = (
    "<script>document.body.dataset.pwned='script'</script>",
    '"><img src=x onerror="document.body.dataset.pwned=\'img\'">',
)


class _Elements(HTMLParser):
    """Every element of a page as ``(tag, attributes)``, and its texts."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def test_html_payloads_in_the_store_never_run_in_a_browser(
    ingested_store: Path, tmp_path: Path
) -> None:
    """Issue 26 item 6: the report is rendered by Jinja2 with autoescaping; script and
    ``onerror`` payloads in clip ids, paths, methods and reasons stay text."""
    from test_look import _chromium

    browser = _chromium()
    payload = "".join(XSS)
    failed = [
        {"clip_id": f"id{k}{payload}", "path": f"d{payload}/{k}.mp4", "method": payload,
         "error": f"cannot decode: {payload}"}
        for k in range(2)
    ]  # fmt: skip
    store = _copy_with_rows(ingested_store, tmp_path / "store", {"method": payload}, failed)
    folder = tmp_path / "report"
    run_cli("mscct-pipeline", "inspect", "--store", store, "--html", folder, "--per-category", "1")
    page = _Elements()
    page.feed((folder / "index.html").read_text(encoding="utf-8"))
    assert [tag for tag, _ in page.elements].count("script") == 0
    assert payload in "".join(page.texts)  # shown, as text
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         (folder / "index.html").resolve().as_uri()],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = _Elements()
    rendered.feed(dom.stdout)
    assert not any("data-pwned" in attrs for _, attrs in rendered.elements), "a payload ran"
    assert not any("onerror" in attrs for _, attrs in rendered.elements)
    assert [tag for tag, _ in rendered.elements].count("script") == 0
    cells = "".join(rendered.texts)
    assert f"id0{payload}" in cells and f"d{payload}/1.mp4" in cells
