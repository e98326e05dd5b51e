"""``lormail mark``: parse what happened, show the roster's diff, write it."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from lormail.app.context import App
from lormail.app.mark import Marked, prepare_inbox, prepare_mark, write_mark
from lormail.errors import EXIT_OK, LormailError, Problem
from lormail.load.roundtrip import Mark

USAGE = (
    "give a recommender and asked, agreed, declined, planned or submitted, "
    "or a program and its outcome"
)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise LormailError([Problem(f"--on: '{text}' is not a date like 2026-11-30")]) from None


def cmd_mark(app: App, args: argparse.Namespace) -> int:
    if args.inbox:
        if args.target or args.on or args.all:
            raise LormailError([Problem("mark --inbox takes no recommender, program or --on")])
        return _mark_inbox(app, dry_run=args.dry_run)
    if args.target is None or args.what is None:
        raise LormailError([Problem(f"mark: {USAGE}")])
    mark = Mark(
        target=args.target,
        what=args.what,
        letters=tuple(args.letters),
        all_letters=args.all,
        on=_day(args.on) if args.on is not None else None,
    )
    roster_path: Path = app.config().roster
    marked = prepare_mark(roster_path, mark, app.now())
    print(marked.diff(), end="")
    for note in marked.edit.notes:
        print(f"note: {note}")
    return _finish(marked, args.dry_run, "nothing to change")


def _mark_inbox(app: App, *, dry_run: bool) -> int:
    """The portal mails' submissions the state holds, written as ``mark R submitted`` would."""
    roster_path: Path = app.config().roster
    # Only what a scan or the daemon stored: this command connects to nothing.
    events = app.snapshot().inbox
    done = prepare_inbox(roster_path, events, app.now())
    found, marked = done.found, done.marked
    print(marked.diff(), end="")
    if not events:
        print("inbox: no events stored yet ('lormail inbox scan' or 'lormail run' reads them)")
    else:
        mails = "portal mail" if found.portal == 1 else "portal mails"
        print(f"inbox: {_count(found.considered, 'event')} considered ({found.portal} {mails})")
    for line in found.skipped:
        print(f"skipped: {line}")
    for note in (*found.notes, *marked.edit.notes):
        print(f"note: {note}")
    return _finish(marked, dry_run, "nothing from the inbox to record")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _finish(marked: Marked, dry_run: bool, nothing: str) -> int:
    if not marked.changed:
        print(f"{marked.file}: {nothing}")
    elif dry_run:
        print(f"{marked.file}: dry run, nothing written")
    else:
        write_mark(marked)
        print(f"{marked.file}: written")
    return EXIT_OK
