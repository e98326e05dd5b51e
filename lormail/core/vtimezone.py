"""VTIMEZONE components made from the system's zoneinfo, in RRULE form.

This module owns one thing: turning an IANA zone and a span of years into a
``VTIMEZONE`` (an icalendar ``Timezone``) that calendar clients read correctly.  The transitions
are found by probing :class:`zoneinfo.ZoneInfo` (which exposes no transition
list) and then expressed as yearly rules, ``FREQ=YEARLY;BYMONTH=3;BYDAY=2SU``,
the form every client understands.  The ``RDATE`` lists that
``icalendar``'s ``add_missing_timezones()`` writes are avoided on purpose:
ical.js 2.2 misreads them (a 09:00 America/Chicago event in September came out
an hour off).

Transitions that follow no weekday rule (a one-off change of a zone's offset)
get a component of their own with a bare ``DTSTART``; that needs no ``RDATE``
either.  The transitions depend only on the zone and the span, so they are
cached; each call makes fresh components.
"""

from __future__ import annotations

import calendar as _stdcal
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from icalendar import Component, Timezone, TimezoneDaylight, TimezoneStandard

_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# Coarse probe step: no zone changes its offset twice within a week, and a
# week keeps a multi-year scan to a few hundred utcoffset() calls.
_STEP = 7 * 86400


@dataclass(frozen=True, slots=True)
class _Transition:
    at: int  # POSIX seconds of the first instant with the new offset
    before: timedelta
    after: timedelta
    dst: bool  # the new offset is daylight time
    name: str  # TZNAME after the change
    local: datetime  # the wall-clock onset, naive, in the offset *before* (RFC 5545)


def _offset(zone: ZoneInfo, ts: int) -> timedelta:
    off = datetime.fromtimestamp(ts, zone).utcoffset()
    return off if off is not None else timedelta(0)


def _transitions(zone: ZoneInfo, start: int, end: int) -> list[_Transition]:
    """Every change of UTC offset (or DST flag or name) between two POSIX times."""
    out: list[_Transition] = []

    def state(ts: int) -> tuple[timedelta, timedelta | None, str | None]:
        local = datetime.fromtimestamp(ts, zone)
        return (local.utcoffset() or timedelta(0), local.dst(), local.tzname())

    lo = start
    lo_state = state(lo)
    while lo < end:
        hi = min(lo + _STEP, end)
        hi_state = state(hi)
        if hi_state != lo_state:
            # Bisect to the second: a is the last second in the old state.
            a, b = lo, hi
            while b - a > 1:
                mid = (a + b) // 2
                if state(mid) == lo_state:
                    a = mid
                else:
                    b = mid
            after = datetime.fromtimestamp(b, zone)
            before_off = lo_state[0]
            out.append(
                _Transition(
                    at=b,
                    before=before_off,
                    after=after.utcoffset() or timedelta(0),
                    dst=bool(after.dst()),
                    name=after.tzname() or "",
                    local=(datetime.fromtimestamp(b, UTC) + before_off).replace(tzinfo=None),
                )
            )
            lo, lo_state = b, state(b)
            continue
        lo, lo_state = hi, hi_state
    return out


def _byday_options(local: datetime) -> frozenset[str]:
    """The weekday rules the onset date satisfies: ``2SU`` and, if last in month, ``-1SU``."""
    day = _DAYS[local.weekday()]
    nth = (local.day - 1) // 7 + 1
    options = set()
    if nth <= 4:
        options.add(f"{nth}{day}")
    if local.day + 7 > _stdcal.monthrange(local.year, local.month)[1]:
        options.add(f"-1{day}")
    return frozenset(options)


@dataclass
class _Group:
    """Transitions that recur yearly by one weekday rule."""

    members: list[_Transition]
    options: frozenset[str]

    def key(self) -> tuple[object, ...]:
        t = self.members[0]
        return (t.dst, t.before, t.after, t.name, t.local.month, t.local.time(), t.local.weekday())


