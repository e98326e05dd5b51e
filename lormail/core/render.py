"""Templates: one Jinja2 template per message kind, rendered with StrictUndefined.

A template's first line is ``Subject: …``; the rest is the body.  The user's
template folder overrides the shipped defaults file by file.  The context
(SPEC §3.1) is built here from the roster and the planned message, with every
date written the way people write them, in the recipient's zone.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes

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
    """The six kinds' templates: the user's overrides first, then the defaults."""

    def __init__(self, override_dir: Path | None = None) -> None:
        self.override_dir = override_dir
        self.default_dir = default_templates_dir()
        search = [str(d) for d in (override_dir, self.default_dir) if d is not None]
        self._loader = _Loader(search)
        self.env = jinja2.Environment(
            loader=self._loader,
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
        self._subjects: dict[str, tuple[jinja2.Template, tuple[str, ...]]] = {}
        self._reads_of: dict[str, tuple[str, ...]] = {}
        self._paths: dict[str, Path] = {}
        self._present: dict[str, bool] = {}
        self._globals: dict[str, Any] = dict(self.env.globals)
        self._shared_for: Roster | None = None
        self._shared_cache: dict[tuple[str, date], dict[str, Any]] = {}

    def source_path(self, name: str) -> Path:
        path = self._paths.get(name)
        if path is None:
            path = next(
                (
                    folder / name
                    for folder in (self.override_dir, self.default_dir)
                    if folder is not None and (folder / name).is_file()
                ),
                self.default_dir / name,
            )
            self._paths[name] = path
        return path

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
        found = self._present.get(name)
        if found is None:
            found = any(
                d is not None and (d / name).is_file()
                for d in (self.override_dir, self.default_dir)
            )
            self._present[name] = found
        return found

    def _shared(self, roster: Roster) -> dict[tuple[str, date], dict[str, Any]]:
        """The cache of per-recommender context entries, kept for one roster at a time."""
        if self._shared_for is not roster or len(self._shared_cache) > 8192:
            self._shared_for = roster
            self._shared_cache = {}
        return self._shared_cache

    def render(self, msg: PlannedMessage, roster: Roster) -> Rendered:
        name = f"{msg.kind}.txt.j2"
        shared = self._shared(roster)
        ctx = context(msg, roster, self._reads(name), shared)
        text = self._call(name, ctx)
        subject, body = split_subject(text, str(self.source_path(name)))
        html = None
        if self._has(f"{msg.kind}.html.j2"):
            more = [n for n in self._reads(f"{msg.kind}.html.j2") if n not in ctx]
            if more:
                ctx = {**ctx, **context(msg, roster, more, shared)}
            html = self._call(f"{msg.kind}.html.j2", ctx)
        return Rendered(subject=subject, body=body, html=html)

    def _reads(self, name: str) -> tuple[str, ...]:
        """The context entries template ``name`` reads; building only those is
        what makes rendering cheap.  All of them for a template that includes,
        imports or extends another (whose reads it does not show)."""
        reads = self._reads_of.get(name)
        if reads is None:
            self._template(name)  # compiled; the loader keeps the source it read
            reads = CONTEXT_NAMES
            source = self._loader.sources.get(name)
            if source is not None:
                tree = self.env.parse(source, name)
                linked = (jinja2.nodes.Include, jinja2.nodes.Import, jinja2.nodes.FromImport)
                if next(tree.find_all((*linked, jinja2.nodes.Extends)), None) is None:
                    used = jinja2.meta.find_undeclared_variables(tree)
                    reads = tuple(n for n in CONTEXT_NAMES if n in used)
            self._reads_of[name] = reads
        return reads

    def load_all(self) -> Templates:
        """Read and compile every template the six kinds use, now and never again.

        What a daemon keeps: a later save, good or bad, reaches it only through
        a reload that checks it.  Raises :class:`LormailError` on a syntax error.
        """
        for kind in KINDS:
            self._reads(f"{kind}.txt.j2")  # compiles it
            self._subject_template(kind)
            if self._has(f"{kind}.html.j2"):
                self._reads(f"{kind}.html.j2")
        return self

    def _subject_template(self, kind: str) -> tuple[jinja2.Template, tuple[str, ...]] | None:
        """The subject line alone, compiled, with the names it uses (None if it does not parse)."""
        cached = self._subjects.get(kind)
        if cached is None:
            source = self.source_path(f"{kind}.txt.j2").read_text(encoding="utf-8")
            first = source.split("\n", 1)[0]
            try:
                names = tuple(jinja2.meta.find_undeclared_variables(self.env.parse(first)))
                cached = (self.env.from_string(first), names)
            except jinja2.TemplateSyntaxError:
                return None
            self._subjects[kind] = cached
        return cached

    def subject(self, msg: PlannedMessage, roster: Roster) -> str:
        """Only the subject: renders the first line alone, with only what it uses."""
        cached = self._subject_template(msg.kind)
        if cached is None:
            return self.render(msg, roster).subject
        tmpl, names = cached
        where = f"{msg.kind}.txt.j2"
        ctx = context(msg, roster, names, self._shared(roster))
        line = self._render_tmpl(tmpl, ctx, where)
        return split_subject(line, str(self.source_path(where)))[0]

    def _call(self, name: str, ctx: dict[str, Any]) -> str:
        # An undefined name lists every entry a template may use, not only the
        # ones this one was given.
        return self._render_tmpl(self._template(name), ctx, name, CONTEXT_NAMES)

    def _render_tmpl(
        self,
        tmpl: jinja2.Template,
        ctx: dict[str, Any],
        name: str,
        available: Iterable[str] | None = None,
    ) -> str:
        try:
            # A shared context with the globals merged in once is much cheaper
            # than Template.render's per-call ChainMap; `check` renders 12,000.
            fresh = tmpl.new_context({**self._globals, **ctx}, shared=True)
            return self.env.concat(tmpl.root_render_func(fresh))
        except jinja2.TemplateError as err:
            where = str(self.source_path(name))
            line = _error_line(err, tmpl)
            message = err.message or type(err).__name__
            if isinstance(err, jinja2.UndefinedError):
                shown = ctx if available is None else available
                message += f" (available: {', '.join(sorted(shown))})"
            raise LormailError([Problem(message, where, line, 1 if line else None)]) from None

    def kinds(self) -> tuple[str, ...]:
        return KINDS


class _Loader(jinja2.FileSystemLoader):
    """The file loader, keeping the source of each template it loads: what a
    template reads is learnt from the very text that was compiled."""

    def __init__(self, searchpath: list[str]) -> None:
        super().__init__(searchpath)
        self.sources: dict[str, str] = {}

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        self.sources[template] = source
        return source, filename, uptodate


def _error_line(err: BaseException, tmpl: jinja2.Template) -> int | None:
    """The template line a rendering error happened on, from its traceback."""
    tb = err.__traceback__
    found = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == (tmpl.filename or "<template>"):
            found = tmpl.get_corresponding_lineno(tb.tb_lineno)
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


@lru_cache(maxsize=16384)
def _deadline_text(deadline: datetime, own_zone: tzinfo | None, zone: tzinfo) -> tuple[str, date]:
    """How to write a deadline, and its date, for a recipient in ``zone``.

    A date deadline (``own_zone`` given) is written as the program states it;
    a timed one in the recipient's zone.  Deadlines repeat across
    recommenders: cached.
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
    """Builds each context entry on demand: a subject needs only a few of them."""

    # Plain slots, filled on first use: functools.cached_property takes a lock
    # per access on Python 3.11, and a subject is rendered per message.
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


# Entries that depend only on the recommender and the day, not on the message.
_SHARED = frozenset({"applicant", "recommender", "letters", "materials", "send_date"})


def context(
    msg: PlannedMessage,
    roster: Roster,
    names: Iterable[str] = CONTEXT_NAMES,
    shared: dict[tuple[str, date], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The template context for one message (SPEC §3.1), or just the entries ``names``.

    ``shared`` (one dict per roster) keeps the entries that several messages
    to one recommender on one day have in common.
    """
    builder = _Context(msg, roster)
    common: dict[str, Any] = {}
    if shared is not None:
        common = shared.setdefault((msg.recommender, builder.send_day), {})
    out: dict[str, Any] = {}
    for name in names:
        if name not in CONTEXT_NAMES:
            continue
        if name in _SHARED:
            value = common.get(name)
            if value is None:
                value = common[name] = getattr(builder, name)()
            out[name] = value
        else:
            out[name] = getattr(builder, name)()
    return out
