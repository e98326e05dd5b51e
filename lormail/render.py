"""Templates: one Jinja2 template per message kind, rendered with StrictUndefined.

A template's first line is ``Subject: …``; the rest is the body.  The user's
template folder overrides the shipped defaults file by file.  The context
(SPEC §3.1) is built here from the roster and the planned message, with every
date written the way people write them, in the recipient's zone.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2

from lormail.errors import LormailError, Problem
from lormail.model import KINDS, PlannedMessage, Program, Recommender, Roster
from lormail.plan import open_letters
from lormail.slots import long_date

OUTCOME_PHRASES: Mapping[str, str] = {
    "interview": "I have been invited to interview",
    "waitlisted": "I have been placed on the waitlist",
    "accepted": "I have been accepted",
    "matched": "I matched",
    "rejected": "I was not offered a place this time",
    "withdrawn": "I have withdrawn my application",
    "pending": "I am still waiting to hear",
}


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str
    html: str | None = None


def default_templates_dir() -> Path:
    """The shipped templates: inside the wheel, or the source tree's ``templates/``."""
    packaged = Path(str(importlib.resources.files("lormail"))) / "_data" / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "templates"


class Templates:
    """The six kinds' templates: the user's overrides first, then the defaults."""

    def __init__(self, override_dir: Path | None = None) -> None:
        self.override_dir = override_dir
        self.default_dir = default_templates_dir()
        search = [str(d) for d in (override_dir, self.default_dir) if d is not None]
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",)),
        )
        self._subjects: dict[str, jinja2.Template] = {}

    def source_path(self, name: str) -> Path:
        for folder in (self.override_dir, self.default_dir):
            if folder is not None and (folder / name).is_file():
                return folder / name
        return self.default_dir / name

    def _template(self, name: str) -> jinja2.Template:
        try:
            return self.env.get_template(name)
        except jinja2.TemplateSyntaxError as err:
            raise LormailError(
                [
                    Problem(
                        f"template syntax: {err.message}",
                        str(self.source_path(name)),
                        err.lineno,
                        1,
                    )
                ]
            ) from None
        except jinja2.TemplateNotFound:
            raise LormailError(
                [Problem(f"no template {name!r}", str(self.override_dir or self.default_dir))]
            ) from None

    def _has(self, name: str) -> bool:
        return any(
            d is not None and (d / name).is_file() for d in (self.override_dir, self.default_dir)
        )

    def render(self, msg: PlannedMessage, roster: Roster) -> Rendered:
        ctx = context(msg, roster)
        name = f"{msg.kind}.txt.j2"
        text = self._call(name, ctx)
        subject, body = split_subject(text, str(self.source_path(name)))
        html = None
        if self._has(f"{msg.kind}.html.j2"):
            html = self._call(f"{msg.kind}.html.j2", ctx)
        return Rendered(subject=subject, body=body, html=html)

    def subject(self, msg: PlannedMessage, roster: Roster) -> str:
        """Only the subject: renders the first line alone, which is much cheaper."""
        tmpl = self._subjects.get(msg.kind)
        if tmpl is None:
            name = f"{msg.kind}.txt.j2"
            source = self.source_path(name).read_text(encoding="utf-8")
            first = source.split("\n", 1)[0]
            try:
                tmpl = self.env.from_string(first)
            except jinja2.TemplateSyntaxError:
                return self.render(msg, roster).subject
            self._subjects[msg.kind] = tmpl
        line = self._render_tmpl(tmpl, context(msg, roster), f"{msg.kind}.txt.j2")
        return split_subject(line, str(self.source_path(f"{msg.kind}.txt.j2")))[0]

    def _call(self, name: str, ctx: dict[str, Any]) -> str:
        return self._render_tmpl(self._template(name), ctx, name)

    def _render_tmpl(self, tmpl: jinja2.Template, ctx: dict[str, Any], name: str) -> str:
        try:
            return tmpl.render(ctx)
        except jinja2.UndefinedError as err:
            raise LormailError(
                [
                    Problem(
                        f"{err.message} (available: {', '.join(sorted(ctx))})",
                        str(self.source_path(name)),
                    )
                ]
            ) from None
        except jinja2.TemplateError as err:
            raise LormailError([Problem(str(err), str(self.source_path(name)))]) from None

    def kinds(self) -> tuple[str, ...]:
        return KINDS


