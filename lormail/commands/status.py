"""``lormail status``: the board of recommenders and letters, and the daemon's health."""

from __future__ import annotations

import argparse
from datetime import date, datetime
from typing import Any

from lormail.app.context import App
from lormail.commands.output import console, print_json
from lormail.commands.plan import UPCOMING, held_plan
from lormail.core.instants import utc_text
from lormail.errors import EXIT_OK
from lormail.model import (
    Plan,
    PlannedMessage,
    Program,
    Recommender,
    Roster,
)


def letter_state(rec: Recommender, submitted_on: date | None) -> str:
    if submitted_on is not None:
        return "submitted"
    return {"planned": "to ask", "asked": "asked", "agreed": "agreed", "declined": "declined"}[
        rec.status
    ]


def status_json(app: App, roster: Roster, plan: Plan) -> dict[str, Any]:
    from lormail.edge.health import read_health

    health = read_health(app.state_dir())
    upcoming: dict[str, PlannedMessage] = {}
    for m in plan.messages:
        if m.status in UPCOMING and m.recommender not in upcoming:
            upcoming[m.recommender] = m
    failed = [m for m in plan.messages if m.status == "failed"]
    programs = []
    for prog in sorted(roster.programs, key=lambda p: (p.deadline, p.id)):
        letters = [
            {
                "recommender": rec.id,
                "state": letter_state(rec, lt.submitted_on),
                "submitted_on": lt.submitted_on.isoformat() if lt.submitted_on else None,
            }
            for rec in roster.recommenders
            for lt in rec.letters
            if lt.program == prog.id
        ]
        programs.append(
            {
                "id": prog.id,
                "name": prog.name,
                "portal": prog.portal,
                "deadline": utc_text(prog.deadline),
                "outcome": prog.outcome,
                "letters": letters,
                "missing": sum(1 for lt in letters if lt["state"] != "submitted"),
            }
        )
    recommenders = []
    for rec in roster.recommenders:
        nxt = upcoming.get(rec.id)
        recommenders.append(
            {
                "id": rec.id,
                "name": rec.name,
                "status": rec.status,
                "letters": [
                    {
                        "program": lt.program,
                        "state": letter_state(rec, lt.submitted_on),
                        "submitted_on": lt.submitted_on.isoformat() if lt.submitted_on else None,
                        "deadline": utc_text(roster.programs_by_id[lt.program].deadline),
                    }
                    for lt in rec.letters
                ],
                "next_message": None
                if nxt is None
                else {"key": nxt.key, "send_at": utc_text(nxt.send_at), "status": nxt.status},
            }
        )
    return {
        "now": utc_text(plan.now),
        "daemon": health.as_json(),
        "programs": programs,
        "recommenders": recommenders,
        "failed": [{"key": m.key, "at": utc_text(m.send_at), "reason": m.reason} for m in failed],
    }


def _cell(state: str | None, submitted: date | None, prog: Program, today: date) -> str:
    if state is None:
        return "[dim]·[/]"
    if state == "submitted":
        return f"[green]✓ {submitted:%d %b}[/]" if submitted else "[green]✓[/]"
    late = prog.deadline_date < today
    style = {"declined": "dim", "to ask": "yellow", "asked": "yellow", "agreed": "cyan"}.get(
        state, ""
    )
    if late and state != "declined":
        style = "bold red"
    return f"[{style}]{state}[/]"


def cmd_status(app: App, args: argparse.Namespace) -> int:
    from lormail.commands.inbox_status import inbox_view
    from lormail.core.holds import hold_text

    inbox = inbox_view(app)
    roster = inbox.roster
    plan, holds = held_plan(app)
    data = status_json(app, roster, plan)
    for entry in data["recommenders"]:
        entry["inbox"] = inbox.notes.get(entry["id"])
    if args.json:
        print_json(data)
        return EXIT_OK
    from rich.table import Table

    out = console()
    today = plan.now.astimezone(roster.applicant.timezone).date()
    progs = sorted(roster.programs, key=lambda p: (p.deadline, p.id))
    table = Table(title=f"Letters as of {today:%a %d %b %Y}", title_justify="left")
    table.add_column("recommender")
    for prog in progs:
        days = (prog.deadline_date - today).days
        when = f"{prog.deadline_date:%d %b}" + (f" ({days}d)" if days >= 0 else " (past)")
        table.add_column(f"{prog.id}\n[dim]{when}[/]", justify="center")
    table.add_column("next message")
    by_rec = {r["id"]: r for r in data["recommenders"]}
    for rec in roster.recommenders:
        letters = {lt.program: lt for lt in rec.letters}
        cells = []
        for prog in progs:
            lt = letters.get(prog.id)
            state = letter_state(rec, lt.submitted_on) if lt else None
            cell = _cell(state, lt.submitted_on if lt else None, prog, today)
            cells.append(cell + (" (e-mail)" if (rec.id, prog.id) in inbox.by_email else ""))
        nxt = by_rec[rec.id]["next_message"]
        nxt_text = "—"
        if nxt:
            local = datetime.fromisoformat(nxt["send_at"]).astimezone(rec.timezone)
            nxt_text = f"{nxt['key'].split(':')[0]} {local:%a %d %b %H:%M}"
            held = next((hold_text(m, holds, plan.now) for m in plan.messages
                         if m.key == nxt["key"]), None)  # fmt: skip
            if held:
                nxt_text = f"{nxt['key'].split(':')[0]} {held}"
        note = inbox.notes.get(rec.id)
        label = f"{rec.name}\n[dim]{rec.status}[/]" + (f"\n[dim]{note}[/]" if note else "")
        table.add_row(label, *cells, nxt_text)
    missing_row = [
        f"[bold]{p['missing']} to come[/]" if p["missing"] else "[green]all in[/]"
        for p in data["programs"]
    ]
    table.add_row("[bold]missing[/]", *missing_row, "")
    out.print(table)
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
        out.print(f"[bold red]failed[/] {f['key']} at {f['at']}: {f['reason']}")
    return EXIT_OK
