"""The store's writer lock, kept importable from here: it lives in :mod:`schemas.lock`
(the store's rules are ``schemas``' business)."""

from __future__ import annotations

from schemas.lock import store_lock

__all__ = ["store_lock"]
