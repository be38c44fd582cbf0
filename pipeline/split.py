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
6. ``strict_identities`` (see :mod:`pipeline.split_strict`): a fake also carries
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
:mod:`pipeline.split_import`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
from rich.table import Table as RichTable

from pipeline.split_strict import allowed_in_part, components, cross_part_references
from schemas import CATEGORIES, MANIFEST_SCHEMA, SPLIT_SCHEMA, SPLITS, STATUS_OK, validate_table
from schemas.cli_errors import UserError
from schemas.tables import SchemaError

SUMMARY_KEY = b"mscct.split_summary"

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
    "labelled",
    "official_split",
)
#: What a taking-part row keeps: the split table's columns and what the strict rules read.
_ROW_KEYS = ("clip_id", "category", "identity", "label", "target1", "target2", "low_face_rate")
_INPUT_SCHEMA = pa.schema([MANIFEST_SCHEMA.field(name) for name in _NEEDED])
_RATIO_TOLERANCE = 1e-6


class SplitError(UserError):
    """The split request cannot be met; the message says why."""


@dataclass(frozen=True)
class SplitParams:
    """How to split. Validated on construction (raises ``SplitError``).

    ``ratios`` are train / val / test fractions of identities; with ``folds``
    the test ratio is ignored and val takes val / (train + val) of the
    identities outside the test fold. ``keep_low_face_rate`` lets clips
    flagged ``low_face_rate`` take part (left out by default).
    ``strict_identities`` keeps every fake's target identities in its part.
    """

    balance: bool = False
    seed: int = 0
    ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)
    per_category: int | None = None
    folds: int | None = None
    fold: int | None = None
    keep_low_face_rate: bool = False
    strict_identities: bool = False

    def __post_init__(self) -> None:
        ratios = tuple(float(r) for r in self.ratios)
        object.__setattr__(self, "ratios", ratios)
        if len(ratios) != 3:
            raise SplitError(f"ratios must be three numbers (train,val,test), got {len(ratios)}")
        if any(not math.isfinite(r) or r < 0 for r in ratios):
            raise SplitError(f"ratios must be non-negative numbers, got {_fmt(ratios)}")
        if abs(sum(ratios) - 1.0) > _RATIO_TOLERANCE:
            raise SplitError(f"ratios must sum to 1, got {_fmt(ratios)} (sum {sum(ratios):g})")
        train, val, test = ratios
        if train <= 0:
            raise SplitError("the train ratio must be > 0")
        if val <= 0:
            # The trainer selects checkpoints on val; without it the test set would be used.
            raise SplitError("the val ratio must be > 0: checkpoints are selected on val")
        if (self.folds is None) != (self.fold is None):
            raise SplitError("--folds and --fold go together (e.g. --folds 5 --fold 0)")
        if self.folds is None and test <= 0:
            raise SplitError("the test ratio must be > 0 (or use --folds K --fold I)")
        if self.folds is not None and self.fold is not None:
            if self.folds < 2:
                raise SplitError(f"--folds must be at least 2, got {self.folds}")
            if not 0 <= self.fold < self.folds:
                raise SplitError(f"--fold must be in 0..{self.folds - 1}, got {self.fold}")
        if self.per_category is not None and self.per_category < 1:
            raise SplitError(f"--per-category must be at least 1, got {self.per_category}")
        if self.strict_identities and self.folds is not None and not self.balance:
            # Components vary in size: K equal folds of whole components are rarely possible.
            raise SplitError("--strict-identities with --folds needs --balance")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters, recorded in the store with the split table."""
        data = asdict(self)
        data["ratios"] = list(self.ratios)
        return data


def parse_ratios(text: str) -> tuple[float, float, float]:
    """Parse ``"0.7,0.15,0.15"``; range checks happen in ``SplitParams``."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3:
        raise SplitError(f"--ratios takes three comma-separated numbers, got {text!r}")
    try:
        train, val, test = (float(p) for p in parts)
    except ValueError:
        raise SplitError(f"--ratios takes three comma-separated numbers, got {text!r}") from None
    return train, val, test


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
    rows, summary["low_face_rate_clips"] = _without_low_face_rate(rows, params)

    by_identity = _group(rows)
    _check_categories(by_identity, low_face_rate_left_out=summary["low_face_rate_clips"])
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
    ``cross_part_references`` (see :mod:`pipeline.split_strict`) and
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


def _without_low_face_rate(
    rows: list[dict[str, Any]], params: SplitParams
) -> tuple[list[dict[str, Any]], int]:
    """The rows that take part, and how many were left out for a low face rate.

    Returned rows lose the flag (the split table has no such column). ``None``
    (an older store) is not flagged.
    """
    kept: list[dict[str, Any]] = []
    left_out = 0
    for row in rows:
        flagged = row.pop("low_face_rate") is True
        if flagged and not params.keep_low_face_rate:
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
    by_identity: dict[str, dict[str, list[dict[str, Any]]]], low_face_rate_left_out: int = 0
) -> None:
    present = {cat for cats in by_identity.values() for cat, clips in cats.items() if clips}
    missing = [cat for cat in CATEGORIES if cat not in present]
    if missing:
        hint = "check the manifest's failed rows"
        if low_face_rate_left_out:
            hint += f"; {low_face_rate_left_out} low_face_rate clips left out: --keep-low-face-rate"
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
            f"(identities lacking: {_fmt_counts(lacking)})"
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


