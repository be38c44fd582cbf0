"""Strict identities: a fake's target1/target2 identities stay in its part."""

from __future__ import annotations

import pyarrow as pa
import pytest

import schemas
from pipeline.splits.params import SplitError, SplitParams
from pipeline.splits.report import split_summary
from pipeline.splits.split import make_split
from pipeline.splits.strict import components, cross_part_references, targets_of
from schemas import CATEGORIES, MANIFEST_SCHEMA


def row(clip_id: str, identity: str, category: str, targets: str = "-", **extra) -> dict:
    labels = schemas.labels_for(category)
    return {
        "clip_id": clip_id,
        "path": f"{category}/{identity}/{clip_id}.mp4",
        "category": category,
        "audio_label": labels.audio,
        "video_label": labels.video,
        "label": labels.overall,
        "identity": identity,
        "target1": targets,
        "target2": "-",
        "method": "real" if category == "RARV" else "fake",
        "num_frames": 100,
        "source_fingerprint": f"fp-{clip_id}",
        "recipe_hash": "r0",
        "status": schemas.STATUS_OK,
        "error": "",
        **extra,
    }


def table(rows: list[dict]) -> pa.Table:
    # Only the columns the schema has at run time: an older schema lacks the new ones.
    names = set(MANIFEST_SCHEMA.names)
    return schemas.rows_to_table(
        [{k: v for k, v in r.items() if k in names} for r in rows], MANIFEST_SCHEMA
    )


def full_identity(identity: str, fake_targets: dict[str, list[str]] | None = None) -> list[dict]:
    """One clip per category; ``fake_targets`` gives a category's fakes, one per target."""
    rows = []
    for cat in CATEGORIES:
        targets = (fake_targets or {}).get(cat, ["-"])
        for k, target in enumerate(targets):
            rows.append(row(f"{identity}_{cat}_{k}", identity, cat, target))
    return rows


def parts(split: pa.Table) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for r in split.to_pylist():
        found.setdefault(r["identity"], set()).add(r["split"])
    return found


def test_targets_are_parsed_from_both_columns_and_merged_values() -> None:
    assert targets_of({"target1": "a+b", "target2": "-"}) == ["a", "b"]
    assert targets_of({"target1": "-", "target2": ""}) == []
    assert targets_of({"target1": None, "target2": "c"}) == ["c"]


def test_chain_a_b_c_is_one_component() -> None:
    rows = [
        {"identity": "a", "target1": "b", "target2": "-"},
        {"identity": "b", "target1": "-", "target2": "c"},
        {"identity": "d", "target1": "x", "target2": "-"},  # x is no identity of the split
    ]
    rep = components(rows, {"a", "b", "c", "d"})
    assert rep == {"a": "a", "b": "a", "c": "a", "d": "d"}


def test_unbalanced_strict_keeps_components_whole() -> None:
    rows = full_identity("a", {"FAFV": ["b"]}) + full_identity("b", {"RAFV": ["c"]})
    rows += full_identity("c") + [r for i in "defgh" for r in full_identity(i)]
    manifest = table(rows)
    for seed in range(6):
        split = make_split(manifest, SplitParams(seed=seed, strict_identities=True))
        found = parts(split)
        assert found["a"] == found["b"] == found["c"]
        assert all(len(p) == 1 for p in found.values())
        summary = split_summary(split)
        assert summary["cross_part_references"] == 0
        assert summary["strict_components"] == 6
        assert summary["strict_excluded_clips"] == 0
        assert split.num_rows == len(rows)  # unbalanced strict keeps every clip


def test_without_the_flag_cross_part_references_are_counted() -> None:
    rows = [r for i in "abcdefghij" for r in full_identity(i, {"FAFV": ["-"]})]
    # Every identity's second fake carries the next identity's face.
    names = "abcdefghij"
    for n, ident in enumerate(names):
        rows.append(row(f"{ident}_FAFV_x", ident, "FAFV", names[(n + 1) % len(names)]))
    split = make_split(table(rows), SplitParams(seed=1))
    part = {i: next(iter(p)) for i, p in parts(split).items()}
    expected = sum(part[names[n]] != part[names[(n + 1) % 10]] for n in range(10))
    assert expected > 0
    assert split_summary(split)["cross_part_references"] == expected


