"""``lormail plan``: what goes when and why, for a person or (``--json``) a program."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from lormail.app.context import App
from lormail.commands.output import console, print_json
from lormail.core.instants import utc_text
from lormail.core.render import Templates
from lormail.core.slots import day_label
from lormail.errors import EXIT_OK
from lormail.model import (
    DUE,
    SCHEDULED,
    Plan,
    PlannedMessage,
    Recommender,
    Roster,
)

UPCOMING = (SCHEDULED, DUE)


def _message_json(m: PlannedMessage, subject: str) -> dict[str, Any]:
    return {
        "key": m.key,
        "kind": m.kind,
        "recommender": m.recommender,
        "to": m.to,
        "subject": subject,
        "send_at": None if m.held_open else utc_text(m.send_at),
        "expires_at": utc_text(m.expires_at),
        "status": m.status,
        "reason": m.reason,
    }


def plan_json(plan: Plan, roster: Roster, templates: Templates, everything: bool) -> dict[str, Any]:
    msgs = [m for m in plan.messages if everything or m.status in UPCOMING]
    return {
        "now": utc_text(plan.now),
        "messages": [_message_json(m, templates.subject(m, roster)) for m in msgs],
    }


def _local(m: PlannedMessage, rec: Recommender, year: int) -> str:
    """When a message goes, on the recipient's clock; the year only when not ``year``'s."""
    local = m.send_at.astimezone(rec.timezone)
    return f"{day_label(local.date(), year)} {local:%H:%M} {local.tzname()}"


def held_plan(app: App) -> tuple[Plan, dict[str, datetime]]:
    """The plan with the daemon's edit holds applied, and the holds."""
    from lormail.core.holds import apply_holds
    from lormail.edge.store import read_edit_holds

    holds = read_edit_holds(app.state_dir())
    return apply_holds(app.plan(), holds), holds


def cmd_plan(app: App, args: argparse.Namespace) -> int:
    from lormail.core.holds import hold_text

    roster = app.roster()
    plan, holds = held_plan(app)
    templates = app.templates()
    if args.json:
        print_json(plan_json(plan, roster, templates, args.all))
        return EXIT_OK
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    msgs = [m for m in plan.messages if args.all or m.status in UPCOMING]
    out = console()
    if not msgs:
        out.print(
            "Nothing planned."
            + ("" if args.all else " ('lormail plan --all' shows what was sent or skipped.)")
        )
        return EXIT_OK
    year = plan.now.astimezone(roster.applicant.timezone).year
    table = Table(
        title=f"Plan as of {utc_text(plan.now)}", title_justify="left", box=box.SIMPLE_HEAD
    )
    table.add_column("when (their time)", no_wrap=True)
    table.add_column("to", overflow="fold")
    table.add_column("subject, then key: why", overflow="fold")
    styles = {
        "due": "bold yellow",
        "scheduled": "green",
        "sent": "dim",
        "failed": "bold red",
        "skipped": "dim",
        "expired": "dim",
        "dry-run": "cyan",
    }
    for m in msgs:
        rec = roster.recommenders_by_id[m.recommender]
        subject = templates.subject(m, roster)
        held = hold_text(m, holds, plan.now)
        status = f"[{styles.get(m.status, '')}]{m.status}[/]" + (f" {held}" if held else "")
        table.add_row(
            f"{_local(m, rec, year)}\n{status}",
            escape(rec.salutation or rec.name),
            f"[bold]{escape(subject)}[/]\n[dim]{escape(m.key)}: {escape(m.reason)}[/]",
        )
        table.add_section()  # a blank line between messages
    out.print(table)
    return EXIT_OK