def _fmt(ratios: tuple[float, ...]) -> str:
    return ",".join(f"{r:g}" for r in ratios)


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} without {cat}" for cat, n in counts.items() if n) or "none"


# --------------------------------------------------------------------------- reporting


def split_summary(split: pa.Table) -> dict[str, Any]:
    """What ``make_split`` left out and why (empty for a table read back from the store).

    Keys: ``ok_clips``, ``failed_clips``, ``unlabelled_clips``,
    ``low_face_rate_clips`` (ok clips left out for a low face rate),
    ``identities``, ``cross_part_references``, and where they apply
    ``dropped_identities``, ``identities_lacking`` (category -> count),
    ``capped_identities``, ``capped_clips``, ``strict_excluded_clips``,
    ``strict_dropped_identities``, ``strict_components``; an imported split's
    keys are listed in :mod:`pipeline.split_import`.
    """
    meta = split.schema.metadata or {}
    raw = meta.get(SUMMARY_KEY)
    return json.loads(raw) if raw else {}


def split_counts(split: pa.Table) -> dict[str, dict[str, int]]:
    """Counts per part: ``{part: {category: clips, 'total': clips, 'identities': n}}``.

    Parts are ``train``, ``val``, ``test`` and ``total``.
    """
    counts: dict[str, dict[str, int]] = {
        part: {**{cat: 0 for cat in CATEGORIES}, "total": 0, "identities": 0}
        for part in (*SPLITS, "total")
    }
    identities: dict[str, set[str]] = {part: set() for part in (*SPLITS, "total")}
    parts = split.column("split").to_pylist()
    cats = split.column("category").to_pylist()
    idents = split.column("identity").to_pylist()
    for part, cat, ident in zip(parts, cats, idents, strict=True):
        for key in (part, "total"):
            counts[key][cat] = counts[key].get(cat, 0) + 1
            counts[key]["total"] += 1
            identities[key].add(ident)
    for part, seen in identities.items():
        counts[part]["identities"] = len(seen)
    return counts


def render_counts(split: pa.Table) -> RichTable:
    """A printable table: rows train / val / test / total; columns categories, total, identities.

    When the table comes straight from ``make_split``, the caption says what was left out.
    """
    counts = split_counts(split)
    table = RichTable(title="split: clips per part and category")
    table.add_column("part")
    for column in (*CATEGORIES, "total", "identities"):
        table.add_column(column, justify="right")
    for part in (*SPLITS, "total"):
        row = counts[part]
        table.add_row(
            part,
            *(str(row[c]) for c in (*CATEGORIES, "total", "identities")),
            end_section=part == SPLITS[-1],
        )
    caption = _caption(split_summary(split))
    if caption:
        table.caption = caption
    return table


def _caption(summary: dict[str, Any]) -> str:
    notes: list[str] = []
    for line in summary.get("notes", []):  # what an imported split found in its files
        notes.append(line)
    if summary.get("failed_clips"):
        notes.append(f"{summary['failed_clips']} failed clips excluded")
    if summary.get("unlabelled_clips"):
        notes.append(f"{summary['unlabelled_clips']} unlabelled clips never enter a split")
    if summary.get("low_face_rate_clips"):
        notes.append(
            f"{summary['low_face_rate_clips']} clips with a low face detection rate left out "
            "(--keep-low-face-rate keeps them)"
        )
    if summary.get("dropped_identities"):
        lacking = _fmt_counts(summary.get("identities_lacking", {}))
        notes.append(f"{summary['dropped_identities']} identities dropped for balance ({lacking})")
    if summary.get("capped_identities"):
        notes.append(f"{summary['capped_identities']} identities left out by --per-category")
    if summary.get("capped_clips"):
        notes.append(f"{summary['capped_clips']} clips left out by --per-category")
    if "strict_excluded_clips" in summary:
        notes.append(
            f"--strict-identities excluded {summary['strict_excluded_clips']} clips whose "
            "targets sit in another part"
            + (
                f" and dropped {summary['strict_dropped_identities']} identities"
                if summary.get("strict_dropped_identities")
                else ""
            )
        )
    if summary.get("identities_in_several_parts"):
        notes.append(
            f"{summary['identities_in_several_parts']} identities have clips in several parts"
        )
    if "cross_part_references" in summary:
        notes.append(
            f"{summary['cross_part_references']} cross-part target references (a fake's "
            "target1/target2 identity has clips in another part)"
        )
    return "; ".join(notes)
