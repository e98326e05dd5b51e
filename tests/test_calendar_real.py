"""Real calendar clients read the calendar: Mozilla's ical.js, vdirsyncer and khal.

ical.js parses the file as Thunderbird does (the file's VTIMEZONEs registered
first) and must find every component and put every timed event at the
instant the plan says, in six zones, on both sides of their DST changes.
vdirsyncer subscribes to the feed served on loopback; khal reads what it
synced, in a fixed local zone, and prints the right local dates and times.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from lormail.core.calendar import build_calendar, message_uid
from lormail.core.plan import ask_by_date, plan
from lormail.edge.feed import FeedServer
from lormail.model import EMPTY_SNAPSHOT, Letter, Plan, PlannedMessage, Roster
from tests._cal_helpers import (
    CAL_CONFIG,
    example_roster,
    program,
    recommender,
    require_real,
    reroster,
    run_icaljs,
    utc,
)

NOW = utc(2026, 10, 1, 12)

# Per zone: wall-clock send times on both sides of a DST change (and the day itself).
DST_DATES: dict[str, list[datetime]] = {
    # US: DST ends Sun 1 Nov 2026, starts Sun 8 Mar 2026.
    "America/New_York": [
        datetime(2026, 10, 30, 9),
        datetime(2026, 11, 2, 9),
        datetime(2026, 3, 6, 16, 45),
        datetime(2026, 3, 9, 9),
    ],
    "America/Chicago": [
        datetime(2026, 9, 14, 9),
        datetime(2026, 10, 30, 9),
        datetime(2026, 11, 2, 9),
    ],
    "America/Los_Angeles": [
        datetime(2026, 10, 30, 9),
        datetime(2026, 11, 1, 12),
        datetime(2026, 11, 2, 9),
    ],
    # EU: summer time ends Sun 25 Oct 2026, starts Sun 29 Mar 2026.
    "Europe/London": [
        datetime(2026, 10, 23, 9),
        datetime(2026, 10, 25, 3, 30),
        datetime(2026, 10, 26, 9),
        datetime(2026, 3, 29, 2, 30),
    ],
    "Asia/Kolkata": [datetime(2026, 3, 9, 9), datetime(2026, 11, 2, 9)],
    # Sydney: DST ends Sun 5 Apr 2026, starts Sun 4 Oct 2026.
    "Australia/Sydney": [
        datetime(2026, 4, 3, 9),
        datetime(2026, 4, 6, 9),
        datetime(2026, 10, 2, 9),
        datetime(2026, 10, 4, 3, 30),
        datetime(2026, 10, 5, 9),
    ],
}


def _dst_roster_and_plan() -> tuple[Roster, Plan, dict[str, datetime]]:
    """A program with a timed deadline and a recipient in each zone, messages by hand."""
    progs, recs, msgs = [], [], []
    expected: dict[str, datetime] = {}
    for i, (key, stamps) in enumerate(sorted(DST_DATES.items())):
        zone = ZoneInfo(key)
        rid = f"r{i}"
        for j, local in enumerate(stamps):
            pid = f"p{i}-{j}"
            deadline = local.replace(tzinfo=zone) + timedelta(hours=8)
            progs.append(program(pid, f"Program {pid}", deadline, key))
            send_at = local.replace(tzinfo=zone).astimezone(UTC)
            m = PlannedMessage(
                key=f"reminder:{rid}:{pid}:1",
                kind="reminder",
                recommender=rid,
                to=f"{rid}@example.org",
                send_at=send_at,
                expires_at=None,
                status="scheduled",
                reason=f"test {key} {local}",
                programs=(pid,),
                reminder_number=1,
            )
            msgs.append(m)
            expected[message_uid(m.key)] = send_at
            expected[f"deadline-{pid}@lormail"] = deadline.astimezone(UTC)
        letters = [Letter(f"p{i}-{j}") for j in range(len(stamps))]
        recs.append(recommender(rid, f"Dr. {key}", key, "agreed", letters))
    roster = reroster(example_roster(), programs=progs, recommenders=recs)
    return roster, Plan(now=NOW, messages=tuple(sorted(msgs, key=lambda m: m.send_at))), expected


@pytest.mark.real
def test_icaljs_finds_every_component(tmp_path: Path) -> None:
    data = build_calendar(
        example_roster(), plan(example_roster(), EMPTY_SNAPSHOT, NOW), {}, CAL_CONFIG, NOW
    ).data
    ics = tmp_path / "lormail.ics"
    ics.write_bytes(data)
    report = run_icaljs(ics)
    assert report["vevents"] == data.count(b"BEGIN:VEVENT") > 20
    assert report["valarms"] == data.count(b"BEGIN:VALARM") == 8
    assert len(report["vtimezones"]) == data.count(b"BEGIN:VTIMEZONE") == 6
    assert report["calname"] == "lormail — Sarah Chen"
    assert report["ttl"] == "PT1H" and report["refresh"] == "PT1H"
    by_uid = {e["uid"]: e for e in report["events"]}
    assert by_uid["deadline-im-residency@lormail"]["start"] == {"date": "2027-01-15"}
    assert by_uid["deadline-im-residency@lormail"]["triggers"] == ["-P7D", "-P1D"]
    checkin = by_uid["checkin-garcia@lormail"]
    assert checkin["recurring"] and checkin["occurrences"][1] == "2027-05-19"


@pytest.mark.real
def test_icaljs_places_every_timed_event_at_the_planned_instant(tmp_path: Path) -> None:
    roster, p, expected = _dst_roster_and_plan()
    ics = tmp_path / "dst.ics"
    ics.write_bytes(build_calendar(roster, p, {}, CAL_CONFIG, NOW).data)
    report = run_icaljs(ics)
    got = {
        e["uid"]: datetime.fromtimestamp(e["start"]["unix"], UTC)
        for e in report["events"]
        if "unix" in e["start"]
    }
    assert got == expected
    # The ends of the message events, 15 minutes later, too.
    for e in report["events"]:
        if e["uid"].startswith("msg-"):
            assert e["end"]["unix"] - e["start"]["unix"] == 15 * 60
            assert e["start"]["tzid"] in DST_DATES


@pytest.mark.real
def test_icaljs_reads_the_example_plan_instants(tmp_path: Path) -> None:
    roster = example_roster()
    p = plan(roster, EMPTY_SNAPSHOT, NOW)
    ics = tmp_path / "lormail.ics"
    ics.write_bytes(build_calendar(roster, p, {}, CAL_CONFIG, NOW).data)
    got = {e["uid"]: e for e in run_icaljs(ics)["events"]}
    shown = [m for m in p.messages if m.status in ("scheduled", "due")]
    for m in shown:
        assert got[message_uid(m.key)]["start"]["unix"] == int(m.send_at.timestamp()), m.key
    mph = roster.programs_by_id["mph"]
    assert got["deadline-mph@lormail"]["start"]["unix"] == int(mph.deadline.timestamp())


# --- vdirsyncer and khal ------------------------------------------------------------


def _tools() -> None:
    for tool in ("vdirsyncer", "khal"):
        if shutil.which(tool) is None:
            require_real(f"{tool} is not installed (apt-get install {tool})")


def _sync(url: str, tmp_path: Path) -> Path:
    vdir = tmp_path / "vdir"
    config = tmp_path / "vdirsyncer.conf"
    config.write_text(
        f"""[general]
