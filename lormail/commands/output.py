"""Printing for people and for programs: rich tables on a terminal, JSON on request.

Colour only on a terminal and never when ``NO_COLOR`` is set; rich is imported
only when something is printed for a person.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def print_json(obj: Any) -> None:
    """Indented for a person at a terminal; compact ASCII for a pipe.

    The compact form is what programs read: JSON's own escapes keep it ASCII,
    so it is written without an encoding pass (10,000 messages are 4 MB).
    """
    if sys.stdout.isatty():
        sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=1) + "\n")
        return
    sys.stdout.flush()
    sys.stdout.buffer.write(json.dumps(obj).encode("ascii") + b"\n")
    sys.stdout.buffer.flush()


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
