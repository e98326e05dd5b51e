"""A daemon check's parts in this process: the time limit and the refused files."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lormail.app.inputs import read_sources
from lormail.daemon.check import Checker
from lormail.daemon.limit import Guard, Interrupted, where
from lormail.errors import LormailError
from tests._daemon_helpers import save_atomic, write_setup
from tests.test_daemon import GOOD_REMINDER, NEVER_ENDS, QUIET_LEE, roster


def test_the_guard_interrupts_a_python_loop_at_its_limit_and_says_where() -> None:
    guard = Guard()
    with pytest.raises(Interrupted) as caught, guard.running(0.2, 0.0) as stop:
        while True:
            pass
    assert stop.is_set()
    assert guard.why == "the check did not finish within 0.2 s"
    assert where(caught.value.__traceback__) is None  # not in a template
    assert not guard.busy()
    # A check that ends in time is left alone, and so is the next one.
    with guard.running(0.2, 0.0) as stop:
        pass
    threading.Event().wait(0.4)
    assert not stop.is_set()


def test_a_stop_comes_first_and_the_interruption_a_grace_later() -> None:
    guard = Guard()
    seen: list[bool] = []
    with pytest.raises(Interrupted), guard.running(0.1, 0.3) as stop:
        stop.wait(5)
        seen.append(stop.is_set())  # a send batch would end here, after its message
        while True:
            pass
    assert seen == [True]


def test_files_whose_check_was_cut_short_stay_refused(tmp_path: Path) -> None:
    cfg = write_setup(
        tmp_path, roster({"im": "2027-01-15"}, [QUIET_LEE]), 2525, extra="templates: templates\n"
    )
    (tmp_path / "templates").mkdir()
    template = tmp_path / "templates" / "reminder.txt.j2"
    template.write_text(GOOD_REMINDER, encoding="utf-8")
    checker = Checker(cfg, tmp_path / "state", timedelta(minutes=1))
    checker.load("start")
    good = checker.inputs
    assert good is not None

    save_atomic(template, NEVER_ENDS)
    guard = Guard()
    with pytest.raises(Interrupted) as caught, guard.running(0.5, 0.0):
        checker.load("file changed")
    problem = where(caught.value.__traceback__)
    assert problem is not None and (problem.file, problem.line) == (str(template), 3)
    checker.cut_short(LormailError([problem]), "file changed")
    assert checker.refused == read_sources(cfg).digest
    assert checker.inputs is good
    # The next check does not try the same bytes again: it returns at once.
    with guard.running(5, 0.0):
        checker.load("SIGHUP")
    assert checker.inputs is good and checker.refusal is not None


def test_a_check_wakes_when_a_replys_hold_ends(tmp_path: Path) -> None:
    """The calendar drops "replied — update the roster" when the hold ends, not at
    the next hourly check: the check asks to run again at that instant."""
    from lormail.core.inbox_plan import entry_digest
    from lormail.edge import inbox_store
    from lormail.edge.store import Store
    from lormail.model import InboxEvent

    cfg = write_setup(tmp_path, roster({"im": "2027-01-15"}, [QUIET_LEE]), 2525)
    checker = Checker(cfg, tmp_path / "state", timedelta(minutes=1))
    checker.load("start")
    assert checker.inputs is not None
    lee = checker.inputs.roster.recommenders_by_id["lee"]
    ends = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=20)
    event = InboxEvent(
        kind="reply",
        message_id="<r1@lab.example.org>",
        at=ends - lee.policy.reply_hold,
        sender=lee.email,
        recommender="lee",
        detail="Dr. Lee replied: Re: my letter",
        entry=entry_digest(lee),
    )
    with Store.open(tmp_path / "state") as store:
        inbox_store.add_events(store, {}, [event])
    outcome = checker.run(threading.Event())
    assert ends in outcome.wake_times
