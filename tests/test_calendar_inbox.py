"""What the inbox read, on the calendar (SPEC §5 and §8): replies while they hold, bounces
until the address changes; auto-reply absences and portal confirmations as the plan sees them."""

from __future__ import annotations

import email
import email.policy
import shutil
from dataclasses import replace
from datetime import date, datetime
from email.message import Message
from pathlib import Path

import pytest

from lormail.app.context import App
from lormail.app.inbox import known
from lormail.cli import main
from lormail.core.calendar import Built, build_calendar
from lormail.core.ical import message_uid
from lormail.core.inbox import classify
from lormail.core.inbox_calendar import bounce_reason, inbox_uid
from lormail.core.inbox_plan import entry_digest
from lormail.core.plan import plan
from lormail.edge import inbox_store
from lormail.edge.store import Store
from lormail.model import EventStamp, InboxEvent, Recommender, Roster, Snapshot
from tests._cal_helpers import (
    CAL_CONFIG,
    events,
    example_roster,
    reroster,
    run_icaljs,
    utc,
)

CORPUS = Path(__file__).parent / "inbox"
REPLY_AT = utc(2026, 12, 30, 16, 30)  # Wed 30 Dec, 10:30 in Chicago
NOW = utc(2026, 12, 31, 12)


def johnson(roster: Roster) -> Recommender:
    return roster.recommenders_by_id["johnson"]


def reply(
    roster: Roster, at: datetime = REPLY_AT, mid: str = "<r1@hospital.example.org>"
) -> InboxEvent:
    return InboxEvent(
        kind="reply",
        message_id=mid,
        at=at,
        sender="johnson@example.org",
        recommender="johnson",
        detail="Dr. Emily Johnson replied: Re: My letter for SOPHAS",
        entry=entry_digest(johnson(roster)),
    )


def bounce(at: datetime = REPLY_AT, address: str = "Johnson@Example.org") -> InboxEvent:
    return InboxEvent(
        kind="bounce",
        message_id="<dsn-1@mx.example.org>",
        at=at,
        sender="mailer-daemon@mx.example.org",
        recommender="johnson",
        detail="Dr. Emily Johnson's address bounced: 5.1.1 <johnson@example.org>: User unknown",
        address=address,
    )


def build(
    roster: Roster,
    inbox: tuple[InboxEvent, ...],
    now: datetime = NOW,
    stamps: dict[str, EventStamp] | None = None,
) -> Built:
    p = plan(roster, Snapshot(inbox=inbox), now)
    return build_calendar(roster, p, stamps or {}, CAL_CONFIG, now, inbox)


def inbox_shown(data: bytes) -> dict[str, tuple[str, date, date, str]]:
    return {
        uid: (str(e["SUMMARY"]), e.decoded("DTSTART"), e.decoded("DTEND"), str(e["DESCRIPTION"]))
        for uid, e in events(data).items()
        if uid.startswith(("reply-", "bounce-"))
    }


def test_a_reply_is_an_all_day_event_on_its_day_while_it_holds() -> None:
    roster = example_roster()
    e = reply(roster)
    built = build(roster, (e,))
    assert inbox_shown(built.data) == {
        inbox_uid(e): (
            "Dr. Johnson replied — update the roster",
            date(2026, 12, 30),
            date(2026, 12, 31),
            "Dr. Emily Johnson replied: Re: My letter for SOPHAS\n"
            "lormail holds the reminders and follow-ups to Dr. Emily Johnson until "
            "Wed 6 Jan 2027, or until you update their roster entry (for example "
            "status: agreed, or a letter's submitted_on).",
        )
    }
    assert events(built.data)[inbox_uid(e)]["TRANSP"] == "TRANSPARENT"
    # The plan holds the reminder the calendar speaks of, and shows it no more.
    p = plan(roster, Snapshot(inbox=(e,)), NOW)
    held = [m for m in p.messages if m.status == "held"]
    assert [m.key for m in held] == ["reminder:johnson:im-residency:1"]
    assert message_uid(held[0].key) not in events(built.data)


def test_a_reply_drops_out_when_its_hold_ends() -> None:
    roster = example_roster()
    e = reply(roster)
    # reply_hold is 7 days: the hold ends at 16:30 UTC on 6 Jan.
    assert inbox_shown(build(roster, (e,), utc(2027, 1, 6, 16, 29)).data)
    assert inbox_shown(build(roster, (e,), utc(2027, 1, 6, 16, 30)).data) == {}


