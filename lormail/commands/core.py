"""The read-only commands: init, check, plan, status, preview.

Each parses nothing (cli.py did), asks the planner or the loaders for one
value, and prints it for a person or, with ``--json``, for a program.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

from lormail.app.check import check_templates
from lormail.app.context import App
from lormail.commands.output import console, print_json
from lormail.core.instants import utc_text
from lormail.core.render import Templates
from lormail.errors import EXIT_OK, EXIT_USAGE, LormailError, Problem
from lormail.model import (
    DUE,
    SCHEDULED,
    Plan,
    PlannedMessage,
    Program,
    Recommender,
    Roster,
)

UPCOMING = (SCHEDULED, DUE)


# --- init ---------------------------------------------------------------------


def _data_file(name: str) -> Path:
    from lormail.core.render import default_templates_dir

    # Beside the shipped templates in a wheel; the source tree's root otherwise.
    return default_templates_dir().parent / name


def cmd_init(app: App, args: argparse.Namespace) -> int:
    target: Path = (args.dir or app.config_path.parent).expanduser()
    config_text = _data_file("config.example.yaml").read_text(encoding="utf-8")
    config_text = config_text.replace("roster: roster.example.yaml", "roster: roster.yaml        ")
    files = {
        target / "config.yaml": config_text,
        target / "roster.yaml": _data_file("roster.example.yaml").read_text(encoding="utf-8"),
    }
    templates_src = _data_file("templates")
    for tmpl in sorted(templates_src.glob("*.j2")):
        files[target / "templates" / tmpl.name] = tmpl.read_text(encoding="utf-8")
    existing = [p for p in files if p.exists()]
    if existing and not args.force:
        raise LormailError(
            [
                Problem(f"{p}: already exists; keep it, or run 'lormail init --force'")
                for p in existing
            ]
        )
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    out = console()
    out.print(
        f"Wrote {target / 'config.yaml'}, {target / 'roster.yaml'} and "
        f"{len(files) - 2} templates in {target / 'templates'}."
    )
    out.print("Next: edit roster.yaml, then run 'lormail check' and 'lormail plan'.")
    if args.dir is not None:
        out.print(f"(Pass '--config {target / 'config.yaml'}' or set LORMAIL_CONFIG.)")
    return EXIT_OK


# --- check --------------------------------------------------------------------


def cmd_check(app: App, args: argparse.Namespace) -> int:
    from lormail.load.roster import load_roster_checked

    problems: list[Problem] = []
    config = app.config()
    try:
        roster, warnings = load_roster_checked(config.roster, app.now())
    except LormailError as err:
        raise LormailError([*problems, *err.problems]) from None
    problems.extend(check_templates(roster, app.templates()))
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


# --- plan ---------------------------------------------------------------------


def _message_json(m: PlannedMessage, subject: str) -> dict[str, Any]:
    return {
        "key": m.key,
        "kind": m.kind,
        "recommender": m.recommender,
        "to": m.to,
        "subject": subject,
        "send_at": utc_text(m.send_at),
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


def _local(m: PlannedMessage, rec: Recommender) -> str:
    local = m.send_at.astimezone(rec.timezone)
    return f"{local:%a %d %b %Y %H:%M} {local.tzname()}"


def cmd_plan(app: App, args: argparse.Namespace) -> int:
    roster = app.roster()
    plan = app.plan()
    templates = app.templates()
    if args.json:
        print_json(plan_json(plan, roster, templates, args.all))
        return EXIT_OK
    from rich.table import Table

    msgs = [m for m in plan.messages if args.all or m.status in UPCOMING]
    out = console()
    if not msgs:
        out.print(
            "Nothing planned."
            + ("" if args.all else " ('lormail plan --all' shows what was sent or skipped.)")
        )
        return EXIT_OK
    table = Table(
        title=f"Plan as of {utc_text(plan.now)}",
        title_justify="left",
        show_lines=False,
        expand=False,
    )
    table.add_column("when (their time)", no_wrap=True)
    table.add_column("status")
    table.add_column("to")
    table.add_column("subject / why", overflow="fold")
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
        table.add_row(
            _local(m, rec),
            f"[{styles.get(m.status, '')}]{m.status}[/]",
            rec.salutation or rec.name,
            f"[bold]{subject}[/]\n[dim]{m.key}: {m.reason}[/]",
        )
    out.print(table)
    return EXIT_OK


# --- status -------------------------------------------------------------------


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
    roster = app.roster()
    plan = app.plan()
    data = status_json(app, roster, plan)
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
            cells.append(_cell(state, lt.submitted_on if lt else None, prog, today))
        nxt = by_rec[rec.id]["next_message"]
        nxt_text = "—"
        if nxt:
            local = datetime.fromisoformat(nxt["send_at"]).astimezone(rec.timezone)
            nxt_text = f"{nxt['key'].split(':')[0]} {local:%a %d %b %H:%M}"
        table.add_row(f"{rec.name}\n[dim]{rec.status}[/]", *cells, nxt_text)
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
    for f in data["failed"]:
        out.print(f"[bold red]failed[/] {f['key']} at {f['at']}: {f['reason']}")
    return EXIT_OK


# --- preview ------------------------------------------------------------------


def cmd_preview(app: App, args: argparse.Namespace) -> int:
    roster = app.roster()
    plan = app.plan()
    by_key = {m.key: m for m in plan.messages}
    msg = by_key.get(args.key)
    if msg is None:
        close = difflib.get_close_matches(args.key, list(by_key), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else " (see 'lormail plan --all')"
        raise LormailError([Problem(f"no message with key '{args.key}'{hint}")], EXIT_USAGE)
    rendered = app.templates().render(msg, roster)
    try:
        from lormail.app.preview import preview_text
    except ImportError:
        text = f"To: {msg.to}\nSubject: {rendered.subject}\n\n{rendered.body}"
    else:
        text = preview_text(app, msg, rendered)
    sys.stdout.write(f"# {msg.key} — {msg.status} at {utc_text(msg.send_at)}: {msg.reason}\n")
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK
