"""Printing for people and for programs: rich tables on a terminal, JSON on request.

Colour only on a terminal and never when ``NO_COLOR`` is set; rich is imported
only when something is printed for a person.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

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


class _Trimmed:
    """A text stream for a pipe or a file: each line written without the spaces rich
    pads a table's cells with, up to the page's width."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._line = ""  # the start of a line not yet ended

    def write(self, text: str) -> int:
        lines = (self._line + text).split("\n")
        self._line = lines.pop()
        if lines:
            self._stream.write("".join(line.rstrip(" ") + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        self._stream.write(self._line)
        self._line = ""
        self._stream.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    is_tty = stream.isatty()
    # Off a terminal, COLUMNS (as a shell or `COLUMNS=100 lormail status | less`
    # sets it) gives the width; else a wide page that pipes and files keep.
    columns = os.environ.get("COLUMNS", "")
    width = None if is_tty else int(columns) if columns.isdigit() and int(columns) > 0 else 200
    return Console(
        file=stream if is_tty else _Trimmed(stream),  # type: ignore[arg-type]
        no_color=bool(os.environ.get("NO_COLOR")) or not is_tty,
        color_system="auto" if is_tty else None,
        highlight=False,
        soft_wrap=not is_tty,
        width=width,
    )
