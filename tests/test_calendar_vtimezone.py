"""VTIMEZONEs in RRULE form: right offsets for every zone, read back two independent ways.

Without Node: icalendar builds a tzinfo from the VTIMEZONE itself (not from its
TZID) and must agree with zoneinfo.  With Node: ical.js, as Thunderbird uses it,
must place wall-clock times in every IANA zone at the instant zoneinfo does.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

import icalendar
import pytest

from lormail.core.vtimezone import vtimezone_lines
from tests._cal_helpers import run_icaljs

FIRST, LAST = 2025, 2028
ZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Sydney",
    "Australia/Lord_Howe",  # 30-minute DST
    "America/St_Johns",  # -03:30
    "Asia/Kathmandu",  # +05:45
    "Pacific/Auckland",
    "Pacific/Chatham",
    "America/Santiago",
    "Asia/Jerusalem",  # "Friday on or after the 23rd"
    "Europe/Dublin",  # negative DST in the tz database
    "Africa/Casablanca",  # Ramadan changes: no weekday rule
    "America/Sao_Paulo",  # DST abolished in 2019
    "Asia/Tehran",  # DST abolished in 2022
    "UTC",
]


def vtimezone_text(key: str) -> str:
    return "\r\n".join(vtimezone_lines(key, FIRST, LAST)) + "\r\n"


def wrap(body: str) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n" + body + "END:VCALENDAR\r\n"
    ).encode()


def test_rrule_form_for_dst_zones_and_single_standard_otherwise() -> None:
    ny = vtimezone_text("America/New_York")
    assert "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\n" in ny
    assert "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\n" in ny
    assert "RDATE" not in ny
    london = vtimezone_text("Europe/London")
    assert "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n" in london
    assert "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\n" in london
    sydney = vtimezone_text("Australia/Sydney")
    assert "BEGIN:DAYLIGHT\r\nDTSTART:20241006T020000\r\n" in sydney
    assert "RRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU\r\n" in sydney
    assert vtimezone_text("Asia/Kolkata") == (
        "BEGIN:VTIMEZONE\r\nTZID:Asia/Kolkata\r\nBEGIN:STANDARD\r\n"
        "DTSTART:19700101T000000\r\nTZOFFSETFROM:+0530\r\nTZOFFSETTO:+0530\r\n"
        "TZNAME:IST\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    )


def test_dtstart_is_local_time_before_the_change() -> None:
    # US: 2 a.m. EST becomes 3 a.m. EDT; 2 a.m. EDT becomes 1 a.m. EST.
    ny = vtimezone_text("America/New_York")
    assert re.search(r"DTSTART:20240310T020000\r\nRRULE:[^\r]*\r\nTZOFFSETFROM:-0500", ny)
    assert re.search(r"DTSTART:20241103T020000\r\nRRULE:[^\r]*\r\nTZOFFSETFROM:-0400", ny)


def _samples() -> list[datetime]:
    start = datetime(FIRST, 1, 2, tzinfo=UTC)
    end = datetime(LAST, 12, 30, tzinfo=UTC)
    out, t = [], start
    while t < end:
        out.append(t)
        t += timedelta(hours=7)  # drifts across every hour of the day
    return out


@pytest.mark.parametrize("key", ZONES)
def test_icalendar_reads_the_same_offsets_as_zoneinfo(key: str) -> None:
    cal = icalendar.Calendar.from_ical(wrap(vtimezone_text(key)))
    (vtz,) = cal.timezones
    ours = vtz.to_tz(lookup_tzid=False)  # built from our components, not the TZID
    real = ZoneInfo(key)
    for t in _samples():
        assert t.astimezone(ours).utcoffset() == t.astimezone(real).utcoffset(), (key, t)


def _clear_local_times(zone: ZoneInfo) -> list[str]:
    """Wall-clock times that exist exactly once: mid-month noons, and hours around changes."""
    picks: list[datetime] = []
    for year in range(FIRST, LAST + 1):
        for month in range(1, 13):
            for day in (1, 15):
                picks.append(datetime(year, month, day, 12))
    day = datetime(FIRST, 1, 1, tzinfo=UTC)
    prev = day.astimezone(zone).utcoffset()
    while day.year <= LAST:
        nxt = day + timedelta(days=1)
        if nxt.astimezone(zone).utcoffset() != prev:
            t = day
            while t.astimezone(zone).utcoffset() == prev:  # the hour it changed
                t += timedelta(hours=1)
            local = t.astimezone(zone).replace(tzinfo=None)
            picks += [local + timedelta(hours=h) for h in (-4, -3, 3, 4)]
            prev = t.astimezone(zone).utcoffset()
        day = nxt
    out = []
    for local in picks:
        a = local.replace(tzinfo=zone, fold=0)
        b = local.replace(tzinfo=zone, fold=1)
        if a.utcoffset() != b.utcoffset():
            continue  # ambiguous or non-existent
        if a.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local:
            continue
        if FIRST <= local.year <= LAST:
            out.append(local.strftime("%Y-%m-%dT%H:%M:%S"))
    return out


@pytest.mark.real
@pytest.mark.slow
def test_icaljs_places_wall_clock_times_like_zoneinfo_in_every_zone(tmp_path: Path) -> None:
    keys = sorted(k for k in available_timezones() if not k.startswith(("posix", "right")))
    body = "".join(vtimezone_text(k) for k in keys)
    ics = tmp_path / "zones.ics"
    ics.write_bytes(wrap(body))
    queries, expected = [], []
    for key in keys:
        zone = ZoneInfo(key)
        for local in _clear_local_times(zone):
            queries.append({"tzid": key, "local": local})
            expected.append(int(datetime.fromisoformat(local).replace(tzinfo=zone).timestamp()))
    qfile = tmp_path / "queries.json"
    qfile.write_text(json.dumps(queries))
    answers = run_icaljs(ics, str(qfile))["answers"]
    wrong = [
        (q["tzid"], q["local"], (a - e) / 3600)
        for q, a, e in zip(queries, answers, expected, strict=True)
        if a != e
    ]
    assert not wrong, f"{len(wrong)} of {len(queries)} wrong, e.g. {wrong[:10]}"
    assert len(queries) > 40 * len(keys)
