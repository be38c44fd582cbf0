"""The torch versions named across the project agree with the floor the code needs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
FLOOR = (2, 4)  # F.rms_norm


def _version(text: str) -> tuple[int, int, int]:
    major, minor, patch = re.match(r"(\d+)\.(\d+)\.(\d+)", text).groups()
    return int(major), int(minor), int(patch)


def _makefile_torch() -> str:
    spec = re.search(r"^TORCH_SPEC \?= torch==(\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert spec, "Makefile has no pinned TORCH_SPEC"
    return spec.group(1)


def _trainer_base_torch() -> str:
    dockerfile = (ROOT / "docker" / "Dockerfile.trainer").read_text()
    base = re.search(r"^FROM pytorch/pytorch:(\d+\.\d+\.\d+)-cuda\S+ AS trainer$", dockerfile, re.M)
    assert base, "the trainer stage is not on a tagged pytorch/pytorch image"
    return base.group(1)


def test_pyproject_states_the_floor_the_code_needs() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert extras["optional-dependencies"]["train"] == [f"torch>={FLOOR[0]}.{FLOOR[1]}"]
    assert hasattr(F, "rms_norm")  # what the floor is for
    assert _version(torch.__version__)[:2] >= FLOOR


def test_every_pinned_torch_meets_the_floor_and_the_docs_name_the_pins() -> None:
    make, base = _makefile_torch(), _trainer_base_torch()
    assert _version(make)[:2] >= FLOOR and _version(base)[:2] >= FLOOR
    assert f"torch=={make}" in (ROOT / "README.md").read_text()
    docker_readme = (ROOT / "docker" / "README.md").read_text()
    assert f"pytorch/pytorch:{base}-" in docker_readme and f"use {base}" in docker_readme
    predict = (ROOT / "docker" / "Dockerfile.pipeline").read_text()
    assert f"torch=={base}" in predict  # the CPU predict image = the CUDA trainer image
