"""Static checks of the container images and cluster manifests (no Docker engine, no cluster).

hadolint lints the Dockerfiles and yamllint the RayJob; the files the images COPY must exist,
survive ``.dockerignore`` and be enough to build the wheel; the pinned versions must fit
``pyproject.toml``; the Slurm script must build a torchrun command that torchrun and
``mscct-train run`` accept, resuming when requeued; and every ``mscct-pipeline`` /
``mscct-train`` / torchrun command named in these files, their READMEs, the project's
README and ``docs/*.md`` must be accepted by the real command-line interfaces, and every
option of every command must be listed in the README's table of commands.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.main
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
DEPLOY = REPO / "deploy"
PIPELINE_DOCKERFILE = DOCKER / "Dockerfile.pipeline"
TRAINER_DOCKERFILE = DOCKER / "Dockerfile.trainer"
DOCKERFILES = [PIPELINE_DOCKERFILE, TRAINER_DOCKERFILE]
CONSTRAINTS = DOCKER / "constraints.txt"
RAYJOB = DEPLOY / "rayjob-ingest.yaml"
SBATCH = DEPLOY / "slurm-train.sbatch"
DOCKER_README = DOCKER / "README.md"
DEPLOY_README = DEPLOY / "README.md"
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))

# Console script -> module; `python -m MODULE` is the same program (pyproject's [project.scripts]).
PROGRAMS = {"mscct-pipeline": "pipeline.cli", "mscct-train": "trainer.cli"}
MODULES = {module: program for program, module in PROGRAMS.items()}
TORCHRUN = "torchrun"
# Tokens that end one shell command (so the options after them belong to another one).
TERMINATORS = {"|", "||", "&&", ";", "&", ">", ">>", "2>", "2>&1"}


def _tool(name: str) -> str:
    """A dev tool from the test interpreter's environment (``pip install -e '.[dev]'``)."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; pip install -e '.[dev]'")
    return found


# --------------------------------------------------------------------------- Dockerfile parsing


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest of the instruction, continuation lines joined
    line: int  # where it starts, 1-based


def parse_dockerfile(path: Path) -> list[Instruction]:
    """The instructions of a Dockerfile, comments dropped and continuation lines joined."""
    instructions: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        stripped = raw.strip()
        # Docker drops comment lines even in the middle of a continued instruction.
        if stripped.startswith("#") or (not pending and not stripped):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        pending = ""
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
    assert not pending, f"{path}: the last instruction ends with a line continuation"
    return instructions


def stages(path: Path) -> dict[str, list[Instruction]]:
    """Instructions per build stage, keyed by stage name (or its index when unnamed)."""
    result: dict[str, list[Instruction]] = {}
    current: list[Instruction] | None = None
    for instruction in parse_dockerfile(path):
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(result))
            current = result.setdefault(name, [])
        assert current is not None, f"{path}:{instruction.line}: instruction before FROM"
        current.append(instruction)
    return result


def copy_sources(instruction: Instruction) -> tuple[list[str], bool]:
    """Source paths of a COPY/ADD and whether they come from another stage (``--from``)."""
    args = instruction.args
    parts = json.loads(args) if args.startswith("[") else shlex.split(args)
    flags = []
    while parts and parts[0].startswith("--"):
        flags.append(parts.pop(0))
    assert len(parts) >= 2, f"line {instruction.line}: COPY needs a source and a destination"
    return parts[:-1], any(flag.startswith("--from") for flag in flags)


def context_sources(path: Path, stage: str | None = None) -> list[str]:
    """The build-context paths a Dockerfile (or one of its stages) copies."""
    chosen = stages(path) if stage is None else {stage: stages(path)[stage]}
    sources = []
    for instructions in chosen.values():
        for instruction in instructions:
            if instruction.keyword in {"COPY", "ADD"}:
                paths, from_stage = copy_sources(instruction)
                if not from_stage:
                    sources.extend(paths)
    return sources


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    # Negations would need Docker's full ordering rules; the file does not use them.
    assert not any(p.startswith("!") for p in patterns), "update dockerignored() for '!'"
    return [p.removeprefix("/") for p in patterns]


def dockerignored(relative: str, patterns: list[str]) -> bool:
    """Whether ``.dockerignore`` drops this path (or a folder above it) from the context.

    fnmatch's ``*`` also crosses ``/``, so this errs on the side of "ignored", which is the
    safe side for a check that copied files are *not* ignored.
    """
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatchcase(prefix, candidate)
        for pattern in patterns
        for candidate in {pattern, pattern.removeprefix("**/")}
        for prefix in prefixes
    )


