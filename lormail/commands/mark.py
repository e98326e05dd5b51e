"""``lormail mark``: parse what happened, show the roster's diff, write it."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from lormail.app.context import App
from lormail.app.mark import prepare_mark, write_mark
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
        raise LormailError(
            [Problem("mark --inbox: not yet available; record each event with 'lormail mark'")]
        )
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
    if not marked.changed:
        print(f"{marked.file}: nothing to change")
    elif args.dry_run:
        print(f"{marked.file}: dry run, nothing written")
    else:
        write_mark(marked)
        print(f"{marked.file}: written")
    return EXIT_OK
