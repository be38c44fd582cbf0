"""Balanced, identity-disjoint train / val / test splits of a store's manifest.

The algorithm, in the order it runs:

1. Only labelled clips with status ``ok`` take part; rows are put in a canonical
   order (sorted by clip id) so that nothing depends on the manifest's row order.
   Unlabelled clips (``labelled`` false: a source whose labels are not public)
   never enter a split and are counted; a null ``labelled`` (stores written
   before the column existed) means labelled. Ok clips flagged ``low_face_rate``
   (face detection rate below the ingest's threshold: mostly tracked, not
   detected, crops) are left out and counted, unless ``keep_low_face_rate``; a
   null flag counts as not flagged.
2. ``balance``: an identity is *eligible* when it has at least one ok clip in
   each of RARV, FARV, RAFV and FAFV. Each eligible identity contributes exactly
   one clip per category (where it has several, the seed picks one), so every
   part is 1:1:1:1 whatever identities it receives. Identities lacking a
   category are dropped and counted in the table's summary (on the full
   release every identity has one A and one B clip, so 500 per category).
   Without ``balance`` every ok clip takes part.
3. ``per_category``: a cap on clips per category in total. Balanced, it keeps
   that many whole identities (chosen by the seed); unbalanced, it keeps that
   many clips of each category (chosen by the seed).
4. Identities are put in a seeded order (a hash of seed and identity, so the
   order of two identities never depends on which others exist) and cut into
   parts. Ratios are applied to *identity counts*, rounded by largest
   remainder; in a balanced split every identity weighs four clips, so this is
   also the clip ratio. Every part gets at least one identity.
5. ``folds``/``fold``: the ordered identities are cut into K near-equal folds;
   fold I is test, and the other identities are cut into train / val by the
   val ratio renormalised, val / (train + val).
6. ``strict_identities`` (see :mod:`pipeline.splits.strict`): a fake also carries
   the face or voice of its ``target1`` / ``target2`` identities. Unbalanced,
   the units cut in step 4 are the connected components of the identities
   linked by the clips' targets (union-find), in the seeded order of their
   smallest identity, each part taking whole components until its share of
   identities is reached; every clip stays. Balanced, identities are cut as in
   steps 4-5 first and each identity's clip of a category is then picked among
   those whose targets sit in the same part; the clips this rules out are
   counted, and an identity left with no allowed clip in a category is dropped.
   Either way no target identity of a clip has clips in another part.
   Without it, the summary counts the *cross-part target references*: (clip,
   target) pairs whose target identity has its clips in another part.

All randomness comes from SHA-256 of the seed and a name, never from global
state, so the same manifest and parameters give the identical table. Splits
whose parts are given (a published split, the dataset's own) are made by
:mod:`pipeline.splits.imports`. The request and its checks are in
:mod:`pipeline.splits.params`; the summary, the counts and the printed table in
:mod:`pipeline.splits.report`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from typing import Any

import pyarrow as pa

from pipeline.splits.params import (
    SplitError,
    SplitParams,
)
from pipeline.splits.report import (
    SUMMARY_KEY,
    fmt_counts,
)
from pipeline.splits.strict import allowed_in_part, components, cross_part_references
from schemas import CATEGORIES, MANIFEST_SCHEMA, SPLIT_SCHEMA, SPLITS, STATUS_OK, validate_table
from schemas.tables import SchemaError

# The manifest columns a split reads; other columns are ignored.
_NEEDED = (
    "clip_id",
    "path",
    "category",
    "identity",
    "label",
    "target1",
    "target2",
    "status",
    "low_face_rate",
    "little_speech",
    "low_frontal_rate",
    "labelled",
    "official_split",
)
#: What a taking-part row keeps: the split table's columns and what the strict rules read.
#: The quality flags a split may leave out.
_FLAGS = ("low_face_rate", "little_speech", "low_frontal_rate")
_ROW_KEYS = ("clip_id", "category", "identity", "label", "target1", "target2", *_FLAGS)
_INPUT_SCHEMA = pa.schema([MANIFEST_SCHEMA.field(name) for name in _NEEDED])


# --------------------------------------------------------------------------- making a split


def make_split(manifest: pa.Table, params: SplitParams) -> pa.Table:
    """Split the labelled ok clips of ``manifest`` (``MANIFEST_SCHEMA`` columns) by ``params``.

    Returns a table with ``SPLIT_SCHEMA`` (clip_id, split, category, identity,
    label), one row per selected clip, sorted by part, identity, category,
    clip id. Its schema metadata holds a JSON summary (``split_summary``) of
    what was left out and why. Raises ``SplitError`` when the request cannot
    be met.
    """
    all_rows = manifest_rows(manifest)
    rows = [r for r in all_rows if r["labelled"] and r["status"] == STATUS_OK]
    summary: dict[str, Any] = {
        "ok_clips": len(rows),
        "failed_clips": sum(bool(r["labelled"]) for r in all_rows) - len(rows),
        "unlabelled_clips": sum(not r["labelled"] for r in all_rows),
    }
    rows = [{k: r[k] for k in _ROW_KEYS} for r in rows]
    rows, summary["low_face_rate_clips"] = _without_flagged(
        rows, "low_face_rate", params.keep_low_face_rate
    )
    left_out: dict[str, int] = {}
    for flag in ("little_speech", "low_frontal_rate"):  # kept unless asked to leave out
        asked = getattr(params, f"leave_out_{flag}")
        rows, left_out[flag] = _without_flagged(rows, flag, not asked)
        if asked:  # a default split's summary stays as it was
            summary[f"{flag}_clips"] = left_out[flag]

    by_identity = _group(rows)
    _check_categories(by_identity, summary["low_face_rate_clips"], *left_out.values())
    if params.balance:
        eligible = _eligible(by_identity, params, summary)
        identities = _seeded(eligible, params.seed)
        parts = _assign(identities, params)
        if params.strict_identities:
            chosen = _strict_picks(by_identity, parts, params, summary)
        else:
            chosen = {ident: _picks(by_identity[ident], params) for ident in identities}
    else:
        chosen = _all_clips(by_identity, params, summary)
        if params.strict_identities:
            parts = _assign_components(chosen, params, summary)
        else:
            parts = _assign(_seeded(list(chosen), params.seed), params)
    summary["identities"] = len(chosen)
    out = [{**clip, "split": parts[ident]} for ident, clips in chosen.items() for clip in clips]
    return split_table(out, summary)


def manifest_rows(manifest: pa.Table) -> list[dict[str, Any]]:
    """Every manifest row (the columns a split reads) in clip-id order.

    ``labelled`` is filled in (null, an older store: true). Duplicate ids and
    labelled rows of an unknown category are refused (``SplitError``).
    """
    try:
        manifest = validate_table(manifest, _INPUT_SCHEMA, "manifest")
    except SchemaError as exc:
        raise SplitError(str(exc)) from exc
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    for row in manifest.to_pylist():
        if row["clip_id"] in seen:
            raise SplitError(f"manifest lists clip {row['clip_id']!r} twice")
        seen.add(row["clip_id"])
        row["labelled"] = row["labelled"] is not False
        if row["labelled"] and row["category"] not in CATEGORIES:
            raise SplitError(
                f"clip {row['clip_id']!r} has unknown category {row['category']!r}; "
                f"expected one of {', '.join(CATEGORIES)}"
            )
        rows.append(row)
    rows.sort(key=lambda r: r["clip_id"])
    return rows


def split_table(out: list[dict[str, Any]], summary: dict[str, Any]) -> pa.Table:
    """The ``SPLIT_SCHEMA`` table of ``out`` (rows with ``split``), summary in its metadata.

    Rows are sorted by part, identity, category, clip id. The summary gains
    ``cross_part_references`` (see :mod:`pipeline.splits.strict`) and
    ``identities_in_several_parts`` (0 unless the parts were given).
    """
    parts_of: dict[str, set[str]] = defaultdict(set)
    for row in out:
        parts_of[row["identity"]].add(row["split"])
    summary["cross_part_references"] = cross_part_references(out, parts_of)
    summary["identities_in_several_parts"] = sum(len(p) > 1 for p in parts_of.values())
    order = {name: i for i, name in enumerate(SPLITS)}
    cat_order = {name: i for i, name in enumerate(CATEGORIES)}
    out = sorted(
        out,
        key=lambda r: (order[r["split"]], r["identity"], cat_order[r["category"]], r["clip_id"]),
    )
    table = pa.Table.from_pylist(out, schema=SPLIT_SCHEMA)
    return table.replace_schema_metadata({SUMMARY_KEY: json.dumps(summary, sort_keys=True)})


def _seeded(identities: list[str], seed: int) -> list[str]:
    return sorted(identities, key=lambda ident: (_key(seed, "order", ident), ident))


def _without_flagged(
    rows: list[dict[str, Any]], flag: str, keep: bool
) -> tuple[list[dict[str, Any]], int]:
    """The rows that take part, and how many were left out for the quality ``flag``
    (none when ``keep``).

    Returned rows lose the flag (the split table has no such column). ``None``
    (an older store) is not flagged.
    """
    kept: list[dict[str, Any]] = []
    left_out = 0
    for row in rows:
        flagged = row.pop(flag) is True
        if flagged and not keep:
            left_out += 1
        else:
            kept.append(row)
    return kept, left_out


def _group(rows: list[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """identity -> category -> clips (in clip-id order)."""
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        grouped[row["identity"]][row["category"]].append(row)
    return grouped


def _check_categories(
    by_identity: dict[str, dict[str, list[dict[str, Any]]]],
    low_face_rate_left_out: int = 0,
    little_speech_left_out: int = 0,
    low_frontal_rate_left_out: int = 0,
) -> None:
    present = {cat for cats in by_identity.values() for cat, clips in cats.items() if clips}
    missing = [cat for cat in CATEGORIES if cat not in present]
    if missing:
        hint = "check the manifest's failed rows"
        for count, flag, option in (
            (low_face_rate_left_out, "low_face_rate", "--keep-low-face-rate"),
            (little_speech_left_out, "little_speech", "drop --leave-out-little-speech"),
            (low_frontal_rate_left_out, "low_frontal_rate", "drop --leave-out-low-frontal-rate"),
        ):
            if count:
                hint += f"; {count} {flag} clips left out: {option}"
        raise SplitError(
            f"no ok clips of category {', '.join(missing)}: a split needs all four categories "
            f"({hint})"
        )


def _eligible(
    by_identity: dict[str, dict[str, list[dict[str, Any]]]],
    params: SplitParams,
    summary: dict[str, Any],
) -> list[str]:
    """The identities with an ok clip in every category; capped by ``per_category``."""
    lacking: dict[str, int] = {cat: 0 for cat in CATEGORIES}
    eligible: list[str] = []
    for identity, cats in by_identity.items():
        absent = [cat for cat in CATEGORIES if not cats.get(cat)]
        for cat in absent:
            lacking[cat] += 1
        if not absent:
            eligible.append(identity)
    dropped = len(by_identity) - len(eligible)
    summary["dropped_identities"] = dropped
    # An identity may lack several categories, so these counts can sum to more than `dropped`.
    summary["identities_lacking"] = {cat: n for cat, n in lacking.items() if n}
    if not eligible:
        raise SplitError(
            f"no identity has an ok clip in every category, so no balanced split is possible "
            f"(identities lacking: {fmt_counts(lacking)})"
        )
    if params.per_category is not None and params.per_category < len(eligible):
        eligible.sort(key=lambda ident: (_key(params.seed, "keep", ident), ident))
        summary["capped_identities"] = len(eligible) - params.per_category
        eligible = eligible[: params.per_category]
    return eligible


def _pick(clips: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    return min(clips, key=lambda r: (_key(seed, "pick", r["clip_id"]), r["clip_id"]))


def _picks(cats: dict[str, list[dict[str, Any]]], params: SplitParams) -> list[dict[str, Any]]:
    """One clip per category, chosen by the seed."""
    return [_pick(cats[cat], params.seed) for cat in CATEGORIES]


def _strict_picks(
    by_identity: dict[str, dict[str, list[dict[str, Any]]]],
    parts: dict[str, str],
    params: SplitParams,
    summary: dict[str, Any],
) -> dict[str, list[dict[str, Any]]]:
    """One clip per category among those whose targets sit in the identity's part.

    An identity left without such a clip in some category is dropped; the
    references to it then name no part, so the picks already made stay valid.
    """
    chosen: dict[str, list[dict[str, Any]]] = {}
    excluded = 0
    for identity in sorted(parts):
        picks = []
        for cat in CATEGORIES:
            clips = by_identity[identity][cat]
            allowed = [c for c in clips if allowed_in_part(c, parts[identity], parts)]
            excluded += len(clips) - len(allowed)
            if allowed:
                picks.append(_pick(allowed, params.seed))
        if len(picks) == len(CATEGORIES):
            chosen[identity] = picks
    summary["strict_excluded_clips"] = excluded
    summary["strict_dropped_identities"] = len(parts) - len(chosen)
    empty = [part for part in SPLITS if part not in {parts[i] for i in chosen}]
    if empty:
        raise SplitError(
            f"--strict-identities leaves no identity in {', '.join(empty)}: every identity "
            "there has a category whose fakes all carry identities of other parts"
        )
    return chosen


def _assign_components(
    chosen: dict[str, list[dict[str, Any]]], params: SplitParams, summary: dict[str, Any]
) -> dict[str, str]:
    """Map identities to parts by whole connected components (identity counts as weights)."""
    rep = components((c for clips in chosen.values() for c in clips), set(chosen))
    members: dict[str, list[str]] = defaultdict(list)
    for identity, root in rep.items():
        members[root].append(identity)
    units = _seeded(list(members), params.seed)
    summary["strict_components"] = len(units)
    summary["strict_excluded_clips"] = 0
    largest = max((len(m) for m in members.values()), default=0)
    if len(units) < len(SPLITS):
        raise SplitError(
            f"--strict-identities: the identities form {len(units)} connected component(s) "
            f"(the largest has {largest} identities); train, val and test need at least 3 "
            "(--balance picks fakes within parts instead)"
        )
    sizes = _apportion(len(chosen), params.ratios)
    bounds = [sizes[0], sizes[0] + sizes[1], len(chosen)]
    parts: dict[str, str] = {}
    filled = 0
    for index, unit in enumerate(units):
        part = next((p for p, bound in enumerate(bounds) if filled < bound), len(SPLITS) - 1)
        # Leave at least one unit for each part still to come.
        part = max(part, len(SPLITS) - (len(units) - index))
        parts.update(dict.fromkeys(members[unit], SPLITS[part]))
        filled += len(members[unit])
    return parts


def _all_clips(
    by_identity: dict[str, dict[str, list[dict[str, Any]]]],
    params: SplitParams,
    summary: dict[str, Any],
) -> dict[str, list[dict[str, Any]]]:
    """Every ok clip, or ``per_category`` of each category chosen by the seed."""
    keep: set[str] | None = None
    if params.per_category is not None:
        keep = set()
        capped = 0
        for cat in CATEGORIES:
            clips = [c for cats in by_identity.values() for c in cats.get(cat, [])]
            clips.sort(key=lambda r: (_key(params.seed, "keep", r["clip_id"]), r["clip_id"]))
            keep.update(c["clip_id"] for c in clips[: params.per_category])
            capped += max(0, len(clips) - params.per_category)
        summary["capped_clips"] = capped
    chosen: dict[str, list[dict[str, Any]]] = {}
    for identity, cats in by_identity.items():
        clips = [c for cat in CATEGORIES for c in cats.get(cat, [])]
        if keep is not None:
            clips = [c for c in clips if c["clip_id"] in keep]
        if clips:
            chosen[identity] = clips
    return chosen


def _assign(identities: list[str], params: SplitParams) -> dict[str, str]:
    """Map each identity (already in seeded order) to train / val / test."""
    n = len(identities)
    train_r, val_r, test_r = params.ratios
    if params.folds is None or params.fold is None:
        if n < 3:
            raise SplitError(
                f"a train/val/test split needs at least 3 identities (one per part); "
                f"only {n} take part"
            )
        sizes = _apportion(n, (train_r, val_r, test_r))
        names = list(SPLITS)
        cuts = [0, sizes[0], sizes[0] + sizes[1], n]
        return {ident: names[p] for p in range(3) for ident in identities[cuts[p] : cuts[p + 1]]}

    needed = _min_identities_for_folds(params.folds)
    if n < needed:
        raise SplitError(
            f"{params.folds}-fold splitting needs at least {needed} identities "
            f"(every fold non-empty, train and val non-empty); only {n} take part"
        )
    base, extra = divmod(n, params.folds)
    start = params.fold * base + min(params.fold, extra)
    stop = start + base + (1 if params.fold < extra else 0)
    parts = {ident: "test" for ident in identities[start:stop]}
    rest = identities[:start] + identities[stop:]
    val_share = val_r / (train_r + val_r)
    n_train, _ = _apportion(len(rest), (1.0 - val_share, val_share))
    parts.update({ident: "train" for ident in rest[:n_train]})
    parts.update({ident: "val" for ident in rest[n_train:]})
    return parts


def _min_identities_for_folds(folds: int) -> int:
    """Smallest n with every fold non-empty and >= 2 identities outside the largest fold."""
    n = folds
    while n - math.ceil(n / folds) < 2:
        n += 1
    return n


def _apportion(n: int, ratios: tuple[float, ...]) -> list[int]:
    """Split ``n`` into integer sizes by largest remainder; every positive ratio gets >= 1.

    Ties in the remainders go to the earlier part, so the result is deterministic.
    Requires ``n >= number of positive ratios``.
    """
    exact = [r * n for r in ratios]
    sizes = [math.floor(x + 1e-9) for x in exact]
    by_remainder = sorted(range(len(ratios)), key=lambda i: (-(exact[i] - sizes[i]), i))
    for i in by_remainder[: n - sum(sizes)]:
        sizes[i] += 1
    # Tiny datasets: a part with a positive ratio may round to zero; take from the largest.
    for i, r in enumerate(ratios):
        if r > 0 and sizes[i] == 0:
            donor = max(range(len(sizes)), key=lambda j: (sizes[j], -j))
            sizes[donor] -= 1
            sizes[i] += 1
    return sizes


def _key(seed: int, salt: str, name: str) -> int:
    """A stable pseudo-random number for (seed, salt, name), the same in every process."""
    digest = hashlib.sha256(f"{seed}\x1f{salt}\x1f{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")