status_path = "{tmp_path / "status"}/"

[pair lormail]
a = "feed"
b = "local"
collections = null
conflict_resolution = "a wins"

[storage feed]
type = "http"
url = "{url}"

[storage local]
type = "filesystem"
path = "{vdir}/"
fileext = ".ics"
"""
    )
    for cmd in ("discover", "sync"):
        proc = subprocess.run(
            ["vdirsyncer", "-c", str(config), cmd],
            input="y\n" * 4,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
    return vdir


def _khal(vdir: Path, tmp_path: Path, local_zone: str, start: str, end: str) -> list[str]:
    config = tmp_path / "khal.conf"
    config.write_text(
        f"""[calendars]
[[lormail]]
path = {vdir}/
type = calendar

[locale]
local_timezone = {local_zone}
default_timezone = {local_zone}
timeformat = %H:%M
dateformat = %Y-%m-%d
longdateformat = %Y-%m-%d
datetimeformat = %Y-%m-%d %H:%M
longdatetimeformat = %Y-%m-%d %H:%M

[sqlite]
path = {tmp_path / "khal.db"}
"""
    )
    proc = subprocess.run(
        [
            "khal",
            "-c",
            str(config),
            "list",
            "--once",
            "--format",
            "{start}|{title}",
            "--day-format",
            "",
            start,
            end,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line.strip()]


@pytest.mark.real
def test_vdirsyncer_subscribes_and_khal_lists_the_right_local_times(tmp_path: Path) -> None:
    _tools()
    la, kolkata, berlin = (
        ZoneInfo(z) for z in ("America/Los_Angeles", "Asia/Kolkata", "Europe/Berlin")
    )
    stanford = program(
        "stanford", "Stanford PhD", datetime(2026, 12, 15, 17, 0, tzinfo=la), "America/Los_Angeles"
    )
    ucl = program("ucl", "UCL MSc", date(2027, 1, 29), "Europe/London")
    patel = recommender(
        "patel",
        "Dr. Anil Patel",
        "Asia/Kolkata",
        "agreed",
        [Letter("stanford")],
        salutation="Dr. Patel",
        asked_on=date(2026, 9, 1),
        agreed_on=date(2026, 9, 2),
    )
    lee = recommender(
        "lee", "Dr. Grace Lee", "America/New_York", "planned", [Letter("ucl")], salutation="Dr. Lee"
    )
    roster = reroster(example_roster(), programs=[stanford, ucl], recommenders=[patel, lee])
    p = plan(roster, EMPTY_SNAPSHOT, NOW)
    reminders = [m for m in p.messages if m.kind == "reminder" and m.status == "scheduled"]
    assert reminders
    data = build_calendar(roster, p, {}, CAL_CONFIG, NOW).data

    with FeedServer("127.0.0.1", 0, "t" * 32) as server:
        server.update(data)
        vdir = _sync(server.url, tmp_path)
    assert len(list(vdir.glob("*.ics"))) == data.count(b"BEGIN:VEVENT")

    lines = _khal(vdir, tmp_path, "Europe/Berlin", "2026-10-01", "2027-03-01")

    def local(instant: datetime) -> str:
        return instant.astimezone(berlin).strftime("%Y-%m-%d %H:%M")

    # The LA deadline: 17:00 PST is 02:00 the next day in Berlin.
    assert f"{local(stanford.deadline)}|Deadline: Stanford PhD" in lines
    assert "2026-12-16 02:00|Deadline: Stanford PhD" in lines
    assert "2027-01-29|Deadline: UCL MSc" in lines
    ask = ask_by_date(lee, roster)
    assert ask == date(2026, 12, 18)
    assert "2026-12-18|Ask Dr. Lee for a letter" in lines
    for m in reminders:
        # 09:00 in Kolkata is 04:30 in Berlin (winter).
        assert m.send_at.astimezone(kolkata).time() == time(9, 0)
        assert (
            f"{local(m.send_at)}|Reminder {m.reminder_number} to Dr. Patel (Stanford PhD)" in lines
        )
        assert local(m.send_at).endswith("04:30")
