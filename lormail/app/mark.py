"""``mark``: record what happened in roster.yaml itself, safely.

The edit is made on the text (:mod:`lormail.load.roundtrip`), validated by the
same loader as ``check``, and written atomically: a temporary file in the same
folder renamed over the roster, keeping its mode.  If the file changed after it
was read (an editor saved meanwhile), nothing is written.  A running daemon
sees the rename as it sees any other save.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lormail.core.inbox_marks import FromInbox, from_inbox
from lormail.edge.files import write_atomic
from lormail.errors import LormailError, Problem, RuntimeFailure
from lormail.load.roster import parse_roster
from lormail.load.roundtrip import SUBMITTED, Edit, Mark, mark_roster, mark_roster_all
from lormail.load.yamlsrc import display_name, read_text
from lormail.model import InboxEvent

__all__ = ["Marked", "MarkedFromInbox", "prepare_inbox", "prepare_mark", "write_mark"]


@dataclass(frozen=True, slots=True)
class Marked:
    """A mark made on the roster's text, validated, not yet written."""

    path: Path
    file: str  # the path as shown to the user
    before: str
    edit: Edit

    @property
    def changed(self) -> bool:
        return bool(self.edit.changes)

    def diff(self) -> str:
        """A unified diff of the roster, every line ending in a newline."""
        lines = difflib.unified_diff(
            self.before.splitlines(keepends=True),
            self.edit.text.splitlines(keepends=True),
            fromfile=self.file,
            tofile=self.file,
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def prepare_mark(path: Path, mark: Mark, now: datetime) -> Marked:
    """Read the roster at ``path``, apply ``mark`` as of ``now`` and validate the result."""
    file = display_name(path)
    before = read_text(path, file, "check 'roster' in config.yaml")
    return _validated(path, file, before, mark_roster(before, file, mark, now))


@dataclass(frozen=True, slots=True)
class MarkedFromInbox:
    """The inbox's submissions written into the roster's text, validated, not yet written."""

    marked: Marked
    found: FromInbox


def prepare_inbox(path: Path, events: Sequence[InboxEvent], now: datetime) -> MarkedFromInbox:
    """Read the roster at ``path`` and mark what ``events`` confirm and it does not say yet:
    every letter in one edit, decided on the very text that is edited."""
    file = display_name(path)
    before = read_text(path, file, "check 'roster' in config.yaml")
    found = from_inbox(parse_roster(before, path), events)
    marks = [Mark(s.recommender, SUBMITTED, letters=s.letters, on=s.on) for s in found.submissions]
    edit = mark_roster_all(before, file, marks, now)
    return MarkedFromInbox(_validated(path, file, before, edit), found)


def _validated(path: Path, file: str, before: str, edit: Edit) -> Marked:
    """The edit, once the loader ``check`` uses accepts its result."""
    if edit.changes:
        try:
            parse_roster(edit.text, path)
        except LormailError as err:
            raise LormailError(
                [
                    Problem("the roster would not be valid after this; nothing was written", file),
                    *err.problems,
                ]
            ) from None
    return Marked(path, file, before, edit)


def write_mark(marked: Marked) -> None:
    """Write ``marked`` over the roster, unless the file changed since it was read."""
    if not marked.changed:
        return
    # Through a symlink to the file it names, so that the link stays a link.
    target = marked.path.resolve()
    try:
        current = target.read_bytes()
    except OSError:
        current = None
    if current != marked.before.encode("utf-8"):
        raise RuntimeFailure(
            f"{marked.file}: the file changed after it was read (saved elsewhere?); "
            "nothing was written: run the command again"
        )
    try:
        write_atomic(target, marked.edit.text.encode("utf-8"), keep_mode=True)
    except OSError as err:
        raise RuntimeFailure(f"{marked.file}: cannot write: {err.strerror}") from None
