"""`lormail status` shows what the inbox learnt: letters a portal confirmed, replies, bounces."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lormail.cli import main
from lormail.edge import inbox_store
from lormail.edge.store import Store
from lormail.model import InboxEvent

ROSTER = """\
applicant: {name: Sarah Chen, email: sarah.chen@example.edu, timezone: America/New_York}
programs:
  - {id: eras, name: Internal Medicine residency, deadline: 2027-01-15}
recommenders:
  - {id: johnson, name: Dr. Emily Johnson, email: ej@example.org, timezone: America/Chicago,
     status: asked, asked_on: 2026-11-02, letters: [{program: eras}]}
  - {id: patel, name: Dr. Raj Patel, email: rp@example.org, status: asked,
     asked_on: 2026-11-02, letters: [{program: eras}]}
"""


def test_status_shows_the_inbox(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "roster.yaml").write_text(ROSTER)
    config = tmp_path / "config.yaml"
    config.write_text("roster: roster.yaml\nstate_dir: state\n")
    at = datetime(2026, 12, 10, 15, 0, tzinfo=UTC)
    with Store.open(tmp_path / "state") as store:
        inbox_store.add_events(
            store,
            {},
            [
                InboxEvent(
                    "portal",
                    "<p@x>",
                    at,
                    "noreply@aamc.org",
                    "johnson",
                    "eras",
                    detail="ERAS: Dr. Emily Johnson's letter (eras) received",
                ),
                InboxEvent(
                    "bounce",
                    "<b@x>",
                    at,
                    "mailer-daemon@x",
                    "patel",
                    address="rp@example.org",
                    detail="Dr. Raj Patel's address bounced: 5.1.1 User unknown",
                ),
            ],
        )
    now = ["--now", "2026-12-11T12:00:00Z"]
    assert main(["--config", str(config), "status", *now]) == 0
    board = capfd.readouterr().out
    assert "✓ 10 Dec (e-mail)" in board
    assert "address bounced 10 Dec: 5.1.1 User unknown" in board
    assert main(["--config", str(config), "status", "--json", *now]) == 0
    data = json.loads(capfd.readouterr().out)
    assert [
        (r["id"], r["letters"][0]["submitted_on"], r["inbox"]) for r in data["recommenders"]
    ] == [
        ("johnson", "2026-12-10", None),
        ("patel", None, "address bounced 10 Dec: 5.1.1 User unknown"),
    ]
    assert main(["--config", str(config), "plan", "--json", "--all", *now]) == 0
    plan = json.loads(capfd.readouterr().out)
    assert {(m["recommender"], m["status"], m["send_at"]) for m in plan["messages"]} >= {
        ("patel", "held", None),
        ("johnson", "scheduled", "2026-12-11T15:00:00Z"),  # the thank-you
    }