def with_johnson(roster: Roster, r: Recommender) -> Roster:
    return reroster(roster, recommenders=[r if x.id == r.id else x for x in roster.recommenders])


def test_a_reply_drops_out_when_the_roster_entry_changes() -> None:
    roster = example_roster()
    e = reply(roster)
    mph, residency = johnson(roster).letters
    done = replace(mph, submitted_on=date(2026, 11, 26))
    edited = with_johnson(roster, replace(johnson(roster), letters=(done, residency)))
    assert inbox_shown(build(edited, (e,)).data) == {}
    p = plan(edited, Snapshot(inbox=(e,)), NOW)
    assert "held" not in {m.status for m in p.messages}


def test_two_replies_are_two_events_each_with_its_own_hold() -> None:
    roster = example_roster()
    first = reply(roster)
    second = reply(roster, utc(2026, 12, 31, 9), "<r2@hospital.example.org>")
    shown = inbox_shown(build(roster, (first, second)).data)
    assert sorted((s[1], s[3].split(" until ")[1][:14]) for s in shown.values()) == [
        (date(2026, 12, 30), "Wed 6 Jan 2027"),
        (date(2026, 12, 31), "Thu 7 Jan 2027"),
    ]


def test_a_bounce_shows_until_the_address_changes() -> None:
    roster = example_roster()
    e = bounce()
    later = utc(2027, 1, 10, 12)
    assert inbox_shown(build(roster, (e,), later).data) == {
        inbox_uid(e): (
            "Dr. Johnson's address bounced: 5.1.1 <johnson@example.org>: User unknown",
            date(2026, 12, 30),
            date(2026, 12, 31),
            "Mail to johnson@example.org bounced on Wed 30 Dec 2026: 5.1.1 "
            "<johnson@example.org>: User unknown\n"
            "lormail sends Dr. Emily Johnson nothing until you correct their address in "
            "the roster.",
        )
    }
    fixed = with_johnson(roster, replace(johnson(roster), email="e.johnson@example.org"))
    assert inbox_shown(build(fixed, (e,), later).data) == {}


def test_bounce_reason() -> None:
    assert bounce_reason("Dr. X's address bounced: 5.1.10 Recipient not found") == (
        "5.1.10 Recipient not found"
    )
    assert bounce_reason("something else") == "something else"


def test_uids_are_stable_and_hold_no_address() -> None:
    roster = example_roster()
    e = reply(roster)
    assert inbox_uid(e) == inbox_uid(replace(e, detail="another detail"))
    assert inbox_uid(e) != inbox_uid(replace(e, message_id="<r2@hospital.example.org>"))
    assert inbox_uid(e).startswith("reply-") and inbox_uid(e).endswith("@lormail")
    assert "example" not in inbox_uid(e) and "example" not in inbox_uid(bounce())
    no_id = replace(e, message_id=None, folder="INBOX", uid=7)
    assert inbox_uid(no_id) == inbox_uid(replace(no_id, detail="x")) != inbox_uid(e)


def test_sequence_and_stamp_change_only_with_the_content() -> None:
    roster = example_roster()
    e = bounce()
    uid = inbox_uid(e)
    t1, t2, t3 = utc(2026, 12, 31, 12), utc(2027, 1, 1, 12), utc(2027, 1, 2, 12)
    first = build(roster, (e,), t1)
    assert first.changed[uid].sequence == 0
    stamps = dict(first.changed)
    same = build(roster, (e,), t2, stamps)
    assert uid not in same.changed
    assert events(same.data)[uid].decoded("DTSTAMP") == t1
    # A new salutation changes the title: SEQUENCE 1, stamped then, and kept after.
    renamed = with_johnson(roster, replace(johnson(roster), salutation="Professor Johnson"))
    changed = build(renamed, (e,), t2, stamps)
    stamps.update(changed.changed)
    ev = events(changed.data)[uid]
    assert str(ev["SUMMARY"]).startswith("Professor Johnson's address bounced: 5.1.1")
    assert (ev["SEQUENCE"], ev.decoded("DTSTAMP")) == (1, t2)
    again = events(build(renamed, (e,), t3, stamps).data)[uid]
    assert (again["SEQUENCE"], again.decoded("DTSTAMP")) == (1, t2)


AWAY = InboxEvent(
    kind="auto_reply",
    message_id="<ooo@example.org>",
    at=utc(2026, 11, 24, 8),  # 02:00 on Tue 24 Nov in Chicago
    sender="johnson@example.org",
    recommender="johnson",
    until=date(2026, 11, 25),
    detail="Dr. Emily Johnson is away until Wed 25 Nov",
)


