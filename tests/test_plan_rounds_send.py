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
        policy=Policy(reminders=(7, 3)),
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
    config = make_config(tmp_path)
    app = make_app(config, roster, now)
    report = send_due(app, now)
    assert list(report.sent) == ["reminder:lee:a:1"]
    box = mailbox.Maildir(tmp_path / "outbox", create=False)
    (msg,) = list(box)
    assert msg["Subject"] == "A gentle reminder: letters for A, B"
    with Store.open(app.state_dir()) as store:
        rows = {r.key: r for r in store.log_rows()}
        snapshot = store.snapshot(config.transport)
    # The Maildir transport logs deliveries as local: both keys, one message.
    assert {k: r.state for k, r in rows.items()} == {
        "reminder:lee:a:1": "local",
        "reminder:lee:b:1": "local",
    }
    assert rows["reminder:lee:b:1"].message_id == rows["reminder:lee:a:1"].message_id
    # Planned again, nothing is due, and both reminders show as sent.
    again = plan(roster, snapshot, now + timedelta(minutes=1))
    assert {(m.key, m.status) for m in again.messages} == {
        ("reminder:lee:a:1", "sent"),
        ("reminder:lee:b:1", "sent"),
        ("reminder:lee:a:2", "scheduled"),
    }
    # The next round (Mon 16 Nov) replies to the first, named once in References.
    then = datetime.combine(date(2026, 11, 16), time(9, 0), tzinfo=NY)
    assert list(send_due(make_app(config, roster, then), then).sent) == ["reminder:lee:a:2"]
    second = next(m for m in mailbox.Maildir(tmp_path / "outbox", create=False) if m is not msg
                  and m["Message-ID"] != msg["Message-ID"])  # fmt: skip
    assert second["In-Reply-To"] == msg["Message-ID"]
    assert second["References"] == msg["Message-ID"]
    assert second["Subject"] == "Re: A gentle reminder: letters for A, B"


def test_a_refused_address_corrected_in_the_roster_goes_again(tmp_path: Path) -> None:
    """550 at RCPT; the address corrected; the same message, same Message-ID, goes."""
    from dataclasses import replace

    from _smtp_helpers import NOW, Sink, make_roster, smtp_server

    roster = make_roster(1)
    (rec,) = roster.recommenders
    sink = Sink(rcpt_replies={rec.email: "550 5.1.1 <r0000@hospital.example.org>: no such user"})
    with smtp_server(sink) as server:
        config = make_config(tmp_path, transport="smtp", host="127.0.0.1", port=server.port)
        app = make_app(config, roster, NOW)
        report = send_due(app, NOW)
        assert list(report.failed) == ["request:r0000"]
        with Store.open(app.state_dir()) as store:
            snapshot = store.snapshot(config.transport)
        (failed,) = plan(roster, snapshot, NOW).messages
        assert failed.status == "failed"
        assert failed.reason.startswith("failed: ")
        assert "run `lormail retry request:r0000` to send it again" in failed.reason
        fixed = replace(roster, recommenders=(replace(rec, email="r0000@clinic.example.org"),))
        fixed = replace(fixed, recommenders_by_id={})
        later = NOW + timedelta(minutes=5)
        report = send_due(make_app(config, fixed, later), later)
        assert list(report.sent) == ["request:r0000"]
    (got,) = sink.received
    assert got.rcpt_tos == ["r0000@clinic.example.org"]
    with Store.open(app.state_dir()) as store:
        row = store.log_row("request:r0000")
    assert row is not None and row.state == "sent"
    assert got.message_id == row.message_id
