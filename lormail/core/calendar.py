"""The calendar: (roster, plan, stored event stamps, now) → the bytes of one .ics.

A pure builder (SPEC §5), made with the icalendar package and built from
scratch each time.  It owns what the calendar says — which events exist, their
stable UIDs, titles, descriptions, alarms and zones — and the SEQUENCE/DTSTAMP
bookkeeping: an event's content (everything but its ``UID``, ``DTSTAMP``,
``SEQUENCE`` and ``LAST-MODIFIED``) is hashed, and only when the hash differs
from the stored one does its ``SEQUENCE`` rise and its stamp become ``now``.
The caller stores the stamps that changed.

Events:

* ``deadline-<program>@lormail``: each program deadline (all-day when it is a
  date), its letters' states in the description, a ``VALARM`` per alarm.
* ``ask-<recommender>@lormail``: "Ask Dr. X for a letter", all-day on the
  ask-by date, for each ``planned`` recommender.
* ``waiting-<recommender>@lormail``: instead, once the request e-mail went to
  a ``planned`` recommender, "Waiting for Dr. X's answer", all-day from that
  day to their first deadline, until the roster says they answered.
* ``msg-<hash of key>@lormail``: each scheduled or due message, 15 minutes,
  transparent, in the recipient's zone (only with ``include_messages``).
* ``away-<recommender>-<first day>@lormail``: each ``unavailable`` range.
* ``blackout-<first day>-<last day>@lormail``: each ``defaults: unavailable``
  range, when lormail writes to no one.
* ``holiday-<day>@lormail``: each public holiday on which a recommender with a
  letter to come gets nothing, from today to their last open deadline.
* ``reply-<hash>@lormail`` and ``bounce-<hash>@lormail``: what the inbox
  read (:mod:`lormail.core.inbox_calendar`): "Dr. X replied — update the
  roster" while the reply holds their reminders, "Dr. X's address bounced:
  5.1.1 …" until the address changes.
* ``checkin-<recommender>@lormail``: "Check in with Dr. X", one all-day event
  recurring every ``check_in_every`` days (``RRULE:FREQ=DAILY;INTERVAL=N``)
  from that many days after the last message to them, sent or planned.  A
  rule rather than one upcoming event, so the event does not change (and
  clients are not re-notified) as time passes; it moves only when a new
  message is planned or sent.

Ids that are not plain tokens and message keys are hashed into UIDs; no e-mail
address ever appears in a UID.  Times in a named zone carry its ``TZID`` and
the calendar a ``VTIMEZONE`` for it (:mod:`lormail.core.vtimezone`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from icalendar import Alarm, Calendar, Event, vDuration

from lormail import __version__
from lormail.core.daysoff import blackouts, holidays
from lormail.core.ical import (
    UID_DOMAIN,
    CalEvent,
    all_day,
    clean_text,
    message_uid,
    text_event,
    uid_part,
    who,
)
from lormail.core.inbox_calendar import inbox_events
from lormail.core.inbox_plan import with_inbox
from lormail.core.plan import ask_by_date
from lormail.core.slots import day_label
from lormail.core.vtimezone import vtimezone
from lormail.model import (
    DUE,
    SCHEDULED,
    SENT,
    CalendarConfig,
    EventStamp,
    InboxEvent,
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
# Zones written as UTC ("…Z") rather than with a TZID and a VTIMEZONE.
_UTC_KEYS = frozenset(
    {"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"}
)
# Plan statuses that put an event on the calendar, and that count as "the
# last message" for the check-in rule.
_SHOWN = frozenset({SCHEDULED, DUE})
_LAST_MESSAGE = frozenset({SCHEDULED, DUE, SENT})


@dataclass(frozen=True)
class Built:
    """The calendar's bytes, and the stamps of the events that are new or changed."""

    data: bytes
    changed: Mapping[str, EventStamp]


# --- the events -------------------------------------------------------------


