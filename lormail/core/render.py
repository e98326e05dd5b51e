"""Templates: one Jinja2 template per message kind, rendered in the sandbox with StrictUndefined.

A template's first line is ``Subject: …``; the rest is the body.  The user's
template folder overrides the shipped defaults file by file.  The context
(SPEC §3.1) is built here from the roster and the planned message, with every
date written the way people write them, in the recipient's zone.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from lormail.core.plan import open_letters
from lormail.core.slots import long_date
from lormail.errors import LormailError, Problem
from lormail.model import KINDS, PlannedMessage, Program, Recommender, Roster

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
    return Path(__file__).resolve().parents[2] / "templates"


class Templates:
    """The six kinds' templates: the user's overrides first, then the defaults.

    Templates are read from disk and compiled on first use; rendering itself
    is pure (the message and roster in, text out).  They run in Jinja2's
    sandbox, which bounds ``range`` and refuses unsafe attributes.
    """

    def __init__(self, override_dir: Path | None = None) -> None:
        self.override_dir = override_dir
        self.default_dir = default_templates_dir()
        search = [str(d) for d in (override_dir, self.default_dir) if d is not None]
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(search),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,  # a reload makes a new Templates; no stat per render
            # Only HTML templates are escaped; a subject or a text body never is.
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html.j2",), default_for_string=False
            ),
        )

    def source_path(self, name: str) -> Path:
        """The file template ``name`` is read from (the default's path when none exists)."""
        return next(
            (
                folder / name
                for folder in (self.override_dir, self.default_dir)
                if folder is not None and (folder / name).is_file()
            ),
            self.default_dir / name,
        )

    def _template(self, name: str) -> jinja2.Template:
        try:
            return self.env.get_template(name)
        except jinja2.TemplateSyntaxError as err:
            where = str(self.source_path(err.name or name))
            raise LormailError(
                [Problem(f"template syntax: {err.message}", where, err.lineno, 1)]
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
        """The message's subject and body (and HTML part, if its kind has a template)."""
        ctx = context(msg, roster)
        name = f"{msg.kind}.txt.j2"
        subject, body = split_subject(self._call(name, ctx), str(self.source_path(name)))
        html = None
        if self._has(f"{msg.kind}.html.j2"):
            html = self._call(f"{msg.kind}.html.j2", ctx)
        return Rendered(subject=subject, body=body, html=html)

    def subject(self, msg: PlannedMessage, roster: Roster) -> str:
        """Only the subject (the text template rendered; an HTML part is not)."""
        name = f"{msg.kind}.txt.j2"
        text = self._call(name, context(msg, roster))
        return split_subject(text, str(self.source_path(name)))[0]

    def load_all(self) -> Templates:
        """Read and compile every template the six kinds use, now and never again.

        Raises :class:`LormailError` on a syntax error.
        """
        for kind in KINDS:
            self._template(f"{kind}.txt.j2")
            if self._has(f"{kind}.html.j2"):
                self._template(f"{kind}.html.j2")
        return self

    def _call(self, name: str, ctx: dict[str, Any]) -> str:
        tmpl = self._template(name)
        try:
            return tmpl.render(ctx)
        except Exception as err:  # a template's own expression may raise anything: 1/0
            raise self._failure(name, tmpl, err, ctx) from None

    def _failure(
        self, name: str, tmpl: jinja2.Template, err: Exception, ctx: dict[str, Any]
    ) -> LormailError:
        """One line for a template that failed to render, at its place in the file."""
        if isinstance(err, jinja2.TemplateError):
            message = err.message or type(err).__name__
            if isinstance(err, jinja2.UndefinedError):
                message += f" (available: {', '.join(sorted(ctx))})"
        else:  # the sandbox's "Range too big", a ZeroDivisionError, …
            message = f"{type(err).__name__}: {err}"
        line = _error_line(err, tmpl)
        where = str(self.source_path(name))
        return LormailError([Problem(message, where, line, 1 if line else None)])

    def kinds(self) -> tuple[str, ...]:
        return KINDS


def _error_line(err: BaseException, tmpl: jinja2.Template) -> int | None:
    """The template line a rendering error happened on.

    Jinja2 rewrites the traceback of an error raised while rendering so that
    its frames stand for template lines; the last one in this template is it.
    """
    tb = err.__traceback__
    found = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == (tmpl.filename or "<template>"):
            found = tb.tb_lineno
        tb = tb.tb_next
    lineno = getattr(err, "lineno", None)
    return found if found is not None else (lineno if isinstance(lineno, int) else None)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def split_subject(text: str, where: str) -> tuple[str, str]:
    first, _, body = text.partition("\n")
    if not first.startswith("Subject:"):
        raise LormailError([Problem("the first line must be 'Subject: …'", where, 1, 1)])
    subject = first[len("Subject:") :].strip()
    if not subject:
        raise LormailError([Problem("the subject is empty", where, 1, 9)])
    if _CONTROL.search(subject):
        raise LormailError([Problem("the subject holds a control character", where, 1, 9)])
    return subject, body.lstrip("\n")


# --- the context -------------------------------------------------------------


def _deadline_text(deadline: datetime, own_zone: tzinfo | None, zone: tzinfo) -> tuple[str, date]:
    """How to write a deadline, and its date, for a recipient in ``zone``.

    A date deadline (``own_zone`` given) is written as the program states it;
    a timed one in the recipient's zone.
    """
    local = deadline.astimezone(zone)
    if own_zone is not None:  # a date deadline: its own date, in its own zone
        return long_date(deadline.astimezone(own_zone).date()), local.date()
    clock = local.strftime("%I:%M %p").lstrip("0")
    return f"{long_date(local.date())}, {clock} {local.tzname()}", local.date()


def _letter(prog: Program, rec: Recommender, today: date, letter_id: str | None) -> dict[str, Any]:
    own_zone = prog.timezone if prog.deadline_is_date else None
    text, due = _deadline_text(prog.deadline, own_zone, rec.timezone)
    return {
        "id": prog.id,
        "program": prog.name,
        "portal": prog.portal or "",
        "deadline": text,
        "days_left": (due - today).days,
        "letter_id": letter_id or "",
        "outcome": prog.outcome,
    }


CONTEXT_NAMES = (
    "applicant",
    "recommender",
    "letters",
    "submitted",
    "program",
    "deadline",
    "days_left",
    "reminder_number",
    "final_reminder",
    "outcomes",
    "materials",
    "send_date",
)


class _Context:
    """Builds the context entries of one message, one method per entry."""

    __slots__ = (
        "_anchor_made",
        "_anchor_view",
        "_letter_views",
        "msg",
        "rec",
        "roster",
        "send_day",
    )

    def __init__(self, msg: PlannedMessage, roster: Roster) -> None:
        self.msg = msg
        self.roster = roster
        self.rec = roster.recommenders_by_id[msg.recommender]
        self.send_day = msg.send_at.astimezone(self.rec.timezone).date()
        self._letter_views: list[dict[str, Any]] | None = None
        self._anchor_view: dict[str, Any] | None = None
        self._anchor_made = False

    def view(self, pid: str) -> dict[str, Any]:
        letter_id = next((lt.letter_id for lt in self.rec.letters if lt.program == pid), None)
        return _letter(self.roster.programs_by_id[pid], self.rec, self.send_day, letter_id)

    def applicant(self) -> dict[str, Any]:
        app = self.roster.applicant
        return {
            "name": app.name,
            "first_name": app.name.split()[0] if app.name.split() else app.name,
            "email": app.email,
            "signature": (app.signature or app.name).rstrip("\n"),
        }

    def recommender(self) -> dict[str, Any]:
        rec = self.rec
        return {
            "id": rec.id,
            "name": rec.name,
            "salutation": rec.salutation or rec.name,
            "title": rec.title,
            "relationship": rec.relationship,
            "email": rec.email,
            "highlights": list(rec.highlights),
            "waived": rec.waived,
        }

    @property
    def _letters(self) -> list[dict[str, Any]]:
        if self._letter_views is None:
            self._letter_views = self._make_letters()
        return self._letter_views

    def _make_letters(self) -> list[dict[str, Any]]:
        """The open letters; for someone not yet asked, the letters the request is for."""
        if self.rec.status == "planned":
            progs = self.roster.programs_by_id
            wanted = sorted(
                (progs[lt.program] for lt in self.rec.letters if lt.submitted_on is None),
                key=lambda p: (p.deadline, p.id),
            )
            return [self.view(p.id) for p in wanted]
        return [self.view(p.id) for p in open_letters(self.roster, self.rec)]

    def letters(self) -> list[dict[str, Any]]:
        return self._letters

    def submitted(self) -> list[dict[str, Any]]:
        covered = self.msg.programs if self.msg.kind in ("thank_you", "outcome") else ()
        return [self.view(pid) for pid in covered]

    @property
    def _anchor(self) -> dict[str, Any] | None:
        if not self._anchor_made:
            if self.msg.programs:
                self._anchor_view = self.view(self.msg.programs[0])
            elif self._letters:
                self._anchor_view = self._letters[0]
            self._anchor_made = True
        return self._anchor_view

    def program(self) -> dict[str, Any] | None:
        return self._anchor

    def deadline(self) -> str:
        return self._anchor["deadline"] if self._anchor else ""

    def days_left(self) -> int | None:
        return self._anchor["days_left"] if self._anchor else None

    def reminder_number(self) -> int | None:
        return self.msg.reminder_number

    def final_reminder(self) -> bool:
        return self.msg.final_reminder

    def outcomes(self) -> list[dict[str, Any]]:
        progs = self.roster.programs_by_id
        return [
            {"program": progs[p].name, "outcome": o, "phrase": OUTCOME_PHRASES.get(o, o)}
            for p, o in self.msg.outcomes
        ]

    def materials(self) -> list[dict[str, Any]]:
        return [
            {
                "label": m.label,
                "url": m.url or "",
                "attached": m.path is not None,
                "filename": m.path.name if m.path else "",
            }
            for m in self.roster.applicant.materials
        ]

    def send_date(self) -> str:
        return long_date(self.send_day)


def context(msg: PlannedMessage, roster: Roster) -> dict[str, Any]:
    """The template context for one message (SPEC §3.1)."""
    builder = _Context(msg, roster)
    return {name: getattr(builder, name)() for name in CONTEXT_NAMES}
