"""Printing for people and for programs: rich tables on a terminal, JSON on request.

Colour only on a terminal and never when ``NO_COLOR`` is set; rich is imported
only when something is printed for a person.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def utc_text(instant: datetime | None) -> str | None:
    """An instant as RFC 3339 UTC with a ``Z`` (SPEC §6), or None."""
    if instant is None:
        return None
    return _utc_text(instant)


@lru_cache(maxsize=65536)
def _utc_text(instant: datetime) -> str:
    # Slots fall on the same few instants: `plan --json` formats each once.
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def print_json(obj: Any) -> None:
    """Indented for a person at a terminal; compact (and C-encoded, so fast) for a pipe."""
    indent = 1 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    is_tty = stream.isatty()
    return Console(
        file=stream,
        no_color=bool(os.environ.get("NO_COLOR")) or not is_tty,
        color_system="auto" if is_tty else None,
        highlight=False,
        soft_wrap=not is_tty,
        width=None if is_tty else 200,
    )
