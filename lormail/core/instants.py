"""Instants as lormail writes them: RFC 3339 UTC with a ``Z`` (SPEC §6)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_z(instant: datetime) -> str:
    """An instant as ``2026-09-14T14:00:00Z``: the one form lormail writes instants in."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_text(instant: datetime | None) -> str | None:
    """:func:`utc_z`, or None for no instant."""
    return None if instant is None else utc_z(instant)
