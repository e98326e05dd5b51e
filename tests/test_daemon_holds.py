"""Edit holds (SPEC §7): what an edit made due waits ``edit_grace`` after it.

The decision is pure (:mod:`lormail.core.holds`); ``plan`` and ``status``
show a held message as "in 9 min (waiting after your edit)".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lormail.core.holds import (
    HOLD_NOTE,
    apply_holds,
    going,
    hold_text,
    holds_after_edit,
    merge_holds,
)
from lormail.edge.store import Store, read_edit_holds
from lormail.errors import LormailError
from lormail.load.config import parse_config
from lormail.load.yamlsrc import display_name
from lormail.model import DRY_RUN, DUE, SCHEDULED, SENT, Plan, PlannedMessage
from tests._daemon_helpers import ROOT, write_setup

NOW = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=10)


def msg(key: str, at: datetime, status: str = SCHEDULED) -> PlannedMessage:
    return PlannedMessage(
        key=key,
        kind=key.split(":")[0],
        recommender=key.split(":")[1],
        to="x@uni.example.org",
        send_at=at,
        expires_at=None,
        status=status,
        reason="because",
    )


def plan(*messages: PlannedMessage) -> Plan:
    return Plan(now=NOW, messages=tuple(sorted(messages, key=lambda m: (m.send_at, m.key))))


def test_an_edit_holds_what_it_made_due_and_nothing_else() -> None:
    before = plan(
        msg("reminder:lee:im:1", NOW - timedelta(hours=1), DUE),  # due already
        msg("reminder:ann:im:1", NOW + timedelta(days=3)),  # moved sooner by the edit
        msg("reminder:bo:im:1", NOW + timedelta(minutes=5)),  # unchanged, soon
    )
    after = plan(
        msg("reminder:lee:im:1", NOW - timedelta(hours=1), DUE),
        msg("reminder:ann:im:1", NOW, DUE),
        msg("reminder:bo:im:1", NOW + timedelta(minutes=5)),
        msg("packet:new", NOW, DUE),  # a new recommender's packet
        msg("reminder:new:im:1", NOW + timedelta(days=9)),  # new, but far off
        msg("thank_you:cy:im", NOW + timedelta(minutes=20)),  # new, after the grace
    )
    holds = holds_after_edit(going(before, False), going(after, False), NOW, GRACE)
    assert holds == {"reminder:ann:im:1": NOW + GRACE, "packet:new": NOW + GRACE}


def test_turning_dry_run_off_holds_everything_that_would_go_at_once() -> None:
    p = plan(msg("packet:lee", NOW - timedelta(days=1), DRY_RUN), msg("packet:ann", NOW, DUE))
    holds = holds_after_edit(going(p, True), going(p, False), NOW, GRACE)
    assert holds == {"packet:lee": NOW + GRACE, "packet:ann": NOW + GRACE}
    # And a dry run sends nothing, so an edit under it holds nothing.
    assert holds_after_edit(going(p, True), going(p, True), NOW, GRACE) == {}


def test_applied_holds_move_messages_and_say_why_until_they_end() -> None:
    p = plan(
        msg("packet:new", NOW, DUE),
        msg("packet:lee", NOW - timedelta(days=1), DRY_RUN),
        msg("reminder:bo:im:1", NOW + timedelta(minutes=5)),
        msg("thank_you:cy:im", NOW - timedelta(days=2), SENT),
    )
    until = NOW + timedelta(minutes=9)
    holds = {k: until for k in ("packet:new", "packet:lee", "thank_you:cy:im")}
    held = apply_holds(p, holds)
    by_key = {m.key: m for m in held.messages}
    for key in ("packet:new", "packet:lee"):
        assert by_key[key].status == SCHEDULED
        assert by_key[key].send_at == until
        assert by_key[key].reason == f"because ({HOLD_NOTE})"
        assert hold_text(by_key[key], holds, NOW) == "in 9 min (waiting after your edit)"
    assert by_key["thank_you:cy:im"].status == SENT  # done is done
    assert by_key["reminder:bo:im:1"].send_at == NOW + timedelta(minutes=5)
    assert [m.send_at for m in held.messages] == sorted(m.send_at for m in held.messages)
    # Once the hold is over, the plan is as if there had been none.
    later = Plan(now=until, messages=p.messages)
    assert apply_holds(later, holds) == later


def test_merged_holds_keep_the_later_end_and_drop_past_ones() -> None:
    kept = {"a": NOW + timedelta(minutes=3), "b": NOW - timedelta(minutes=1)}
    new = {"a": NOW + timedelta(minutes=10), "c": NOW + timedelta(minutes=10)}
    assert merge_holds(kept, new, NOW) == {"a": NOW + GRACE, "c": NOW + GRACE}
    assert merge_holds(new, kept, NOW) == {"a": NOW + GRACE, "c": NOW + GRACE}


def test_edit_grace_is_a_config_duration_of_10_minutes_by_default(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    assert parse_config("edit_grace: 2m\n", path).edit_grace == timedelta(minutes=2)
    assert parse_config("edit_grace: 0m\n", path).edit_grace == timedelta(0)
    assert parse_config("dry_run: true\n", path).edit_grace == timedelta(minutes=10)
    with pytest.raises(LormailError) as err:
        parse_config("dry_run: true\nedit_grace: soon\n", path)
    assert str(err.value) == (
        f"{display_name(path)}:2:13: edit_grace: 'soon' is not a duration; "
        "write one like 14d, 2w, 6h or ISO 8601 P14D"
    )


ROSTER = """\
applicant: {name: Sarah Chen, email: sarah.chen@example.edu, timezone: UTC}
defaults:
  send_window: "00:00-23:59"
  send_days: [mon, tue, wed, thu, fri, sat, sun]
