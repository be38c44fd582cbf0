"""Identities a fake carries besides its source, and splits that keep them apart.

A FakeAVCeleb fake made from ``source``'s clip carries the face or the voice of
``target1`` / ``target2``. Identity-disjointness over ``source`` alone lets a
target's face or voice appear in one part while the target's own clips sit in
another. This module finds those references and builds the strict variants:

* a *reference* is a target value naming an identity that has clips in the split
  (``-`` or empty means none; a merged value ``a+b``, two release rows of one file,
  names both; a value naming no identity of the split, such as a donor outside the
  dataset or FakeAVCeleb's numeric ``target2``, is ignored: no part holds it);
* :func:`components` joins identities linked by references (union-find), so that
  parts made of whole components share no face or voice;
* :func:`cross_part_references` counts the references that cross parts in a split.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_NONE = frozenset({"", "-"})


def targets_of(row: dict[str, Any]) -> list[str]:
    """The target identities a manifest row names, in order, without repeats or ``-``."""
    found: list[str] = []
    for column in ("target1", "target2"):
        value = row.get(column) or ""
        for name in value.split("+"):
            name = name.strip()
            if name not in _NONE and name not in found:
                found.append(name)
    return found


def references(row: dict[str, Any], identities: set[str] | dict[str, Any]) -> list[str]:
    """The targets of ``row`` that are identities of the split, other than its own source."""
    return [t for t in targets_of(row) if t in identities and t != row["identity"]]


class _UnionFind:
    """Disjoint sets of names; the representative of a set is its smallest name."""

    def __init__(self, names: Iterable[str]) -> None:
        self._parent = {name: name for name in names}

    def find(self, name: str) -> str:
        root = name
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[name] != root:  # path compression
            self._parent[name], name = root, self._parent[name]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # The smaller name wins, so the representative never depends on the order.
            low, high = sorted((ra, rb))
            self._parent[high] = low


def components(rows: Iterable[dict[str, Any]], identities: set[str]) -> dict[str, str]:
    """identity -> its component's representative (the component's smallest identity).

    ``identities`` are the split's sources; every reference of every row joins its
    source's component with the target's.
    """
    forest = _UnionFind(sorted(identities))
    for row in rows:
        for target in references(row, identities):
            forest.union(row["identity"], target)
    return {name: forest.find(name) for name in identities}


def cross_part_references(rows: Iterable[dict[str, Any]], parts_of: dict[str, set[str]]) -> int:
    """How many (clip, target) references name an identity with clips in another part.

    ``rows`` are the split's clips (with ``identity``, ``split``, ``target1``,
    ``target2``); ``parts_of`` maps each identity of the split to the parts holding
    its clips (one part in the splits made here; an imported split may hold an
    identity in several).
    """
    count = 0
    for row in rows:
        count += sum(bool(parts_of[t] - {row["split"]}) for t in references(row, parts_of))
    return count


def allowed_in_part(row: dict[str, Any], part: str, part_of: dict[str, str]) -> bool:
    """Whether every identity ``row`` references sits in ``part`` (or in no part)."""
    return all(part_of[t] == part for t in references(row, part_of))