@dataclass
class _Builder:
    """Turns the roster and plan into events; one instance per build."""

    roster: Roster
    config: CalendarConfig
    now: datetime
    zones: dict[str, tuple[int, int]] = field(default_factory=dict)  # zone → years used
    _ask_by: dict[str, date | None] = field(default_factory=dict)

    def local(self, instant: datetime, zone: tzinfo) -> datetime:
        """``instant`` as it is written: in ``zone`` (noting its year), or in UTC."""
        key = getattr(zone, "key", None)
        if not isinstance(zone, ZoneInfo) or key is None or key in _UTC_KEYS:
            return instant.astimezone(UTC)
        local = instant.astimezone(zone)
        lo, hi = self.zones.get(key, (local.year, local.year))
        self.zones[key] = (min(lo, local.year), max(hi, local.year))
        return local

    def ask_by(self, rec: Recommender) -> date | None:
        """The ask-by date of a ``planned`` recommender."""
        if rec.status != "planned":
            return None
        if rec.id not in self._ask_by:
            self._ask_by[rec.id] = ask_by_date(rec, self.roster)
        return self._ask_by[rec.id]

    def recommender_events(
        self, rec: Recommender, messages: Sequence[PlannedMessage], inbox: Sequence[CalEvent]
    ) -> list[CalEvent]:
        out: list[CalEvent] = list(inbox)
        request = next((m for m in messages if m.kind == "request" and m.status == SENT), None)
        ask = self.ask_by(rec)
        if request is not None and rec.status == "planned":
            out.append(self._waiting(rec, request))
        elif ask is not None:
            out.append(self._ask(rec, ask))
        out.extend(self._away(rec))
        check_in = self._check_in(rec, messages)
        if check_in is not None:
            out.append(check_in)
        out.extend(self.message_events(messages))
        return sorted(out, key=lambda ev: ev.order)

    def message_events(self, messages: Iterable[PlannedMessage]) -> list[CalEvent]:
        if not self.config.include_messages:
            return []
        return sorted((self._message(m) for m in messages if m.status in _SHOWN), key=_order)

    def deadline(self, p: Program, letters: Iterable[tuple[Recommender, Letter]]) -> CalEvent:
        local = p.deadline.astimezone(p.timezone)
        if p.deadline_is_date:
            about = [f"Due by the end of {day_label(local.date())} ({_zone_name(p.timezone)})."]
        else:
            about = [f"Due {day_label(local.date())} at {local:%H:%M} ({_zone_name(p.timezone)})."]
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
        ev = text_event("Deadline: " + p.name, "\n".join(about))
        if p.deadline_is_date:
            all_day(ev, local.date(), local.date())
        else:
            ev.add("DTSTART", self.local(p.deadline, p.timezone))
        for ahead in self.config.alarms:
            alarm = Alarm()
            alarm.add("ACTION", "DISPLAY")
            alarm.add("DESCRIPTION", clean_text(f"{p.name}: deadline in {_ahead(ahead)}"))
            alarm.add("TRIGGER", -ahead)
            ev.add_component(alarm)
        return CalEvent((p.deadline, p.id), f"deadline-{uid_part(p.id)}@{UID_DOMAIN}", ev)

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
        shared = ""
        if letter.due is not None and len(letter.programs) == 1:  # the applicant's own date
            shared = f" (wanted by {day_label(letter.deadline_date)})"
        elif len(letter.programs) > 1:
            # One upload for several programs: say so in each program's event.
            shared = (
                f" (one letter, {letter.name}, for {len(letter.programs)} programs,"
                f" due {day_label(letter.deadline_date)})"
            )
        return f"{rec.name}{ref}: {state}{shared}"

    def _ask(self, rec: Recommender, day: date) -> CalEvent:
        about = [f"Ask {rec.name} for a letter by {day_label(day)}."]
        if rec.ask_by_email:
            sent_on = rec.ask_on or day
            about.append(f"lormail e-mails the request on {day_label(sent_on)}.")
        about.append("For:")
        for lt in sorted(rec.letters, key=lambda lt: (lt.deadline, lt.key)):
            more = f", {len(lt.programs)} programs" if len(lt.programs) > 1 else ""
            about.append(f"- {lt.name} (deadline {day_label(lt.deadline_date)}{more})")
        ev = all_day(text_event(f"Ask {who(rec)} for a letter", "\n".join(about)), day, day)
        return CalEvent((1, day), f"ask-{uid_part(rec.id)}@{UID_DOMAIN}", ev)

    def _waiting(self, rec: Recommender, request: PlannedMessage) -> CalEvent:
        """From the day the request went until their first deadline: the answer is awaited."""
        sent_day = request.send_at.astimezone(rec.timezone).date()
        deadlines = sorted(lt.deadline_date for lt in rec.letters)
        last = next((d for d in deadlines if d >= sent_day), sent_day)
        about = (
            f"lormail e-mailed {rec.name} the request on {day_label(sent_day)}. Once they "
            f"answer, mark it in the roster (status: agreed or declined)."
        )
        ev = all_day(text_event(f"Waiting for {who(rec)}'s answer", about), sent_day, last)
        return CalEvent((1, sent_day), f"waiting-{uid_part(rec.id)}@{UID_DOMAIN}", ev)

    def _away(self, rec: Recommender) -> Iterable[CalEvent]:
        seen: set[str] = set()
        for spell in sorted(rec.unavailable, key=lambda u: (u.start, u.end, u.note)):
            uid = f"away-{uid_part(rec.id)}-{spell.start:%Y%m%d}"
            n = 2
            while uid in seen:  # two spells starting the same day
                uid = f"away-{uid_part(rec.id)}-{spell.start:%Y%m%d}-{n}"
                n += 1
            seen.add(uid)
            title = f"{who(rec)} away" + (f": {spell.note}" if spell.note else "")
            about = (
                f"{rec.name} is unavailable {day_label(spell.start)} – "
                f"{day_label(spell.end)}; lormail sends them nothing then."
            )
            ev = all_day(text_event(title, about), spell.start, spell.end)
            yield CalEvent((2, spell.start, uid), f"{uid}@{UID_DOMAIN}", ev)

    def _check_in(self, rec: Recommender, messages: Iterable[PlannedMessage]) -> CalEvent | None:
        every = rec.policy.check_in_every
        if every <= 0:
            return None
        last = max(
            (m for m in messages if m.status in _LAST_MESSAGE),
            key=lambda m: (m.send_at, m.key),
            default=None,
        )
        if last is None:
            return None
        sent_day = last.send_at.astimezone(rec.timezone).date()
        first = sent_day + timedelta(days=every)
        verb = "sent" if last.status == SENT else "planned"
        about = (
            f"Stay in touch with {rec.name}: every {every} days after your last "
            f"message to them ({_KIND_NOUNS.get(last.kind, last.kind)}, {verb} for "
            f"{day_label(sent_day)})."
        )
        ev = all_day(text_event(f"Check in with {who(rec)}", about), first, first)
        ev.add("RRULE", {"FREQ": "DAILY", "INTERVAL": every})
        return CalEvent((3, first), f"checkin-{uid_part(rec.id)}@{UID_DOMAIN}", ev)

    def _message(self, m: PlannedMessage) -> CalEvent:
        rec = self.roster.recommenders_by_id.get(m.recommender)
        zone: tzinfo = rec.timezone if rec is not None else UTC
        to = who(rec) if rec is not None else m.recommender
        ev = text_event(self._message_title(m, to), f"{m.reason}\nPreview: lormail preview {m.key}")
        ev.add("DTSTART", self.local(m.send_at, zone))
        ev.add("DTEND", self.local(m.send_at + _MESSAGE_LENGTH, zone))
        return CalEvent((4, m.send_at, m.key), message_uid(m.key), ev)

    def _message_title(self, m: PlannedMessage, to: str) -> str:
        names = self._about(m)
        about = ""
        if len(names) == 1:
            about = f" ({names[0]})"
        elif len(names) > 1:
            about = f" ({names[0]} and {len(names) - 1} more)"
        if m.kind == "reminder":
            label = f"Reminder {m.reminder_number}" if m.reminder_number else "Reminder"
            return f"{label} to {to}{about}"
        if m.kind == "outcome" and m.outcomes:
            parts = ", ".join(f"{self._program_name(p)}: {o}" for p, o in m.outcomes)
            return f"Outcome update to {to} ({parts})"
        return f"{_KIND_TITLES.get(m.kind, m.kind)} to {to}{about}"

    def _about(self, m: PlannedMessage) -> list[str]:
        """What a message is about: its letters' names, else its programs' names."""
        rec = self.roster.recommenders_by_id.get(m.recommender)
        if m.letters and rec is not None:
            found = {lt.key: lt.name for lt in rec.letters}
            return [found.get(key, key) for key in m.letters]
        return [self._program_name(p) for p in m.programs]

    def _program_name(self, program_id: str) -> str:
        p = self.roster.programs_by_id.get(program_id)
        return p.name if p is not None else program_id


