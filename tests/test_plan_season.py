"""Whole seasons through the planner, with exact keys, instants and texts.

A season is stepped the way the daemon lives it: at every instant something
falls due, the plan is made from scratch and what is due is recorded as sent
(a reminder round as every reminder it joined).  Calendar (2026–27): Thu 24
Sep, Fri 25 Dec and Fri 1 Jan are US public holidays' neighbours as noted.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from lormail.core.plan import plan
from lormail.core.render import Templates
from lormail.model import EMPTY_SNAPSHOT, Letter, LogEntry, Plan, PlannedMessage, Roster, Snapshot
from tests.builders import LA, NY, policy, program, recommender, roster, utc

BERLIN = ZoneInfo("Europe/Berlin")
TOKYO = ZoneInfo("Asia/Tokyo")
AUCKLAND = ZoneInfo("Pacific/Auckland")
KOLKATA = ZoneInfo("Asia/Kolkata")
US = ("US", None)


def record_due(snapshot: Snapshot, p: Plan) -> Snapshot:
    log = dict(snapshot.log)
    for m in p.messages:
        if m.status == "due":
            for key in m.joined or (m.key,):
                assert key not in log, (key, "sent twice")
                log[key] = LogEntry(key, "sent", m.send_at, subject=f"subject of {m.key}")
    return Snapshot(log=log, first_seen={**p.observed, **snapshot.first_seen})


def season(
    r: Roster, start: datetime, end: datetime, snapshot: Snapshot = EMPTY_SNAPSHOT
) -> tuple[Snapshot, list[PlannedMessage]]:
    """Steps from ``start`` to ``end``, sending what falls due; the messages as they went."""
    now, went = start, []
    while now < end:
        p = plan(r, snapshot, now)
        went += [m for m in p.messages if m.status == "due"]
        snapshot = record_due(snapshot, p)
        upcoming = [m.send_at for m in plan(r, snapshot, now).messages if m.status == "scheduled"]
        now = min([*upcoming, end])
    return snapshot, went


def sent_list(went: list[PlannedMessage], rid: str) -> list[tuple[str, str]]:
    return [(m.key, m.send_at.strftime("%Y-%m-%dT%H:%MZ")) for m in went if m.recommender == rid]


def render(m: PlannedMessage, r: Roster) -> tuple[str, str]:
    out = Templates().render(m, r)
    return out.subject, out.body


# --- ERAS: one upload serves 25 programs ------------------------------------------


def eras_roster(submitted: date | None = None) -> Roster:
    programs = [
        program(f"im{i:02d}", date(2026, 9, 24) + timedelta(days=i), name=f"IM residency {i}")
        for i in range(25)
    ]
    ids = tuple(p.id for p in programs)
    zones = {"adams": LA, "becker": BERLIN, "sato": TOKYO, "cohen": NY}
    recs = [
        recommender(
            rid,
            status="agreed",
            zone=zone,
            asked_on=date(2026, 8, 3),
            agreed_on=date(2026, 8, 4),
            holidays=US if zone in (LA, NY) else None,
            letters=(
                Letter(
                    "eras",
                    programs=ids,
                    own_portal="ERAS LoR Portal",
                    submitted_on=submitted if rid == "sato" else None,
                ),
            ),
        )
        for rid, zone in zones.items()
    ]
    return roster(programs, recs)


def test_eras_one_letter_for_25_programs_gets_two_reminders_at_most() -> None:
    snapshot, went = season(eras_roster(), utc("2026-08-01T00:00"), utc("2026-09-14T12:00"))
    r = eras_roster(submitted=date(2026, 9, 14))  # Sato's upload, marked on Mon 14 Sep
    snapshot, later = season(r, utc("2026-09-14T12:00"), utc("2026-12-31T00:00"), snapshot)
    went += later
    # The letter's deadline is its earliest program's, Thu 24 Sep: reminders 14 and 7
    # days before, Thu 10 and Thu 17 Sep, 09:00 in each recommender's zone.
    assert sent_list(went, "adams") == [
        ("packet:adams", "2026-08-04T16:00Z"),
        ("reminder:adams:eras:1", "2026-09-10T16:00Z"),
        ("reminder:adams:eras:2", "2026-09-17T16:00Z"),
    ]
    assert sent_list(went, "becker") == [
        ("packet:becker", "2026-08-04T07:00Z"),
        ("reminder:becker:eras:1", "2026-09-10T07:00Z"),
        ("reminder:becker:eras:2", "2026-09-17T07:00Z"),
    ]
    # Sato submitted on Mon 14 Sep: no reminder after it, and the thank-you next day.
    assert sent_list(went, "sato") == [
        ("packet:sato", "2026-08-04T00:00Z"),
        ("reminder:sato:eras:1", "2026-09-10T00:00Z"),
        ("thank_you:sato:eras", "2026-09-15T00:00Z"),
    ]
    for rid in ("adams", "becker", "sato", "cohen"):
        assert sum(m.kind == "reminder" for m in went if m.recommender == rid) <= 2
    reminder = next(m for m in went if m.key == "reminder:adams:eras:2")
    assert reminder.final_reminder and reminder.programs[:2] == ("im00", "im01")
    subject, body = render(reminder, r)
    assert subject == (
        "A last gentle reminder: letter for ERAS LoR Portal, due Thursday, 24 September"
    )
    assert body.splitlines()[:5] == [
        "A last gentle reminder about my letter for ERAS LoR Portal, due Thursday, 24 September.",
        "",
        "Dear Dr. Adams,",
        "",
        "I hope you are well. Just a short note that the letter for ERAS LoR Portal is due "
        "Thursday, 24 September, 7 days from now, through ERAS LoR Portal.",
    ]
    assert snapshot.log["thank_you:sato:eras"].state == "sent"


# --- grad school: 10 portals, one letter each ---------------------------------------


def grad_roster() -> Roster:
    deadlines = [
        date(2026, 12, 1), date(2026, 12, 1), date(2026, 12, 4), date(2026, 12, 8),
        date(2026, 12, 15), date(2026, 12, 15), date(2027, 1, 5), date(2027, 1, 8),
        date(2027, 1, 12), date(2027, 1, 15),
    ]  # fmt: skip
    programs = [
        program(f"phd{i}", d, name=f"PhD program {i}", portal=f"Portal {i}")
        for i, d in enumerate(deadlines)
    ]
    letters = tuple(Letter(p.id) for p in programs)
    recs = [
        recommender(
            "miller",
            status="agreed",
            zone=NY,
            asked_on=date(2026, 10, 1),
            agreed_on=date(2026, 10, 2),
            holidays=US,
            letters=letters,
        ),
        recommender(
            "tanaka",
            status="asked",
            zone=TOKYO,
            asked_on=date(2026, 10, 5),
            letters=letters[:6],
            policy=policy(min_gap=timedelta(days=7)),
        ),
    ]
    return roster(programs, recs)


def test_grad_school_rounds_keep_the_gap_and_say_last_only_at_the_end() -> None:
    r = grad_roster()
    snapshot, went = season(r, utc("2026-10-01T00:00"), utc("2027-02-01T00:00"))
    for rid in ("miller", "tanaka"):
        gap = r.recommenders_by_id[rid].policy.min_gap
        mine = [m for m in went if m.recommender == rid]
        for a, b in itertools.pairwise(mine):
            assert b.send_at - a.send_at >= gap, (a.key, b.key)
        rounds = [m for m in mine if m.kind == "reminder"]
        assert [m.final_reminder for m in rounds] == [False] * (len(rounds) - 1) + [True]
        subjects = [render(m, r)[0] for m in rounds]
        assert ["last" in s for s in subjects] == [False] * (len(rounds) - 1) + [True]
        # Every reminder of every letter went, in a round, or was skipped: none twice.
        for key, entry in snapshot.log.items():
            assert entry.state == "sent", key
    # Miller (New York, US holidays): rounds name every letter whose reminder fell
    # within 5 days of the round; 25 Dec and 1 Jan move theirs to the Monday after.
    assert [
        (m.key, m.send_at.strftime("%a %d %b %H:%MZ"), m.letters)
        for m in went
        if m.recommender == "miller"
    ] == [
        ("packet:miller", "Fri 02 Oct 13:00Z", tuple(f"phd{i}" for i in range(10))),
        ("reminder:miller:phd0:1", "Tue 17 Nov 14:00Z", ("phd0", "phd1", "phd2")),
        ("reminder:miller:phd0:2", "Tue 24 Nov 14:00Z", ("phd0", "phd1", "phd2", "phd3")),
        ("reminder:miller:phd3:2", "Tue 01 Dec 14:00Z", ("phd3", "phd4", "phd5")),
        ("reminder:miller:phd4:2", "Tue 08 Dec 14:00Z", ("phd4", "phd5")),
        ("reminder:miller:phd6:1", "Tue 22 Dec 14:00Z", ("phd6",)),
        ("reminder:miller:phd7:1", "Mon 28 Dec 14:00Z", ("phd6", "phd7", "phd8")),
        ("reminder:miller:phd7:2", "Mon 04 Jan 14:00Z", ("phd7", "phd8", "phd9")),
        ("reminder:miller:phd9:2", "Mon 11 Jan 14:00Z", ("phd9",)),
    ]
    first = next(m for m in went if m.key == "reminder:tanaka:phd0:1")
    assert first.first_contact  # asked in person: the first mail Tanaka gets
    subject, body = render(first, r)
    assert subject == ("A gentle reminder: letters for PhD program 0, PhD program 1, PhD program 2")
    assert body.splitlines()[:10] == [
        "A gentle reminder about my letters for PhD program 0, PhD program 1, PhD program 2.",
        "",
        "Dear Dr. Tanaka,",
        "",
        "Thank you again for considering my request when we spoke. Just a short note on "
        "the letters due soon:",
        "  - PhD program 0: due Tuesday, 1 December, 14 days from now, through Portal 0",
        "  - PhD program 1: due Tuesday, 1 December, 14 days from now, through Portal 1",
        "  - PhD program 2: due Friday, 4 December, 17 days from now, through Portal 2",
        "",
        "Also still to come:",
    ]
    last = next(m for m in went if m.key == "reminder:miller:phd9:2")
    subject, body = render(last, r)
    assert subject == "A last gentle reminder: letter for PhD program 9, due Friday, 15 January"
    # Deadlines already passed are never "still to come".
    assert "Also still to come:\n  - PhD program 8: due Tuesday, 12 January\n\n" in body


# --- holidays -----------------------------------------------------------------------


def test_holidays_move_reminders_and_the_reason_names_the_day() -> None:
    winter = program("winter", date(2027, 1, 1), name="Winter fellowship")
    new_year = program("newyear", date(2027, 1, 8), name="Spring fellowship")
    us = recommender(
        "ford",
        status="asked",
        zone=NY,
        asked_on=date(2026, 11, 2),
        holidays=US,
        letters=(Letter("winter"), Letter("newyear")),
        policy=policy(reminders=(7,), min_gap=timedelta(days=2)),
    )
    p = plan(roster([winter, new_year], [us]), EMPTY_SNAPSHOT, utc("2026-12-01T00:00"))
    got = {m.key: m for m in p.messages}
    one = got["reminder:ford:winter:1"]
    assert (one.send_at, one.status) == (utc("2026-12-28T14:00"), "scheduled")
    assert one.reason == (
        "7 days before the Winter fellowship deadline, Fri 1 Jan 2027; moved to Mon 28 Dec: "
        "Fri 25 Dec is Christmas Day (US public holiday)"
    )
    two = got["reminder:ford:newyear:1"]
    assert (two.send_at, two.status) == (utc("2027-01-04T14:00"), "scheduled")
    assert two.reason == (
        "7 days before the Spring fellowship deadline, Fri 8 Jan 2027; moved to Mon 4 Jan "
        "2027: Fri 1 Jan 2027 is New Year's Day (US public holiday) (final reminder)"
    )


def test_german_unity_day_and_a_blackout_for_everyone() -> None:
    oct_ = program("tum", date(2026, 10, 10), zone=BERLIN, name="TUM doctorate")
    de = recommender(
        "weber",
        status="asked",
        zone=BERLIN,
        asked_on=date(2026, 9, 1),
        holidays=("DE", "BY"),
        letters=(Letter("tum"),),
        policy=policy(reminders=(7,), send_days=frozenset(range(7))),
    )
    r = roster([oct_], [de])
    (m,) = plan(r, EMPTY_SNAPSHOT, utc("2026-09-01T00:00")).messages
    assert m.send_at == utc("2026-10-04T07:00")
    assert m.reason == (
        "7 days before the TUM doctorate deadline, Sat 10 Oct; moved to Sun 4 Oct: "
        "Sat 3 Oct is German Unity Day (DE-BY public holiday) (final reminder)"
    )
    from lormail.model import Unavailable

    away = replace(r, unavailable=(Unavailable(date(2026, 10, 1), date(2026, 10, 5), "rotation"),))
    (m,) = plan(away, EMPTY_SNAPSHOT, utc("2026-09-01T00:00")).messages
    assert m.send_at == utc("2026-10-06T07:00")
    assert m.reason.endswith(
        "moved to Tue 6 Oct: Sat 3 Oct falls in the rotation, 1–5 Oct (final reminder)"
    )


# --- an unanswered request ----------------------------------------------------------


def test_an_unanswered_request_is_followed_up_once() -> None:
    mph = program("mph", date(2026, 12, 1), name="MPH in Epidemiology")
    rec = recommender(
        "patel",
        status="planned",
        zone=NY,
        ask_by_email=True,
        ask_on=date(2026, 10, 1),
        holidays=US,
        letters=(Letter("mph"),),
    )
    r = roster([mph], [rec])
    snapshot, went = season(r, utc("2026-09-01T00:00"), utc("2026-12-31T00:00"))
    assert sent_list(went, "patel") == [
        ("request:patel", "2026-10-01T13:00Z"),
        ("request_followup:patel", "2026-10-08T13:00Z"),
    ]
    followup = went[1]
    assert followup.expires_at == utc("2026-12-02T04:59:59")
    subject, body = render(followup, r)
    assert subject == "Following up: would you write me a letter of recommendation?"
    assert body.splitlines()[0] == (
        "Following up on my request of Thursday, 1 October for a letter of recommendation."
    )
    # Once the roster says they answered, no follow-up is planned.
    asked = roster([mph], [replace(rec, status="asked", asked_on=date(2026, 10, 2))])
    p = plan(
        asked,
        Snapshot(log={"request:patel": snapshot.log["request:patel"]}),
        utc("2026-10-05T00:00"),
    )
    assert [m.kind for m in p.messages if m.status in ("scheduled", "due")] == [
        "reminder",
        "reminder",
    ]
