"""Small builders of roster objects for planner and rendering tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from lormail.model import (
    Applicant,
    LogEntry,
    Policy,
    Program,
    Recommender,
    Roster,
    Snapshot,
)

NY = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
LA = ZoneInfo("America/Los_Angeles")
LONDON = ZoneInfo("Europe/London")
KOLKATA = ZoneInfo("Asia/Kolkata")
SYDNEY = ZoneInfo("Australia/Sydney")

POLICY = Policy()


def utc(text: str) -> datetime:
    """'2026-09-14T14:00' → an aware UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def program(pid: str, deadline: date | datetime, zone: ZoneInfo = NY, **kw: Any) -> Program:
    if isinstance(deadline, datetime):
        instant, is_date = deadline, False
    else:
        instant, is_date = datetime.combine(deadline, time(23, 59, 59), tzinfo=zone), True
    return Program(
        id=pid,
        name=kw.pop("name", pid.upper()),
        deadline=instant,
        deadline_is_date=is_date,
        timezone=zone,
        **kw,
    )


def policy(**kw: Any) -> Policy:
    return replace(POLICY, **kw)


def recommender(
    rid: str, status: str = "agreed", zone: ZoneInfo = CHICAGO, **kw: Any
) -> Recommender:
    kw.setdefault("policy", POLICY)
    kw.setdefault("salutation", f"Dr. {rid.title()}")
    return Recommender(
        id=rid,
        name=kw.pop("name", f"Dr. {rid.title()}"),
        email=f"{rid}@example.org",
        timezone=zone,
        status=status,
        **kw,
    )


def roster(programs: list[Program], recommenders: list[Recommender]) -> Roster:
    return Roster(
        applicant=Applicant(name="Sarah Chen", email="sarah@example.edu", timezone=NY),
        defaults=POLICY,
        programs=tuple(programs),
        recommenders=tuple(recommenders),
    )


def sent(*pairs: tuple[str, datetime], first_seen: dict[str, datetime] | None = None) -> Snapshot:
    log = {key: LogEntry(key=key, state="sent", at=at) for key, at in pairs}
    return Snapshot(log=log, first_seen=first_seen or {})


ONE_DAY = timedelta(days=1)
