"""The calendar: (roster, plan, stored event stamps, now) → the bytes of one .ics.

A pure builder (SPEC §5).  It owns what the calendar says — which events
exist, their stable UIDs, titles, descriptions, alarms and zones — and the
SEQUENCE/DTSTAMP bookkeeping: an event's content (everything but its
``DTSTAMP``, ``SEQUENCE`` and ``LAST-MODIFIED``) is hashed, and only when the
hash differs from the stored one does its ``SEQUENCE`` rise and its stamp
become ``now``.  The caller stores the stamps that changed.

Events:

* ``deadline-<program>@lormail``: each program deadline (all-day when it is a
  date), its letters' states in the description, a ``VALARM`` per alarm.
* ``ask-<recommender>@lormail``: "Ask Dr. X for a letter", all-day on the
  ask-by date, for each ``planned`` recommender.
* ``msg-<hash of key>@lormail``: each scheduled or due message, 15 minutes,
  transparent, in the recipient's zone (only with ``include_messages``).
* ``away-<recommender>-<first day>@lormail``: each ``unavailable`` range.
* ``checkin-<recommender>@lormail``: "Check in with Dr. X", one all-day event
  recurring every ``check_in_every`` days (``RRULE:FREQ=DAILY;INTERVAL=N``)
  from that many days after the last message to them, sent or planned.  A
  rule rather than one upcoming event, so the event does not change (and
  clients are not re-notified) as time passes; it moves only when a new
  message is planned or sent.

The text is written directly, not through ``icalendar``'s object model, which
is about fifteen times slower for a large roster.  Ids that are not plain
tokens and message keys are hashed into UIDs; no e-mail address ever appears
in a UID.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from lormail import __version__
from lormail.core.plan import ask_by_date
from lormail.core.slots import day_label
from lormail.core.vtimezone import vtimezone_lines
from lormail.model import (
    DUE,
    SCHEDULED,
    SENT,
    CalendarConfig,
    EventStamp,
    Letter,
    Plan,
    PlannedMessage,
    Program,
    Recommender,
    Roster,
)

PRODID = f"-//lormail//lormail {__version__}//EN"
MESSAGE_MINUTES = 15
_MESSAGE_LENGTH = timedelta(minutes=MESSAGE_MINUTES)
UID_DOMAIN = "lormail"

# RFC 5545 §3.3.11: TEXT escapes backslash, semicolon, comma and newline, and
# allows no control character but HTAB.
_NEEDS_ESCAPE = re.compile(r"[\\;,\x00-\x08\x0a-\x1f\x7f]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Zones written as UTC ("…Z") rather than with a TZID and a VTIMEZONE.
_UTC_KEYS = frozenset(
    {"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"}
)
# Plan statuses that put an event on the calendar, and that count as "the
# last message" for the check-in rule.
_SHOWN = frozenset({SCHEDULED, DUE})
_LAST_MESSAGE = frozenset({SCHEDULED, DUE, SENT})


class _Event(NamedTuple):  # a tuple: ~10,000 are made per build
    order: tuple[object, ...]  # where it goes in its group; unique with the UID
    uid: str
    lines: list[str]  # folded content lines, without UID/DTSTAMP/SEQUENCE/LAST-MODIFIED


class _Group(NamedTuple):
    """The events of one program (its deadline) or one recommender (the rest), stamped.

    ``key`` holds what they are made of, beyond the calendar config: for a
    program, the program and the ids of its writers; for a recommender, the
    entry and their planned messages.  ``text`` holds the VEVENTs, and
    ``stamps`` the stamp each was written with.
    """

    key: tuple[object, ...]
    uids: tuple[str, ...]
    zones: frozenset[tuple[str, int]]  # (zone, year) of the times written
    text: str
    stamps: tuple[EventStamp, ...]

    def __reduce__(self) -> tuple[Any, ...]:
        # Unpickled by tuple.__new__ (in C), not by the class's own __new__.
        return tuple.__new__, (_Group, tuple(self))

    def current(self, stamps: Mapping[str, EventStamp]) -> bool:
        """Whether every event's stored stamp is still the one it was written with."""
        get = stamps.get
        return all(get(uid) == done for uid, done in zip(self.uids, self.stamps, strict=True))