programs:
  - {id: im, name: Program IM, deadline: 2026-10-30}
recommenders:
  - id: patel
    name: Dr. Patel
    email: patel@uni.example.org
    status: agreed
    agreed_on: 2026-09-01
    letters: [{program: im}]
"""


def _cli(cfg: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "lormail", "--config", str(cfg), *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT), TZ="UTC")
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, check=True, timeout=60
    ).stdout


@pytest.mark.slow
def test_plan_and_status_show_a_held_message_as_waiting_after_the_edit(tmp_path: Path) -> None:
    cfg = write_setup(tmp_path, ROSTER, 2525)
    state = tmp_path / "state"
    until = NOW + timedelta(minutes=9)
    with Store.open(state) as store:
        store.save_edit_holds({"packet:patel": until})
    assert read_edit_holds(state) == {"packet:patel": until}
    now = ["--now", "2026-09-01T12:00:00Z"]
    data = json.loads(_cli(cfg, "plan", "--json", *now))
    packet = next(m for m in data["messages"] if m["key"] == "packet:patel")
    assert packet["status"] == "scheduled"
    assert packet["send_at"] == "2026-09-01T12:09:00Z"
    assert packet["reason"].endswith(" (waiting after your edit)")
    assert "scheduled in 9 min (waiting after your edit)" in _cli(cfg, "plan", *now)
    assert "packet in 9 min (waiting after your edit)" in _cli(cfg, "status", *now)
    board = json.loads(_cli(cfg, "status", "--json", *now))
    nxt = board["recommenders"][0]["next_message"]
    assert nxt == {"key": "packet:patel", "send_at": "2026-09-01T12:09:00Z", "status": "scheduled"}
    # When the hold is over it is due, like any other.
    later = ["--now", "2026-09-01T12:09:00Z"]
    data = json.loads(_cli(cfg, "plan", "--json", *later))
    packet = next(m for m in data["messages"] if m["key"] == "packet:patel")
    assert packet["status"] == "due" and "waiting" not in packet["reason"]
