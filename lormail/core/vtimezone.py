"""VTIMEZONE components written from the system's zoneinfo, in RRULE form.

This module owns one thing: turning an IANA zone and a span of years into the
text of a ``VTIMEZONE`` that calendar clients read correctly.  The transitions
are found by probing :class:`zoneinfo.ZoneInfo` (which exposes no transition
list) and then expressed as yearly rules, ``FREQ=YEARLY;BYMONTH=3;BYDAY=2SU``,
the form every client understands.  The ``RDATE`` lists that
``icalendar``'s ``add_missing_timezones()`` writes are avoided on purpose:
ical.js 2.2 misreads them (a 09:00 America/Chicago event in September came out
an hour off).

Transitions that follow no weekday rule (a one-off change of a zone's offset)
get a component of their own with a bare ``DTSTART``; that needs no ``RDATE``
either.  The result depends only on the zone and the span, so it is cached.
"""

from __future__ import annotations

import calendar as _stdcal
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

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


def _fmt_offset(off: timedelta) -> str:
    total = int(off.total_seconds())
    sign = "-" if total < 0 else "+"
    total = abs(total)
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    return f"{sign}{h:02d}{m:02d}" + (f"{s:02d}" if s else "")


def _fmt_local(dt: datetime) -> str:
    return dt.strftime("%Y%m%dT%H%M%S")


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")


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


def _component(group: _Group, open_ended: bool) -> list[str]:
    first = group.members[0]
    kind = "DAYLIGHT" if first.dst else "STANDARD"
    lines = [
        f"BEGIN:{kind}",
        f"DTSTART:{_fmt_local(first.local)}",
    ]
    if len(group.members) > 1 and group.options:
        # Prefer the nth-weekday form ("2SU"); "-1SU" when only "last" fits.
        byday = sorted(group.options, key=lambda o: (o.startswith("-"), o))[0]
        rule = f"RRULE:FREQ=YEARLY;BYMONTH={first.local.month};BYDAY={byday}"
        if not open_ended:
            # Any UNTIL between the last onset and the next year's gives the
            # same onsets; a day after the last one is right both for readers
            # that compare it with the onset's UTC instant (as RFC 5545 says)
            # and for those that compare it with the wall-clock time.
            last = group.members[-1]
            until = datetime.fromtimestamp(last.at + 86400, UTC).strftime("%Y%m%dT%H%M%SZ")
            rule += f";UNTIL={until}"
        lines.append(rule)
    lines += [
        f"TZOFFSETFROM:{_fmt_offset(first.before)}",
        f"TZOFFSETTO:{_fmt_offset(first.after)}",
    ]
    if first.name:
        lines.append(f"TZNAME:{_escape(first.name)}")
    lines.append(f"END:{kind}")
    return lines


def _base(zone: ZoneInfo, ts: int, since_1970: bool) -> list[str]:
    start = datetime.fromtimestamp(ts, zone)
    off = start.utcoffset() or timedelta(0)
    kind = "DAYLIGHT" if start.dst() else "STANDARD"
    onset = "19700101T000000" if since_1970 else _fmt_local(start.replace(tzinfo=None))
    lines = [
        f"BEGIN:{kind}",
        f"DTSTART:{onset}",
        f"TZOFFSETFROM:{_fmt_offset(off)}",
        f"TZOFFSETTO:{_fmt_offset(off)}",
    ]
    if start.tzname():
        lines.append(f"TZNAME:{_escape(start.tzname() or '')}")
    lines.append(f"END:{kind}")
    return lines


@lru_cache(maxsize=256)
def vtimezone_lines(key: str, first_year: int, last_year: int) -> tuple[str, ...]:
    """The unfolded content lines of a VTIMEZONE for zone ``key``.

    It is right for every instant from 1 Jan ``first_year`` to 31 Dec
    ``last_year``; the rules still in force at the end continue without
    ``UNTIL``, so times past the span keep the current rules.
    """
    zone = ZoneInfo(key)
    lines = ["BEGIN:VTIMEZONE", f"TZID:{key}"]
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
        lines += _base(zone, span_start, since_1970=not transitions)
    groups = _group(transitions)
    for group in groups:
        open_ended = group.members[-1].local.year >= last_year
        lines += _component(group, open_ended)
    lines.append("END:VTIMEZONE")
    return tuple(lines)