@dataclass(frozen=True)
class CalendarCache:
    """The groups of one build, so that the next build makes again only what changed."""

    config: CalendarConfig
    programs: Mapping[str, _Group]
    recommenders: Mapping[str, _Group]


class Built(NamedTuple):
    """The calendar's bytes, the stamps of events that are new or changed, and its groups."""

    data: bytes
    changed: dict[str, EventStamp]
    cache: CalendarCache


# --- text primitives ------------------------------------------------------


def escape_text(text: str) -> str:
    """A TEXT value (RFC 5545 §3.3.11): escaped, CR/CRLF as newlines, controls dropped."""
    # Most texts need nothing; one regex scan is far cheaper than translate().
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    text = text.replace("\n", "\\n")
    return _CONTROLS.sub("", text)


def fold(line: str) -> str:
    """One content line folded at 75 octets, never inside a UTF-8 sequence (§3.1)."""
    if len(line) <= 75 and line.isascii():
        return line
    if line.isascii():
        chunks = [line[:75]]
        chunks += [line[i : i + 74] for i in range(75, len(line), 74)]
        return "\r\n ".join(chunks)
    raw = line.encode()
    if len(raw) <= 75:
        return line
    parts: list[bytes] = []
    start, limit = 0, 75  # continuation lines lose one octet to the leading space
    while len(raw) - start > limit:
        cut = start + limit
        while raw[cut] & 0xC0 == 0x80:  # a UTF-8 continuation byte: cut before its lead
            cut -= 1
        parts.append(raw[start:cut])
        start, limit = cut, 74
    parts.append(raw[start:])
    return b"\r\n ".join(parts).decode()


def _text(name: str, value: str) -> str:
    """A folded content line with a TEXT value.  Other lines the builder writes
    (dates, TZIDs, fixed words) are short ASCII and need no folding."""
    return fold(f"{name}:{escape_text(value)}")


def _utc_stamp(instant: datetime) -> str:
    d = instant.astimezone(UTC)
    return f"{d.year:04d}{d.month:02d}{d.day:02d}T{d.hour:02d}{d.minute:02d}{d.second:02d}Z"


@lru_cache(maxsize=256)
def _stamp_text(instant: datetime) -> str:
    """A DTSTAMP (stored stamps repeat: each is formatted once)."""
    return _utc_stamp(instant)


def _local_stamp(d: datetime) -> str:
    return f"{d.year:04d}{d.month:02d}{d.day:02d}T{d.hour:02d}{d.minute:02d}{d.second:02d}"


def _date_value(d: date) -> str:
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def format_duration(delta: timedelta) -> str:
    """An RFC 5545 DURATION: ``P7D``, ``PT1H30M``, ``-P1DT12H``; ``PT0S`` for zero."""
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = f"{sign}P" + (f"{days}D" if days else "")
    clock = (
        (f"{hours}H" if hours else "")
        + (f"{minutes}M" if minutes else "")
        + (f"{seconds}S" if seconds else "")
    )
    if clock:
        text += "T" + clock
    return text if (days or clock) else "PT0S"


def _uid_part(ident: str) -> str:
    if _SAFE_ID.fullmatch(ident):
        return ident
    return "h" + hashlib.blake2b(ident.encode(), digest_size=8).hexdigest()


def message_uid(key: str) -> str:
    """The UID of a planned message: its key hashed (keys name recommenders and programs)."""
    return f"msg-{hashlib.blake2b(key.encode(), digest_size=10).hexdigest()}@{UID_DOMAIN}"


# --- zones ------------------------------------------------------------------


class _Zones:
    """Writes times in a zone, and remembers which zones and years each group used."""

    def __init__(self) -> None:
        # Messages share few slots (09:00 on a weekday, per zone): memoised.
        self._done: dict[tuple[str, datetime, tzinfo], tuple[str, tuple[str, int] | None]] = {}
        self.used: set[tuple[str, int]] = set()  # by the group being built

    def dt_prop(self, name: str, instant: datetime, zone: tzinfo) -> str:
        memo = (name, instant, zone)
        done = self._done.get(memo)
        if done is None:
            done = self._done[memo] = self._dt_prop(name, instant, zone)
        if done[1] is not None:
            self.used.add(done[1])
        return done[0]

    @staticmethod
    def _dt_prop(name: str, instant: datetime, zone: tzinfo) -> tuple[str, tuple[str, int] | None]:
        key = getattr(zone, "key", None)
        if not isinstance(zone, ZoneInfo) or key is None or key in _UTC_KEYS:
            return f"{name}:{_utc_stamp(instant)}", None
        local = instant.astimezone(zone)
        return f"{name};TZID={key}:{_local_stamp(local)}", (key, local.year)

    def take(self) -> frozenset[tuple[str, int]]:
        """The zones and years used since the last call."""
        used = frozenset(self.used)
        self.used.clear()
        return used


