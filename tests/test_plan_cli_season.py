"""Season defects reproduced through the real command line: send-due, roster edits, plan."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from _smtp_helpers import lormail, subprocess_env

ROSTER = """\
applicant:
  name: Sarah Chen
  email: sarah@example.edu
  timezone: America/New_York
programs:
  - id: fel
    name: Kyoto fellowship
    deadline: 2026-12-29
    timezone: Asia/Kolkata
recommenders:
  - id: mori
    name: Dr. Mori
    email: mori@u.example.jp
    timezone: Asia/Tokyo
    status: asked
    asked_on: 2026-12-01
    send_days: [tue]
    letters:
      - {program: fel}
"""
CONFIG = (
    "roster: roster.yaml\nstate_dir: state\ndry_run: false\ntransport: maildir\nmaildir: outbox\n"
)


def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        lormail(config, *args), capture_output=True, text=True, env=subprocess_env(), timeout=60
    )


def plan_json(config: Path, now: str) -> dict[str, dict[str, str]]:
    result = run(config, "plan", "--all", "--json", "--now", now)
    assert result.returncode == 0, result.stderr
    return {m["key"]: m for m in json.loads(result.stdout)["messages"]}


@pytest.mark.slow
def test_a_season_through_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "roster.yaml").write_text(ROSTER)
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    sent = run(config, "send-due", "--now", "2026-12-22T00:00:00Z")
    assert sent.returncode == 0, sent.stderr
    plan = plan_json(config, "2026-12-23T00:00:00Z")
    assert plan["reminder:mori:fel:1"]["status"] == "sent"
    # Reminder 2 would be 18.5 h before the deadline (next Tuesday): never.
    two = plan["reminder:mori:fel:2"]
    assert (two["status"], two["send_at"]) == ("skipped", "2026-12-22T00:00:00Z")
    assert run(config, "send-due", "--now", "2026-12-29T00:00:00Z").stdout.count("reminder") == 0
    # The letter goes in; the sent reminder is shown with the subject it went with.
    submitted = "      - {program: fel, submitted_on: 2026-12-24}"
    (tmp_path / "roster.yaml").write_text(ROSTER.replace("      - {program: fel}", submitted))
    plan = plan_json(config, "2026-12-30T00:00:00Z")
    one = plan["reminder:mori:fel:1"]
    assert (one["status"], one["subject"]) == (
        "sent",
        "A last gentle reminder: letter for Kyoto fellowship, due Tuesday, 29 December",
    )
    assert one["reason"] == "logged; no longer in the roster's plan"
