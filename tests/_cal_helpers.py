"""Shared pieces of the calendar and feed tests: rosters built by hand, real clients.

``require_real`` skips a test whose outside tool is missing, or fails it when
``LORMAIL_REQUIRE_REAL=1`` (CI, where every real client must run).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar

from lormail.core.calendar import Built, build_calendar
from lormail.core.plan import plan
from lormail.model import (
    EMPTY_SNAPSHOT,
    Applicant,
    CalendarConfig,
    EventStamp,
    Letter,
    Policy,
    Program,
    Recommender,
    Roster,
    Unavailable,
)
from tests.conftest import require_real  # one switch for every real-component test

JS_DIR = Path(__file__).parent / "js"
NY = ZoneInfo("America/New_York")


def dated(day: date, zone: ZoneInfo) -> datetime:
    """A date-only deadline: 23:59:59 of that day in the program's zone (SPEC §3)."""
    return datetime.combine(day, time(23, 59, 59), zone)


def program(
    pid: str,
    name: str,
    deadline: date | datetime,
    zone: str = "America/New_York",
    **kw: Any,
) -> Program:
    tz = ZoneInfo(zone)
    if isinstance(deadline, datetime):
        return Program(pid, name, deadline, False, tz, **kw)
    return Program(pid, name, dated(deadline, tz), True, tz, **kw)


def recommender(
    rid: str,
    name: str,
    zone: str = "America/New_York",
    status: str = "agreed",
    letters: Sequence[Letter] = (),
    **kw: Any,
) -> Recommender:
    policy = kw.pop("policy", Policy())
    return Recommender(
        id=rid,
        name=name,
        email=f"{rid}@example.org",
        timezone=ZoneInfo(zone),
        status=status,
        policy=policy,
        salutation=kw.pop("salutation", name),
        letters=tuple(letters),
        **kw,
    )


def example_roster() -> Roster:
    """The shape of roster.example.yaml, built directly."""
    progs = (
        program(
            "mph",
            "MPH in Epidemiology (SOPHAS)",
            datetime(2026, 12, 1, 23, 59, tzinfo=ZoneInfo("America/New_York")),
            portal="SOPHAS",
        ),
        program(
            "stanford-phd",
            "Stanford PhD in Epidemiology",
            date(2026, 12, 15),
            "America/Los_Angeles",
            portal="Stanford Graduate Admissions",
            outcome="interview",
            outcome_on=date(2026, 11, 20),
        ),
        program(
            "im-residency",
            "Internal Medicine residency (ERAS)",
            date(2027, 1, 15),
            portal="ERAS LoR Portal",
        ),
        program(
            "ucl-msc",
            "UCL MSc Global Health",
            date(2027, 1, 29),
            "Europe/London",
            portal="UCL referee portal",
        ),
    )
    recs = (
        recommender(
            "johnson",
            "Dr. Emily Johnson",
            "America/Chicago",
            "agreed",
            [Letter("mph"), Letter("im-residency", "LoR-12345")],
            salutation="Dr. Johnson",
            asked_on=date(2026, 10, 26),
            agreed_on=date(2026, 10, 28),
            unavailable=(Unavailable(date(2026, 12, 21), date(2027, 1, 1), "winter break"),),
        ),
        recommender(
            "patel",
            "Dr. Anil Patel",
            "Asia/Kolkata",
            "planned",
            [Letter("ucl-msc"), Letter("im-residency")],
            salutation="Dr. Patel",
            ask_by_email=True,
            ask_on=date(2026, 11, 30),
        ),
        recommender(
            "garcia",
            "Dr. Maria Garcia",
            "America/Los_Angeles",
            "agreed",
            [
                Letter("stanford-phd", submitted_on=date(2026, 11, 19)),
                Letter("mph", submitted_on=date(2026, 11, 18)),
            ],
            salutation="Dr. Garcia",
            asked_on=date(2026, 9, 14),
            agreed_on=date(2026, 9, 15),
        ),
        recommender(
            "okafor",
            "Dr. Chidi Okafor",
            "Europe/London",
            "asked",
            [Letter("ucl-msc")],
            salutation="Dr. Okafor",
            asked_on=date(2026, 11, 16),
            policy=Policy(reminders=(14, 5)),
            unavailable=(Unavailable(date(2027, 1, 11), date(2027, 1, 18), "conference"),),
        ),
        recommender(
            "nguyen",
            "Prof. Linh Nguyen",
            "America/New_York",
            "declined",
            [Letter("im-residency")],
            salutation="Professor Nguyen",
            asked_on=date(2026, 11, 9),
            declined_on=date(2026, 11, 19),
        ),
        recommender(
            "lee",
            "Dr. Grace Lee",
            "America/New_York",
            "planned",
            [Letter("im-residency")],
            salutation="Dr. Lee",
        ),
        recommender(
            "wong",
            "Dr. Mei Wong",
            "Australia/Sydney",
            "agreed",
            [Letter("ucl-msc")],
            salutation="Dr. Wong",
            asked_on=date(2026, 9, 1),
            agreed_on=date(2026, 9, 2),
        ),
    )
    return Roster(
        applicant=Applicant("Sarah Chen", "sarah.chen@example.edu", NY),
        defaults=Policy(),
        programs=progs,
        recommenders=recs,
    )


CAL_CONFIG = CalendarConfig()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


NOW = utc(2026, 10, 1, 12)


def build(
    roster: Roster,
    now: datetime = NOW,
    stamps: dict[str, EventStamp] | None = None,
    config: CalendarConfig = CAL_CONFIG,
) -> Built:
    """The calendar of ``roster`` planned and built at ``now``."""
    return build_calendar(roster, plan(roster, EMPTY_SNAPSHOT, now), stamps or {}, config, now)


def parse(data: bytes) -> icalendar.Calendar:
    return icalendar.Calendar.from_ical(data)


def events(data: bytes) -> dict[str, icalendar.Event]:
    return {str(e["UID"]): e for e in parse(data).events}


def raw_events(data: bytes) -> dict[str, str]:
    """UID → the VEVENT's exact text, for byte-level comparisons."""
    out = {}
    for block in re.findall(r"BEGIN:VEVENT\r\n.*?END:VEVENT\r\n", data.decode(), re.S):
        uid = re.search(r"^UID:(.*)\r$", block, re.M)
        assert uid is not None
        out[uid.group(1)] = block
    return out


# --- ical.js ------------------------------------------------------------------


def icaljs_available() -> bool:
    return shutil.which("node") is not None and (JS_DIR / "node_modules" / "ical.js").is_dir()


def run_icaljs(ics: Path, *extra: str) -> dict[str, Any]:
    """Parse ``ics`` with ical.js (VTIMEZONEs registered as Thunderbird does); its JSON report."""
    if not icaljs_available():
        require_real("node and tests/js/node_modules/ical.js (cd tests/js && npm ci)")
    proc = subprocess.run(
        ["node", str(JS_DIR / "check.mjs"), str(ics), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def reroster(
    roster: Roster,
    programs: Sequence[Program] | None = None,
    recommenders: Sequence[Recommender] | None = None,
) -> Roster:
    """``roster`` with other programs or recommenders (its lookups, and its letters'
    deadlines and names, made again from the programs)."""
    return Roster(
        applicant=roster.applicant,
        defaults=roster.defaults,
        programs=tuple(roster.programs if programs is None else programs),
        recommenders=tuple(roster.recommenders if recommenders is None else recommenders),
        unavailable=roster.unavailable,
        path=roster.path,
    )