_KIND_TITLES = {
    "request": "Letter request",
    "request_followup": "Follow-up on the request",
    "packet": "Packet",
    "thank_you": "Thank-you",
    "decline_thanks": "Thank-you",
    "outcome": "Outcome update",
}
_KIND_NOUNS = {
    "request": "the request",
    "request_followup": "a follow-up",
    "packet": "the packet",
    "reminder": "a reminder",
    "thank_you": "a thank-you",
    "decline_thanks": "a thank-you",
    "outcome": "an outcome update",
}


def _order(ev: CalEvent) -> tuple[object, ...]:
    return ev.order


def _zone_name(zone: tzinfo) -> str:
    return str(getattr(zone, "key", None) or zone)


def _ahead(delta: timedelta) -> str:
    days = delta.days
    if delta == timedelta(days=days):
        return "1 day" if days == 1 else f"{days} days"
    hours = delta.total_seconds() / 3600
    return f"{hours:g} hours" if hours != 1 else "1 hour"


# --- stamps and the file ------------------------------------------------------


def _stamped(
    ev: CalEvent, stamps: Mapping[str, EventStamp], now: datetime, changed: dict[str, EventStamp]
) -> Event:
    """The event with its UID and stamp: the stored one while its content is the
    same, else SEQUENCE 0 (new) or the stored SEQUENCE + 1 (changed), at ``now``."""
    # The content lines unfolded: the same text as the file's, without folding
    # it a second time (folding walks every character; the file folds it once).
    content = "\r\n".join(ev.event.content_lines()).encode()
    digest = hashlib.blake2b(content, digest_size=16).hexdigest()
    stamp = stamps.get(ev.uid)
    if stamp is None or stamp.hash != digest:
        seq = 0 if stamp is None else stamp.sequence + 1
        stamp = changed[ev.uid] = EventStamp(digest, seq, now)
    out = ev.event
    out.add("UID", ev.uid)
    out.add("DTSTAMP", stamp.stamp.astimezone(UTC))
    out.add("SEQUENCE", stamp.sequence)
    out.add("LAST-MODIFIED", stamp.stamp.astimezone(UTC))
    return out


