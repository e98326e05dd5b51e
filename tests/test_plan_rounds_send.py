"""A reminder round sent for real (Maildir transport): one message, every joined key logged."""

from __future__ import annotations

import mailbox
from datetime import date, datetime, time, timedelta
from pathlib import Path

from _smtp_helpers import make_app, make_config

from lormail.app.send import send_due
from lormail.core.plan import plan
from lormail.edge.store import Store
from lormail.model import (
    EMPTY_SNAPSHOT,
    Applicant,
    Letter,
    Policy,
    Program,
    Recommender,
    Roster,
)
from tests.builders import NY


def _roster() -> Roster:
    def prog(pid: str, day: date) -> Program:
        deadline = datetime.combine(day, time(23, 59, 59), tzinfo=NY)
        return Program(pid, pid.upper(), deadline, True, NY, portal=f"{pid} portal")

    rec = Recommender(
        id="lee",
        name="Dr. Grace Lee",
        email="lee@hospital.example.org",
        timezone=NY,
        status="asked",
        policy=Policy(reminders=(7,)),
        asked_on=date(2026, 10, 1),
        letters=(Letter("a"), Letter("b")),
    )
    return Roster(
        applicant=Applicant(name="Sarah Chen", email="sarah@example.edu", timezone=NY),
        defaults=Policy(),
        programs=(prog("a", date(2026, 11, 17)), prog("b", date(2026, 11, 19))),
        recommenders=(rec,),
    )


def test_a_round_goes_once_and_logs_every_reminder_it_joined(tmp_path: Path) -> None:
    roster = _roster()
    now = datetime.combine(date(2026, 11, 10), time(9, 0), tzinfo=NY)
    (round_,) = [m for m in plan(roster, EMPTY_SNAPSHOT, now).messages if m.status == "due"]
    assert round_.joined == ("reminder:lee:a:1", "reminder:lee:b:1")
    app = make_app(make_config(tmp_path), roster, now)
    report = send_due(app, now)
    assert list(report.sent) == ["reminder:lee:a:1"]
    box = mailbox.Maildir(tmp_path / "outbox", create=False)
    (msg,) = list(box)
    assert msg["Subject"] == "A last gentle reminder: letters for A, B"
    with Store.open(app.state_dir()) as store:
        rows = {r.key: r for r in store.log_rows()}
        snapshot = store.snapshot()
    assert {k: r.state for k, r in rows.items()} == {
        "reminder:lee:a:1": "sent",
        "reminder:lee:b:1": "sent",
    }
    assert rows["reminder:lee:b:1"].message_id == rows["reminder:lee:a:1"].message_id
    # Planned again, nothing is due, and both reminders show as sent.
    again = plan(roster, snapshot, now + timedelta(minutes=1))
    assert {(m.key, m.status) for m in again.messages} == {
        ("reminder:lee:a:1", "sent"),
        ("reminder:lee:b:1", "sent"),
    }