# --------------------------------------------------------------------------- hadolint


def _hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("hadolint"), "--no-color", "--failure-threshold", "warning", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    result = _hadolint(dockerfile)
    assert result.returncode == 0, f"hadolint {dockerfile.name}:\n{result.stdout}{result.stderr}"


def test_hadolint_rejects_an_unpinned_dockerfile(tmp_path: Path) -> None:
    # Proves the linter and the threshold bite: a pass above is not a no-op.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install ray\n")
    result = _hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3013" in result.stdout


# --------------------------------------------------------------------------- what the images copy


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copied_files_exist_and_are_in_the_build_context(dockerfile: Path) -> None:
    sources = context_sources(dockerfile)
    assert sources, f"{dockerfile.name} copies nothing from the build context"
    patterns = dockerignore_patterns()
    for source in sources:
        assert not any(c in source for c in "*?["), f"{source}: copy explicit paths, not globs"
        path = REPO / source.rstrip("/")
        assert path.exists(), f"{dockerfile.name} copies {source}, which is not in the repository"
        files = [path] if path.is_file() else [p for p in path.rglob("*.py")]
        assert files, f"{source} holds no files"
        for file in files:
            relative = file.relative_to(REPO).as_posix()
            assert not dockerignored(relative, patterns), f".dockerignore drops {relative}"


def test_dockerignore_keeps_data_and_environments_out() -> None:
    patterns = dockerignore_patterns()
    for relative in (
        ".git/HEAD",
        ".venv/bin/python",
        "demo/data/FakeAVCeleb_v1.2/meta_data.csv",
        "mscct-store/zarr.json",
        "runs/20250101-000000/checkpoints/last.pt",
        "benchmarks/results/ingest.json",
        "tests/data/clip.mp4",
        "somewhere/else/00109.mp4",
        "pipeline/__pycache__/cli.cpython-311.pyc",
    ):
        assert dockerignored(relative, patterns), f".dockerignore lets {relative} in"
    for relative in ("pipeline/cli.py", "pyproject.toml", "README.md", "docker/constraints.txt"):
        assert not dockerignored(relative, patterns), f".dockerignore drops {relative}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copied_files_build_the_wheel(dockerfile: Path, tmp_path: Path) -> None:
    """The build stage's COPY set, and nothing else, makes a wheel with both CLIs."""
    src = tmp_path / "src"
    src.mkdir()
    for source in context_sources(dockerfile, stage="build"):
        origin, target = REPO / source.rstrip("/"), src / source.rstrip("/")
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)
    wheels = tmp_path / "wheels"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"),
            *("--no-index", "--wheel-dir", str(wheels), str(src)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = wheels.glob("mscct-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(info).decode()
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    for module in (
        "schemas/__init__.py",
        "pipeline/cli/__init__.py",
        "trainer/cli.py",
        "trainer/train/run.py",
    ):
        assert module in names, f"the wheel lacks {module}"
    for preset in ("tiny", "paper"):  # read from the installed package, not the repository
        assert f"trainer/presets/{preset}.yaml" in names, f"the wheel lacks the {preset} preset"
    for program, module in PROGRAMS.items():
        assert f"{program} = {module}:main" in entry_points
    # The trainer image installs the wheel with the s3 extra only: no media stack may come
    # along, and torch must not be a dependency (it would replace the CUDA build of the base
    # image).
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    for line in requires:
        name = canonicalize_name(Requirement(line.removeprefix("Requires-Dist:").strip()).name)
        if name in {"ray", "dlib-bin", "ffmpeg-python", "python-speech-features", "torch"}:
            assert "extra ==" in line, f"{line} is installed without an extra"


# --------------------------------------------------------------------------- pins and users


def constraint_pins() -> dict[str, str]:
    """Canonical package name -> exact version pinned in docker/constraints.txt."""
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{line}: pin an exact version"
        assert not requirement.extras and requirement.marker is None, f"{line}: a bare pin only"
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{name} is pinned twice"
        pins[name] = specifier.version
    return pins


def test_constraints_pin_every_direct_dependency_inside_its_range() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [
        Requirement(r)
        for r in project["dependencies"]
        + project["optional-dependencies"]["pipeline"]
        + project["optional-dependencies"]["s3"]
    ]
    pins = constraint_pins()
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} (pyproject.toml) is not pinned in {CONSTRAINTS.name}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} is outside pyproject.toml's {requirement.specifier}"
        )
    unknown = set(pins) - {canonicalize_name(r.name) for r in wanted}
    assert not unknown, f"{CONSTRAINTS.name} pins packages the project does not ask for: {unknown}"