def _vtimezones(used: Iterable[frozenset[tuple[str, int]]]) -> list[str]:
    years: dict[str, tuple[int, int]] = {}
    for group in used:
        for key, year in group:
            lo, hi = years.get(key, (year, year))
            years[key] = (min(lo, year), max(hi, year))
    lines: list[str] = []
    for key in sorted(years):
        lo, hi = years[key]
        # A year past the last event: the yearly rules are then seen to
        # recur, whatever the last event's month.
        lines.extend(vtimezone_lines(key, lo, hi + 1))
    return lines


# --- the events -------------------------------------------------------------


class _Builder:
    """Turns the roster and plan into events, a group at a time; one instance per build."""

    def __init__(
        self,
        roster: Roster,
        config: CalendarConfig,
        stamps: Mapping[str, EventStamp],
        now: datetime,
    ) -> None:
        self.roster = roster
        self.config = config
        self.stamps = stamps
        self.now = now
        self.changed: dict[str, EventStamp] = {}  # stamps of new or changed events
        self.zones = _Zones()
        self._ask_by: dict[str, date | None] = {}

    def ask_by(self, rec: Recommender) -> date | None:
        """The ask-by date of a ``planned`` recommender."""
        if rec.status != "planned":
            return None
        if rec.id not in self._ask_by:
            self._ask_by[rec.id] = ask_by_date(rec, self.roster)
        return self._ask_by[rec.id]

    def program_group(
        self, p: Program, letters: Sequence[tuple[Recommender, Letter]], key: tuple[object, ...]
    ) -> _Group:
        return self.group(key, [self._deadline(p, letters)])

    def recommender_group(
        self, rec: Recommender, messages: Sequence[PlannedMessage], key: tuple[object, ...]
    ) -> _Group:
        out: list[_Event] = []
        ask = self.ask_by(rec)
        if ask is not None:
            out.append(self._ask(rec, ask))
        if rec.unavailable:
            out.extend(self._away(rec))
        check_in = self._check_in(rec, messages)
        if check_in is not None:
            out.append(check_in)
        out.extend(self.message_events(messages))
        return self.group(key, out)

    def message_events(self, messages: Iterable[PlannedMessage]) -> list[_Event]:
        if not self.config.include_messages:
            return []
        return [self._message(m) for m in messages if m.status in _SHOWN]

    def group(self, key: tuple[object, ...], events: list[_Event]) -> _Group:
        """The events, in order, stamped: an event whose content hash matches its
        stored stamp keeps it; a new or changed one is stamped ``now``."""
        events.sort(key=lambda ev: ev.order)
        get = self.stamps.get
        blocks: list[str] = []
        done: list[EventStamp] = []
        for ev in events:
            text = "\r\n".join(ev.lines)
            digest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
            stamp = get(ev.uid)
            if stamp is None or stamp.hash != digest:
                seq = 0 if stamp is None else stamp.sequence + 1
                stamp = self.changed[ev.uid] = EventStamp(digest, seq, self.now)
            done.append(stamp)
            when = _stamp_text(stamp.stamp)
            blocks.append(
                f"BEGIN:VEVENT\r\nUID:{ev.uid}\r\nDTSTAMP:{when}\r\nSEQUENCE:{stamp.sequence}"
                f"\r\nLAST-MODIFIED:{when}\r\n{text}\r\nEND:VEVENT"
            )
        uids = tuple(ev.uid for ev in events)
        return _Group(key, uids, self.zones.take(), "\r\n".join(blocks), tuple(done))

    def _deadline(self, p: Program, letters: Iterable[tuple[Recommender, Letter]]) -> _Event:
        lines = [_text("SUMMARY", "Deadline: " + p.name)]
        about: list[str] = []
        if p.deadline_is_date:
            day = p.deadline_date
            lines.append(f"DTSTART;VALUE=DATE:{_date_value(day)}")
            lines.append(f"DTEND;VALUE=DATE:{_date_value(day + timedelta(days=1))}")
            about.append(f"Due by the end of {day_label(day)} ({_zone_name(p.timezone)}).")
        else:
            lines.append(self.zones.dt_prop("DTSTART", p.deadline, p.timezone))
            local = p.deadline.astimezone(p.timezone)
            about.append(
                f"Due {day_label(local.date())} at {local:%H:%M} ({_zone_name(p.timezone)})."
            )
        if p.portal:
            about.append(f"Portal: {p.portal}")
        if p.outcome != "pending":
            when = f" ({day_label(p.outcome_on)})" if p.outcome_on else ""
            about.append(f"Outcome: {p.outcome}{when}")
        states = [self._letter_state(rec, letter) for rec, letter in letters]
        if states:
            about.append("Letters:")
            about.extend(f"- {s}" for s in states)
        else:
            about.append("No letters.")
        lines.append(_text("DESCRIPTION", "\n".join(about)))
        lines.append("TRANSP:TRANSPARENT")
        for alarm in self.config.alarms:
            lines += [
                "BEGIN:VALARM",
                "ACTION:DISPLAY",
                _text("DESCRIPTION", f"{p.name}: deadline in {_ahead(alarm)}"),
                f"TRIGGER:{format_duration(-alarm)}",
                "END:VALARM",
            ]
        return _Event((0, p.deadline, p.id), f"deadline-{_uid_part(p.id)}@{UID_DOMAIN}", lines)

    def _letter_state(self, rec: Recommender, letter: Letter) -> str:
        ref = f" [{letter.letter_id}]" if letter.letter_id else ""
        if letter.submitted_on is not None:
            state = f"submitted on {day_label(letter.submitted_on)}"
        elif rec.status == "declined":
            state = "declined" + (f" on {day_label(rec.declined_on)}" if rec.declined_on else "")
        elif rec.status == "planned":
            when = self.ask_by(rec)
            state = "not asked yet" + (f" (ask by {day_label(when)})" if when else "")
        elif rec.status == "agreed":
            when = rec.agreed_on
            state = "agreed" + (f" on {day_label(when)}" if when else "") + ", letter open"
        else:
            when = rec.asked_on
            state = "asked" + (f" on {day_label(when)}" if when else "") + ", letter open"
        return f"{rec.name}{ref}: {state}"

    def _ask(self, rec: Recommender, day: date) -> _Event:
        progs = sorted(
            (self.roster.programs_by_id[lt.program] for lt in rec.letters),
            key=lambda p: (p.deadline, p.id),
        )
        about = [f"Ask {rec.name} for a letter by {day_label(day)}."]
        if rec.ask_by_email:
            sent_on = rec.ask_on or day
            about.append(f"lormail e-mails the request on {day_label(sent_on)}.")
        about.append("For:")
        about.extend(f"- {p.name} (deadline {day_label(p.deadline_date)})" for p in progs)
        lines = [
            _text("SUMMARY", f"Ask {_who(rec)} for a letter"),
            f"DTSTART;VALUE=DATE:{_date_value(day)}",
            f"DTEND;VALUE=DATE:{_date_value(day + timedelta(days=1))}",
            _text("DESCRIPTION", "\n".join(about)),
            "TRANSP:TRANSPARENT",
        ]
        return _Event((1, day, rec.id), f"ask-{_uid_part(rec.id)}@{UID_DOMAIN}", lines)

    def _away(self, rec: Recommender) -> Iterable[_Event]:
        seen: set[str] = set()
        for spell in sorted(rec.unavailable, key=lambda u: (u.start, u.end, u.note)):
            uid = f"away-{_uid_part(rec.id)}-{_date_value(spell.start)}"
            n = 2
            while uid in seen:  # two spells starting the same day
                uid = f"away-{_uid_part(rec.id)}-{_date_value(spell.start)}-{n}"
                n += 1
            seen.add(uid)
            title = f"{_who(rec)} away" + (f": {spell.note}" if spell.note else "")
            about = (
                f"{rec.name} is unavailable {day_label(spell.start)} – "
                f"{day_label(spell.end)}; lormail sends them nothing then."
            )
            lines = [
                _text("SUMMARY", title),
                f"DTSTART;VALUE=DATE:{_date_value(spell.start)}",
                f"DTEND;VALUE=DATE:{_date_value(spell.end + timedelta(days=1))}",
                _text("DESCRIPTION", about),
                "TRANSP:TRANSPARENT",
            ]
            yield _Event((2, spell.start, rec.id, uid), f"{uid}@{UID_DOMAIN}", lines)

    def _check_in(self, rec: Recommender, messages: Iterable[PlannedMessage]) -> _Event | None:
        every = rec.policy.check_in_every
        if every <= 0:
            return None
        msg: PlannedMessage | None = None
        for m in messages:
            if m.status in _LAST_MESSAGE and (
                msg is None or (m.send_at, m.key) > (msg.send_at, msg.key)
            ):
                msg = m
        if msg is None:
            return None
        sent_day = msg.send_at.astimezone(rec.timezone).date()
        first = sent_day + timedelta(days=every)
        verb = "sent" if msg.status == SENT else "planned"
        about = (
            f"Stay in touch with {rec.name}: every {every} days after your last "
            f"message to them ({_KIND_NOUNS.get(msg.kind, msg.kind)}, {verb} for "
            f"{day_label(sent_day)})."
        )
        lines = [
            _text("SUMMARY", f"Check in with {_who(rec)}"),
            f"DTSTART;VALUE=DATE:{_date_value(first)}",
            f"DTEND;VALUE=DATE:{_date_value(first + timedelta(days=1))}",
            f"RRULE:FREQ=DAILY;INTERVAL={every}",
            _text("DESCRIPTION", about),
            "TRANSP:TRANSPARENT",
        ]
        return _Event((3, first, rec.id), f"checkin-{_uid_part(rec.id)}@{UID_DOMAIN}", lines)

    def _message(self, m: PlannedMessage) -> _Event:
        # The hot path: about 10,000 calls for a large roster.
        rec = self.roster.recommenders_by_id.get(m.recommender)
        zone: tzinfo = rec.timezone if rec is not None else UTC
        who = _who(rec) if rec is not None else m.recommender
        dt_prop = self.zones.dt_prop
        lines = [
            _text("SUMMARY", self._message_title(m, who)),
            dt_prop("DTSTART", m.send_at, zone),
            dt_prop("DTEND", m.send_at + _MESSAGE_LENGTH, zone),
            _text("DESCRIPTION", f"{m.reason}\nPreview: lormail preview {m.key}"),
            "TRANSP:TRANSPARENT",
        ]
        return _Event((4, m.send_at, m.key), message_uid(m.key), lines)

    def _message_title(self, m: PlannedMessage, who: str) -> str:
        progs = m.programs
        first = self._program_name(progs[0]) if progs else ""
        if m.kind == "reminder":
            label = f"Reminder {m.reminder_number}" if m.reminder_number else "Reminder"
            return f"{label} to {who}" + (f" ({first})" if progs else "")
        if m.kind == "outcome" and m.outcomes:
            parts = ", ".join(f"{self._program_name(p)}: {o}" for p, o in m.outcomes)
            return f"Outcome update to {who} ({parts})"
        title = f"{_KIND_TITLES.get(m.kind, m.kind)} to {who}"
        if len(progs) == 1:
            return f"{title} ({first})"
        if len(progs) > 1:
            return f"{title} ({first} and {len(progs) - 1} more)"
        return title

    def _program_name(self, program_id: str) -> str:
        p = self.roster.programs_by_id.get(program_id)
        return p.name if p is not None else program_id


