"""What inbox events do to the plan's inputs and messages (SPEC §8), without a planner."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

from builders import CHICAGO, program, recommender, roster, utc

from lormail.core.inbox_plan import (
    HELD,
    Hold,
    apply_holds,
    entry_digest,
    holds,
    with_inbox,
)
from lormail.model import DUE, SCHEDULED, SENT, InboxEvent, Letter, PlannedMessage, Unavailable

NOW = utc("2026-12-10T15:00")


def base() -> object:
    return roster(
        [program("eras", date(2027, 1, 15)), program("amcas", date(2027, 1, 20))],
        [
            recommender(
                "johnson",
                zone=CHICAGO,
                letters=(Letter("eras"), Letter("amcas", submitted_on=date(2026, 12, 1))),
            ),
            recommender("patel", letters=(Letter("eras"),)),
        ],
    )


def event(kind: str, rid: str, at: str, **kw: object) -> InboxEvent:
    return InboxEvent(
        kind=kind, message_id=None, at=utc(at), sender="x@example.org", recommender=rid, **kw
    )  # type: ignore[arg-type]


def test_an_auto_reply_with_a_return_date_is_an_absence_up_to_the_day_before() -> None:
    r = base()
    # 18 Dec 03:00 UTC is still 17 Dec in Chicago: the absence starts on the 17th.
    got = with_inbox(
        r, [event("auto_reply", "johnson", "2026-12-18T03:00", until=date(2027, 1, 12))]
    )
    johnson = got.recommenders_by_id["johnson"]
    assert johnson.unavailable == (
        Unavailable(date(2026, 12, 17), date(2027, 1, 11), "absence (automatic reply of 17 Dec)"),
    )
    assert got.recommenders_by_id["patel"] is r.recommenders_by_id["patel"]


def test_auto_replies_without_a_date_or_back_the_same_day_change_nothing() -> None:
    r = base()
    events = [
        event("auto_reply", "johnson", "2026-12-18T15:00"),
        event("auto_reply", "johnson", "2026-12-18T15:00", until=date(2026, 12, 18)),
    ]
    assert with_inbox(r, events) is r


def test_a_portal_mail_submits_the_letter_unless_the_roster_says_otherwise() -> None:
    r = base()
    got = with_inbox(
        r,
        [
            event("portal", "johnson", "2026-12-03T04:30", letter="eras"),  # 2 Dec in Chicago
            event("portal", "johnson", "2026-12-09T12:00", letter="eras"),  # a repeat
            event("portal", "johnson", "2026-12-04T12:00", letter="amcas"),  # roster has 1 Dec
        ],
    )
    assert [(lt.key, lt.submitted_on) for lt in got.recommenders_by_id["johnson"].letters] == [
        ("eras", date(2026, 12, 2)),
        ("amcas", date(2026, 12, 1)),
    ]


def test_a_reply_holds_reminders_for_reply_hold_until_the_entry_changes() -> None:
    r = base()
    johnson = r.recommenders_by_id["johnson"]
    reply = event("reply", "johnson", "2026-12-08T15:00", entry=entry_digest(johnson))
    assert holds(r, [reply], NOW) == {
        "johnson": Hold(
            utc("2026-12-15T15:00"),
            "held: Dr. Johnson replied on 8 Dec; reminders wait until 15 Dec "
            "or until you update the roster",
            frozenset({"reminder", "request_followup"}),
        )
    }
    assert holds(r, [reply], utc("2026-12-15T15:00")) == {}  # the hold is over
    edited = replace(johnson, asked_on=date(2026, 11, 1))
    changed = replace(r, recommenders=(edited, r.recommenders[1]), recommenders_by_id={})
    assert holds(changed, [reply], NOW) == {}  # any edit of the entry ends it
    longer = replace(johnson, policy=replace(johnson.policy, reply_hold=timedelta(days=2)))
    assert entry_digest(longer) != entry_digest(johnson)


def test_a_bounce_holds_everything_until_the_address_changes() -> None:
    r = base()
    johnson = r.recommenders_by_id["johnson"]
    bounce = event("bounce", "johnson", "2026-12-02T14:00", address="JOHNSON@example.org")
    reply = event("reply", "johnson", "2026-12-09T15:00", entry=entry_digest(johnson))
    expected = Hold(
        None,
        "held: mail to johnson@example.org bounced on 2 Dec; correct the address in the roster",
        None,
    )
    assert holds(r, [bounce, reply], NOW) == {"johnson": expected}
    moved = replace(johnson, email="emily.johnson@example.org")
    fixed = replace(r, recommenders=(moved, r.recommenders[1]), recommenders_by_id={})
    assert holds(fixed, [bounce], NOW) == {}


def message(key: str, kind: str, at: str, status: str = SCHEDULED) -> PlannedMessage:
    return PlannedMessage(
        key=key,
        kind=kind,
        recommender=key.split(":")[1],
        to="x@example.org",
        send_at=utc(at),
        expires_at=None,
        status=status,
        reason="why",
    )


def test_apply_holds() -> None:
    reply_hold = Hold(utc("2026-12-15T15:00"), "held: replied", frozenset({"reminder"}))
    bounce_hold = Hold(None, "held: bounced", None)
    messages = [
        message("reminder:johnson:eras:1", "reminder", "2026-12-11T15:00", DUE),
        message("reminder:johnson:eras:2", "reminder", "2026-12-16T15:00"),  # after the hold
        message("packet:johnson", "packet", "2026-12-11T15:00"),  # not a reminder
        message("thank_you:johnson:x", "thank_you", "2026-12-01T15:00", SENT),
        message("packet:patel", "packet", "2026-12-12T15:00"),
    ]
    got = apply_holds(messages, {"johnson": reply_hold, "patel": bounce_hold})
    assert [(m.status, m.send_at, m.reason, m.held_open) for m in got] == [
        (HELD, utc("2026-12-15T15:00"), "held: replied", False),
        (SCHEDULED, utc("2026-12-16T15:00"), "why", False),
        (SCHEDULED, utc("2026-12-11T15:00"), "why", False),
        (SENT, utc("2026-12-01T15:00"), "why", False),
        (HELD, utc("2026-12-12T15:00"), "held: bounced", True),
    ]


# --- through the planner -------------------------------------------------------------


def _plan(events: list[InboxEvent], now: datetime) -> list[PlannedMessage]:
    from lormail.core.plan import plan
    from lormail.model import Snapshot

    r = roster(
        [program("eras", date(2027, 1, 15))],
        [
            recommender(
                "johnson",
                status="asked",
                zone=CHICAGO,
                asked_on=date(2026, 11, 2),
                letters=(Letter("eras"),),
            )
        ],
    )
    johnson = r.recommenders_by_id["johnson"]
    events = [replace(e, entry=entry_digest(johnson)) if e.kind == "reply" else e for e in events]
    return list(plan(r, Snapshot(inbox=tuple(events)), now).messages)


def test_the_planner_takes_an_absence_from_an_auto_reply() -> None:
    # Reminder 1 is due on Thu 31 Dec (15 Jan − 14 days), in the absence.
    messages = _plan(
        [event("auto_reply", "johnson", "2026-12-18T15:00", until=date(2027, 1, 5))],
        utc("2026-12-20T12:00"),
    )
    first = messages[0]
    assert (first.key, first.send_at) == ("reminder:johnson:eras:1", utc("2027-01-05T15:00"))
    assert "absence (automatic reply of 18 Dec)" in first.reason


def test_the_planner_takes_a_letter_a_portal_confirmed() -> None:
    messages = _plan(
        [event("portal", "johnson", "2026-12-10T15:00", letter="eras")], utc("2026-12-10T16:00")
    )
    assert [(m.key, m.status, m.send_at) for m in messages] == [
        ("thank_you:johnson:eras", SCHEDULED, utc("2026-12-11T15:00")),
    ]


def test_the_planner_holds_everything_after_a_bounce() -> None:
    messages = _plan(
        [event("bounce", "johnson", "2026-12-02T14:00", address="johnson@example.org")],
        utc("2026-12-10T16:00"),
    )
    assert {(m.status, m.held_open) for m in messages} == {(HELD, True)}
    assert messages[0].reason == (
        "held: mail to johnson@example.org bounced on 2 Dec; correct the address in the roster"
    )