def _calendar(name: str) -> Calendar:
    cal = Calendar()
    cal.add("VERSION", "2.0")
    cal.add("PRODID", PRODID)
    cal.add("CALSCALE", "GREGORIAN")
    cal.add("X-WR-CALNAME", clean_text(name))
    cal.add("REFRESH-INTERVAL", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    cal.add("X-PUBLISHED-TTL", vDuration(timedelta(hours=1)))
    return cal


def build_calendar(
    roster: Roster,
    plan: Plan,
    stamps: Mapping[str, EventStamp],
    config: CalendarConfig,
    now: datetime,
    inbox: Sequence[InboxEvent] = (),
) -> Built:
    """The calendar for ``roster`` and ``plan``, stamped against ``stamps``.

    ``inbox`` is what the inbox recorded: the absences auto-replies named and
    the letters portals confirmed show as the plan sees them, and replies and
    bounces that still hold messages get their own events.

    An event whose content hash matches its stored stamp keeps its SEQUENCE
    and DTSTAMP; a new event gets SEQUENCE 0 and a changed one the stored
    SEQUENCE + 1, both stamped ``now``.  Same inputs, same bytes.
    """
    now = now.replace(microsecond=0)
    own = roster  # the entries as written, which the inbox's events were recorded against
    roster = with_inbox(roster, inbox)
    builder = _Builder(roster, config, now)
    by_recommender: dict[str, list[PlannedMessage]] = {}
    for m in plan.messages:
        by_recommender.setdefault(m.recommender, []).append(m)
    told: dict[str, list[InboxEvent]] = {}
    for e in inbox:
        told.setdefault(e.recommender or "", []).append(e)
    writers: dict[str, list[tuple[Recommender, Letter]]] = {}
    for rec in roster.recommenders:
        for letter in rec.letters:
            for pid in letter.programs:
                writers.setdefault(pid, []).append((rec, letter))

    # Each program's deadline, by deadline; the days nobody gets mail; then each
    # recommender's events, by id; then messages to nobody in the roster (a plan
    # made for another roster).
    events = [
        builder.deadline(p, writers.get(p.id, []))
        for p in sorted(roster.programs, key=lambda p: (p.deadline, p.id))
    ]
    events += blackouts(roster) + holidays(roster, now)
    for rec in sorted(roster.recommenders, key=lambda r: r.id):
        shown = inbox_events(own.recommenders_by_id[rec.id], told.get(rec.id, ()), now)
        events += builder.recommender_events(rec, by_recommender.pop(rec.id, ()), shown)
    events += builder.message_events(m for ms in by_recommender.values() for m in ms)

    cal = _calendar("lormail — " + roster.applicant.name)
    for key in sorted(builder.zones):
        lo, hi = builder.zones[key]
        # A year past the last event: the yearly rules are then seen to
        # recur, whatever the last event's month.
        cal.add_component(vtimezone(key, lo, hi + 1))
    changed: dict[str, EventStamp] = {}
    for ev in events:
        cal.add_component(_stamped(ev, stamps, now, changed))
    return Built(cal.to_ical(), changed)


def empty_calendar(name: str = "lormail") -> bytes:
    """A valid calendar with no events, e.g. for a feed before the first plan."""
    data: bytes = _calendar(name).to_ical()
    return data