def _group(transitions: list[_Transition]) -> list[_Group]:
    """Gather transitions into yearly weekday rules, in order of first onset."""
    groups: list[_Group] = []
    open_by_key: dict[tuple[object, ...], _Group] = {}
    for t in transitions:
        probe = _Group([t], _byday_options(t.local))
        key = probe.key()
        current = open_by_key.get(key)
        if current is not None:
            last = current.members[-1]
            common = current.options & probe.options
            if last.local.year == t.local.year - 1 and common:
                current.members.append(t)
                current.options = common
                continue
        open_by_key[key] = probe
        groups.append(probe)
    return groups


def _component(group: _Group, open_ended: bool) -> _Part:
    first = group.members[0]
    rule: tuple[tuple[str, object], ...] | None = None
    if len(group.members) > 1 and group.options:
        # Prefer the nth-weekday form ("2SU"); "-1SU" when only "last" fits.
        byday = sorted(group.options, key=lambda o: (o.startswith("-"), o))[0]
        rule = (("FREQ", "YEARLY"), ("BYMONTH", first.local.month), ("BYDAY", byday))
        if not open_ended:
            # Any UNTIL between the last onset and the next year's gives the
            # same onsets; a day after the last one is right both for readers
            # that compare it with the onset's UTC instant (as RFC 5545 says)
            # and for those that compare it with the wall-clock time.
            last = group.members[-1]
            rule += (("UNTIL", datetime.fromtimestamp(last.at + 86400, UTC)),)
    return _Part(first.dst, first.local, first.before, first.after, first.name, rule)


def _base(zone: ZoneInfo, ts: int, since_1970: bool) -> _Part:
    start = datetime.fromtimestamp(ts, zone)
    off = start.utcoffset() or timedelta(0)
    onset = datetime(1970, 1, 1) if since_1970 else start.replace(tzinfo=None)
    return _Part(bool(start.dst()), onset, off, off, start.tzname() or "", None)


@dataclass(frozen=True, slots=True)
class _Part:
    """One STANDARD or DAYLIGHT component."""

    dst: bool
    onset: datetime  # naive wall-clock time, in the offset before
    before: timedelta
    after: timedelta
    name: str
    rule: tuple[tuple[str, object], ...] | None  # the RRULE's parts

    def component(self) -> Component:
        part = TimezoneDaylight() if self.dst else TimezoneStandard()
        part.add("DTSTART", self.onset)
        if self.rule is not None:
            part.add("RRULE", dict(self.rule))
        part.add("TZOFFSETFROM", self.before)
        part.add("TZOFFSETTO", self.after)
        if self.name:
            part.add("TZNAME", self.name)
        return part


@lru_cache(maxsize=256)
def _parts(key: str, first_year: int, last_year: int) -> tuple[_Part, ...]:
    zone = ZoneInfo(key)
    parts: list[_Part] = []
    # Scan from a year early, so that the rules in force on 1 Jan first_year
    # have an onset before it (in Sydney the first change of a year is April's).
    # Two days' slack covers every zone's offset from UTC.
    span_start = int(datetime(first_year, 1, 1, tzinfo=UTC).timestamp()) - 2 * 86400
    transitions = _transitions(
        zone,
        int(datetime(first_year - 1, 1, 1, tzinfo=UTC).timestamp()),
        int(datetime(last_year + 1, 1, 1, tzinfo=UTC).timestamp()),
    )
    if not transitions or transitions[0].at > span_start:
        # No change before the span: the offset in force at its start, from
        # then on (from 1970 for a zone without changes, like Asia/Kolkata).
        parts.append(_base(zone, span_start, since_1970=not transitions))
    for group in _group(transitions):
        open_ended = group.members[-1].local.year >= last_year
        parts.append(_component(group, open_ended))
    return tuple(parts)


def vtimezone(key: str, first_year: int, last_year: int) -> Timezone:
    """A VTIMEZONE for zone ``key``, as an icalendar component.

    It is right for every instant from 1 Jan ``first_year`` to 31 Dec
    ``last_year``; the rules still in force at the end continue without
    ``UNTIL``, so times past the span keep the current rules.
    """
    tz = Timezone()
    tz.add("TZID", key)
    for part in _parts(key, first_year, last_year):
        tz.add_component(part.component())
    return tz
