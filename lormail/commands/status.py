"""``lormail status``: each recommender's letters, the programs, and the daemon's health.

``status`` lists a row per recommender and a row per letter under it, so it
reads the same at 3 programs or 30 in a 100-column terminal; ``status R``
shows one recommender with their upcoming messages; ``status --programs`` a
row per program with its outcome and the letters still to come.  A letter is
"to come" while it is neither submitted nor declined and its deadline has not
passed.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from lormail.app.context import App
from lormail.commands.inbox_status import InboxView, inbox_view
from lormail.commands.output import console, print_json
from lormail.commands.plan import UPCOMING, held_plan
from lormail.core.instants import utc_text
from lormail.core.slots import day_label
from lormail.errors import EXIT_OK, EXIT_USAGE, LormailError, Problem
from lormail.model import Letter, Plan, PlannedMessage, Program, Recommender, Roster

# Letter states, as status shows them.
SUBMITTED = "submitted"
DECLINED = "declined"
PAST = "past deadline"
TO_COME = ("to ask", "asked", "agreed")
_STATE_OF_STATUS = {"planned": "to ask", "asked": "asked", "agreed": "agreed"}
_KIND_NAMES = {
    "thank_you": "thank-you",
    "decline_thanks": "thank-you",
    "outcome": "outcome update",
    "request_followup": "follow-up",
}
_STYLES = {SUBMITTED: "green", DECLINED: "dim", PAST: "bold red", "to ask": "yellow"}


@dataclass(frozen=True)
class LetterView:
    """One letter of one recommender, as status shows it."""

    recommender: Recommender
    letter: Letter
    programs: tuple[Program, ...]  # by deadline
    state: str

    @property
    def to_come(self) -> bool:
        return self.state in TO_COME


def letter_views(roster: Roster, rec: Recommender, now: datetime) -> list[LetterView]:
    """``rec``'s letters, by deadline, with their states as of ``now``."""
    out = [
        LetterView(
            recommender=rec,
            letter=lt,
            programs=_by_deadline(roster.programs_by_id[p] for p in lt.programs),
            state=_state(rec, lt, now),
        )
        for lt in rec.letters
    ]
    return sorted(out, key=lambda v: (v.letter.deadline, v.letter.key))


def _state(rec: Recommender, lt: Letter, now: datetime) -> str:
    if lt.submitted_on is not None:
        return SUBMITTED
    if rec.status == "declined":
        return DECLINED
    if lt.deadline < now:
        return PAST
    return _STATE_OF_STATUS[rec.status]


def _due_text(deadline: datetime, is_date: bool, zone: ZoneInfo, today: date) -> str:
    """A deadline as the program (or letter) states it, with the days left from ``today``."""
    local = deadline.astimezone(zone)
    text = day_label(local.date(), today.year)
    if not is_date:
        text += f" {local:%H:%M} {local.tzname()}"
    days = (local.date() - today).days
    return text + (" (past)" if days < 0 else " (today)" if days == 0 else f" ({days}d)")


# --- JSON ---------------------------------------------------------------------------


def status_json(app: App, roster: Roster, plan: Plan) -> dict[str, Any]:
    from lormail.edge.health import read_health

    health = read_health(app.state_dir())
    upcoming = _next_messages(plan)
    views = {rec.id: letter_views(roster, rec, plan.now) for rec in roster.recommenders}
    return {
        "now": utc_text(plan.now),
        "daemon": health.as_json(),
        "recommenders": [
            {
                "id": rec.id,
                "name": rec.name,
                "status": rec.status,
                "letters": [_letter_json(v) for v in views[rec.id]],
                "next_message": _message_json(upcoming.get(rec.id)),
            }
            for rec in roster.recommenders
        ],
        "programs": [_program_json(p, views) for p in _by_deadline(roster.programs)],
        "failed": [
            {"key": m.key, "at": utc_text(m.send_at), "reason": m.reason}
            for m in plan.messages
            if m.status == "failed"
        ],
    }


def _letter_json(v: LetterView) -> dict[str, Any]:
    lt = v.letter
    return {
        "key": lt.key,
        "name": lt.name,
        "programs": [p.id for p in v.programs],
        "letter_id": lt.letter_id,
        "deadline": utc_text(lt.deadline),
        "state": v.state,
        "submitted_on": lt.submitted_on.isoformat() if lt.submitted_on else None,
        "to_come": v.to_come,
    }


