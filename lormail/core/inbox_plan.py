"""What the inbox's events do to a plan (SPEC §8): pure, like the planner itself.

- An ``auto_reply`` with ``until`` makes the recommender unavailable from the
  message's date through the day before ``until`` (in their zone), exactly
  like an ``unavailable`` range: :func:`with_inbox` adds the range.
- A ``portal`` event counts its letter as submitted on the message's date
  unless the roster already gives a date: :func:`with_inbox` fills it in.
- A ``reply`` holds the recommender's reminders and request follow-ups for
  ``reply_hold`` after it, until their roster entry changes; a ``bounce``
  holds all their messages until their address changes: :func:`holds` says
  which, and :func:`apply_holds` marks those messages ``held``.

Events reach the planner in the state snapshot; nothing here reads the clock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from lormail.model import (
    DUE,
    HELD,
    SCHEDULED,
    InboxEvent,
    PlannedMessage,
    Recommender,
    Roster,
    Unavailable,
)

__all__ = [
    "HELD",
    "Hold",
    "apply_holds",
    "bounce_holds",
    "entry_digest",
    "holds",
    "portal_confirmed",
    "reply_holds",
    "reply_times",
    "with_inbox",
]

# Kinds a reply holds; a bounce holds every kind.
REPLY_HELD_KINDS = frozenset({"reminder", "request_followup"})
_OPEN = (SCHEDULED, DUE)


def _plain(value: object) -> object:
    """``value`` as JSON-able data, the same on every run (sets sorted)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, frozenset | set):
        return sorted((_plain(v) for v in value), key=repr)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, ZoneInfo):
        return value.key
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value if isinstance(value, str | int | float | bool | type(None)) else repr(value)


def entry_digest(r: Recommender) -> str:
    """A short digest of everything in the recommender's roster entry: any edit changes it."""
    text = json.dumps(_plain(r), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _day(instant: datetime, zone: ZoneInfo) -> date:
    return instant.astimezone(zone).date()


def _short(day: date) -> str:
    return f"{day.day} {day:%b}"


def portal_confirmed(roster: Roster, events: Iterable[InboxEvent]) -> dict[tuple[str, str], date]:
    """(recommender, letter key) → the day a portal mail confirmed that letter: the
    message's date in the recommender's zone, the earliest mail's (a later one is a
    repeat).  Letters the roster already dates are in it too."""
    submitted: dict[tuple[str, str], date] = {}
    by_id = roster.recommenders_by_id
    for e in events:
        r = by_id.get(e.recommender or "")
        if r is None or e.at is None or e.kind != "portal" or e.letter is None:
            continue
        day = _day(e.at, r.timezone)
        key = (r.id, e.letter)
        submitted[key] = min(day, submitted.get(key, day))
    return submitted


def with_inbox(roster: Roster, events: Iterable[InboxEvent]) -> Roster:
    """The roster with the absences auto-replies named and the letters portals confirmed."""
    events = tuple(events)
    away: dict[str, list[Unavailable]] = {}
    submitted = portal_confirmed(roster, events)
    by_id = roster.recommenders_by_id
    for e in events:
        r = by_id.get(e.recommender or "")
        if r is None or e.at is None:
            continue
        start = _day(e.at, r.timezone)
        if e.kind == "auto_reply" and e.until is not None and e.until > start:
            note = f"absence (automatic reply of {_short(start)})"
            away.setdefault(r.id, []).append(Unavailable(start, e.until - timedelta(days=1), note))
    if not away and not submitted:
        return roster
    recommenders = []
    for r in roster.recommenders:
        letters = tuple(
            replace(letter, submitted_on=submitted[(r.id, letter.key)])
            if letter.submitted_on is None and (r.id, letter.key) in submitted
            else letter
            for letter in r.letters
        )
        extra = tuple(away.get(r.id, ()))
        if extra or letters != r.letters:
            r = replace(r, letters=letters, unavailable=r.unavailable + extra)
        recommenders.append(r)
    return replace(roster, recommenders=tuple(recommenders), recommenders_by_id={})


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a recommender's messages wait, and until when (None: until the roster changes)."""

    until: datetime | None
    reason: str
    kinds: frozenset[str] | None  # the kinds held; None: every kind


def bounce_holds(r: Recommender, e: InboxEvent) -> bool:
    """Whether ``e`` is a bounce of ``r``'s address as the roster has it now."""
    return e.kind == "bounce" and e.address is not None and e.address.lower() == r.email.lower()


def reply_holds(r: Recommender, e: InboxEvent, now: datetime) -> bool:
    """Whether ``e`` is a reply of ``r`` that still holds at ``now``: within ``reply_hold``
    and with ``r``'s roster entry as it was when the reply was recorded."""
    return (
        e.kind == "reply"
        and e.at is not None
        and e.at + r.policy.reply_hold > now
        and e.entry == entry_digest(r)
    )


def holds(roster: Roster, events: Iterable[InboxEvent], now: datetime) -> dict[str, Hold]:
    """The holds in force at ``now``, by recommender id; a bounce outranks a reply."""
    out: dict[str, Hold] = {}
    by_id = roster.recommenders_by_id
    for e in events:
        r = by_id.get(e.recommender or "")
        if r is None or e.at is None:
            continue
        if bounce_holds(r, e):
            day = _short(_day(e.at, r.timezone))
            out[r.id] = Hold(
                None,
                f"held: mail to {r.email} bounced on {day}; correct the address in the roster",
                None,
            )
        elif reply_holds(r, e, now):
            until = e.at + r.policy.reply_hold
            current = out.get(r.id)
            if current is not None and current.until is None:
                continue
            if current is not None and current.until is not None and current.until >= until:
                continue
            day = _short(_day(e.at, r.timezone))
            end = _short(_day(until, r.timezone))
            name = r.salutation or r.name
            out[r.id] = Hold(
                until,
                f"held: {name} replied on {day}; reminders wait until {end} "
                "or until you update the roster",
                REPLY_HELD_KINDS,
            )
    return out


def apply_holds(
    messages: Iterable[PlannedMessage], in_force: Mapping[str, Hold]
) -> tuple[PlannedMessage, ...]:
    """Messages still to go that a hold covers become ``held``: ``send_at`` is the hold's end
    (or the time they would have had, with ``None`` meaning no end, for a bounce)."""
    out = []
    for m in messages:
        hold = in_force.get(m.recommender)
        if (
            hold is None
            or m.status not in _OPEN
            or (hold.kinds is not None and m.kind not in hold.kinds)
            or (hold.until is not None and m.send_at >= hold.until)
        ):
            out.append(m)
            continue
        out.append(
            replace(
                m,
                status=HELD,
                send_at=hold.until or m.send_at,
                reason=hold.reason,
                held_open=hold.until is None,
            )
        )
    return tuple(out)


def reply_times(events: Iterable[InboxEvent], recommender: str) -> list[datetime]:
    """When the recommender replied: each counts as a message for ``min_gap``."""
    return [e.at for e in events if e.kind == "reply" and e.recommender == recommender and e.at]