def split_subject(text: str, where: str) -> tuple[str, str]:
    first, _, body = text.partition("\n")
    if not first.startswith("Subject:"):
        raise LormailError([Problem("the first line must be 'Subject: …'", where, 1, 1)])
    subject = first[len("Subject:") :].strip()
    if not subject:
        raise LormailError([Problem("the subject is empty", where, 1, 9)])
    if any(ord(c) < 32 or ord(c) == 127 for c in subject):
        raise LormailError([Problem("the subject holds a control character", where, 1, 9)])
    return subject, body.lstrip("\n")


# --- the context -------------------------------------------------------------


def _deadline_text(prog: Program, rec: Recommender) -> str:
    """A date deadline as the program states it; a timed one in the recipient's zone."""
    if prog.deadline_is_date:
        return long_date(prog.deadline_date)
    local = prog.deadline.astimezone(rec.timezone)
    clock = local.strftime("%I:%M %p").lstrip("0")
    return f"{long_date(local.date())}, {clock} {local.tzname()}"


def _letter(prog: Program, rec: Recommender, today: date, letter_id: str | None) -> dict[str, Any]:
    due = prog.deadline.astimezone(rec.timezone).date()
    return {
        "id": prog.id,
        "program": prog.name,
        "portal": prog.portal or "",
        "deadline": _deadline_text(prog, rec),
        "days_left": (due - today).days,
        "letter_id": letter_id or "",
        "outcome": prog.outcome,
    }


def context(msg: PlannedMessage, roster: Roster) -> dict[str, Any]:
    """The template context for one message (SPEC §3.1)."""
    rec = roster.recommenders_by_id[msg.recommender]
    app = roster.applicant
    send_day = msg.send_at.astimezone(rec.timezone).date()
    letter_ids = {lt.program: lt.letter_id for lt in rec.letters}
    progs = roster.programs_by_id

    def view(pid: str) -> dict[str, Any]:
        return _letter(progs[pid], rec, send_day, letter_ids.get(pid))

    letters = [view(p.id) for p in open_letters(roster, rec)]
    covered = msg.programs if msg.kind in ("thank_you", "outcome") else ()
    submitted = [view(pid) for pid in covered]
    anchor = view(msg.programs[0]) if msg.programs else (letters[0] if letters else None)
    return {
        "applicant": {
            "name": app.name,
            "first_name": app.name.split()[0] if app.name.split() else app.name,
            "email": app.email,
            "signature": (app.signature or app.name).rstrip("\n"),
        },
        "recommender": {
            "id": rec.id,
            "name": rec.name,
            "salutation": rec.salutation or rec.name,
            "title": rec.title,
            "relationship": rec.relationship,
            "email": rec.email,
            "highlights": list(rec.highlights),
            "waived": rec.waived,
        },
        "letters": letters,
        "submitted": submitted,
        "program": anchor,
        "deadline": anchor["deadline"] if anchor else "",
        "days_left": anchor["days_left"] if anchor else None,
        "reminder_number": msg.reminder_number,
        "final_reminder": msg.final_reminder,
        "outcomes": [
            {"program": progs[p].name, "outcome": o, "phrase": OUTCOME_PHRASES.get(o, o)}
            for p, o in msg.outcomes
        ],
        "materials": [
            {
                "label": m.label,
                "url": m.url or "",
                "attached": m.path is not None,
                "filename": m.path.name if m.path else "",
            }
            for m in app.materials
        ],
        "send_date": long_date(send_day),
    }


def format_instant(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")
