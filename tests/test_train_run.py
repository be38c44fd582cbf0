"""What a run is: the config asked for, checked before training, in a directory of its own,
with the revision of the code that ran it."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from trainer_fixtures import build_store

from trainer.config.settings import TrainerError, load_config
from trainer.model import MSCT, ModelConfig
from trainer.train.run import train
from trainer.train.runtime import new_run_dir, source_revision

ROOT = Path(__file__).resolve().parents[1]
ONE_EACH = {"train": 1, "val": 1, "test": 1}  # clips per category and part
QUICK = ["epochs=1", "window=16", "windows_per_clip=1", "batch_size=4", "precise_bn=1"]
QUICK += ["num_workers=0", "device=cpu"]


def test_off_and_no_stay_words_in_overrides_and_files(tmp_path: Path) -> None:
    # YAML 1.1 reads off / no as False; `--set amp=off` must still mean the choice "off".
    assert load_config("tiny", ["amp=off"]).amp == "off"
    path = tmp_path / "c.yaml"
    path.write_text("amp: off\n")
    assert load_config(str(path)).amp == "off"
    with pytest.raises(TrainerError, match="amp"):
        load_config("tiny", ["amp=no"])  # still a string, and not a valid choice


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_the_config_files_are_the_presets(preset: str) -> None:
    assert load_config(str(ROOT / "trainer" / "presets" / f"{preset}.yaml")) == load_config(preset)


def _quiet(_: str) -> None:
    pass


def _git(where: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(where), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.slow
def test_paper_preset_on_a_crop_24_store_trains_the_paper_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = build_store(tmp_path / "store", crop_size=24, frames=16, counts=ONE_EACH)
    cfg = load_config("paper", QUICK)
    monkeypatch.chdir(tmp_path)  # no --out: the run lands in ./runs/<timestamp>
    report = train(cfg, store, "default", None, log=_quiet)

    run = Path(report["run_dir"])
    assert run.parent == Path("runs") and (tmp_path / run / "report.json").is_file()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"] == ModelConfig.preset("paper").to_dict()
    paper_params = sum(p.numel() for p in MSCT(ModelConfig.preset("paper")).parameters())
    assert json.loads((run / "meta.json").read_text())["parameters"] == paper_params
    weights = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["model"]
    assert sum(t.numel() for t in weights.values()) >= paper_params  # + BatchNorm buffers
    assert paper_params > 10 * sum(p.numel() for p in MSCT(ModelConfig.preset("tiny")).parameters())


def test_an_empty_test_part_fails_before_the_first_epoch(tmp_path: Path) -> None:
    store = build_store(
        tmp_path / "store", crop_size=24, frames=16, counts={"train": 1, "val": 1, "test": 0}
    )
    out = tmp_path / "run"
    with pytest.raises(TrainerError, match="no test clips"):
        train(load_config("tiny", QUICK), store, "default", out, log=_quiet)
    assert not out.exists()  # nothing trained, nothing written


def test_out_naming_an_existing_file_is_one_line(tmp_path: Path) -> None:
    from cli_helpers import call_main

    from trainer.cli import main

    store = build_store(tmp_path / "store", crop_size=24, frames=16, counts=ONE_EACH)
    taken = tmp_path / "notes.txt"
    taken.write_text("not a run")
    with pytest.raises(TrainerError, match="is a file, not a run directory"):
        train(load_config("tiny", QUICK), store, "default", taken, log=_quiet)
    args = ["run", "--store", str(store), "--out", str(taken), "--set", "device=cpu"]
    assert call_main(main, args) == 2
    assert taken.read_text() == "not a run"


def test_run_dirs_made_in_the_same_second_are_distinct(tmp_path: Path) -> None:
    runs, stamp, n = tmp_path / "runs", "20250101-120000", 8
    start = threading.Barrier(n)
    made: list[Path] = []

    def claim() -> None:
        start.wait()
        made.append(new_run_dir(runs, stamp))

    threads = [threading.Thread(target=claim) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == n and all(p.is_dir() for p in made)
    assert sorted(p.name for p in made) == sorted([stamp] + [f"{stamp}-{i}" for i in range(2, 9)])
    assert new_run_dir(runs, stamp).name == f"{stamp}-9"  # taken names are never reused


@pytest.mark.slow
def test_a_run_without_out_never_shares_a_taken_run_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli_helpers import call_main

    from trainer.cli import main

    store = build_store(tmp_path / "store", crop_size=24, frames=16, counts=ONE_EACH)
    monkeypatch.chdir(tmp_path)
    # Another run started this second (or any of the next 90) holds runs/<timestamp>.
    now = time.time()
    taken = {time.strftime("%Y%m%d-%H%M%S", time.localtime(now + s)) for s in range(90)}
    for name in taken:
        (tmp_path / "runs" / name).mkdir(parents=True)
    args = ["run", "--store", str(store)] + [a for q in QUICK for a in ("--set", q)]
    assert call_main(main, args) == 0
    assert all(not any((tmp_path / "runs" / name).iterdir()) for name in taken)
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.name not in taken]
    assert run.name.rsplit("-", 1)[0] in taken  # the taken name plus a suffix
    assert (run / "report.json").is_file() and (run / "config.yaml").is_file()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1


def test_a_run_dir_that_cannot_be_made_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "runs"
    blocker.write_text("a file where the runs directory should be")
    with pytest.raises(TrainerError, match="cannot create a run directory"):
        new_run_dir(blocker)


def test_source_revision_is_the_projects_checkout_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    _git(other, "init", "-q")
    (other / "f.txt").write_text("x\n")
    _git(other, "add", "f.txt")
    _git(other, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x")
    monkeypatch.chdir(other)

    got = source_revision()
    assert got["git_revision"] == _git(ROOT, "rev-parse", "HEAD")
    assert got["git_revision"] != _git(other, "rev-parse", "HEAD")
    assert got["git_dirty"] is bool(_git(ROOT, "status", "--porcelain"))

    clean = {"git_revision": _git(other, "rev-parse", "HEAD"), "git_dirty": False}
    assert source_revision(other) == clean
    (other / "new.py").write_text("")
    assert source_revision(other)["git_dirty"] is True
    # A copy of the package inside someone else's repository (a virtualenv in their
    # project, say) is not a checkout of this project: no revision rather than theirs.
    inner = other / "site-packages"
    inner.mkdir()
    assert source_revision(inner) == {"git_revision": "unknown", "git_dirty": None}


def _window_batch(b: int = 4, t: int = 8, crop: int = 24) -> dict[str, torch.Tensor]:
    """A collated batch as WindowDataset delivers it (uint8 video, all frames real)."""
    g = torch.Generator().manual_seed(0)
    fake = torch.tensor([0, 1, 0, 1])[:b]
    return {
        "audio": torch.randn(b, t, 104, generator=g),
        "video": torch.randint(0, 256, (b, t, crop, crop, 3), generator=g, dtype=torch.uint8),
        "mask": torch.ones(b, t, dtype=torch.bool),
        "audio_label": fake,
        "video_label": fake.flip(0),
        "label": fake | fake.flip(0),
    }


def test_bench_gpu_times_the_training_loops_own_step(monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.bench_gpu as bench
    import trainer.train.step as step
    from trainer.train.optim import build_optimizer

    cfg = load_config("tiny", ["device=cpu"])
    calls: list[dict[str, float]] = []
    real_step = step.train_step

    def spy(*args: object, **kwargs: object) -> dict[str, float]:
        calls.append(real_step(*args, **kwargs))
        return calls[-1]

    monkeypatch.setattr(step, "train_step", spy)
    torch.manual_seed(0)
    model = MSCT(cfg.model)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = build_optimizer(cfg, model)
    bench._train_step(model, optimizer, _window_batch(), cfg, torch.device("cpu"), None)
    assert len(calls) == 1 and set(calls[0]) == set(step.LOSS_PARTS)
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
