"""roster.yaml → a frozen :class:`~lormail.model.Roster`, with every problem at its place.

Owns the roster's schema (SPEC §2.1): what each key means, its default, and
every check, so that nothing downstream validates again.  All problems are
collected and raised together as one :class:`LormailError` (exit 2), each as
``FILE:LINE:COL: PATH: message`` — for example
``roster.yaml:41:12: recommenders[1].email: 'ejohnson@' is not an e-mail address``.

- FILE is the path given to the loader, relative to the working folder when it
  lies inside it, else exactly as given (:func:`lormail.load.yamlsrc.display_name`).
- PATH counts list entries from 0: ``recommenders[1].letters[0].program``.
- LINE:COL (1-based) point at the offending value; at the key for unknown and
  duplicate keys; at the mapping for a missing key.

Warnings (SPEC: printed, exit 0) come with the roster from
:func:`load_roster_checked`, pointing at their values; :func:`roster_warnings`
gives them for any roster, naming the file and path only.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta, timezone
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

from lormail.errors import LormailError, Problem
from lormail.load import fields as F
from lormail.load.countries import resolve_holidays
from lormail.load.fields import BODY, LINE, Source, join
from lormail.load.letters import ID as _ID
from lormail.load.letters import LetterReader
from lormail.load.policy import POLICY_KEYS, read_policy
from lormail.load.roster_warnings import Where, roster_warnings, warnings_at
from lormail.load.yamlsrc import Node, display_name, parse, read_text
from lormail.model import (
    OUTCOMES,
    STATUSES,
    Applicant,
    Letter,
    Material,
    Policy,
    Program,
    Recommender,
    Roster,
    Unavailable,
)

__all__ = [
    "load_roster",
    "load_roster_checked",
    "machine_zone",
    "parse_roster",
    "roster_warnings",
]

_ROOT = frozenset(("applicant", "defaults", "programs", "recommenders"))
_APPLICANT = frozenset(("name", "email", "timezone", "signature", "materials"))
_MATERIAL = frozenset(("label", "path", "url"))
_PROGRAM = frozenset(("id", "name", "portal", "deadline", "timezone", "outcome", "outcome_on"))
_RECOMMENDER = frozenset((
    "id", "name", "salutation", "email", "title", "relationship", "timezone", "status",
    "ask_on", "ask_by_email", "asked_on", "agreed_on", "declined_on", "waived",
    "highlights", "unavailable", "letters", *POLICY_KEYS,
))  # fmt: skip
_DEFAULTS = frozenset((*POLICY_KEYS, "unavailable"))
_UNAVAILABLE = frozenset(("from", "to", "note"))

_STAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})(?:[Tt]|\s+)(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6})\d*)?)?"
    r"\s*(?:([Zz])|([-+])(\d{2}):?(\d{2})?)?"
)
_DEADLINE_EXAMPLE = "a date like 2026-09-24 or a timestamp like 2026-08-01T17:00:00-04:00"
_END_OF_DAY = time(23, 59, 59)

# Positions of the values warnings point at, for the rosters built last.
_T = TypeVar("_T")


def load_roster(path: Path) -> Roster:
    """Read and validate ``path``; raises :class:`LormailError` with every problem."""
    file = display_name(path)
    return parse_roster(read_text(path, file, "check 'roster' in config.yaml"), path)


def load_roster_checked(path: Path, now: datetime) -> tuple[Roster, list[Problem]]:
    """The roster and its warnings as of ``now`` (problems that do not stop anything)."""
    file = display_name(path)
    text = read_text(path, file, "check 'roster' in config.yaml")
    roster, where = _read(text, path)
    return roster, warnings_at(roster, now, file, where)


def parse_roster(text: str, path: Path) -> Roster:
    """Validate ``text`` as if read from ``path`` (names problems; anchors materials)."""
    return _read(text, path)[0]


def _read(text: str, path: Path) -> tuple[Roster, Where]:
    """The roster, and where the values that warnings point at stand."""
    file = display_name(path)
    root = parse(text, file)
    if root is None:
        raise LormailError([Problem("the roster is empty; start from 'lormail init'", file=file)])
    reader = _RosterReader(Source(file), path)
    return reader.read(root), reader.where


def machine_zone() -> ZoneInfo:
    """This machine's IANA zone: ``$TZ``, else ``/etc/localtime``'s link, else UTC."""
    tz = os.environ.get("TZ", "").lstrip(":")
    candidates = [tz.split("zoneinfo/", 1)[-1]] if tz else []
    with contextlib.suppress(OSError):
        candidates.append(os.readlink("/etc/localtime").split("zoneinfo/", 1)[-1])
    for name in candidates:
        found = F.zone(name)
        if isinstance(found, ZoneInfo):
            return found
    return ZoneInfo("UTC")


class _RosterReader:
    def __init__(self, src: Source, path: Path) -> None:
        self.src = src
        self.base = Path(os.path.abspath(path)).parent
        self.path = path
        self.where: Where = {}
        self.applicant_zone: ZoneInfo = ZoneInfo("UTC")
        self.programs_by_id: dict[str, Program] = {}
        # Every id as written, valid or not: one bad id is one problem, not one per letter.
        self.program_ids: set[str] = set()

    def read(self, root: Node) -> Roster:
        src = self.src
        top = src.fields(root, "", _ROOT, required=("applicant",))
        if top is None:
            src.raise_problems()
            raise AssertionError("unreachable")
        applicant = self.applicant(top.get("applicant"))
        defaults = Policy()
        blackouts: list[Unavailable] = []
        if "defaults" in top:
            section = src.fields(top["defaults"], "defaults", _DEFAULTS)
            if section is not None:
                defaults = read_policy(src, section, "defaults", defaults)
                blackouts = self.listed(
                    section,
                    "defaults",
                    "unavailable",
                    "[{from: 2026-12-24, to: 2027-01-01}]",
                    self.unavailable,
                )
        self.applicant_zone = applicant.timezone
        programs = self.programs(top.get("programs"), applicant.timezone)
        self.programs_by_id = {p.id: p for p in programs}
        recommenders = self.recommenders(top.get("recommenders"), applicant.timezone, defaults)
        src.raise_problems()
        return Roster(
            applicant=applicant,
            defaults=defaults,
            programs=tuple(programs),
            recommenders=tuple(recommenders),
            unavailable=tuple(blackouts),
            path=self.path,
        )

    def applicant(self, node: Node | None) -> Applicant:
        src = self.src
        # A missing or empty applicant was reported with the top-level keys.
        f: dict[str, Node] | None = None
        if node is not None and not F.is_null(node):
            f = src.fields(node, "applicant", _APPLICANT, ("name", "email"))
        f = f or {}
        email = src.email(f["email"], "applicant.email") if "email" in f else None
        zone = src.zone(f["timezone"], "applicant.timezone") if "timezone" in f else None
        signature = (
            src.text(f["signature"], "applicant.signature", BODY) if "signature" in f else None
        )
        materials = self.listed(f, "applicant", "materials", "[{label: CV, path: cv.pdf}]",
                                self.material)  # fmt: skip
        return Applicant(
            name=src.required_text(f.get("name"), "applicant.name") or "",
            email=email or "",
            timezone=zone or machine_zone(),
            signature=signature or "",
            materials=tuple(materials),
        )

    def material(self, node: Node, path: str) -> Material | None:
        src = self.src
        f = src.fields(node, path, _MATERIAL, ("label",))
        if f is None:
            return None
        label = src.required_text(f.get("label"), join(path, "label"))
        has_path = "path" in f and not F.is_null(f["path"])
        has_url = "url" in f and not F.is_null(f["url"])
        if has_path == has_url:
            src.add(
                node,
                path,
                "give either a path (a file to attach) or a url (a link), not "
                + ("both" if has_path else "neither"),
            )
            return None
        if has_path:
            text = src.text(f["path"], join(path, "path"), LINE)
            if text is None:
                return None
            file = Path(text).expanduser()
            if not file.is_absolute():
                file = self.base / file
            if not file.is_file():
                why = (
                    "is a folder, not a file"
                    if file.is_dir()
                    else "not a regular file"
                    if file.exists()
                    else "no such file"
                )
                src.add(f["path"], join(path, "path"), f"{why}: {file}")
                return None
            return Material(label=label or "", path=file)
        url = src.text(f["url"], join(path, "url"), LINE)
        if url is None:
            return None
        if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", url, re.IGNORECASE):
            src.add(f["url"], join(path, "url"), f"{F.shown(url)} is not an http(s) URL")
            return None
        return Material(label=label or "", url=url)

    def programs(self, node: Node | None, default_zone: ZoneInfo) -> list[Program]:
        src = self.src
        out: list[Program] = []
        if node is None:
            return out
        seen: dict[str, str] = {}
        for i, p in enumerate(src.items(node, "programs", "[{id: ..., deadline: ...}]")):
            path = f"programs[{i}]"
            f = src.fields(p, path, _PROGRAM, ("id", "deadline"))
            if f is None:
                continue
            pid = self.ident(f.get("id"), join(path, "id"), seen, path)
            zone = src.zone(f["timezone"], join(path, "timezone")) if "timezone" in f else None
            zone = zone or default_zone
            deadline = self.deadline(f.get("deadline"), join(path, "deadline"), zone)
            name = src.required_text(f["name"], join(path, "name")) if "name" in f else pid
            outcome = "pending"
            if "outcome" in f:
                outcome = src.choice(f["outcome"], join(path, "outcome"), OUTCOMES) or outcome
            out.append(
                Program(
                    id=pid or "",
                    name=name or "",
                    deadline=deadline[0] if deadline else datetime.min.replace(tzinfo=UTC),
                    deadline_is_date=deadline[1] if deadline else True,
                    timezone=zone,
                    portal=src.text(f["portal"], join(path, "portal")) if "portal" in f else None,
                    outcome=outcome,
                    outcome_on=src.date(f["outcome_on"], join(path, "outcome_on"))
                    if "outcome_on" in f
                    else None,
                )
            )
        return out

    def ident(self, node: Node | None, path: str, seen: dict[str, str], owner: str) -> str | None:
        """A program's or recommender's id; ``seen`` maps ids to the entry that has them."""
        if node is None:
            return None
        src = self.src
        value = src.text(node, path, LINE)
        if value is None:
            return None
        if not _ID.fullmatch(value):
            src.add(
                node,
                path,
                f"{F.shown(value)} is not a valid id: use letters, digits, "
                "'.', '_' and '-', starting with a letter or digit",
            )
        elif value in seen:
            src.add(node, path, f"duplicate id '{value}' (also {seen[value]})")
        seen.setdefault(value, owner)
        if owner.startswith("programs"):
            self.program_ids.add(value)
        return value

    def deadline(
        self, node: Node | None, path: str, zone: ZoneInfo
    ) -> tuple[datetime, bool] | None:
        if node is None:
            return None
        src = self.src
        sc = src.scalar(node, path, _DEADLINE_EXAMPLE)
        if sc is None:
            return None
        self.where[path] = (sc.line, sc.col)
        t = sc.text.strip()
        if len(t) == 10 and t[4:5] == "-":
            day = src.date_of(sc, path, t)
            return (datetime.combine(day, _END_OF_DAY, zone), True) if day else None
        m = _STAMP.fullmatch(t)
        if m is None:
            src.add(sc, path, f"expected {_DEADLINE_EXAMPLE}, not {F.shown(sc.text)}")
            return None
        day = src.date_of(sc, path, m[1])
        if day is None:
            return None
        try:
            clock = time(int(m[2]), int(m[3]), int(m[4] or 0), int((m[5] or "0").ljust(6, "0")))
            if m[6]:
                tz: timezone | ZoneInfo = UTC
            elif m[7]:
                offset = timedelta(hours=int(m[8]), minutes=int(m[9] or 0))
                tz = timezone(offset if m[7] == "+" else -offset)
            else:
                tz = zone
            return datetime.combine(day, clock, tz).astimezone(zone), False
        except ValueError as err:
            src.add(sc, path, f"{F.shown(t)} is not a real time ({err})")
            return None

    def recommenders(
        self, node: Node | None, default_zone: ZoneInfo, defaults: Policy
    ) -> list[Recommender]:
        src = self.src
        out: list[Recommender] = []
        if node is None:
            return out
        seen: dict[str, str] = {}
        for i, r in enumerate(src.items(node, "recommenders", "[{id: ..., email: ...}]")):
            path = f"recommenders[{i}]"
            f = src.fields(r, path, _RECOMMENDER, ("id", "name", "email"))
            if f is not None:
                out.append(self.recommender(f, path, seen, default_zone, defaults))
        return out

    def recommender(
        self, f: dict[str, Node], path: str, seen: dict[str, str], zone: ZoneInfo, base: Policy
    ) -> Recommender:
        src = self.src
        get = f.get  # a key's value, or None when the key is absent
        rid = self.ident(get("id"), path + ".id", seen, path)
        name = src.required_text(get("name"), path + ".name")
        asked_on = None
        if (node := get("asked_on")) is not None:
            asked_on = src.date(node, path + ".asked_on")
            if asked_on is not None:
                self.where[path + ".asked_on"] = (node.line, node.col)
        highlights = self.listed(f, path, "highlights", "[the study]", self.highlight)
        unavailable = self.listed(
            f, path, "unavailable", "[{from: 2026-08-10, to: 2026-08-17}]", self.unavailable
        )
        letters = self.letters(get("letters"), path)
        # In the order the checks have always run, so that problems keep their order.
        email = own_zone = status = salutation = title = relationship = None
        ask_on = agreed_on = declined_on = None
        ask_by_email = waived = None
        if (node := get("email")) is not None:
            email = src.email(node, path + ".email")
        if (node := get("timezone")) is not None:
            own_zone = src.zone(node, path + ".timezone")
        if (node := get("status")) is not None:
            status = src.choice(node, path + ".status", STATUSES)
        policy = read_policy(src, f, path, base)
        if (node := get("salutation")) is not None:
            salutation = src.text(node, path + ".salutation")
        if (node := get("title")) is not None:
            title = src.text(node, path + ".title")
        if (node := get("relationship")) is not None:
            relationship = src.text(node, path + ".relationship", LINE)
        if (node := get("ask_on")) is not None:
            ask_on = src.date(node, path + ".ask_on")
            self.where[path + ".ask_on"] = (node.line, node.col)
        if (node := get("ask_by_email")) is not None:
            ask_by_email = src.boolean(node, path + ".ask_by_email")
        if (node := get("agreed_on")) is not None:
            agreed_on = src.date(node, path + ".agreed_on")
        if (node := get("declined_on")) is not None:
            declined_on = src.date(node, path + ".declined_on")
        if (node := get("waived")) is not None:
            waived = src.boolean(node, path + ".waived")
        return Recommender(
            id=rid or "",
            name=name or "",
            email=email or "",
            timezone=own_zone or zone,
            status=status or "planned",
            policy=policy,
            salutation=salutation or name or "",
            title=title or "",
            relationship=relationship or "",
            ask_on=ask_on,
            ask_by_email=ask_by_email or False,
            asked_on=asked_on,
            agreed_on=agreed_on,
            declined_on=declined_on,
            waived=waived,
            highlights=tuple(highlights),
            unavailable=tuple(unavailable),
            letters=tuple(letters),
            holidays=resolve_holidays(policy.holidays, own_zone or zone),
        )

    def letters(self, node: Node | None, path: str) -> list[Letter]:
        """The recommender's letters that read without a problem."""
        reader = LetterReader(self.src, self.program_ids, self.programs_by_id, self.where)
        return reader.letters(node, path, self.applicant_zone, self.deadline)

    def listed(
        self,
        f: dict[str, Node],
        path: str,
        key: str,
        example: str,
        read: Callable[[Node, str], _T | None],
    ) -> list[_T]:
        """The entries of list ``key`` that read without a problem."""
        if key not in f:
            return []
        out = []
        base = join(path, key)
        for j, node in enumerate(self.src.items(f[key], base, example)):
            value = read(node, f"{base}[{j}]")
            if value is not None:
                out.append(value)
        return out

    def highlight(self, node: Node, path: str) -> str | None:
        return self.src.text(node, path, BODY)

    def unavailable(self, node: Node, path: str) -> Unavailable | None:
        src = self.src
        f = src.fields(node, path, _UNAVAILABLE, ("from", "to"))
        if f is None or "from" not in f or "to" not in f:
            return None
        start, end = src.date(f["from"], join(path, "from")), src.date(f["to"], join(path, "to"))
        note = src.text(f["note"], join(path, "note"), LINE) if "note" in f else None
        if start is None or end is None:
            return None
        if end < start:
            src.add(f["to"], join(path, "to"), f"{end} is before 'from' ({start})")
            return None
        return Unavailable(start=start, end=end, note=note or "")