def test_a_single_component_cannot_be_split_strictly() -> None:
    rows = []
    names = "abcde"
    for n, ident in enumerate(names):
        rows += full_identity(ident, {"FAFV": [names[(n + 1) % 5]]})
    with pytest.raises(SplitError, match="1 connected component"):
        make_split(table(rows), SplitParams(strict_identities=True))


def test_balanced_strict_picks_fakes_whose_targets_share_the_part() -> None:
    names = [f"id{i:02d}" for i in range(12)]
    rows = []
    for n, ident in enumerate(names):
        # Two FAFV fakes: one carries the next identity, one nobody of the split.
        others = [names[(n + 1) % len(names)], "-"]
        rows += full_identity(ident, {"FAFV": others})
    manifest = table(rows)
    plain = make_split(manifest, SplitParams(balance=True, seed=2, ratios=(0.5, 0.25, 0.25)))
    strict = make_split(
        manifest,
        SplitParams(balance=True, seed=2, ratios=(0.5, 0.25, 0.25), strict_identities=True),
    )
    summary = split_summary(strict)
    assert summary["cross_part_references"] == 0
    # Same parts (identities are cut first), one clip per category each.
    assert parts(plain) == parts(strict)
    part = {i: next(iter(p)) for i, p in parts(strict).items()}
    cross = sum(part[names[n]] != part[names[(n + 1) % 12]] for n in range(12))
    assert summary["strict_excluded_clips"] == cross > 0
    assert summary["strict_dropped_identities"] == 0


def test_balanced_strict_drops_an_identity_without_an_allowed_fake() -> None:
    names = [f"id{i:02d}" for i in range(9)]
    rows = [r for ident in names[1:] for r in full_identity(ident)]
    # id00's only FAFV fake carries every other identity: whichever part it is in,
    # some target sits elsewhere.
    rows += full_identity("id00", {"FAFV": ["+".join(names[1:])]})
    strict = make_split(table(rows), SplitParams(balance=True, strict_identities=True))
    summary = split_summary(strict)
    assert "id00" not in parts(strict)
    assert summary["strict_dropped_identities"] == 1
    assert summary["strict_excluded_clips"] == 1
    assert summary["cross_part_references"] == 0


def test_strict_is_deterministic_and_recorded() -> None:
    rows = [
        r
        for i in "abcdefgh"
        for r in full_identity(i, {"RAFV": ["-", "abcdefgh"["abcdefgh".index(i) - 1]]})
    ]
    params = SplitParams(balance=True, seed=5, strict_identities=True)
    one = make_split(table(rows), params)
    two = make_split(table(list(reversed(rows))), params)
    assert one.to_pylist() == two.to_pylist()
    assert params.to_dict()["strict_identities"] is True
    with pytest.raises(SplitError, match="needs --balance"):
        SplitParams(strict_identities=True, folds=3, fold=0)


def test_unlabelled_clips_never_enter_and_null_labelled_is_labelled() -> None:
    rows = [r for i in "abc" for r in full_identity(i)]
    rows[0]["labelled"] = None  # an older store's row
    unl = row("u1", "a", "RARV")
    unl.update(category="", audio_label=None, video_label=None, label=None, labelled=False)
    split = make_split(table([*rows, unl]), SplitParams())
    ids = set(split.column("clip_id").to_pylist())
    assert "u1" not in ids and rows[0]["clip_id"] in ids
    assert split_summary(split)["unlabelled_clips"] == 1
    cross = cross_part_references(
        [{"identity": "a", "split": "train", "target1": "b", "target2": "-"}],
        {"a": {"train"}, "b": {"train", "test"}},
    )
    assert cross == 1
