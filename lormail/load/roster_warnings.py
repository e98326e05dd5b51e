"""The roster's warnings (SPEC: printed, exit 0): things that are probably mistakes
but stop nothing, each at its value's place when the loader knows it."""

from __future__ import annotations

from datetime import datetime

from lormail.core.plan import ask_by_date
from lormail.errors import Problem
from lormail.load.yamlsrc import display_name
from lormail.model import Roster

__all__ = ["Where", "roster_warnings", "warnings_at"]

# A roster path ("recommenders[1].asked_on") → the line and column of its value.
Where = dict[str, tuple[int, int]]


def roster_warnings(roster: Roster, now: datetime) -> list[Problem]:
    """SPEC's warnings as of ``now``: things that are probably mistakes but stop nothing.

    A deadline passed with letters not yet in; ``asked_on`` after a deadline of
    one of the recommender's programs; ``ask_on`` after the ask-by date;
    ``submitted_on`` in the future.  They
    name the file and path (:func:`load_roster_checked` adds line and column).
    """
    file = display_name(roster.path) if roster.path is not None else None
    return warnings_at(roster, now, file, {})


def warnings_at(roster: Roster, now: datetime, file: str | None, where: Where) -> list[Problem]:
    out: list[Problem] = []

    def warn(path: str, message: str) -> None:
        line, col = where.get(path, (None, None))
        out.append(Problem(message, file, line, col, path))

    waiting: dict[str, list[str]] = {}
    for r in roster.recommenders:
        if r.status == "declined":
            continue
        for letter in r.letters:
            if letter.submitted_on is None:
                for pid in letter.programs:
                    waiting.setdefault(pid, []).append(r.id)
    for i, p in enumerate(roster.programs):
        if p.deadline < now and p.id in waiting:
            who = waiting[p.id]
            count = f"{len(who)} letter is" if len(who) == 1 else f"{len(who)} letters are"
            names = ", ".join(who[:5]) + (", …" if len(who) > 5 else "")
            warn(
                f"programs[{i}].deadline",
                f"the deadline {p.deadline_date} has passed and {count} not in ({names})",
            )
    for i, r in enumerate(roster.recommenders):
        today = now.astimezone(r.timezone).date()
        if r.asked_on is not None:
            late = [
                f"{q.id} ({q.deadline_date})"
                for letter in r.letters
                for pid in letter.programs
                if (q := roster.programs_by_id.get(pid)) is not None
                and r.asked_on > q.deadline_date
            ]
            if late:
                warn(
                    f"recommenders[{i}].asked_on",
                    f"{r.asked_on} is after the deadline of {', '.join(late)}",
                )
        ask_by = ask_by_date(r, roster) if r.ask_on is not None else None
        if r.ask_on is not None and ask_by is not None and r.ask_on > ask_by:
            warn(
                f"recommenders[{i}].ask_on",
                f"{r.ask_on} is after the ask-by date {ask_by} "
                f"({r.policy.ask_lead} days before the first deadline)",
            )
        for j, letter in enumerate(r.letters):
            if letter.submitted_on is not None and letter.submitted_on > today:
                warn(
                    f"recommenders[{i}].letters[{j}].submitted_on",
                    f"{letter.submitted_on} is in the future",
                )
    out.sort(key=lambda p: (p.line or 0, p.col or 0))
    return out
