"""Planning and building the calendar again after an edit, keeping what did not change.

Whatever is kept, the result must be what planning and building from scratch
gives: these properties edit generated rosters the ways a user does (rename
or move a program, submit a letter, change a status, go away, add or drop a
recommender, reorder them), let time pass and messages go, and compare.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lormail.app.inputs import Inputs, load_inputs
from lormail.core.calendar import build_calendar
from lormail.core.plan import plan, plan_parts
from lormail.daemon.checker import MEMO_NAME, _Memo
from lormail.edge.store import EventStamp
from lormail.model import EMPTY_SNAPSHOT, CalendarConfig, LogEntry, Roster, Unavailable
from tests.builders import LONDON
from tests.test_plan_properties import FATES, START, instants, record_fates, rosters

CONFIG = CalendarConfig(alarms=(timedelta(days=7),), include_messages=True)

EDITS = st.sampled_from(
    [
        "nothing",
        "rename a program",
        "move a deadline",
        "give a deadline a time",
        "announce an outcome",
        "submit a letter",
        "agree",
        "decline",
        "go away",
        "rename a recommender",
        "move a recommender",
        "drop a recommender",
        "add a recommender",
        "reorder",
    ]
)


def edit(r: Roster, what: str, i: int) -> Roster:
    progs = list(r.programs)
    recs = list(r.recommenders)
    p = i % len(progs)
    j = i % len(recs)
    rec = recs[j]
    if what == "rename a program":
        progs[p] = replace(progs[p], name=progs[p].name + " (renamed)")
    elif what == "move a deadline":
        progs[p] = replace(progs[p], deadline=progs[p].deadline + timedelta(days=3))
    elif what == "give a deadline a time":
        day = progs[p].deadline.date()
        at = datetime.combine(day, time(17, 0), tzinfo=LONDON)
        progs[p] = replace(progs[p], deadline=at, deadline_is_date=False, timezone=LONDON)
    elif what == "announce an outcome":
        progs[p] = replace(progs[p], outcome="interview", outcome_on=START + timedelta(days=90))
    elif what == "submit a letter":
        letters = list(rec.letters)
        letters[0] = replace(letters[0], submitted_on=START + timedelta(days=30))
        recs[j] = replace(rec, status="agreed", letters=tuple(letters))
    elif what == "agree":
        recs[j] = replace(rec, status="agreed", agreed_on=START + timedelta(days=5))
    elif what == "decline":
        recs[j] = replace(rec, status="declined")
    elif what == "go away":
        spell = Unavailable(START + timedelta(days=40), START + timedelta(days=60), "leave")
        recs[j] = replace(rec, unavailable=(*rec.unavailable, spell))
    elif what == "rename a recommender":
        recs[j] = replace(rec, name=rec.name + " Jr.", salutation=rec.salutation + " Jr.")
    elif what == "move a recommender":
        recs[j] = replace(rec, timezone=LONDON)
    elif what == "drop a recommender" and len(recs) > 1:
        del recs[j]
    elif what == "add a recommender":
        recs.append(replace(rec, id=rec.id + "b", email="b" + rec.email))
    elif what == "reorder":
        recs.reverse()
    return replace(
        r, programs=tuple(progs), recommenders=tuple(recs), programs_by_id={}, recommenders_by_id={}
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    r=rosters(),
    now=instants,
    edits=st.lists(st.tuples(EDITS, st.integers(0, 5)), min_size=1, max_size=3),
    fates=st.lists(FATES, max_size=3),
    send=st.booleans(),
    early=st.booleans(),
    hours=st.integers(0, 24 * 30),
    messages=st.booleans(),
)
def test_an_edit_planned_and_built_from_kept_parts_is_the_same_as_from_scratch(
    r: Roster,
    now: datetime,
    edits: list[tuple[str, int]],
    fates: list[str],
    send: bool,
    early: bool,
    hours: int,
    messages: bool,
) -> None:
    snapshot = EMPTY_SNAPSHOT
    first, parts = plan_parts(r, snapshot, now)
    built = build_calendar(r, first, {}, CONFIG, now)
    stamps = dict(built.changed)

    edited = r
    for what, i in edits:
        edited = edit(edited, what, i)
    if send:  # what was due went (or failed) in between
        snapshot = record_fates(snapshot, first, fates)
    ahead = [m for m in first.messages if m.status == "scheduled"]
    if early and ahead:  # and one more, by a lormail whose clock was ahead
        log = {**snapshot.log, ahead[0].key: LogEntry(ahead[0].key, "sent", ahead[0].send_at)}
        snapshot = replace(snapshot, log=log)
    later = now + timedelta(hours=hours)
    config = CONFIG if messages else replace(CONFIG, include_messages=False)

    again, new_parts = plan_parts(edited, snapshot, later, parts)
    assert again == plan(edited, snapshot, later)
    kept = sum(
        new_parts.by_recommender[rec.id] is parts.by_recommender.get(rec.id)
        for rec in edited.recommenders
    )
    event(f"recommender parts kept: {min(kept, 2)}{'+' if kept >= 2 else ''}")

    scratch = build_calendar(edited, again, stamps, config, later)
    cached = build_calendar(edited, again, stamps, config, later, built.cache)
    assert cached.data == scratch.data
    assert cached.changed == scratch.changed
    reused = sum(
        group is built.cache.recommenders.get(rid)
        for rid, group in cached.cache.recommenders.items()
    ) + sum(group is built.cache.programs.get(pid) for pid, group in cached.cache.programs.items())
    event(f"event groups kept: {min(reused, 3)}{'+' if reused >= 3 else ''}")
    # And the build after that, from the second one's groups.
    stamps.update(scratch.changed)
    third = build_calendar(r, first, stamps, config, later, cached.cache)
    assert third.data == build_calendar(r, first, stamps, config, later).data
    # Another build (`lormail ics`) stamped some events meanwhile: their stamps count.
    stamps.update(third.changed)
    meanwhile = later + timedelta(hours=1)
    for uid in sorted(stamps)[::3]:
        stamps[uid] = EventStamp(stamps[uid].hash, stamps[uid].sequence + 1, meanwhile)
    fourth = build_calendar(r, first, stamps, config, later, third.cache)
    assert fourth.data == build_calendar(r, first, stamps, config, later).data


# --- the daemon's memo ----------------------------------------------------------------


def _example_inputs(tmp_path: Path) -> Inputs:
    root = Path(__file__).resolve().parent.parent
    for name in ("config.example.yaml", "roster.example.yaml"):
        shutil.copy(root / name, tmp_path / name)
    shutil.copytree(root / "templates", tmp_path / "templates")
    inputs = load_inputs(tmp_path / "config.example.yaml", check=False)
    assert inputs is not None
    return inputs.pinned(tmp_path / "state")


def test_a_memo_is_read_back_only_by_its_run_for_its_inputs(tmp_path: Path) -> None:
    inputs = _example_inputs(tmp_path)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    now = datetime(2026, 10, 1, 12, tzinfo=UTC)
    whole, parts = plan_parts(inputs.roster, EMPTY_SNAPSHOT, now)
    built = build_calendar(inputs.roster, whole, {}, inputs.config.calendar, now)
    _Memo("run-1", inputs.digest, state, parts, built.cache).save()
    assert (state / MEMO_NAME).stat().st_mode & 0o777 == 0o600

    memo = _Memo.load("run-1", inputs)
    assert memo is not None and memo.calendar is not None
    # The roster's own entries come back as the very objects, not copies.
    rid = inputs.roster.recommenders[0].id
    group = memo.calendar.recommenders[rid]
    assert group.key[0] is inputs.roster.recommenders_by_id[rid]
    assert memo.parts.roster is inputs.roster
    assert memo.parts.by_recommender == parts.by_recommender
    assert memo.calendar == built.cache
    # With it, planning and building again keep every part and group.
    again, kept = plan_parts(inputs.roster, EMPTY_SNAPSHOT, now, memo.parts)
    assert all(kept.by_recommender[r] is memo.parts.by_recommender[r] for r in kept.by_recommender)
    rebuilt = build_calendar(inputs.roster, again, built.changed, inputs.config.calendar, now)
    cached = build_calendar(
        inputs.roster, again, built.changed, inputs.config.calendar, now, memo.calendar
    )
    assert cached.data == rebuilt.data

    # Another run, other inputs, or a damaged file: no memo, and no error.
    assert _Memo.load("run-2", inputs) is None
    assert _Memo.load("run-1", replace(inputs, roster_digest="other")) is None
    data = (state / MEMO_NAME).read_bytes()
    (state / MEMO_NAME).write_bytes(data[: len(data) // 2])
    assert _Memo.load("run-1", inputs) is None
    (state / MEMO_NAME).unlink()
    assert _Memo.load("run-1", inputs) is None
