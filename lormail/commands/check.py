"""``lormail check``: config, roster and templates, every problem at its place."""

from __future__ import annotations

import argparse
import sys

from lormail.app.check import check_templates
from lormail.app.context import App
from lormail.errors import EXIT_OK, LormailError, Problem


def cmd_check(app: App, args: argparse.Namespace) -> int:
    from lormail.load.roster import load_roster_checked

    problems: list[Problem] = []
    config = app.config()
    try:
        roster, warnings = load_roster_checked(config.roster, app.now())
    except LormailError as err:
        raise LormailError([*problems, *err.problems]) from None
    problems.extend(check_templates(roster, app.templates(), config))
    if problems:
        raise LormailError(problems)
    for w in warnings:
        print(f"{w} (warning)", file=sys.stderr)
    n_letters = sum(len(r.letters) for r in roster.recommenders)
    print(
        f"{config.roster.name}: ok — {len(roster.recommenders)} recommenders, "
        f"{len(roster.programs)} programs, {n_letters} letters; every template renders "
        f"for every recommender"
        + (f"; {len(warnings)} warning{'s' if len(warnings) != 1 else ''}" if warnings else "")
    )
    return EXIT_OK