def test_versions_agree_across_files() -> None:
    """Ray in the RayJob = Ray in the image; predict's CPU torch = the trainer base's torch."""
    job = yaml.safe_load(RAYJOB.read_text())
    assert job["spec"]["rayClusterSpec"]["rayVersion"] == constraint_pins()["ray"]
    (base,) = [
        i.args.split()[0] for i in parse_dockerfile(TRAINER_DOCKERFILE) if i.keyword == "FROM"
    ][1:]
    base_torch = re.fullmatch(r"pytorch/pytorch:(\d+\.\d+\.\d+)-cuda.*", base)
    assert base_torch, f"trainer base {base} is not a tagged pytorch/pytorch image"
    predict = " ".join(i.args for i in stages(PIPELINE_DOCKERFILE)["predict"])
    assert f"torch=={base_torch.group(1)}" in predict


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runnable_stages_use_a_numeric_non_root_user(dockerfile: Path) -> None:
    runnable = {n: s for n, s in stages(dockerfile).items() if any(i.keyword == "CMD" for i in s)}
    assert list(stages(dockerfile))[-1] in runnable, "the default (last) stage has no CMD"
    for name, instructions in runnable.items():
        users = [i.args for i in instructions if i.keyword == "USER"]
        assert users, f"stage {name} runs as root"
        user = users[-1].split(":")[0]
        # Kubernetes can only verify runAsNonRoot against a numeric uid.
        assert user.isdigit() and int(user) != 0, f"stage {name}: USER {users[-1]}"


def test_pipeline_image_can_be_a_ray_node() -> None:
    instructions = parse_dockerfile(PIPELINE_DOCKERFILE)
    # KubeRay starts `ray start ...` as the container command; an ENTRYPOINT would swallow it.
    assert not any(i.keyword == "ENTRYPOINT" for i in instructions)
    runs = " ".join(i.args for i in instructions if i.keyword == "RUN")
    assert re.search(r"\bwget=", runs), "KubeRay's probes run wget; the image must have it"
    assert re.search(r"\bffmpeg=", runs)
    assert '"${wheel}[pipeline]"' in runs, "the pipeline image needs the [pipeline] extras"


def test_trainer_image_reads_a_store_from_object_storage() -> None:
    runs = " ".join(i.args for i in parse_dockerfile(TRAINER_DOCKERFILE) if i.keyword == "RUN")
    assert '"${wheel}[s3]"' in runs, "the trainer image needs the [s3] extra (--store s3://...)"
    assert "[pipeline" not in runs, "the trainer image takes no media stack"


# --------------------------------------------------------------------------- the RayJob


