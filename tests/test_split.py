"""Tests of pipeline.splits.split: balance, identity disjointness, determinism, ratios, folds, store I/O."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

import schemas
from pipeline.splits.params import SplitError, SplitParams, parse_ratios
from pipeline.splits.report import render_counts, split_counts, split_summary
from pipeline.splits.split import make_split
from schemas import CATEGORIES, MANIFEST_SCHEMA, SPLITS

PROPERTY_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def manifest_row(clip_id: str, identity: str, category: str, ok: bool = True) -> dict:
    labels = schemas.labels_for(category)
    return {
        "clip_id": clip_id,
        "path": f"{category}/{identity}/{clip_id}.mp4",
        "category": category,
        "audio_label": labels.audio,
        "video_label": labels.video,
        "label": labels.overall,
        "identity": identity,
        "method": "real" if category == "RARV" else "fake",
        "num_frames": 100 if ok else 0,
        "source_fingerprint": f"fp-{clip_id}",
        "recipe_hash": "r0",
        "status": schemas.STATUS_OK if ok else schemas.STATUS_FAILED,
        "error": "" if ok else "decode error",
    }


def build_manifest(spec: dict[str, dict[str, list[bool]]]) -> pa.Table:
    """spec: identity -> category -> [ok flag per clip]."""
    rows = []
    for identity, cats in spec.items():
        for cat, flags in cats.items():
            for k, ok in enumerate(flags):
                rows.append(manifest_row(f"{identity}_{cat}_{k}", identity, cat, ok))
    return schemas.rows_to_table(rows, MANIFEST_SCHEMA)


def release_like_manifest(n_identities: int = 500, seed: int = 1) -> pa.Table:
    """Per identity one RARV, one FARV, 5-30 RAFV and 5-30 FAFV clips, like FakeAVCeleb."""
    rng = random.Random(seed)
    spec = {
        f"id{i:05d}": {
            "RARV": [True],
            "FARV": [True],
            "RAFV": [True] * rng.randint(5, 30),
            "FAFV": [True] * rng.randint(5, 30),
        }
        for i in range(n_identities)
    }
    return build_manifest(spec)


def shuffled(table: pa.Table, seed: int) -> pa.Table:
    order = list(range(table.num_rows))
    random.Random(seed).shuffle(order)
    return table.take(pa.array(order, pa.int64()))


def parts_of_identities(split: pa.Table) -> dict[str, set[str]]:
    parts: dict[str, set[str]] = defaultdict(set)
    for ident, part in zip(
        split.column("identity").to_pylist(), split.column("split").to_pylist(), strict=True
    ):
        parts[ident].add(part)
    return parts


def ok_ids(manifest: pa.Table) -> set[str]:
    return {r["clip_id"] for r in manifest.to_pylist() if r["status"] == schemas.STATUS_OK}


# --------------------------------------------------------------------------- strategies

manifests = st.dictionaries(
    keys=st.integers(0, 40).map(lambda i: f"id{i:03d}"),
    values=st.fixed_dictionaries(
        # Mostly ok clips, sometimes none or only failed ones in a category.
        {
            cat: st.lists(
                st.sampled_from([True, True, True, False]),
                min_size=0 if cat == "RAFV" else 1,
                max_size=3,
            )
            for cat in CATEGORIES
        }
    ),
    min_size=2,
    max_size=16,
).map(build_manifest)

ratio_choices = st.sampled_from(
    [(0.7, 0.15, 0.15), (0.8, 0.1, 0.1), (0.34, 0.33, 0.33), (0.5, 0.3, 0.2)]
)


def split_or_reason(manifest: pa.Table, params: SplitParams) -> pa.Table | None:
    """The split, or None when SplitError is raised for a reason the test checks."""
    try:
        return make_split(manifest, params)
    except SplitError as exc:
        message = str(exc)
        assert "no ok clips of category" in message or "identit" in message, message
        return None


# --------------------------------------------------------------------------- properties


@PROPERTY_SETTINGS
@given(manifest=manifests, seed=st.integers(0, 3), ratios=ratio_choices)
def test_balanced_split_properties(manifest: pa.Table, seed: int, ratios) -> None:
    params = SplitParams(balance=True, seed=seed, ratios=ratios)
    split = split_or_reason(manifest, params)
    ok = ok_ids(manifest)
    rows = manifest.to_pylist()
    by_ident: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r["status"] == schemas.STATUS_OK:
            by_ident[r["identity"]].add(r["category"])
    eligible = sorted(i for i, cats in by_ident.items() if cats == set(CATEGORIES))
    if split is None:
        # Refusal is only allowed when a balanced split is truly impossible.
        assert len(eligible) < 3
        return
    assert len(eligible) >= 3
    counts = split_counts(split)
    for part in SPLITS:
        per_cat = [counts[part][cat] for cat in CATEGORIES]
        assert len(set(per_cat)) == 1, (part, per_cat)  # exactly 1:1:1:1
        assert counts[part]["identities"] >= 1
        assert counts[part]["total"] == 4 * counts[part]["identities"]
    # Every eligible identity takes part, with one clip per category.
    assert sorted(set(split.column("identity").to_pylist())) == eligible
    assert set(split.column("clip_id").to_pylist()) <= ok
    assert all(len(p) == 1 for p in parts_of_identities(split).values())
    # Ratios: within one identity (4 clips) of the target whenever each target is >= 1 identity.
    n = len(eligible)
    if all(r * n >= 1 for r in ratios):
        for part, r in zip(SPLITS, ratios, strict=True):
            assert abs(counts[part]["identities"] - r * n) < 1 + 1e-9
            assert abs(counts[part]["total"] - r * counts["total"]["total"]) < 4 + 1e-9
    # Row order of the manifest does not matter.
    again = make_split(shuffled(manifest, seed + 7), params)
    assert again.equals(split)
    summary = split_summary(split)
    assert summary["dropped_identities"] == len(by_ident) - len(eligible)


@PROPERTY_SETTINGS
@given(manifest=manifests, seed=st.integers(0, 3), ratios=ratio_choices)
def test_unbalanced_split_properties(manifest: pa.Table, seed: int, ratios) -> None:
    params = SplitParams(balance=False, seed=seed, ratios=ratios)
    split = split_or_reason(manifest, params)
    ok = ok_ids(manifest)
    if split is None:
        return
    # All ok clips, never a failed one, each identity whole in one part.
    assert set(split.column("clip_id").to_pylist()) == ok
    assert split.num_rows == len(ok)
    identity_parts = parts_of_identities(split)
    assert all(len(p) == 1 for p in identity_parts.values())
    n = len(identity_parts)
    counts = split_counts(split)
    assert all(counts[part]["identities"] >= 1 for part in SPLITS)
    if all(r * n >= 1 for r in ratios):
        for part, r in zip(SPLITS, ratios, strict=True):
            assert abs(counts[part]["identities"] - r * n) < 1 + 1e-9
    again = make_split(shuffled(manifest, seed + 11), params)
    assert again.equals(split)


@PROPERTY_SETTINGS
@given(manifest=manifests, seed=st.integers(0, 3), folds=st.integers(2, 6), balance=st.booleans())
def test_folds_partition_identities(
    manifest: pa.Table, seed: int, folds: int, balance: bool
) -> None:
    tests: list[set[str]] = []
    for fold in range(folds):
        params = SplitParams(balance=balance, seed=seed, folds=folds, fold=fold)
        split = split_or_reason(manifest, params)
        if split is None:
            return
        assert all(len(p) == 1 for p in parts_of_identities(split).values())
        counts = split_counts(split)
        assert all(counts[part]["identities"] >= 1 for part in SPLITS)
        if balance:
            for part in SPLITS:
                assert len({counts[part][cat] for cat in CATEGORIES}) == 1
        tests.append({r["identity"] for r in split.to_pylist() if r["split"] == "test"})
        everyone = set(split.column("identity").to_pylist())
    # The test folds are disjoint, near-equal, and together cover every identity.
    assert sum(len(t) for t in tests) == len(everyone)
    assert set().union(*tests) == everyone
    assert max(len(t) for t in tests) - min(len(t) for t in tests) <= 1


# --------------------------------------------------------------------------- release-shaped


def test_release_shaped_manifest_gives_500_per_category() -> None:
    manifest = release_like_manifest()
    split = make_split(manifest, SplitParams(balance=True, seed=0))
    counts = split_counts(split)
    assert {cat: counts["total"][cat] for cat in CATEGORIES} == dict.fromkeys(CATEGORIES, 500)
    assert split.num_rows == 2000
    assert counts["total"]["identities"] == 500
    assert all(len(p) == 1 for p in parts_of_identities(split).values())
    assert [counts[p]["identities"] for p in SPLITS] == [350, 75, 75]
    assert split.schema.remove_metadata() == schemas.SPLIT_SCHEMA
    # Another seed picks other fake clips and other identities per part.
    other = make_split(manifest, SplitParams(balance=True, seed=1))
    assert set(other.column("clip_id").to_pylist()) != set(split.column("clip_id").to_pylist())
    assert split_counts(other)["total"]["total"] == 2000


def test_release_shaped_with_failed_real_clips_drops_those_identities() -> None:
    manifest = release_like_manifest(n_identities=40)
    rows = manifest.to_pylist()
    for r in rows:
        if r["category"] == "RARV" and r["identity"] in ("id00003", "id00017"):
            r["status"] = schemas.STATUS_FAILED
    manifest = schemas.rows_to_table(rows, MANIFEST_SCHEMA)
    split = make_split(manifest, SplitParams(balance=True))
    assert split_counts(split)["total"]["RARV"] == 38
    assert not {"id00003", "id00017"} & set(split.column("identity").to_pylist())
    summary = split_summary(split)
    assert summary["dropped_identities"] == 2
    assert summary["identities_lacking"] == {"RARV": 2}
    assert summary["failed_clips"] == 2


def test_per_category_cap_keeps_whole_identities() -> None:
    manifest = release_like_manifest(n_identities=60)
    split = make_split(manifest, SplitParams(balance=True, per_category=20, seed=3))
    counts = split_counts(split)
    assert {cat: counts["total"][cat] for cat in CATEGORIES} == dict.fromkeys(CATEGORIES, 20)
    assert [counts[p]["identities"] for p in SPLITS] == [14, 3, 3]
    assert split_summary(split)["capped_identities"] == 40
    # A cap above what exists is not an error: the smallest category caps the count.
    uncapped = make_split(manifest, SplitParams(balance=True, per_category=1000))
    assert split_counts(uncapped)["total"]["RARV"] == 60


def test_unbalanced_per_category_cap() -> None:
    manifest = release_like_manifest(n_identities=30)
    split = make_split(manifest, SplitParams(per_category=25))
    counts = split_counts(split)["total"]
    assert counts["RARV"] == 25 and counts["FARV"] == 25
    assert counts["RAFV"] == 25 and counts["FAFV"] == 25
    assert all(len(p) == 1 for p in parts_of_identities(split).values())


# --------------------------------------------------------------------------- errors


def test_category_without_ok_clips_is_refused() -> None:
    spec = {
        f"id{i}": {"RARV": [True], "FARV": [False], "RAFV": [True], "FAFV": [True]}
        for i in range(5)
    }
    with pytest.raises(SplitError, match="no ok clips of category FARV"):
        make_split(build_manifest(spec), SplitParams(balance=True))
    with pytest.raises(SplitError, match="no ok clips of category FARV"):
        make_split(build_manifest(spec), SplitParams(balance=False))


def test_too_few_identities_says_how_many_are_needed() -> None:
    full = {"RARV": [True], "FARV": [True], "RAFV": [True], "FAFV": [True]}
    two = build_manifest({"a": full, "b": full})
    with pytest.raises(SplitError, match="at least 3 identities"):
        make_split(two, SplitParams(balance=True))
    four = build_manifest({k: full for k in "abcd"})
    with pytest.raises(SplitError, match="5-fold splitting needs at least 5 identities"):
        make_split(four, SplitParams(folds=5, fold=0))
    three = make_split(build_manifest({k: full for k in "abc"}), SplitParams(balance=True))
    assert [split_counts(three)[p]["identities"] for p in SPLITS] == [1, 1, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ratios": (0.7, 0.2, 0.2)}, "sum to 1"),
        ({"ratios": (1.2, -0.1, -0.1)}, "non-negative"),
        ({"ratios": (0.8, 0.2, 0.0)}, "test ratio must be > 0"),
        ({"ratios": (0.8, 0.0, 0.2)}, "val ratio must be > 0"),
        ({"ratios": (0.5, 0.5)}, "three numbers"),
        ({"folds": 5}, "go together"),
        ({"folds": 5, "fold": 5}, r"0\.\.4"),
        ({"folds": 1, "fold": 0}, "at least 2"),
        ({"per_category": 0}, "at least 1"),
    ],
)
def test_invalid_params_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(SplitError, match=message):
        SplitParams(**kwargs)


def test_folds_ignore_test_ratio_and_parse_ratios() -> None:
    assert SplitParams(ratios=(0.8, 0.2, 0.0), folds=5, fold=1).ratios == (0.8, 0.2, 0.0)
    assert parse_ratios("0.7, 0.15,0.15") == (0.7, 0.15, 0.15)
    with pytest.raises(SplitError, match="three comma-separated"):
        parse_ratios("0.7;0.3")
    with pytest.raises(SplitError, match="three comma-separated"):
        parse_ratios("a,b,c")


def test_manifest_missing_columns_is_refused() -> None:
    table = pa.table({"clip_id": ["x"], "category": ["RARV"]})
    with pytest.raises(SplitError, match="missing column"):
        make_split(table, SplitParams())


# --------------------------------------------------------------------------- store and printing


def test_write_read_round_trip_through_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    schemas.create_store(store, schemas.Recipe())
    schemas.write_manifest(store, release_like_manifest(n_identities=30))
    manifest = schemas.read_manifest(store)

    params = SplitParams(balance=True, seed=5)
    table = make_split(manifest, params)
    schemas.write_split(store, "default", table, params.to_dict())
    back = schemas.read_split(store, "default")
    assert back.to_pylist() == table.to_pylist()
    assert schemas.split_params(store, "default") == params.to_dict()
    assert split_counts(back) == split_counts(table)

    folds = SplitParams(folds=5, fold=2, seed=5)
    schemas.write_split(store, "fold2", make_split(manifest, folds), folds.to_dict())
    assert schemas.list_splits(store) == ["default", "fold2"]
    assert schemas.split_params(store, "fold2")["fold"] == 2
    assert schemas.read_split(store, "default").to_pylist() == table.to_pylist()

    with pytest.raises(schemas.StoreError, match="overwrite"):
        schemas.write_split(store, "default", table, params.to_dict())
    other = SplitParams(balance=True, seed=6)
    schemas.write_split(
        store, "default", make_split(manifest, other), other.to_dict(), overwrite=True
    )
    assert schemas.split_params(store, "default")["seed"] == 6


def test_render_counts_matches_split_counts() -> None:
    manifest = release_like_manifest(n_identities=20)
    rows = manifest.to_pylist()
    rows[0]["status"] = schemas.STATUS_FAILED  # id00000's RARV clip
    manifest = schemas.rows_to_table(rows, MANIFEST_SCHEMA)
    split = make_split(manifest, SplitParams(balance=True))
    console = Console(record=True, width=120)
    console.print(render_counts(split))
    text = console.export_text()
    counts = split_counts(split)
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if "│" in line}
    for part in (*SPLITS, "total"):
        cells = [c.strip() for c in lines[part].split("│")[2:-1]]
        expected = [str(counts[part][c]) for c in (*CATEGORIES, "total", "identities")]
        assert cells == expected
    assert counts["total"]["total"] == 76
    assert "1 identities dropped" in text and "1 without RARV" in text


# --------------------------------------------------------------------------- low face rate


def _flag_low_face_rate(manifest: pa.Table, flagged: set[str]) -> pa.Table:
    """``low_face_rate`` True for ``flagged``; of the others half False, half None (older store)."""
    rows = manifest.to_pylist()
    for k, r in enumerate(rows):
        r["low_face_rate"] = True if r["clip_id"] in flagged else (None if k % 2 else False)
    return schemas.rows_to_table(rows, MANIFEST_SCHEMA)


def test_low_face_rate_clips_are_left_out_unless_kept() -> None:
    """Flagged ok clips do not take part by default; the summary and caption count them."""
    manifest = release_like_manifest(n_identities=12)
    real_of_4 = {
        r["clip_id"]
        for r in manifest.to_pylist()
        if r["identity"] == "id00004" and r["category"] == "RARV"
    }
    manifest = _flag_low_face_rate(manifest, real_of_4)

    split = make_split(manifest, SplitParams(balance=True))
    assert "id00004" not in split.column("identity").to_pylist()  # its only real clip flagged
    summary = split_summary(split)
    assert summary["low_face_rate_clips"] == 1
    assert summary["ok_clips"] == manifest.num_rows
    assert summary["dropped_identities"] == 1 and summary["identities_lacking"] == {"RARV": 1}
    console = Console(record=True, width=200)
    console.print(render_counts(split))
    assert "1 clips with a low face detection rate left out" in console.export_text()
    # Unbalanced: every clip but the flagged one (None and False are not flagged).
    assert make_split(manifest, SplitParams()).num_rows == manifest.num_rows - 1

    kept = make_split(manifest, SplitParams(balance=True, keep_low_face_rate=True))
    assert "id00004" in kept.column("identity").to_pylist()
    assert split_summary(kept)["low_face_rate_clips"] == 0
    assert SplitParams(keep_low_face_rate=True).to_dict()["keep_low_face_rate"] is True


def test_a_category_whose_clips_are_all_flagged_cannot_be_split() -> None:
    manifest = release_like_manifest(n_identities=6)
    fafv = {r["clip_id"] for r in manifest.to_pylist() if r["category"] == "FAFV"}
    with pytest.raises(SplitError, match="no ok clips of category FAFV.*--keep-low-face-rate"):
        make_split(_flag_low_face_rate(manifest, fafv), SplitParams())
    kept = make_split(_flag_low_face_rate(manifest, fafv), SplitParams(keep_low_face_rate=True))
    assert split_counts(kept)["total"]["FAFV"] == len(fafv)


#: The opt-in leave-outs: the flag column, the SplitParams switch, the summary key and
#: what the counts table says.
OPT_IN_LEAVE_OUTS = [
    ("little_speech", "leave_out_little_speech", "1 clips with little speech left out"),
    ("low_frontal_rate", "leave_out_low_frontal_rate", "1 clips seen mostly off frontal left out"),
]


@pytest.mark.parametrize(("flag", "switch", "said"), OPT_IN_LEAVE_OUTS)
def test_flagged_clips_are_left_out_only_when_asked(flag: str, switch: str, said: str) -> None:
    """Clips with an opt-in flag (``little_speech``: no one seems to speak;
    ``low_frontal_rate``: heads mostly turned) take part by default (the split and its
    summary as before); the switch leaves them out, counts them, and names itself when a
    category is left empty."""
    on: dict[str, Any] = {switch: True}
    manifest = release_like_manifest(n_identities=12)
    rows = manifest.to_pylist()
    flagged = {r["clip_id"] for r in rows if r["identity"] == "id00004" and r["category"] == "RARV"}
    for k, r in enumerate(rows):  # half the others False, half None (an older store)
        r[flag] = True if r["clip_id"] in flagged else (None if k % 2 else False)
    manifest = schemas.rows_to_table(rows, MANIFEST_SCHEMA)

    default = make_split(manifest, SplitParams(balance=True))
    assert "id00004" in default.column("identity").to_pylist()
    assert f"{flag}_clips" not in split_summary(default)

    left = make_split(manifest, SplitParams(balance=True, **on))
    assert "id00004" not in left.column("identity").to_pylist()  # its only real clip
    assert split_summary(left)[f"{flag}_clips"] == 1
    console = Console(record=True, width=200)
    console.print(render_counts(left))
    assert said in console.export_text()
    unbalanced = make_split(manifest, SplitParams(**on))
    assert unbalanced.num_rows == manifest.num_rows - 1

    for r in rows:
        r[flag] = r["category"] == "FAFV"
    option = "--" + switch.replace("_", "-")
    with pytest.raises(SplitError, match=f"FAFV.*drop {option}"):
        make_split(schemas.rows_to_table(rows, MANIFEST_SCHEMA), SplitParams(**on))