def _program_json(p: Program, views: dict[str, list[LetterView]]) -> dict[str, Any]:
    letters = [v for vs in views.values() for v in vs if p in v.programs]
    return {
        "id": p.id,
        "name": p.name,
        "portal": p.portal,
        "deadline": utc_text(p.deadline),
        "outcome": p.outcome,
        "outcome_on": p.outcome_on.isoformat() if p.outcome_on else None,
        "letters": [
            {
                "recommender": v.recommender.id,
                "letter": v.letter.key,
                "state": v.state,
                "submitted_on": v.letter.submitted_on.isoformat()
                if v.letter.submitted_on
                else None,
            }
            for v in letters
        ],
        "missing": sum(v.to_come for v in letters),  # to come: not declined, not past
        "submitted": sum(v.state == SUBMITTED for v in letters),
    }


def _message_json(m: PlannedMessage | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {"key": m.key, "send_at": utc_text(m.send_at), "status": m.status}


def _next_messages(plan: Plan) -> dict[str, PlannedMessage]:
    out: dict[str, PlannedMessage] = {}
    for m in plan.messages:  # sorted by send_at
        if m.status in UPCOMING:
            out.setdefault(m.recommender, m)
    return out


def _by_deadline(programs: Iterable[Program]) -> tuple[Program, ...]:
    return tuple(sorted(programs, key=lambda p: (p.deadline, p.id)))


# --- for people -----------------------------------------------------------------------


def cmd_status(app: App, args: argparse.Namespace) -> int:
    inbox = inbox_view(app)
    roster = inbox.roster
    plan, holds = held_plan(app)
    only: str | None = getattr(args, "recommender", None)
    if only is not None and only not in roster.recommenders_by_id:
        close = difflib.get_close_matches(only, list(roster.recommenders_by_id), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise LormailError([Problem(f"no recommender '{only}'{hint}")], EXIT_USAGE)
    data = status_json(app, roster, plan)
    for entry in data["recommenders"]:
        entry["inbox"] = inbox.notes.get(entry["id"])
    if args.json:
        if only is not None:
            data["recommenders"] = [r for r in data["recommenders"] if r["id"] == only]
        print_json(data)
        return EXIT_OK
    today = plan.now.astimezone(roster.applicant.timezone).date()
    if getattr(args, "programs", False):
        _print_programs(roster, plan, today)
    else:
        recs = [roster.recommenders_by_id[only]] if only else list(roster.recommenders)
        _print_letters(roster, plan, holds, recs, inbox, detail=only is not None)
    _print_health(data)
    return EXIT_OK


def _print_letters(
    roster: Roster,
    plan: Plan,
    holds: Mapping[str, datetime],
    recs: list[Recommender],
    inbox: InboxView,
    detail: bool,
) -> None:
    from rich import box
    from rich.table import Table

    today = plan.now.astimezone(roster.applicant.timezone).date()
    upcoming = _next_messages(plan)
    table = Table(
        title=f"Letters as of {day_label(today)}", title_justify="left", box=box.SIMPLE_HEAD
    )
    table.add_column("letter", overflow="fold")
    table.add_column("due / when", no_wrap=True)
    table.add_column("state")
    counts: dict[str, int] = {}
    for rec in recs:
        nxt = upcoming.get(rec.id)
        table.add_row(
            f"[bold]{_esc(rec.name)}[/] [dim]({rec.status})[/]"
            + (f"\n[dim]{_esc(inbox.notes[rec.id])}[/]" if rec.id in inbox.notes else ""),
            *(
                _next_cells(nxt, rec, "next", plan, holds)
                if nxt
                else ("", "[dim]nothing planned[/]")
            ),
        )
        for v in letter_views(roster, rec, plan.now):
            kind = "to come" if v.to_come else v.state
            counts[kind] = counts.get(kind, 0) + 1
            lt = v.letter
            due = _due_text(lt.deadline, lt.deadline_is_date, lt.timezone, today)
            by_email = " (e-mail)" if (rec.id, lt.key) in inbox.by_email else ""
            table.add_row(_letter_name(v, detail), due, _state_text(v) + by_email)
        if detail:
            for m in plan.messages:
                if m.recommender == rec.id and m.status in UPCOMING and m is not nxt:
                    table.add_row("", *_next_cells(m, rec, "then", plan, holds))
        table.add_section()
    out = console()
    out.print(table)
    order = ("to come", SUBMITTED, DECLINED, PAST)
    total = sum(counts.values())
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    summary = f"{total} letter{'s' if total != 1 else ''}"
    out.print(summary + (": " + ", ".join(parts) if parts else "") + ".")


def _letter_name(v: LetterView, detail: bool) -> str:
    lt = v.letter
    name = _esc(lt.name) + (f" [dim]{_esc(f'[{lt.letter_id}]')}[/]" if lt.letter_id else "")
    if len(v.programs) > 1:
        if detail:
            name += "\n  " + "\n  ".join(
                f"[dim]{_esc(p.name)}[/]" for p in _by_deadline(v.programs)
            )
        else:
            name += f" [dim]({len(v.programs)} programs)[/]"
    return name


def _state_text(v: LetterView) -> str:
    text = v.state
    when = v.letter.submitted_on
    if v.state == SUBMITTED and when:
        text = f"✓ {when.day} {when:%b}"
    return f"[{_STYLES.get(v.state, 'cyan')}]{text}[/]"


def _next_cells(
    m: PlannedMessage, rec: Recommender, word: str, plan: Plan, holds: Mapping[str, datetime]
) -> tuple[str, str]:
    """A message to ``rec``: when (their time, or how long it waits after an edit) and what."""
    from lormail.core.holds import hold_text

    local = m.send_at.astimezone(rec.timezone)
    year = plan.now.astimezone(rec.timezone).year
    when = f"{day_label(local.date(), year)} {local:%H:%M} {local.tzname()}"
    what = f"{word}: {_KIND_NAMES.get(m.kind, m.kind)}"
    held = hold_text(m, holds, plan.now)
    if held:  # it goes in a few minutes, unless the roster is edited again
        return "", f"{what} {held}"
    return when, what + ("" if m.status == "scheduled" else f" ({m.status})")


def _print_programs(roster: Roster, plan: Plan, today: date) -> None:
    from rich import box
    from rich.table import Table

    views = {rec.id: letter_views(roster, rec, plan.now) for rec in roster.recommenders}
    table = Table(
        title=f"Programs as of {day_label(today)}", title_justify="left", box=box.SIMPLE_HEAD
    )
    table.add_column("program", overflow="fold")
    table.add_column("due", no_wrap=True)
    table.add_column("letters", overflow="fold")
    table.add_column("outcome")
    for p in _by_deadline(roster.programs):
        letters = [v for vs in views.values() for v in vs if p in v.programs]
        done = sum(v.state == SUBMITTED for v in letters)
        waiting = [_esc(_who(v.recommender)) for v in letters if v.to_come]
        text = f"{done} of {len(letters)} in" if letters else "[dim]no letters[/]"
        if waiting:
            text += "; to come: " + ", ".join(waiting)
        outcome = p.outcome + (f" {day_label(p.outcome_on, today.year)}" if p.outcome_on else "")
        table.add_row(
            _esc(p.name) + (f"\n[dim]{_esc(p.portal)}[/]" if p.portal else ""),
            _due_text(p.deadline, p.deadline_is_date, p.timezone, today),
            text,
            outcome if p.outcome != "pending" else "[dim]pending[/]",
        )
    console().print(table)


def _print_health(data: dict[str, Any]) -> None:
    out = console()
    d = data["daemon"]
    if d["running"]:
        out.print(
            f"Daemon: running (pid {d['pid']}), last check {d['last_check']}, "
            f"next send {d['next_send'] or 'none planned'}."
        )
    else:
        out.print(
            "Daemon: not running. Start it with 'lormail run' or "
            "'systemctl --user enable --now lormail'."
        )
    if d["running"] and d["last_error"]:
        from rich.markup import escape

        out.print(f"[bold red]Last error:[/] {escape(d['last_error'])}")
    if d.get("inbox"):
        out.print(f"Inbox: {d['inbox']}.")
    for f in data["failed"]:
        out.print(f"[bold red]failed[/] {_esc(f['key'])} at {f['at']}: {_esc(f['reason'])}")


def _who(rec: Recommender) -> str:
    return rec.salutation or rec.name


def _esc(text: str) -> str:
    """Roster text shown as it is, never read as rich markup."""
    from rich.markup import escape

    return escape(text)