def test_rayjob_passes_yamllint() -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "yamllint", "--strict", "-f", "parsable"),
            *("-c", str(REPO / ".yamllint"), str(RAYJOB)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _mount_for(mounts: list[dict], path: str) -> dict:
    """The volume mount that holds ``path`` (the deepest mountPath above it)."""
    holding = [m for m in mounts if (path + "/").startswith(m["mountPath"].rstrip("/") + "/")]
    assert holding, f"nothing is mounted over {path}"
    return max(holding, key=lambda m: len(m["mountPath"]))


def test_rayjob_runs_ingest_with_the_same_shared_paths_in_every_pod() -> None:
    job = yaml.safe_load(RAYJOB.read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    tokens = shlex.split(spec["entrypoint"])
    assert tokens[:2] == ["mscct-pipeline", "ingest"]
    assert tokens[tokens.index("--address") + 1] == "auto"
    dataset, store = tokens[2], tokens[tokens.index("--store") + 1]

    cluster = spec["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    assert len(groups) >= 2, "a head group and at least one worker group"
    seen = set()
    for group in groups:
        pod = group["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        volumes = {v["name"]: v for v in pod["volumes"]}
        container = pod["containers"][0]
        mounts = container["volumeMounts"]
        data, shared = _mount_for(mounts, dataset), _mount_for(mounts, store)
        assert data.get("readOnly") is True, "the dataset is only read"
        assert not shared.get("readOnly"), "the store is written by every worker"
        shm = _mount_for(mounts, "/dev/shm")
        assert shm["mountPath"] == "/dev/shm"
        assert volumes[shm["name"]]["emptyDir"]["medium"] == "Memory"
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind])
        seen.add(
            (
                container["image"],
                data["mountPath"],
                volumes[data["name"]]["persistentVolumeClaim"]["claimName"],
                shared["mountPath"],
                volumes[shared["name"]]["persistentVolumeClaim"]["claimName"],
            )
        )
    assert len(seen) == 1, f"pods differ in image or shared volumes: {seen}"


# --------------------------------------------------------------------------- the Slurm script


def _fake_slurm(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """Stand-ins for scontrol and srun: srun records the command it would start per node."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "srun.args"
    (bin_dir / "scontrol").write_text('#!/bin/sh\nprintf "gpu-node-7\\ngpu-node-8\\n"\n')
    (bin_dir / "srun").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{record}"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SLURM_JOB_ID": "4242",
        "SLURM_NNODES": "2",
        "SLURM_JOB_NODELIST": "gpu-node-[7-8]",
        "SLURM_GPUS_ON_NODE": "4",
        "MSCCT_STORE": str(tmp_path / "store"),
        "MSCCT_RUN_DIR": str(tmp_path / "run"),
    }
    return env, record


def test_sbatch_script_is_valid_bash() -> None:
    result = subprocess.run(["bash", "-n", str(SBATCH)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = SBATCH.read_text()
    assert "set -euo pipefail" in text
    assert re.search(r"^#SBATCH --requeue$", text, flags=re.MULTILINE)


def test_sbatch_launches_torchrun_per_node_and_resumes_when_requeued(tmp_path: Path) -> None:
    from torch.distributed.run import get_args_parser

    env, record = _fake_slurm(tmp_path)
    run_command = typer.main.get_command(importlib.import_module("trainer.cli").app)
    assert hasattr(run_command, "commands"), "mscct-train is a group of commands"

    def launch() -> dict:
        result = subprocess.run(
            ["bash", str(SBATCH)], env=env, capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stderr
        args = record.read_text().splitlines()
        assert TORCHRUN in args, f"srun does not start torchrun: {args}"
        torchrun = get_args_parser().parse_args(args[args.index(TORCHRUN) + 1 :])
        assert torchrun.nnodes == "2" and torchrun.nproc_per_node == "4"
        assert torchrun.rdzv_backend == "c10d"
        assert torchrun.rdzv_endpoint == "gpu-node-7:29400", "rendezvous on the first node"
        assert torchrun.module and torchrun.training_script == "trainer.cli"
        name, *rest = torchrun.training_script_args
        assert name == "run"
        context = run_command.commands[name].make_context(name, rest)
        assert context.params["config"] == "paper"
        assert context.params["store"] == tmp_path / "store"
        assert context.params["out"] == tmp_path / "run"
        return context.params

    assert launch()["resume"] is False, "a fresh run must not ask to resume"
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "last.pt").write_bytes(b"")
    assert launch()["resume"] is True, "a requeued run with last.pt must resume"


# --------------------------------------------------------------------------- named commands


@dataclass(frozen=True)
class Invocation:
    program: str  # mscct-pipeline, mscct-train or torchrun
    command: str | None  # the subcommand (None for torchrun or a bare `mscct-train --help`)
    options: tuple[str, ...]  # the --long options written after it
    where: str


def _logical_lines(text: str) -> list[str]:
    return text.replace("\\\n", " ").splitlines()


def _markdown_code(text: str) -> list[str]:
    """Fenced code blocks and inline code spans: where a README writes commands."""
    pieces, prose, fenced = [], [], []
    inside = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            if inside:
                pieces.append("\n".join(fenced))
                fenced = []
            inside = not inside
        elif inside:
            fenced.append(line)
        else:
            prose.append(line)
    pieces.extend(re.findall(r"`([^`\n]+)`", "\n".join(prose)))
    return pieces


def find_invocations(text: str, where: str) -> list[Invocation]:
    found = []
    for line in _logical_lines(text):
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:  # unbalanced quotes in prose
            tokens = line.split()
        tokens = [t.strip("[],") for t in tokens]  # a Dockerfile's JSON-form CMD
        i = 0
        while i < len(tokens):
            program, start = _program_at(tokens, i)
            if program is None:
                i += 1
                continue
            command = None
            if program != TORCHRUN and start < len(tokens):
                word = tokens[start]
                if not word.startswith("-") and word not in TERMINATORS:
                    command, start = word, start + 1
            end = start
            while end < len(tokens) and tokens[end] not in TERMINATORS:
                if _program_at(tokens, end)[0] is not None:
                    break
                end += 1
            options = tuple(
                option  # --landmarks/--no-landmarks names two options
                for t in tokens[start:end]
                if t.startswith("--")
                for option in t.split("=", 1)[0].split("/")
                if option.startswith("--")
            )
            found.append(Invocation(program, command, options, where))
            i = end
    return found


def _program_at(tokens: list[str], i: int) -> tuple[str | None, int]:
    """(program, index after its name) if tokens[i] starts a command we check."""
    name = tokens[i].rsplit("/", 1)[-1]
    if name in PROGRAMS or name == TORCHRUN:
        return name, i + 1
    if tokens[i] == "-m" and i + 1 < len(tokens) and tokens[i + 1] in MODULES:
        return MODULES[tokens[i + 1]], i + 2
    return None, i


def _markdown_commands(path: Path) -> list[str]:
    """The code of a markdown file, a table cell's escaped ``\\|`` (alternatives, not a
    pipe) read as ``/`` so that the options after it still count."""
    return [piece.replace("\\|", "/") for piece in _markdown_code(path.read_text())]


def all_invocations() -> dict[Path, list[Invocation]]:
    texts: dict[Path, list[str]] = {
        PIPELINE_DOCKERFILE: [PIPELINE_DOCKERFILE.read_text()],
        TRAINER_DOCKERFILE: [TRAINER_DOCKERFILE.read_text()],
        RAYJOB: [yaml.safe_load(RAYJOB.read_text())["spec"]["entrypoint"]],
        SBATCH: [SBATCH.read_text()],
        DOCKER_README: _markdown_code(DOCKER_README.read_text()),
        DEPLOY_README: _markdown_code(DEPLOY_README.read_text()),
        README: _markdown_commands(README),
        **{doc: _markdown_commands(doc) for doc in DOCS},
    }
    return {
        path: [inv for text in pieces for inv in find_invocations(text, path.name)]
        for path, pieces in texts.items()
    }


# The commands each file must name at least: guards the extraction against finding nothing.
EXPECTED = {
    PIPELINE_DOCKERFILE: {("mscct-pipeline", None), ("mscct-train", "predict")},
    TRAINER_DOCKERFILE: {("mscct-train", None)},
    RAYJOB: {("mscct-pipeline", "ingest")},
    SBATCH: {(TORCHRUN, None), ("mscct-train", "run")},
    DOCKER_README: {
        ("mscct-pipeline", "synth"),
        ("mscct-pipeline", "ingest"),
        ("mscct-pipeline", "split"),
        ("mscct-pipeline", "inspect"),
        ("mscct-train", "run"),
        ("mscct-train", "eval"),
        ("mscct-train", "predict"),
        (TORCHRUN, None),
    },
    DEPLOY_README: {
        ("mscct-pipeline", "ingest"),
        ("mscct-pipeline", "split"),
        ("mscct-train", "run"),
        (TORCHRUN, None),
    },
    README: {  # its table names every command (test_readme_table_lists_every_option)
        ("mscct-pipeline", "ingest"),
        ("mscct-pipeline", "split"),
        ("mscct-train", "run"),
        ("mscct-train", "eval"),
    },
}


def test_the_invocation_finder_reads_shell_markdown_and_dockerfiles() -> None:
    text = (
        'CMD ["mscct-train", "predict", "--help"]\n'
        "srun torchrun --nnodes 2 \\\n  -m trainer.cli run --store /s --set a=1 | tee log\n"
        "# mscct-pipeline bogus --in-a-comment\n"
    )
    found = {(i.program, i.command, i.options) for i in find_invocations(text, "t")}
    assert found == {
        ("mscct-train", "predict", ("--help",)),
        (TORCHRUN, None, ("--nnodes",)),
        ("mscct-train", "run", ("--store", "--set")),
    }
    markdown = (
        "Run `mscct-pipeline ingest ROOT --address auto` there.\n```\nmscct-train eval C\n```\n"
    )
    found = {
        (i.program, i.command) for p in _markdown_code(markdown) for i in find_invocations(p, "m")
    }
    assert found == {("mscct-pipeline", "ingest"), ("mscct-train", "eval")}


def test_every_named_command_and_option_exists() -> None:
    from torch.distributed.run import get_args_parser

    invocations = all_invocations()
    for path, expected in EXPECTED.items():
        named = {(i.program, i.command) for i in invocations[path]}
        assert expected <= named, f"{path.name} should name {sorted(expected - named, key=str)}"

    groups = {
        program: typer.main.get_command(importlib.import_module(module).app)
        for program, module in PROGRAMS.items()
    }
    torchrun_options = set(get_args_parser()._option_string_actions)
    runner = CliRunner()
    asked: set[tuple[str, str]] = set()
    for invocation in (i for found in invocations.values() for i in found):
        label = f"{invocation.where}: {invocation.program} {invocation.command or ''}".strip()
        if invocation.program == TORCHRUN:
            unknown = set(invocation.options) - torchrun_options
            assert not unknown, f"{label}: torchrun has no {sorted(unknown)}"
            continue
        group = groups[invocation.program]
        assert hasattr(group, "commands"), f"{invocation.program} is a group of commands"
        command = group if invocation.command is None else group.commands.get(invocation.command)
        assert command is not None, f"{label}: no such command (has {sorted(group.commands)})"
        accepted = {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
        unknown = set(invocation.options) - accepted
        assert not unknown, f"{label}: unknown options {sorted(unknown)}"
        key = (invocation.program, invocation.command or "")
        if key not in asked:
            asked.add(key)
            app = importlib.import_module(PROGRAMS[invocation.program]).app
            result = runner.invoke(app, [*filter(None, [invocation.command]), "--help"])
            assert result.exit_code == 0, f"{label} --help: {result.output}"


def readme_table() -> dict[tuple[str, str], set[str]]:
    """The options each command's rows of the README's table of commands list.

    A row is a table line whose first cell's code starts ``mscct-pipeline COMMAND`` or
    ``mscct-train COMMAND``; a command may have several rows (``split``)."""
    listed: dict[tuple[str, str], set[str]] = {}
    for line in README.read_text().splitlines():
        row = re.match(r"^\| `(mscct-pipeline|mscct-train) ([a-z]+)(.*?)` \|", line)
        if row:
            options = set(re.findall(r"--[a-z0-9][a-z0-9-]*", row[3]))
            listed.setdefault((row[1], row[2]), set()).update(options)
    return listed


def test_readme_table_lists_every_option() -> None:
    listed = readme_table()
    assert listed, "README.md has no table of commands"
    missing = []
    for program, module in PROGRAMS.items():
        group = typer.main.get_command(importlib.import_module(module).app)
        for name, command in group.commands.items():  # type: ignore[attr-defined]
            if (program, name) not in listed:
                missing.append(f"{program} {name} (no row)")
                continue
            for param in command.params:
                # One long name per option: a flag's --no-X twin need not be written out.
                names = [o for o in param.opts if o.startswith("--")]
                if names and not set(names) & listed[program, name]:
                    missing.append(f"{program} {name} {names[0]}")
    assert not missing, f"README.md's table of commands misses {missing}"


def test_the_table_reader_finds_options_across_rows_and_alternatives(tmp_path: Path) -> None:
    text = (
        "| command | what |\n|---|---|\n"
        "| `mscct-pipeline split [--store] [--folds K --fold I]` | a |\n"
        "| `mscct-pipeline split --official \\| --from-file F [--landmarks/--no-landmarks]` | b |\n"
        "Prose: `mscct-pipeline split --not-in-the-table`\n"
    )
    global README
    saved, README = README, tmp_path / "README.md"
    try:
        README.write_text(text)
        assert readme_table() == {
            ("mscct-pipeline", "split"): {
                "--store", "--folds", "--fold", "--official", "--from-file", "--landmarks",
                "--no-landmarks",
            }
        }  # fmt: skip
        found = {i.options for p in _markdown_commands(README) for i in find_invocations(p, "m")}
        assert ("--official", "--from-file", "--landmarks", "--no-landmarks") in found
    finally:
        README = saved


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_console_scripts_are_the_modules_the_files_run(program: str) -> None:
    """`mscct-train` and `python -m trainer.cli` (what torchrun runs) are the same program."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[program] == f"{PROGRAMS[program]}:main"
    result = subprocess.run(
        [sys.executable, "-m", PROGRAMS[program], "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


def test_docker_readme_gives_ray_containers_shared_memory() -> None:
    runs = [
        line
        for piece in _markdown_code(DOCKER_README.read_text())
        for line in _logical_lines(piece)
        if "docker run" in line and "mscct-pipeline ingest" in line
    ]
    assert runs, "docker/README.md shows no `docker run ... mscct-pipeline ingest`"
    for line in runs:
        assert "--shm-size" in line, f"Ray needs /dev/shm: {line.strip()}"
