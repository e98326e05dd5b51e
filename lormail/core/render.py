"""Templates: one Jinja2 template per message kind, rendered in the sandbox with StrictUndefined.

A template's first line is ``Subject: …``; the rest is the body.  The user's
template folder overrides the shipped defaults file by file.  The context
(SPEC §3.1) is built here from the roster and the planned message, with every
date written the way people write them, in the recipient's zone.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from lormail.core.plan import open_letters
from lormail.core.slots import long_date
from lormail.errors import LormailError, Problem
from lormail.model import KINDS, Letter, PlannedMessage, Recommender, Roster

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


# The most a template may make with ``*`` (characters or items) or ``**`` (bits):
# far beyond any letter, far below what would exhaust the laptop's memory.
_MAX_REPEAT = 1_000_000
_MAX_POWER_BITS = 4096


class _BoundedSandbox(SandboxedEnvironment):
    """Jinja2's sandbox, which bounds ``range``, with ``*`` and ``**`` bounded too: a
    daemon's time limit stops a slow template, but ``'x' * 10**10`` would take the
    memory first."""

    intercepted_binops = frozenset(("*", "**"))

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > _MAX_REPEAT
                ):
                    raise SecurityError(
                        f"'*' would make {len(seq) * times:,} items (at most {_MAX_REPEAT:,})"
                    )
        if (
            operator == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and abs(left).bit_length() * right > _MAX_POWER_BITS
        ):
            raise SecurityError(
                f"'**' would make a number of about {abs(left).bit_length() * right:,} bits"
            )
        return super().call_binop(context, operator, left, right)


class Templates:
    """The six kinds' templates: the user's overrides first, then the defaults.

    Which files there are is read once, here; each template is read and
    compiled on first use; rendering itself is pure (the message and roster
    in, text out).  Templates run in Jinja2's sandbox, which bounds ``range``
    and refuses unsafe attributes.
    """

    def __init__(self, override_dir: Path | None = None) -> None:
        self.override_dir = override_dir
        self.default_dir = default_templates_dir()
        search = [str(d) for d in (override_dir, self.default_dir) if d is not None]
        self.env = _BoundedSandbox(
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
        # The files of both folders, an override hiding the default of its name.
        self._files: dict[str, Path] = {}
        for folder in (self.default_dir, override_dir):
            if folder is not None and folder.is_dir():
                self._files.update((f.name, f) for f in folder.iterdir() if f.is_file())

    def source_path(self, name: str) -> Path:
        """The file template ``name`` is read from (the default's path when none exists)."""
        found = self._files.get(name)
        if found is not None:
            return found
        return next(  # a template in a subfolder, named in an error
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
        return name in self._files

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
        """Only the subject (the text template rendered; an HTML part is not).

        A message already sent shows the subject it went with, never rendered again.
        """
        if msg.subject is not None:
            return msg.subject
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
    """How to write a deadline, and the date it states, for a recipient in ``zone``.

    A date deadline (``own_zone`` given) is written, and counted to, as the
    date the program states; a timed one in the recipient's zone.
    """
    if own_zone is not None:  # a date deadline: its own date, in its own zone
        day = deadline.astimezone(own_zone).date()
        return long_date(day), day
    local = deadline.astimezone(zone)
    clock = local.strftime("%I:%M %p").lstrip("0")
    return f"{long_date(local.date())}, {clock} {local.tzname()}", local.date()


def _letter(letter: Letter, roster: Roster, rec: Recommender, today: date) -> dict[str, Any]:
    own_zone = letter.timezone if letter.deadline_is_date else None
    text, due = _deadline_text(letter.deadline, own_zone, rec.timezone)
    progs = [roster.programs_by_id[p] for p in letter.programs]
    return {
        "id": letter.key,
        "name": letter.name,
        "program": letter.name,  # the name templates have always used
        "programs": [p.name for p in progs],
        "portal": letter.portal or "",
        "deadline": text,
        "days_left": (due - today).days,
        "letter_id": letter.letter_id or "",
        "outcome": progs[0].outcome if len(progs) == 1 else "",
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
    "reminded",
    "others",
    "first_contact",
    "request_date",
)


class _Context:
    """Builds the context entries of one message, one method per entry."""

    __slots__ = ("_letter_views", "msg", "rec", "roster", "send_day")

    def __init__(self, msg: PlannedMessage, roster: Roster) -> None:
        self.msg = msg
        self.roster = roster
        self.rec = roster.recommenders_by_id[msg.recommender]
        self.send_day = msg.send_at.astimezone(self.rec.timezone).date()
        self._letter_views: list[dict[str, Any]] | None = None

    def view(self, letter: Letter) -> dict[str, Any]:
        return _letter(letter, self.roster, self.rec, self.send_day)

    def _named(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        return [self.view(lt) for k in keys if (lt := self.rec.letter(k)) is not None]

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
            "status": rec.status,
        }

    @property
    def _letters(self) -> list[dict[str, Any]]:
        if self._letter_views is None:
            self._letter_views = self._make_letters()
        return self._letter_views

    def _make_letters(self) -> list[dict[str, Any]]:
        """The open letters; for someone not yet asked, the letters the request is for."""
        if self.rec.status == "planned":
            wanted = sorted(
                (lt for lt in self.rec.letters if lt.submitted_on is None),
                key=lambda lt: (lt.deadline, lt.key),
            )
            return [self.view(lt) for lt in wanted]
        return [self.view(lt) for lt in open_letters(self.rec)]

    def letters(self) -> list[dict[str, Any]]:
        return self._letters

    def submitted(self) -> list[dict[str, Any]]:
        if self.msg.kind == "thank_you":
            return self._named(self.msg.letters)
        if self.msg.kind == "outcome":
            covering = [lt for lt in self.rec.letters if set(lt.programs) & set(self.msg.programs)]
            return [self.view(lt) for lt in covering]
        return []

    def reminded(self) -> list[dict[str, Any]]:
        """A reminder round's letters, by deadline."""
        return self._named(self.msg.letters) if self.msg.kind == "reminder" else []

    def others(self) -> list[dict[str, Any]]:
        """Other open letters still to come: not in this message, deadline not passed."""
        mine = set(self.msg.letters) if self.msg.kind == "reminder" else set()
        return [
            self.view(lt)
            for lt in open_letters(self.rec)
            if lt.key not in mine and lt.deadline > self.msg.send_at
        ]

    def _anchor(self) -> dict[str, Any] | None:
        if self.msg.letters:
            named = self._named(self.msg.letters[:1])
            if named:
                return named[0]
        return self._letters[0] if self._letters else None

    def program(self) -> dict[str, Any] | None:
        return self._anchor()

    def deadline(self) -> str:
        anchor = self._anchor()
        return anchor["deadline"] if anchor else ""

    def days_left(self) -> int | None:
        anchor = self._anchor()
        return anchor["days_left"] if anchor else None

    def reminder_number(self) -> int | None:
        return self.msg.reminder_number

    def final_reminder(self) -> bool:
        return self.msg.final_reminder

    def first_contact(self) -> bool:
        return self.msg.first_contact

    def request_date(self) -> str:
        return long_date(self.msg.request_date) if self.msg.request_date else ""

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