_KIND_TITLES = {
    "request": "Letter request",
    "packet": "Packet",
    "thank_you": "Thank-you",
    "decline_thanks": "Thank-you",
    "outcome": "Outcome update",
}
_KIND_NOUNS = {
    "request": "the request",
    "packet": "the packet",
    "reminder": "a reminder",
    "thank_you": "a thank-you",
    "decline_thanks": "a thank-you",
    "outcome": "an outcome update",
}


def _who(rec: Recommender) -> str:
    return rec.salutation or rec.name


def _zone_name(zone: tzinfo) -> str:
    return str(getattr(zone, "key", None) or zone)


def _ahead(delta: timedelta) -> str:
    days = delta.days
    if delta == timedelta(days=days):
        return "1 day" if days == 1 else f"{days} days"
    hours = delta.total_seconds() / 3600
    return f"{hours:g} hours" if hours != 1 else "1 hour"


# --- the file ---------------------------------------------------------------


def build_calendar(
    roster: Roster,
    plan: Plan,
    stamps: Mapping[str, EventStamp],
    config: CalendarConfig,
    now: datetime,
    cache: CalendarCache | None = None,
) -> Built:
    """The calendar for ``roster`` and ``plan``, stamped against ``stamps``.

    An event whose content hash matches its stored stamp keeps its SEQUENCE
    and DTSTAMP; a new event gets SEQUENCE 0 and a changed one the stored
    SEQUENCE + 1, both stamped ``now``.  Same inputs, same bytes.

    ``cache`` (an earlier build's :attr:`Built.cache`) changes only the
    speed: a program or recommender whose events are made of the same things
    as then keeps them.  A recommender counts as the same when the entry and
    the programs of their letters are equal to the cached ones.
    """
    now = now.replace(microsecond=0)
    builder = _Builder(roster, config, stamps, now)
    if cache is None or cache.config != config:
        cache = CalendarCache(config, {}, {})
    old_programs, old_recommenders = cache.programs, cache.recommenders

    changed_programs: set[str] = set()
    for p in roster.programs:
        old = old_programs.get(p.id)
        if old is None or not (old.key[0] is p or old.key[0] == p):
            changed_programs.add(p.id)

    by_recommender: dict[str, list[PlannedMessage]] = {}
    for m in plan.messages:
        by_recommender.setdefault(m.recommender, []).append(m)
    recommenders: dict[str, _Group] = {}
    writers: dict[str, list[tuple[Recommender, Letter]]] = {}
    same: set[str] = set()  # recommenders whose entry and programs are the cached ones
    for rec in roster.recommenders:
        messages = tuple(by_recommender.pop(rec.id, ()))
        for letter in rec.letters:
            writers.setdefault(letter.program, []).append((rec, letter))
        old = old_recommenders.get(rec.id)
        if (
            old is not None
            and (old.key[0] is rec or old.key[0] == rec)
            and not any(letter.program in changed_programs for letter in rec.letters)
        ):
            same.add(rec.id)
            if old.key[1] == messages and old.current(stamps):
                recommenders[rec.id] = old
                continue
        recommenders[rec.id] = builder.recommender_group(rec, messages, (rec, messages))

    programs: dict[str, _Group] = {}
    for p in roster.programs:
        letters = writers.get(p.id, [])
        ids = tuple(rec.id for rec, _ in letters)
        old = old_programs.get(p.id)
        if (
            old is not None
            and p.id not in changed_programs
            and old.key[1] == ids
            and same.issuperset(ids)
            and old.current(stamps)
        ):
            programs[p.id] = old
        else:
            programs[p.id] = builder.program_group(p, letters, (p, ids))

    # Each program's deadline, by deadline; then each recommender's events, by id.
    order = sorted(roster.programs, key=lambda p: (p.deadline, p.id))
    groups = [programs[p.id] for p in order]
    groups += [recommenders[rid] for rid in sorted(recommenders)]
    # Messages to nobody in the roster (a plan made for another roster).
    strays = builder.message_events(m for ms in by_recommender.values() for m in ms)
    if strays:
        groups.append(builder.group((), strays))

    head = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        _text("X-WR-CALNAME", "lormail — " + roster.applicant.name),
        "REFRESH-INTERVAL;VALUE=DURATION:PT1H",
        "X-PUBLISHED-TTL:PT1H",
        *(fold(line) for line in _vtimezones(group.zones for group in groups)),
    ]
    body = [group.text for group in groups if group.uids]
    text = "\r\n".join([*head, *body, "END:VCALENDAR"]) + "\r\n"
    cache = CalendarCache(config, programs, recommenders)
    return Built(text.encode(), builder.changed, cache)


def empty_calendar(name: str = "lormail") -> bytes:
    """A valid calendar with no events, e.g. for a feed before the first plan."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        _text("X-WR-CALNAME", name),
        "REFRESH-INTERVAL;VALUE=DURATION:PT1H",
        "X-PUBLISHED-TTL:PT1H",
        "END:VCALENDAR",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()
