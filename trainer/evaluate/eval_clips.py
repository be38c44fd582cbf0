"""Which clips an ``eval`` scores: a part of the store's own split, of the split of the
store the user names with ``--split-store`` (matched by clip id), or every labelled clip
(``--all``); and the check that none of them was trained on.

Only the stores the user names are opened: the training store's path a checkpoint
records is a hint in an error, never read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import schemas
from trainer.config.settings import TrainerError
from trainer.data.dataset import ClipInfo, assign_clips, labelled_clips
from trainer.train.runtime import Log, open_split


@dataclass
class EvalClips:
    """The clips one ``eval`` scores and where their part assignment came from."""

    clips: list[ClipInfo]
    split_store: Path  # the store whose split table assigned the parts
    unavailable: list[str]  # clip ids of the part this store cannot supply (failed, absent)


def all_eval_clips(store: Path, log: Log) -> EvalClips:
    """Every ok, labelled clip of ``store`` (``eval --all``): no split needed."""
    try:
        found = labelled_clips(store)
    except (schemas.StoreError, schemas.SchemaError) as exc:
        raise TrainerError(str(exc)) from None
    unusable = sorted(i for ids in found.unusable.values() for i in ids)
    if not found.clips:
        why = f" ({found.unlabelled} ok clips, all unlabelled)" if found.unlabelled else ""
        raise TrainerError(f"store {store} has no labelled clips to score{why}")
    if found.unlabelled:
        log(f"note: {found.unlabelled} unlabelled clips of {store} left out (no labels to score)")
    if unusable:
        reasons = ", ".join(f"{len(ids)} {why}" for why, ids in found.unusable.items())
        log(f"note: {len(unusable)} labelled clips of {store} cannot be read ({reasons})")
    return EvalClips(found.clips, store, unusable)


def eval_clips(
    ckpt: dict[str, Any],
    store: Path,
    split: str,
    part: str,
    log: Log,
    split_store: Path | None = None,
) -> EvalClips:
    """The clips of ``part`` of ``split``: the store's own split, or else the split of
    ``split_store`` (the user's ``--split-store``, such as the training store) mapped onto
    this store's clips by clip id.

    The training store's path the checkpoint records is never opened: a checkpoint may
    come from anyone, and only the paths the user names are read. It is shown in the
    error as a hint.
    """
    if split in _list_splits(store):
        _, _, parts = open_split(store, split)
        return EvalClips(parts[part], store, [])
    if split_store is None or split not in _list_splits(split_store):
        recorded = ckpt.get("store")
        hint = f" (it was trained on a store recorded as {recorded})" if recorded else ""
        where = f", nor has --split-store {split_store}" if split_store is not None else ""
        raise TrainerError(
            f"store {store} has no split {split!r}{where}; make one with `mscct-pipeline "
            f"split --store {store} --name {split}`, or pass --split-store with the store "
            f"whose split to use, such as the checkpoint's training store{hint}"
        )
    home = split_store
    try:
        table = schemas.read_split(home, split)
        ids = [c for c, p in zip(*_columns(table, "clip_id", "split"), strict=True) if p == part]
        parts, problems = assign_clips(store, ids, [part] * len(ids))
    except (schemas.StoreError, schemas.SchemaError) as exc:
        raise TrainerError(str(exc)) from None
    unavailable = sorted(i for reason in problems.values() for i in reason)
    if unavailable and len(unavailable) == len(ids):
        raise TrainerError(
            f"none of the {len(ids)} {part} clips of split {split!r} of {home} is in store {store}"
        )
    log(f"note: {split}/{part} taken from --split-store {home}, matched by clip id")
    if unavailable:
        log(
            f"note: {len(unavailable)} of its {len(ids)} {part} clips are not usable in {store} "
            f"(failed or absent there, e.g. {unavailable[0]}); scoring the other {len(parts[part])}"
        )
    return EvalClips(parts[part], home, unavailable)


def _list_splits(store: Path) -> list[str]:
    try:
        return schemas.list_splits(store)
    except OSError:
        return []


def _columns(table: Any, *names: str) -> list[list[Any]]:
    return [table.column(n).to_pylist() for n in names]


def trained_clip_ids(ckpt: dict[str, Any], store: Path, fingerprint: str) -> set[str] | None:
    """Clip ids the checkpoint was trained on; None when it cannot be known.

    Checkpoints record them (``train_clips``); for older ones the training split's
    train part is used when this store is the training store (same fingerprint).
    """
    if "train_clips" in ckpt:
        return set(ckpt["train_clips"])
    split = ckpt.get("split")
    if fingerprint == ckpt["store_fingerprint"] and split in _list_splits(store):
        _, _, parts = open_split(store, split)
        return {c.clip_id for c in parts["train"]}
    return None


def check_held_out(
    clips: list[ClipInfo], trained: set[str] | None, force: bool, log: Log
) -> list[str]:
    """The evaluated clip ids the checkpoint was trained on; refuse them unless ``force``.

    Scores on training clips are not held-out numbers, so they are an error by
    default; ``--force`` scores them anyway (to measure the fit), loudly.
    """
    if trained is None:
        log("warning: the checkpoint does not record its training clips: cannot check that "
            "the evaluated clips were held out")  # fmt: skip
        return []
    overlap = sorted(c.clip_id for c in clips if c.clip_id in trained)
    if overlap and not force:
        raise TrainerError(
            f"{len(overlap)} of the {len(clips)} clips to evaluate were trained on by this "
            f"checkpoint (e.g. {overlap[0]}), so their scores are not held out; evaluate a "
            "part of the split it never saw, or pass --force to score them anyway"
        )
    if overlap:
        log(f"WARNING: {len(overlap)} of the {len(clips)} evaluated clips were trained on; "
            "these numbers are not held out")  # fmt: skip
    return overlap