def test_auto_reply_absences_and_portal_mail_show_as_the_plan_sees_them() -> None:
    roster = example_roster()
    portal = InboxEvent(
        kind="portal",
        message_id="<eras@example.org>",
        at=utc(2026, 11, 19, 15),
        sender="noreply@eras.example.org",
        recommender="johnson",
        letter="im-residency",
        detail="ERAS: Dr. Emily Johnson's letter (im-residency) received",
    )
    # The reply comes after the auto-reply: it still shows, recorded against the entry as written.
    evs = events(build(roster, (AWAY, portal, reply(roster))).data)
    absence = evs["away-johnson-20261124@lormail"]
    assert str(absence["SUMMARY"]) == "Dr. Johnson away: absence (automatic reply of 24 Nov)"
    assert (absence.decoded("DTSTART"), absence.decoded("DTEND")) == (
        date(2026, 11, 24),
        date(2026, 11, 25),
    )
    assert "Dr. Emily Johnson [LoR-12345]: submitted on Thu 19 Nov 2026" in str(
        evs["deadline-im-residency@lormail"]["DESCRIPTION"]
    )
    assert any(uid.startswith("reply-") for uid in evs)


def test_the_planner_holds_for_a_reply_after_an_auto_reply() -> None:
    """The reply's entry digest is of the roster as written, not of the one with the absence."""
    roster = example_roster()
    p = plan(roster, Snapshot(inbox=(AWAY, reply(roster))), NOW)
    held = [m for m in p.messages if m.status == "held"]
    assert [m.key for m in held] == ["reminder:johnson:im-residency:1"]
    assert held[0].reason.startswith("held: Dr. Johnson replied on 30 Dec;")


# --- through the state, the command and a real client ------------------------------------


def _message(name: str) -> Message:
    return email.message_from_bytes((CORPUS / name).read_bytes(), policy=email.policy.default)


@pytest.fixture
def inbox_app(tmp_path: Path) -> App:
    shutil.copy(CORPUS / "roster.yaml", tmp_path / "roster.yaml")
    config = tmp_path / "config.yaml"
    config.write_text("roster: roster.yaml\nstate_dir: state\n")
    app = App(config)
    context = known(app)
    found = []
    for uid, name in enumerate(("reply_in_thread.eml", "bounce_gmail.eml"), start=1):
        e = classify(context, _message(name))
        r = context.roster.recommenders_by_id[e.recommender or ""]
        found.append(replace(e, folder="INBOX", uid=uid, entry=entry_digest(r)))
    with Store.open(app.state_dir()) as store:
        inbox_store.add_events(store, {}, found)
    return app


def _ics(app: App, out: Path, now: str) -> bytes:
    argv = ["--config", str(app.config_path), "ics", "-o", str(out), "--now", now]
    assert main(argv) == 0
    return out.read_bytes()


def test_ics_reads_the_recorded_events_from_the_state(inbox_app: App, tmp_path: Path) -> None:
    data = _ics(inbox_app, tmp_path / "out.ics", "2026-12-08T12:00:00Z")
    summaries = sorted(s[0] for s in inbox_shown(data).values())
    assert summaries == [
        "Dr. Emily Johnson replied — update the roster",
        "Prof. Dr. Hans Müller's address bounced: 5.1.1 The email account that you tried to"
        " reach does not e…",
    ]
    # A month later the reply's hold is over; the bounce stays.
    later = _ics(inbox_app, tmp_path / "later.ics", "2027-01-05T12:00:00Z")
    assert [s[0][:28] for s in inbox_shown(later).values()] == ["Prof. Dr. Hans Müller's addr"]


@pytest.mark.real
def test_icaljs_reads_the_inbox_events(inbox_app: App, tmp_path: Path) -> None:
    ics = tmp_path / "inbox.ics"
    _ics(inbox_app, ics, "2026-12-08T12:00:00Z")
    shown = {
        e["summary"]: (e["start"], e["end"])
        for e in run_icaljs(ics)["events"]
        if e["uid"].startswith(("reply-", "bounce-"))
    }
    assert shown == {
        "Dr. Emily Johnson replied — update the roster": (
            {"date": "2026-12-03"},
            {"date": "2026-12-04"},
        ),
        "Prof. Dr. Hans Müller's address bounced: 5.1.1 The email account that you tried to"
        " reach does not e…": ({"date": "2026-12-03"}, {"date": "2026-12-04"}),
    }
