"""Hand-computed plans: every row of SPEC §3's table and every rule of §3.0.

Calendar used throughout (2026): Tue 1 Sep, Thu 10 Sep, Thu 17 Sep, Thu 24 Sep,
Thu 15 Oct, Thu 29 Oct, Thu 5 Nov, Thu 12 Nov.  US daylight time ends Sun 1 Nov.
09:00 in Chicago is 14:00Z in daylight time, 15:00Z in standard time.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

from lormail.core.plan import ask_by_date, plan
from lormail.model import EMPTY_SNAPSHOT, LogEntry, PlannedMessage, Snapshot, Unavailable
from tests.builders import (
    KOLKATA,
    LONDON,
    NY,
    policy,
    program,
    recommender,
    roster,
    sent,
    utc,
)

IM = program("im", date(2026, 9, 24), name="Internal Medicine residency (ERAS)")
AMCAS = program("amcas", date(2026, 10, 15), name="AMCAS")


def by_key(msgs: tuple[PlannedMessage, ...]) -> dict[str, PlannedMessage]:
    return {m.key: m for m in msgs}


def summary(msgs: tuple[PlannedMessage, ...]) -> list[tuple[str, str, str]]:
    return [(m.key, m.send_at.strftime("%Y-%m-%dT%H:%MZ"), m.status) for m in msgs]


# --- the table ------------------------------------------------------------------


def test_request_on_the_ask_by_date() -> None:
    rec = recommender("patel", status="planned", zone=NY, ask_by_email=True, letters=())
    rec = replace(rec, letters=(_letter("amcas"),))
    p = plan(roster([AMCAS], [rec]), EMPTY_SNAPSHOT, utc("2026-08-01T12:00"))
    (m,) = p.messages
    # 15 Oct − 42 days = Thu 3 Sep, 09:00 EDT.
    assert (m.key, m.send_at, m.expires_at, m.status) == (
        "request:patel",
        utc("2026-09-03T13:00"),
        utc("2026-10-16T03:59:59"),
        "scheduled",
    )
    assert m.reason == "6 weeks before the earliest deadline (AMCAS, Thu 15 Oct)"
    assert ask_by_date(rec, roster([AMCAS], [rec])) == date(2026, 9, 3)


def test_request_on_ask_on_moves_off_the_weekend() -> None:
    rec = recommender(
        "patel",
        status="planned",
        zone=NY,
        ask_by_email=True,
        ask_on=date(2026, 9, 5),
        letters=(_letter("amcas"),),
    )
    (m,) = plan(roster([AMCAS], [rec]), EMPTY_SNAPSHOT, utc("2026-08-01T12:00")).messages
    assert m.send_at == utc("2026-09-07T13:00")
    assert m.reason == (
        "asking by e-mail on the chosen day, Sat 5 Sep; moved to Mon 7 Sep: "
        "Sat 5 Sep is a Saturday, not a send day"
    )


def test_planned_without_ask_by_email_sends_nothing() -> None:
    rec = recommender("lee", status="planned", letters=(_letter("amcas"),))
    assert plan(roster([AMCAS], [rec]), EMPTY_SNAPSHOT, utc("2026-08-01T12:00")).messages == ()


def _letter(pid: str, submitted: date | None = None):  # type: ignore[no-untyped-def]
    from lormail.model import Letter

    return Letter(program=pid, submitted_on=submitted)


def johnson(**kw: object) -> object:
    kw.setdefault("asked_on", date(2026, 8, 28))
    kw.setdefault("agreed_on", date(2026, 9, 1))
    kw.setdefault("letters", (_letter("im"),))
    return recommender("johnson", **kw)  # type: ignore[arg-type]


def test_packet_then_two_reminders() -> None:
    r = roster([IM], [johnson()])  # type: ignore[list-item]
    p = plan(r, EMPTY_SNAPSHOT, utc("2026-08-30T12:00"))
    assert summary(p.messages) == [
        ("packet:johnson", "2026-09-01T14:00Z", "scheduled"),
        ("reminder:johnson:im:1", "2026-09-10T14:00Z", "scheduled"),
        ("reminder:johnson:im:2", "2026-09-17T14:00Z", "scheduled"),
    ]
    msgs = by_key(p.messages)
    assert msgs["packet:johnson"].expires_at == utc("2026-09-25T03:59:59")
    assert msgs["reminder:johnson:im:1"].reason == (
        "14 days before the Internal Medicine residency (ERAS) deadline, Thu 24 Sep"
    )
    assert msgs["reminder:johnson:im:2"].final_reminder
    assert not msgs["reminder:johnson:im:1"].final_reminder
    assert p.observed == {}


def test_packet_without_agreed_on_uses_today_and_reports_it() -> None:
    now = utc("2026-09-01T18:00")  # 13:00 in Chicago: inside the window
    r = roster([IM], [johnson(agreed_on=None)])  # type: ignore[list-item]
    p = plan(r, EMPTY_SNAPSHOT, now)
    m = by_key(p.messages)["packet:johnson"]
    assert (m.send_at, m.status) == (now, "due")
    assert p.observed == {"agreed:johnson": now}


def test_first_seen_date_is_taken_in_the_recipients_zone() -> None:
    # 03:00Z on 2 Sep is still Tue 1 Sep in Chicago.
    snap = Snapshot(first_seen={"agreed:johnson": utc("2026-09-02T03:00")})
    r = roster([IM], [johnson(agreed_on=None)])  # type: ignore[list-item]
    p = plan(r, snap, utc("2026-08-29T12:00"))
    assert by_key(p.messages)["packet:johnson"].send_at == utc("2026-09-01T14:00")
    assert p.observed == {}


def test_thank_you_covers_all_letters_once_the_last_is_in() -> None:
    rec = recommender(
        "garcia", letters=(_letter("im", date(2026, 9, 17)), _letter("amcas", date(2026, 9, 14)))
    )
    p = plan(roster([IM, AMCAS], [rec]), EMPTY_SNAPSHOT, utc("2026-09-15T12:00"))
    assert summary(p.messages) == [("thank_you:garcia:amcas+im", "2026-09-18T14:00Z", "scheduled")]
    assert p.messages[0].expires_at is None
    assert p.messages[0].programs == ("amcas", "im")


def test_no_thank_you_while_a_letter_is_open() -> None:
    rec = recommender(
        "garcia",
        asked_on=date(2026, 8, 28),
        agreed_on=date(2026, 9, 1),
        letters=(_letter("im", date(2026, 9, 17)), _letter("amcas")),
    )
    p = plan(
        roster([IM, AMCAS], [rec]),
        sent(("packet:garcia", utc("2026-09-01T14:00"))),
        utc("2026-09-18T12:00"),
    )
    assert not [m for m in p.messages if m.kind == "thank_you"]


def test_a_later_thank_you_covers_only_what_the_earlier_did_not() -> None:
    rec = recommender(
        "garcia", letters=(_letter("im", date(2026, 9, 17)), _letter("amcas", date(2026, 10, 2)))
    )
    snap = sent(("thank_you:garcia:im", utc("2026-09-18T14:00")))
    p = plan(roster([IM, AMCAS], [rec]), snap, utc("2026-10-01T12:00"))
    assert ("thank_you:garcia:amcas", "2026-10-05T14:00Z", "scheduled") in summary(p.messages)
    # The sent one is still shown, and nothing re-sends it.
    assert by_key(p.messages)["thank_you:garcia:im"].status == "sent"


def test_decline_thanks_the_next_allowed_day_and_expires_after_30_days() -> None:
    rec = recommender(
        "nguyen", status="declined", declined_on=date(2026, 9, 18), letters=(_letter("im"),)
    )
    (m,) = plan(roster([IM], [rec]), EMPTY_SNAPSHOT, utc("2026-09-18T20:00")).messages
    assert (m.key, m.send_at, m.expires_at) == (
        "decline_thanks:nguyen",
        utc("2026-09-21T14:00"),
        utc("2026-10-21T14:00"),
    )
    off = replace(rec, policy=policy(decline_thanks=False))
    assert plan(roster([IM], [off]), EMPTY_SNAPSHOT, utc("2026-09-18T20:00")).messages == ()


def test_outcomes_on_one_day_go_as_one_message() -> None:
    im = replace(IM, outcome="interview", outcome_on=date(2026, 9, 29))
    amcas = replace(AMCAS, outcome="accepted", outcome_on=date(2026, 9, 29))
    rec = recommender(
        "garcia", letters=(_letter("im", date(2026, 9, 17)), _letter("amcas", date(2026, 9, 17)))
    )
    snap = sent(("thank_you:garcia:amcas+im", utc("2026-09-18T14:00")))
    p = plan(roster([im, amcas], [rec]), snap, utc("2026-09-20T12:00"))
    m = by_key(p.messages)["outcome:garcia:amcas:accepted+im:interview"]
    assert (m.send_at, m.expires_at, m.status) == (
        utc("2026-09-29T14:00"),
        utc("2026-12-28T14:00"),
        "scheduled",
    )
    assert m.outcomes == (("amcas", "accepted"), ("im", "interview"))


def test_outcomes_on_different_days_and_unnotified_outcomes() -> None:
    im = replace(IM, outcome="interview", outcome_on=date(2026, 9, 29))
    amcas = replace(AMCAS, outcome="rejected", outcome_on=date(2026, 9, 29))
    other = program("other", date(2026, 9, 20), outcome="matched", outcome_on=date(2026, 9, 30))
    rec = recommender(
        "garcia",
        letters=(
            _letter("im", date(2026, 9, 17)),
            _letter("amcas", date(2026, 9, 17)),
            _letter("other", date(2026, 9, 17)),
        ),
    )
    p = plan(roster([im, amcas, other], [rec]), EMPTY_SNAPSHOT, utc("2026-09-20T12:00"))
    keys = [m.key for m in p.messages if m.kind == "outcome"]
    assert keys == ["outcome:garcia:im:interview", "outcome:garcia:other:matched"]


def test_outcome_without_outcome_on_is_first_seen_now() -> None:
    im = replace(IM, outcome="matched")
    rec = recommender("garcia", letters=(_letter("im", date(2026, 9, 17)),))
    now = utc("2026-09-22T15:00")
    p = plan(roster([im], [rec]), sent(("thank_you:garcia:im", utc("2026-09-18T14:00"))), now)
    assert by_key(p.messages)["outcome:garcia:im:matched"].status == "due"
    assert p.observed == {"outcome:im:matched": now}


# --- zones and daylight time ----------------------------------------------------------


def test_recipient_in_kolkata_gets_09_00_ist_and_the_deadline_date_in_their_zone() -> None:
    ucl = program("ucl", date(2026, 9, 24), zone=LONDON)  # 22:59:59Z: Fri 25 Sep in Kolkata
    rec = recommender(
        "patel",
        zone=KOLKATA,
        asked_on=date(2026, 9, 3),
        agreed_on=date(2026, 9, 4),
        letters=(_letter("ucl"),),
    )
    p = plan(roster([ucl], [rec]), EMPTY_SNAPSHOT, utc("2026-09-03T00:00"))
    assert summary(p.messages) == [
        ("packet:patel", "2026-09-04T03:30Z", "scheduled"),
        ("reminder:patel:ucl:1", "2026-09-11T03:30Z", "scheduled"),
        ("reminder:patel:ucl:2", "2026-09-18T03:30Z", "scheduled"),
    ]


def test_recipient_in_london() -> None:
    rec = recommender(
        "okafor", status="asked", zone=LONDON, asked_on=date(2026, 9, 1), letters=(_letter("im"),)
    )
    p = plan(roster([IM], [rec]), EMPTY_SNAPSHOT, utc("2026-09-01T00:00"))
    # IM closes 03:59:59Z on 25 Sep: already Fri 25 Sep in London.
    assert summary(p.messages) == [
        ("reminder:okafor:im:1", "2026-09-11T08:00Z", "scheduled"),
        ("reminder:okafor:im:2", "2026-09-18T08:00Z", "scheduled"),
    ]


def test_reminders_across_the_end_of_us_daylight_time() -> None:
    fall = program("fall", date(2026, 11, 12))
    rec = recommender(
        "kim", status="asked", zone=NY, asked_on=date(2026, 10, 1), letters=(_letter("fall"),)
    )
    p = plan(roster([fall], [rec]), EMPTY_SNAPSHOT, utc("2026-10-01T12:00"))
    assert summary(p.messages) == [
        ("reminder:kim:fall:1", "2026-10-29T13:00Z", "scheduled"),  # 09:00 EDT
        ("reminder:kim:fall:2", "2026-11-05T14:00Z", "scheduled"),  # 09:00 EST
    ]


# --- the rules ----------------------------------------------------------------------


def test_a_vacation_pushes_a_reminder_back_before_the_deadline() -> None:
    rec = recommender(
        "johnson",
        status="asked",
        asked_on=date(2026, 9, 1),
        letters=(_letter("im"),),
        unavailable=(Unavailable(date(2026, 9, 16), date(2026, 9, 25), "conference"),),
    )
    p = plan(roster([IM], [rec]), EMPTY_SNAPSHOT, utc("2026-09-01T12:00"))
    assert summary(p.messages) == [
        ("reminder:johnson:im:1", "2026-09-10T14:00Z", "scheduled"),
        ("reminder:johnson:im:2", "2026-09-15T14:00Z", "scheduled"),  # exactly min_gap later
    ]
    assert by_key(p.messages)["reminder:johnson:im:2"].reason == (
        "7 days before the Internal Medicine residency (ERAS) deadline, Thu 24 Sep; "
        "Thu 17 Sep falls in Dr. Johnson's conference, 16–25 Sep, so moved back to Tue 15 Sep"
        " (final reminder)"
    )


def test_no_free_day_after_the_ask_skips_the_reminder_with_the_reason() -> None:
    rec = recommender(
        "johnson",
        status="asked",
        asked_on=date(2026, 9, 1),
        letters=(_letter("im"),),
        unavailable=(Unavailable(date(2026, 9, 1), date(2026, 9, 25), "conference"),),
    )
    p = plan(roster([IM], [rec]), EMPTY_SNAPSHOT, utc("2026-09-01T12:00"))
    assert [m.status for m in p.messages] == ["skipped", "skipped"]
    assert p.messages[0].reason.startswith(
        "skipped: Thu 10 Sep falls in Dr. Johnson's conference, 1–25 Sep and no earlier day "
        "after Tue 1 Sep is free"
    )


def test_a_late_agreement_makes_the_first_reminder_pointless() -> None:
    rec = johnson(asked_on=None, agreed_on=date(2026, 9, 15))
    p = plan(roster([IM], [rec]), EMPTY_SNAPSHOT, utc("2026-09-14T12:00"))  # type: ignore[list-item]
    assert summary(p.messages) == [
        ("reminder:johnson:im:1", "2026-09-10T14:00Z", "skipped"),
        ("packet:johnson", "2026-09-15T14:00Z", "scheduled"),
        # Thu 17 Sep is within min_gap of the packet: Sun 20 Sep, so Mon 21 Sep.
        ("reminder:johnson:im:2", "2026-09-21T14:00Z", "scheduled"),
    ]
    assert by_key(p.messages)["reminder:johnson:im:1"].reason.startswith(
        "skipped: Thu 10 Sep is before Dr. Johnson was asked (Tue 15 Sep)"
    )


def test_editing_the_deadline_after_a_reminder_does_not_restart_the_series() -> None:
    later = replace(IM, deadline=datetime(2026, 10, 24, 23, 59, 59, tzinfo=NY))
    snap = sent(
        ("packet:johnson", utc("2026-09-01T14:00")),
        ("reminder:johnson:im:1", utc("2026-09-10T14:00")),
    )
    p = plan(roster([later], [johnson()]), snap, utc("2026-09-20T12:00"))  # type: ignore[list-item]
    assert summary(p.messages) == [
        ("packet:johnson", "2026-09-01T14:00Z", "sent"),
        ("reminder:johnson:im:1", "2026-09-10T14:00Z", "sent"),
        ("reminder:johnson:im:2", "2026-10-19T14:00Z", "scheduled"),  # Sat 17 Oct → Mon
    ]


def test_catch_up_after_two_weeks_off_sends_only_the_latest_reminder_now() -> None:
    snap = sent(("packet:johnson", utc("2026-09-01T14:00")))
    now = utc("2026-09-22T15:00")  # Tue 10:00 in Chicago
    p = plan(roster([IM], [johnson()]), snap, now)  # type: ignore[list-item]
    msgs = by_key(p.messages)
    assert (msgs["reminder:johnson:im:1"].status, msgs["reminder:johnson:im:2"].status) == (
        "skipped",
        "due",
    )
    assert msgs["reminder:johnson:im:2"].send_at == now
    assert msgs["reminder:johnson:im:1"].reason.startswith("skipped: superseded by reminder 2")
    assert "overdue since Thu 17 Sep" in msgs["reminder:johnson:im:2"].reason


def test_catch_up_outside_the_window_waits_for_the_next_slot() -> None:
    snap = sent(("packet:johnson", utc("2026-09-01T14:00")))
    p = plan(roster([IM], [johnson()]), snap, utc("2026-09-22T03:00"))  # type: ignore[list-item]
    m = by_key(p.messages)["reminder:johnson:im:2"]
    assert (m.send_at, m.status) == (utc("2026-09-22T14:00"), "scheduled")


def test_overdue_past_the_deadline_expires() -> None:
    snap = sent(("packet:johnson", utc("2026-09-01T14:00")))
    p = plan(roster([IM], [johnson()]), snap, utc("2026-09-25T15:00"))  # type: ignore[list-item]
    msgs = by_key(p.messages)
    assert msgs["reminder:johnson:im:2"].status == "expired"
    assert msgs["reminder:johnson:im:1"].status == "skipped"


def test_gap_pushing_a_reminder_within_a_day_of_the_deadline_skips_it() -> None:
    rec = johnson(
        asked_on=None,
        agreed_on=date(2026, 9, 21),
        policy=policy(min_gap=timedelta(days=3), reminders=(2,)),
    )
    p = plan(roster([IM], [rec]), EMPTY_SNAPSHOT, utc("2026-09-20T12:00"))  # type: ignore[list-item]
    m = by_key(p.messages)["reminder:johnson:im:1"]
    assert m.status == "skipped"
    assert m.reason.startswith("skipped: the gap would put it within a day of the deadline")


def test_same_instant_goes_in_table_order_and_the_gap_moves_the_later_kind() -> None:
    rec = johnson(asked_on=None, agreed_on=date(2026, 9, 10))
    p = plan(roster([IM], [rec]), EMPTY_SNAPSHOT, utc("2026-09-01T12:00"))  # type: ignore[list-item]
    assert summary(p.messages) == [
        ("packet:johnson", "2026-09-10T14:00Z", "scheduled"),
        ("reminder:johnson:im:1", "2026-09-15T14:00Z", "scheduled"),
        ("reminder:johnson:im:2", "2026-09-21T14:00Z", "scheduled"),
    ]


def test_thank_you_and_outcome_never_move_for_the_gap() -> None:
    im = replace(IM, outcome="interview", outcome_on=date(2026, 9, 21))
    rec = recommender("garcia", letters=(_letter("im", date(2026, 9, 17)),))
    p = plan(roster([im], [rec]), EMPTY_SNAPSHOT, utc("2026-09-15T12:00"))
    assert summary(p.messages) == [
        ("thank_you:garcia:im", "2026-09-18T14:00Z", "scheduled"),
        ("outcome:garcia:im:interview", "2026-09-21T14:00Z", "scheduled"),
    ]


def test_a_sent_message_counts_for_the_gap_at_its_sent_time() -> None:
    # The packet went late (Tue 8 Sep); reminder 1 must keep 5 days after it.
    snap = sent(("packet:johnson", utc("2026-09-08T16:00")))
    p = plan(roster([IM], [johnson()]), snap, utc("2026-09-08T17:00"))  # type: ignore[list-item]
    m = by_key(p.messages)["reminder:johnson:im:1"]
    assert m.send_at == utc("2026-09-14T14:00")  # Sun 13 Sep 11:00 → Mon 14 Sep 09:00


def test_overdue_now_inside_the_window_is_due_now() -> None:
    snap = sent(("packet:johnson", utc("2026-09-01T14:00")))
    now = utc("2026-09-10T15:30")
    m = by_key(plan(roster([IM], [johnson()]), snap, now).messages)["reminder:johnson:im:1"]  # type: ignore[list-item]
    assert (m.send_at, m.status) == (now, "due")


def test_the_next_open_deadline_starts_its_own_series() -> None:
    rec = johnson(letters=(_letter("im", date(2026, 9, 20)), _letter("amcas")))
    snap = sent(
        ("packet:johnson", utc("2026-09-01T14:00")),
        ("reminder:johnson:im:1", utc("2026-09-10T14:00")),
    )
    p = plan(roster([IM, AMCAS], [rec]), snap, utc("2026-09-21T12:00"))  # type: ignore[list-item]
    assert [(k, s, st) for k, s, st in summary(p.messages) if st != "sent"] == [
        ("reminder:johnson:amcas:1", "2026-10-01T14:00Z", "scheduled"),
        ("reminder:johnson:amcas:2", "2026-10-08T14:00Z", "scheduled"),
    ]


def test_log_states_failed_dry_run_and_retry() -> None:
    now = utc("2026-09-10T15:30")
    snap = Snapshot(
        log={
            "packet:johnson": LogEntry(
                "packet:johnson", "failed", utc("2026-09-01T14:00"), error="550 mailbox unavailable"
            ),
            "reminder:johnson:im:1": LogEntry(
                "reminder:johnson:im:1", "dry-run", utc("2026-09-10T14:00")
            ),
        }
    )
    msgs = by_key(plan(roster([IM], [johnson()]), snap, now).messages)  # type: ignore[list-item]
    assert msgs["packet:johnson"].status == "failed"
    assert msgs["packet:johnson"].reason.startswith("failed: 550 mailbox unavailable")
    assert (msgs["reminder:johnson:im:1"].status, msgs["reminder:johnson:im:1"].send_at) == (
        "dry-run",
        now,
    )
    retry = Snapshot(
        log={
            "packet:johnson": LogEntry("packet:johnson", "sent", utc("2026-09-01T14:00")),
            "reminder:johnson:im:1": LogEntry(
                "reminder:johnson:im:1",
                "queued",
                now,
                retry_at=now + timedelta(minutes=4),
                error="451 try later",
            ),
        }
    )
    m = by_key(plan(roster([IM], [johnson()]), retry, now).messages)["reminder:johnson:im:1"]  # type: ignore[list-item]
    assert (m.status, m.send_at) == ("scheduled", now + timedelta(minutes=4))


def test_a_superseded_reminder_stays_superseded_after_the_later_one_went() -> None:
    snap = sent(
        ("packet:johnson", utc("2026-09-01T14:00")),
        ("reminder:johnson:im:2", utc("2026-09-22T15:00")),
    )
    p = plan(roster([IM], [johnson()]), snap, utc("2026-09-22T15:05"))  # type: ignore[list-item]
    m = by_key(p.messages)["reminder:johnson:im:1"]
    assert m.status == "skipped"
    assert m.reason.startswith("skipped: superseded by reminder 2")
    assert [x.key for x in p.messages if x.status in ("due", "scheduled")] == []
