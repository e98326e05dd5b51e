"""The calendar builder: what the .ics says, its UIDs, SEQUENCE/DTSTAMP, and the text format.

Parsed back with the icalendar package, and compared byte for byte where
stability matters.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from lormail.core.calendar import (
    build_calendar,
    empty_calendar,
    message_uid,
)
from lormail.core.plan import ask_by_date, plan
from lormail.model import (
    EMPTY_SNAPSHOT,
    CalendarConfig,
    EventStamp,
    Letter,
    Plan,
    PlannedMessage,
    Policy,
    Roster,
)
from tests._cal_helpers import (
    CAL_CONFIG,
    NOW,
    NY,
    build,
    events,
    example_roster,
    parse,
    program,
    raw_events,
    recommender,
    reroster,
    utc,
)

# --- the file as a whole -------------------------------------------------------


def test_header_properties() -> None:
    data = build(example_roster()).data
    text = data.decode()
    assert text.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//lormail//lormail ")
    assert text.endswith("END:VCALENDAR\r\n")
    assert "\r\nCALSCALE:GREGORIAN\r\n" in text
    assert "\r\nX-WR-CALNAME:lormail — Sarah Chen\r\n" in text
    assert "\r\nREFRESH-INTERVAL;VALUE=DURATION:PT1H\r\n" in text
    assert "\r\nX-PUBLISHED-TTL:PT1H\r\n" in text
    # Every line ends in CRLF; no bare LF anywhere.
    assert "\n" not in text.replace("\r\n", "")
    cal = parse(data)
    assert cal["REFRESH-INTERVAL"].dt == timedelta(hours=1)


def test_every_line_at_most_75_octets() -> None:
    for line in build(example_roster()).data.split(b"\r\n"):
        assert len(line) <= 75, line


def test_empty_roster_gives_valid_empty_calendar() -> None:
    empty = reroster(example_roster(), programs=(), recommenders=())
    built = build(empty)
    cal = parse(built.data)
    assert cal.events == [] and cal.timezones == []
    assert built.changed == {}
    assert parse(empty_calendar()).events == []


def test_a_vtimezone_for_every_tzid_used_and_no_other() -> None:
    data = build(example_roster()).data
    cal = parse(data)
    used = set(re.findall(rb";TZID=([^:;]+)[:;]", data))
    defined = {str(tz["TZID"]).encode() for tz in cal.timezones}
    assert used == defined
    assert b"Asia/Kolkata" in used and b"Australia/Sydney" in used
    assert b"RDATE" not in data


def test_same_inputs_same_bytes_and_order_independent_of_plan_order() -> None:
    roster = example_roster()
    p = plan(roster, EMPTY_SNAPSHOT, NOW)
    first = build_calendar(roster, p, {}, CAL_CONFIG, NOW)
    again = build_calendar(roster, p, {}, CAL_CONFIG, NOW)
    shuffled = replace(p, messages=tuple(reversed(p.messages)))
    third = build_calendar(roster, shuffled, {}, CAL_CONFIG, NOW)
    assert first.data == again.data == third.data


# --- the events ----------------------------------------------------------------


def test_dated_deadline_is_all_day_with_letter_states_and_alarms() -> None:
    ev = events(build(example_roster()).data)["deadline-im-residency@lormail"]
    assert ev["SUMMARY"] == "Deadline: Internal Medicine residency (ERAS)"
    assert ev.start == date(2027, 1, 15)
    assert ev.end == date(2027, 1, 16)
    assert ev["DESCRIPTION"] == (
        "Due by the end of Fri 15 Jan 2027 (America/New_York).\n"
        "Portal: ERAS LoR Portal\n"
        "Letters:\n"
        "- Dr. Emily Johnson [LoR-12345]: agreed on Wed 28 Oct 2026, letter open\n"
        "- Dr. Anil Patel: not asked yet (ask by Fri 4 Dec 2026)\n"
        "- Prof. Linh Nguyen: declined on Thu 19 Nov 2026\n"
        "- Dr. Grace Lee: not asked yet (ask by Fri 4 Dec 2026)"
    )
    triggers = [a["TRIGGER"].dt for a in ev.walk("VALARM")]
    assert triggers == [timedelta(days=-7), timedelta(days=-1)]
    assert all(a["ACTION"] == "DISPLAY" for a in ev.walk("VALARM"))


def test_timed_deadline_is_in_the_programs_zone() -> None:
    ev = events(build(example_roster()).data)["deadline-mph@lormail"]
    start = ev.start
    assert start == datetime(2026, 12, 1, 23, 59, tzinfo=NY)
    assert start.tzinfo.key == "America/New_York"
    assert "- Dr. Maria Garcia: submitted on Wed 18 Nov 2026" in ev["DESCRIPTION"]


def test_alarms_follow_the_config() -> None:
    config = CalendarConfig(alarms=(timedelta(days=14), timedelta(hours=3)))
    ev = events(build(example_roster(), config=config).data)["deadline-ucl-msc@lormail"]
    assert [a["TRIGGER"].dt for a in ev.walk("VALARM")] == [
        timedelta(days=-14),
        timedelta(hours=-3),
    ]
    none = CalendarConfig(alarms=())
    assert not events(build(example_roster(), config=none).data)["deadline-ucl-msc@lormail"].walk(
        "VALARM"
    )


def test_ask_by_events_for_planned_recommenders_only() -> None:
    roster = example_roster()
    evs = events(build(roster).data)
    asks = {uid: ev for uid, ev in evs.items() if uid.startswith("ask-")}
    assert set(asks) == {"ask-lee@lormail", "ask-patel@lormail"}
    lee = asks["ask-lee@lormail"]
    assert lee["SUMMARY"] == "Ask Dr. Lee for a letter"
    assert lee.start == ask_by_date(roster.recommenders_by_id["lee"], roster)
    assert lee.start == date(2027, 1, 15) - timedelta(weeks=6)
    assert lee.end == lee.start + timedelta(days=1)
    assert (
        "lormail e-mails the request on Mon 30 Nov 2026."
        in asks["ask-patel@lormail"]["DESCRIPTION"]
    )


def test_scheduled_messages_are_15_minute_transparent_events_in_the_recipients_zone() -> None:
    roster = example_roster()
    p = plan(roster, EMPTY_SNAPSHOT, NOW)
    evs = events(build_calendar(roster, p, {}, CAL_CONFIG, NOW).data)
    shown = [m for m in p.messages if m.status in ("scheduled", "due")]
    assert shown
    for m in shown:
        ev = evs[message_uid(m.key)]
        zone = roster.recommenders_by_id[m.recommender].timezone
        assert ev.start == m.send_at
        assert ev.start.tzinfo.key == zone.key  # type: ignore[union-attr]
        assert ev.end - ev.start == timedelta(minutes=15)
        assert ev["TRANSP"] == "TRANSPARENT"
        assert ev["DESCRIPTION"].startswith(m.reason)
    msg_uids = {u for u in evs if u.startswith("msg-")}
    assert msg_uids == {message_uid(m.key) for m in shown}


def test_message_titles() -> None:
    evs = events(build(example_roster()).data)
    titles = sorted(str(e["SUMMARY"]) for u, e in evs.items() if u.startswith("msg-"))
    assert "Reminder 1 to Dr. Okafor (UCL MSc Global Health)" in titles
    assert "Letter request to Dr. Patel (Internal Medicine residency (ERAS) and 1 more)" in titles
    assert "Outcome update to Dr. Garcia (Stanford PhD in Epidemiology: interview)" in titles
    assert "Thank-you to Professor Nguyen" in titles


def test_include_messages_off() -> None:
    config = CalendarConfig(include_messages=False)
    assert not [u for u in events(build(example_roster(), config=config).data) if "msg-" in u]


def test_sent_skipped_and_expired_messages_are_not_events() -> None:
    roster = example_roster()
    p = plan(roster, EMPTY_SNAPSHOT, NOW)
    m = p.messages[0]
    statuses = ("sent", "skipped", "expired", "failed", "dry-run")
    for status in statuses:
        q = replace(p, messages=(replace(m, status=status), *p.messages[1:]))
        uids = events(build_calendar(roster, q, {}, CAL_CONFIG, NOW).data)
        assert message_uid(m.key) not in uids


def test_unavailable_ranges_are_all_day_with_exclusive_end() -> None:
    ev = events(build(example_roster()).data)["away-johnson-20261221@lormail"]
    assert ev["SUMMARY"] == "Dr. Johnson away: winter break"
    assert ev.start == date(2026, 12, 21)
    assert ev.end == date(2027, 1, 2)  # "to: 2027-01-01" is inclusive
    assert ev["TRANSP"] == "TRANSPARENT"


def test_check_in_recurs_every_n_days_after_the_last_message() -> None:
    roster = example_roster()
    p = plan(roster, EMPTY_SNAPSHOT, NOW)
    evs = events(build_calendar(roster, p, {}, CAL_CONFIG, NOW).data)
    okafor = [m for m in p.messages if m.recommender == "okafor" and m.status == "scheduled"]
    last = max(okafor, key=lambda m: m.send_at)
    ev = evs["checkin-okafor@lormail"]
    assert ev["SUMMARY"] == "Check in with Dr. Okafor"
    expected = last.send_at.astimezone(ZoneInfo("Europe/London")).date() + timedelta(days=90)
    assert ev.start == expected
    assert ev["RRULE"] == {"FREQ": ["DAILY"], "INTERVAL": [90]}
    # Lee is to be asked in person: no message, so no check-in.
    assert "checkin-lee@lormail" not in evs


def test_check_in_every_zero_means_never() -> None:
    roster = example_roster()
    recs = tuple(
        replace(r, policy=replace(r.policy, check_in_every=0)) for r in roster.recommenders
    )
    evs = events(build(reroster(roster, recommenders=recs)).data)
    assert not [u for u in evs if u.startswith("checkin-")]


def test_uids_are_stable_and_reveal_no_address() -> None:
    roster = example_roster()
    data = build(roster).data
    uids = list(events(data))
    assert uids == list(events(build(roster, now=NOW + timedelta(hours=1)).data))
    for uid in uids:
        assert uid.count("@") == 1 and uid.endswith("@lormail")
        assert re.fullmatch(r"[a-z]+-[A-Za-z0-9._-]+@lormail", uid), uid
    addresses = [r.email for r in roster.recommenders] + [roster.applicant.email]
    for uid in uids:
        assert not any(a.split("@")[0] in uid and "@" + a.split("@")[1] in uid for a in addresses)


def test_ids_that_are_not_plain_tokens_are_hashed_in_uids() -> None:
    p = program("im residency", "IM", date(2027, 1, 15))
    r = recommender("e.j@hospital.org", "Dr. J", status="planned", letters=[Letter(p.id)])
    roster = reroster(example_roster(), programs=(p,), recommenders=(r,))
    uids = set(events(build(roster).data))
    assert all("hospital" not in u and " " not in u for u in uids)
    assert len([u for u in uids if u.startswith("deadline-h")]) == 1
    assert len([u for u in uids if u.startswith("ask-h")]) == 1


def test_text_is_escaped_and_survives_parsing() -> None:
    nasty = 'Dr. O\'Brien; MD, PhD \\ "quoted"\nsecond line\r\nthird'
    p = program("x", "Prog; with, commas", date(2027, 1, 15), portal=nasty)
    r = recommender("ob", nasty, status="asked", letters=[Letter("x")], salutation="Dr. O'B")
    roster = reroster(example_roster(), programs=(p,), recommenders=(r,))
    ev = events(build(roster).data)["deadline-x@lormail"]
    assert ev["SUMMARY"] == "Deadline: Prog; with, commas"
    desc = str(ev["DESCRIPTION"])
    assert 'Portal: Dr. O\'Brien; MD, PhD \\ "quoted"\nsecond line\nthird' in desc


# --- SEQUENCE and DTSTAMP ---------------------------------------------------------


def test_new_events_get_sequence_0_and_stamp_now() -> None:
    built = build(example_roster())
    for uid, ev in events(built.data).items():
        assert ev["SEQUENCE"] == 0
        assert ev["DTSTAMP"].dt == NOW
        assert ev["LAST-MODIFIED"].dt == NOW
        assert built.changed[uid] == EventStamp(built.changed[uid].hash, 0, NOW)
    assert set(built.changed) == set(events(built.data))


def test_unchanged_events_keep_sequence_and_stamp() -> None:
    roster = example_roster()
    p = plan(roster, EMPTY_SNAPSHOT, NOW)
    first = build_calendar(roster, p, {}, CAL_CONFIG, NOW)
    later = NOW + timedelta(days=1)
    second = build_calendar(roster, p, first.changed, CAL_CONFIG, later)
    assert second.changed == {}
    assert second.data == first.data


def _reprogram(roster: Roster, pid: str, new_deadline: date) -> Roster:
    progs = tuple(
        replace(p, deadline=datetime.combine(new_deadline, p.deadline.timetz()))
        if p.id == pid
        else p
        for p in roster.programs
    )
    return reroster(roster, programs=progs)


def test_changing_a_deadline_without_open_letters_changes_that_event_only() -> None:
    # Stanford's only letter is submitted: no reminder hangs off its deadline.
    roster = example_roster()
    first = build(roster)
    moved = _reprogram(roster, "stanford-phd", date(2026, 12, 18))
    later = NOW + timedelta(hours=2)
    second = build(moved, now=later, stamps=first.changed)
    assert set(second.changed) == {"deadline-stanford-phd@lormail"}
    assert second.changed["deadline-stanford-phd@lormail"].sequence == 1
    before, after = raw_events(first.data), raw_events(second.data)
    assert before.keys() == after.keys()
    for uid in before:
        if uid != "deadline-stanford-phd@lormail":
            assert before[uid] == after[uid], uid
    ev = events(second.data)["deadline-stanford-phd@lormail"]
    assert ev["SEQUENCE"] == 1
    assert ev["DTSTAMP"].dt == later
    assert ev["LAST-MODIFIED"].dt == later
    assert ev.start == date(2026, 12, 18)


def _message_facts(p: Plan) -> dict[str, tuple[object, ...]]:
    return {
        message_uid(m.key): (m.send_at, m.reason, m.programs, m.reminder_number)
        for m in p.messages
        if m.status in ("scheduled", "due")
    }


def test_changing_a_deadline_with_open_letters_changes_exactly_what_moved() -> None:
    roster = example_roster()
    moved = _reprogram(roster, "ucl-msc", date(2027, 2, 5))
    p1, p2 = plan(roster, EMPTY_SNAPSHOT, NOW), plan(moved, EMPTY_SNAPSHOT, NOW)
    first = build_calendar(roster, p1, {}, CAL_CONFIG, NOW)
    later = NOW + timedelta(minutes=5)
    second = build_calendar(moved, p2, first.changed, CAL_CONFIG, later)

    f1, f2 = _message_facts(p1), _message_facts(p2)
    moved_msgs = {u for u in f1.keys() | f2.keys() if f1.get(u) != f2.get(u)}
    assert moved_msgs, "the UCL reminders should have moved"
    checkins = {
        uid
        for uid in events(first.data).keys() | events(second.data).keys()
        if uid.startswith("checkin-")
        and raw_events(first.data).get(uid) != raw_events(second.data).get(uid)
    }
    # Patel is planned with a UCL letter: his ask-by event lists that deadline, so
    # its text changes, but its date (his earliest deadline − 6 weeks) does not.
    expected = {"deadline-ucl-msc@lormail", "ask-patel@lormail"}
    expected |= (moved_msgs & f2.keys()) | checkins
    assert set(second.changed) == expected
    e1, e2 = events(first.data), events(second.data)
    assert e1["ask-patel@lormail"].start == e2["ask-patel@lormail"].start
    assert (
        "UCL MSc Global Health (deadline Fri 5 Feb 2027)" in e2["ask-patel@lormail"]["DESCRIPTION"]
    )
    for uid, stamp in second.changed.items():
        assert stamp.stamp == later
        old = first.changed.get(uid)
        assert stamp.sequence == (0 if old is None else old.sequence + 1)


def test_sequence_keeps_rising_when_an_edit_is_undone() -> None:
    roster = example_roster()
    first = build(roster)
    moved = _reprogram(roster, "stanford-phd", date(2026, 12, 18))
    second = build(moved, stamps=first.changed)
    stamps = {**first.changed, **second.changed}
    third = build(roster, stamps=stamps)
    assert third.changed["deadline-stanford-phd@lormail"].sequence == 2


def test_reminder_policy_override_shows_in_the_plan_and_calendar() -> None:
    # A sanity check that the hand-built roster drives the real planner.
    roster = example_roster()
    okafor = roster.recommenders_by_id["okafor"]
    assert okafor.policy == Policy(reminders=(14, 5))
    keys = [m.key for m in plan(roster, EMPTY_SNAPSHOT, NOW).messages if m.recommender == "okafor"]
    assert keys == ["reminder:okafor:ucl-msc:1", "reminder:okafor:ucl-msc:2"]


def test_unused_plannedmessage_fields_do_not_break_titles() -> None:
    roster = example_roster()
    odd = PlannedMessage(
        key="reminder:okafor:ucl-msc:9",
        kind="reminder",
        recommender="okafor",
        to="x@example.org",
        send_at=utc(2027, 1, 5, 9),
        expires_at=None,
        status="scheduled",
        reason="r",
        programs=(),
    )
    p = Plan(now=NOW, messages=(odd,))
    ev = events(build_calendar(roster, p, {}, CAL_CONFIG, NOW).data)[message_uid(odd.key)]
    assert ev["SUMMARY"] == "Reminder to Dr. Okafor"


def test_utc_zones_are_written_with_z_and_need_no_vtimezone() -> None:
    p = program("u", "UTC program", datetime(2027, 1, 15, 12, tzinfo=ZoneInfo("UTC")), "UTC")
    roster = reroster(example_roster(), programs=(p,), recommenders=())
    data = build(roster).data
    assert b"\r\nDTSTART:20270115T120000Z\r\n" in data
    assert b"VTIMEZONE" not in data
