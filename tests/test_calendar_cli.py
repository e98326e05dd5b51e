"""``lormail ics`` and ``lormail feed-url`` end to end, on the shipped example files."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import icalendar
import pytest

from lormail.cli import main
from lormail.edge.store import Store
from tests._cal_helpers import run_icaljs

ROOT = Path(__file__).resolve().parent.parent
NOW = "2026-10-01T12:00:00Z"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("config.example.yaml", "roster.example.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.setenv("LORMAIL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("LORMAIL_CONFIG", raising=False)
    return tmp_path


def lormail(workdir: Path, *args: str) -> list[str]:
    return ["--config", str(workdir / "config.example.yaml"), *args]


def ics(workdir: Path, capsysbinary: pytest.CaptureFixture[bytes], *extra: str) -> bytes:
    assert main(lormail(workdir, "ics", "--now", NOW, *extra)) == 0
    return capsysbinary.readouterr().out


def by_uid(data: bytes) -> dict[str, icalendar.Event]:
    return {str(e["UID"]): e for e in icalendar.Calendar.from_ical(data).events}


def test_ics_to_stdout_is_a_calendar_of_the_example(
    workdir: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    data = ics(workdir, capsysbinary)
    evs = by_uid(data)
    assert {"deadline-mph@lormail", "deadline-stanford-phd@lormail", "ask-lee@lormail"} <= set(evs)
    assert any(u.startswith("msg-") for u in evs)
    assert "@example" not in " ".join(evs)
    # The stamps of every event are stored for the next run.
    with Store.open(workdir / "state") as store:
        assert set(store.event_stamps()) == set(evs)


def test_a_second_run_keeps_bytes_until_something_changes(
    workdir: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    first = ics(workdir, capsysbinary)
    assert main(lormail(workdir, "ics", "--now", "2026-10-01T13:00:00Z")) == 0
    second = capsysbinary.readouterr().out
    assert second == first  # an hour later, nothing changed: same DTSTAMPs

    roster = workdir / "roster.example.yaml"
    text = roster.read_text()
    roster.write_text(text.replace("deadline: 2026-12-15", "deadline: 2026-12-18"))
    assert main(lormail(workdir, "ics", "--now", "2026-10-01T14:00:00Z")) == 0
    third = capsysbinary.readouterr().out
    changed = {
        uid
        for uid, ev in by_uid(third).items()
        if ev["SEQUENCE"] != 0 or ev["DTSTAMP"].dt.hour != 12
    }
    # Stanford's only letter is in: nothing else hangs off its deadline.
    assert changed == {"deadline-stanford-phd@lormail"}
    ev = by_uid(third)["deadline-stanford-phd@lormail"]
    assert ev["SEQUENCE"] == 1
    assert ev["DTSTAMP"].to_ical() == b"20261001T140000Z"


def test_ics_output_file_is_written_atomically_and_privately(
    workdir: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    out = workdir / "cal" / "deadlines.ics"
    out.parent.mkdir()
    assert main(lormail(workdir, "ics", "--now", NOW, "-o", str(out))) == 0
    assert capsysbinary.readouterr().out == b""
    data = out.read_bytes()
    assert data.startswith(b"BEGIN:VCALENDAR\r\n") and data.endswith(b"END:VCALENDAR\r\n")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert os.listdir(out.parent) == ["deadlines.ics"]  # no temp file left behind
    # An existing file keeps the mode its owner gave it.
    out.chmod(0o644)
    assert main(lormail(workdir, "ics", "--now", NOW, "-o", str(out))) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert out.read_bytes() == data


def test_ics_into_a_missing_folder_is_one_line_and_exit_1(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = workdir / "missing" / "x.ics"
    assert main(lormail(workdir, "ics", "--now", NOW, "-o", str(target))) == 1
    err = capsys.readouterr().err
    assert err == f"{target}: cannot write the calendar: No such file or directory\n"


def test_ics_bad_now_is_exit_2(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(lormail(workdir, "ics", "--now", "tomorrow")) == 2
    assert "--now: 'tomorrow' is not an RFC 3339 timestamp" in capsys.readouterr().err


def test_feed_url_makes_a_token_once_and_rotates_it(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(lormail(workdir, "feed-url")) == 0
    first = capsys.readouterr().out.strip()
    m = re.fullmatch(r"http://127\.0\.0\.1:8765/([A-Za-z0-9_-]{32})/lormail\.ics", first)
    assert m, first
    token_file = workdir / "state" / "feed-token"
    assert token_file.read_text().strip() == m.group(1)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((workdir / "state").stat().st_mode) == 0o700

    assert main(lormail(workdir, "feed-url")) == 0
    assert capsys.readouterr().out.strip() == first

    assert main(lormail(workdir, "feed-url", "--rotate")) == 0
    captured = capsys.readouterr()
    rotated = captured.out.strip()
    assert rotated != first and rotated.startswith("http://127.0.0.1:8765/")
    assert "the old URL no longer works" in captured.err


def test_feed_url_follows_the_configured_port(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = workdir / "config.example.yaml"
    config.write_text(config.read_text().replace("port: 8765", "port: 9999"))
    assert main(lormail(workdir, "feed-url")) == 0
    assert capsys.readouterr().out.startswith("http://127.0.0.1:9999/")


def test_python_dash_m_lormail_ics(workdir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "lormail", *lormail(workdir, "ics", "--now", NOW)],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(b"BEGIN:VEVENT") > 10
    assert proc.stderr == b""


@pytest.mark.real
def test_icaljs_reads_the_example_calendar(
    workdir: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    out = workdir / "deadlines.ics"
    assert main(lormail(workdir, "ics", "--now", NOW, "-o", str(out))) == 0
    data = out.read_bytes()
    report = run_icaljs(out)
    assert report["vevents"] == data.count(b"BEGIN:VEVENT")
    assert report["valarms"] == data.count(b"BEGIN:VALARM") == 8
    assert sorted(report["vtimezones"]) == sorted(
        str(tz["TZID"]) for tz in icalendar.Calendar.from_ical(data).timezones
    )
    # Every timed event where icalendar (resolving the TZIDs by name) says it is.
    expected = {
        str(e["UID"]): int(e.start.timestamp())
        for e in icalendar.Calendar.from_ical(data).events
        if hasattr(e.start, "hour")
    }
    got = {e["uid"]: e["start"]["unix"] for e in report["events"] if "unix" in e["start"]}
    assert got == expected
