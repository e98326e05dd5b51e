"""The calendar over arbitrary roster text: it parses back; UIDs and SEQUENCE keep their rules."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lormail.core.calendar import build_calendar, clean_text
from lormail.core.ical import uid_part
from lormail.core.plan import plan
from lormail.model import EMPTY_SNAPSHOT, CalendarConfig, Letter
from tests._cal_helpers import (
    CAL_CONFIG,
    NOW,
    build,
    events,
    example_roster,
    parse,
    program,
    raw_events,
    recommender,
    reroster,
)

# --- text and invariants over arbitrary input ---------------------------------------


def test_clean_text() -> None:
    assert clean_text("a\\b;c,d\ne\r\nf\rg\x00h\ti\x7f") == "a\\b;c,d\ne\nf\ngh\ti"


def test_alarm_triggers_are_written_as_durations() -> None:
    config = CalendarConfig(alarms=(timedelta(hours=-36) * -1, timedelta(minutes=90)))
    data = build(example_roster(), config=config).data
    assert b"\r\nTRIGGER:-P1DT12H\r\n" in data
    assert b"\r\nTRIGGER:-PT1H30M\r\n" in data


_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=200)


def _expected(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(c for c in text if c in "\t\n" or not (ord(c) < 0x20 or ord(c) == 0x7F))


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(
    name=_TEXT,
    portal=_TEXT,
    who=_TEXT,
    pid=st.text(min_size=1, max_size=40),
    rid=st.text(min_size=1, max_size=40),
    day=st.dates(date(2026, 10, 2), date(2028, 12, 31)),
    zone=st.sampled_from(["America/New_York", "Asia/Kolkata", "Pacific/Auckland", "UTC"]),
    shared=st.booleans(),
)
def test_any_roster_text_parses_back_with_stable_uids_and_sequences(
    name: str, portal: str, who: str, pid: str, rid: str, day: date, zone: str, shared: bool
) -> None:
    p = program(pid, name or "x", day, zone, portal=portal or None)
    other = program(pid + "2", "Other", day + timedelta(days=9), zone)
    # One letter for both programs (like ERAS), or a letter for each.
    letters = [Letter("l", programs=(pid, other.id))] if shared else [Letter(pid), Letter(other.id)]
    r = recommender(rid, who or "x", zone, "asked", letters, asked_on=date(2026, 9, 1))
    roster = reroster(example_roster(), programs=(p, other), recommenders=(r,))
    the_plan = plan(roster, EMPTY_SNAPSHOT, NOW)
    first = build_calendar(roster, the_plan, {}, CAL_CONFIG, NOW)
    for line in first.data.split(b"\r\n"):
        assert len(line) <= 75, line
        line.decode()  # never split inside a UTF-8 sequence
    evs = events(first.data)
    deadlines = [evs[u] for u in evs if u.startswith("deadline-")]
    assert len(deadlines) == 2
    deadline = evs[f"deadline-{uid_part(pid)}@lormail"]
    assert str(deadline["SUMMARY"]) == _expected("Deadline: " + (name or "x"))
    if portal:
        assert _expected(f"Portal: {portal}\nLetters:\n") in str(deadline["DESCRIPTION"])
    for ev in deadlines:  # each program's deadline names the letter that serves it
        assert _expected(f"Letters:\n- {who or 'x'}: asked") in str(ev["DESCRIPTION"])
    used = set(re.findall(rb";TZID=([^:;]+)[:;]", first.data))
    assert used == {str(tz["TZID"]).encode() for tz in parse(first.data).timezones}
    for uid in evs:
        assert re.fullmatch(r"[a-z]+-[A-Za-z0-9._-]+@lormail", uid), uid
    # Built again later from the stored stamps: same UIDs, same bytes, nothing changed.
    later = NOW + timedelta(days=3)
    again = build_calendar(roster, the_plan, dict(first.changed), CAL_CONFIG, later)
    assert again.changed == {} and again.data == first.data
    # A content change raises SEQUENCE by one on exactly the events that changed.
    renamed = reroster(roster, programs=(replace(p, name=p.name + " (renamed)"), other))
    third = build_calendar(renamed, the_plan, dict(first.changed), CAL_CONFIG, later)
    assert set(events(third.data)) == set(evs)
    before, after = raw_events(first.data), raw_events(third.data)
    changed = {u for u in before if _content(before[u]) != _content(after[u])}
    assert set(third.changed) == changed
    assert any(u.startswith("deadline-") for u in changed)
    for uid, stamp in third.changed.items():
        assert stamp.sequence == first.changed[uid].sequence + 1 and stamp.stamp == later
        assert events(third.data)[uid]["SEQUENCE"] == stamp.sequence


def _content(vevent: str) -> str:
    """A VEVENT's text without the lines that record when and how often it changed."""
    unfolded = vevent.replace("\r\n ", "")
    keep = [
        line
        for line in unfolded.split("\r\n")
        if not line.startswith(("DTSTAMP:", "SEQUENCE:", "LAST-MODIFIED:"))
    ]
    return "\r\n".join(keep)
