"""send-due end to end: outages, recovery of interrupted sends, stop requests, the lock,
expiry, first-seen facts, the log command, and that no secret leaks anywhere."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from _smtp_helpers import (
    NOW,
    NOW_TEXT,
    PASSWORD,
    USER,
    Sink,
    driver,
    free_port,
    lormail,
    make_app,
    make_config,
    make_roster,
    smtp_server,
    subprocess_env,
    write_setup,
    write_spec,
)

from lormail.app.context import App
from lormail.app.send import send_due, sender_lock
from lormail.commands.send import cmd_log
from lormail.core.compose import message_id
from lormail.edge.logrows import Outbound
from lormail.edge.store import Store

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def rows(app: App) -> dict[str, Any]:
    with Store.open(app.state_dir()) as store:
        return {r.key: r for r in store.log_rows()}


def smtp_app(tmp_path: Path, port: int, n: int = 3, **smtp: Any) -> App:
    config = make_config(tmp_path, transport="smtp", host="127.0.0.1", port=port, **smtp)
    return make_app(config, make_roster(n))


# --- outage ------------------------------------------------------------------------


def run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, env=subprocess_env(**env), timeout=120
    )


@pytest.mark.slow
def test_outage_loses_nothing_and_sends_everything_once_when_back(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet
    config = write_setup(tmp_path, 5, smtp={"host": "127.0.0.1", "port": port, "timeout": "5s"})
    down = run(lormail(config, "send-due", "--now", NOW_TEXT))
    assert down.returncode == 1, down.stderr
    assert f"connection refused by 127.0.0.1:{port}" in down.stderr
    assert "Traceback" not in down.stderr
    assert "waiting to retry 5" in down.stdout
    app = smtp_app(tmp_path, port, n=5)
    queued = rows(app)
    assert len(queued) == 5
    assert {(r.state, r.retry_at) for r in queued.values()} == {
        ("queued", NOW + timedelta(minutes=1))
    }

    # Still down a minute later: the wait doubles, still nothing lost.
    again = run(lormail(config, "send-due", "--now", "2026-09-01T15:01:00Z"))
    assert again.returncode == 1
    assert rows(app)["request:r0000"].retry_at == NOW + timedelta(minutes=3)

    with smtp_server(port=port) as server:
        early = run(lormail(config, "send-due", "--now", "2026-09-01T15:02:00Z"))
        assert early.returncode == 0 and not server.sink.received
        up = run(lormail(config, "send-due", "--now", "2026-09-01T15:03:00Z"))
        assert up.returncode == 0, up.stderr
        assert up.stdout.startswith("sent 5")
        once_more = run(lormail(config, "send-due", "--now", "2026-09-01T15:03:00Z"))
        assert once_more.returncode == 0 and once_more.stdout.startswith("sent 0")
    recipients = sorted(r.rcpt_tos[0] for r in server.sink.received)
    assert recipients == [f"r{i:04d}@hospital.example.org" for i in range(5)]


# --- interrupted sends -------------------------------------------------------------


def _interrupt(app: App, key: str, times: int = 1) -> str:
    """Leave ``key`` in ``sending``, as a run killed mid-send does (``times`` runs died
    on it; all but the last were already noticed by a later run)."""
    with Store.open(app.state_dir()) as store:
        secret = store.message_id_secret()
        mid = message_id(key, secret, "example.edu")
        rid = key.split(":")[1]
        # The recommender's own address: a failed message to another one goes again.
        out = Outbound(key, "request", rid, mid, f"{rid}@hospital.example.org", "s")
        for _ in range(times):
            store.mark_sending(out, NOW - timedelta(minutes=5))
        for _ in range(times - 1):
            store.note_interrupted([key])
    return mid


def test_a_sending_row_is_retried_with_the_same_message_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with smtp_server() as server:
        app = smtp_app(tmp_path, server.port, n=2)
        mid = _interrupt(app, "request:r0001")
        report = send_due(app, NOW)
    assert report.recovered == ("request:r0001",)
    assert report.sent == ("request:r0000", "request:r0001")
    by_rcpt = {r.rcpt_tos[0]: r.message_id for r in server.sink.received}
    assert by_rcpt["r0001@hospital.example.org"] == mid
    assert "recovered request:r0001: a run stopped while sending it" in caplog.text
    row = rows(app)["request:r0001"]
    assert (row.state, row.attempts, row.interruptions) == ("sent", 2, 1)


def test_a_key_that_keeps_dying_mid_send_is_failed(tmp_path: Path) -> None:
    with smtp_server() as server:
        app = smtp_app(tmp_path, server.port, n=1)
        _interrupt(app, "request:r0000", times=3)
        report = send_due(app, NOW)
    assert report.failed == ("request:r0000",)
    assert not server.sink.received
    assert "interrupted 3 times" in (rows(app)["request:r0000"].error or "")


# --- stopping, locking, expiry ---------------------------------------------------------


def test_stop_finishes_the_message_in_flight(tmp_path: Path) -> None:
    stop = threading.Event()

    class Stopper(Sink):
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            stop.set()  # SIGTERM arrives while this message is on the wire
            return await super().handle_DATA(server, session, envelope)

    with smtp_server(Stopper()) as server:
        app = smtp_app(tmp_path, server.port, n=3)
        report = send_due(app, NOW, stop=stop)
    assert report.stopped and report.sent == ("request:r0000",)
    assert report.exit_code == 0
    assert len(server.sink.received) == 1
    assert list(rows(app)) == ["request:r0000"]  # the rest is still simply due


@pytest.mark.slow
def test_sigterm_in_the_command_finishes_the_message_in_flight(tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    sink_spec = write_spec(
        tmp_path, "sink.json", record=str(record), port_file=str(tmp_path / "port"), delay=0.3
    )
    sink = subprocess.Popen(driver("sink", sink_spec), env=subprocess_env())
    try:
        port = _wait_for_port(tmp_path / "port")
        config = write_setup(tmp_path, 10, smtp={"host": "127.0.0.1", "port": port})
        sender = subprocess.Popen(
            lormail(config, "send-due", "--now", NOW_TEXT),
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for(lambda: record.exists() and record.read_text().count("\n") >= 1)
        sender.send_signal(signal.SIGTERM)
        out, err = sender.communicate(timeout=30)
    finally:
        sink.kill()
        sink.wait()
    assert sender.returncode == 0, err
    assert "stopped early" in out
    app = smtp_app(tmp_path, port, n=10)
    logged = rows(app)
    assert {r.state for r in logged.values()} == {"sent"}  # nothing left in `sending`
    assert len(logged) == record.read_text().count("\n") < 10


def test_a_second_sender_does_nothing(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    app = make_app(config, make_roster(1))
    with sender_lock(app.state_dir()) as mine:
        assert mine
        report = send_due(app, NOW)
    assert report.busy and report.sent == () and report.exit_code == 0
    assert send_due(app, NOW).sent == ("request:r0000",)


def test_a_retry_past_expiry_is_skipped(tmp_path: Path) -> None:
    # The request expires at the earliest deadline; fail it just before.
    sink = Sink(data_replies=["451 4.3.0 later"])
    deadline = make_roster(1).programs[0].deadline
    at = deadline - timedelta(seconds=30)
    with smtp_server(sink) as server:
        app = smtp_app(tmp_path, server.port, n=1)
        app._roster = _sunday_free(app)
        report = send_due(app, at)
    assert report.skipped == ("request:r0000",) and report.retrying == ()
    row = rows(app)["request:r0000"]
    assert row.state == "skipped"
    assert row.error == "expired before it could be sent; last error: DATA: 451 4.3.0 later"


def _sunday_free(app: App) -> Any:
    """A roster whose window covers every hour of every day (the expiry test runs late)."""
    from dataclasses import replace
    from datetime import time as dtime

    roster = app.roster()
    policy = replace(
        roster.recommenders[0].policy,
        send_days=frozenset(range(7)),
        window_start=dtime(0, 0),
        window_end=dtime(23, 59, 59),
    )
    recs = tuple(replace(r, policy=policy) for r in roster.recommenders)
    return replace(roster, recommenders=recs, recommenders_by_id={r.id: r for r in recs})


def test_first_seen_facts_are_recorded(tmp_path: Path) -> None:
    from dataclasses import replace

    roster = make_roster(1, kind="packet")
    rec = replace(roster.recommenders[0], agreed_on=None)
    roster = replace(roster, recommenders=(rec,), recommenders_by_id={rec.id: rec})
    app = make_app(make_config(tmp_path), roster)
    report = send_due(app, NOW)
    assert report.sent == ("packet:r0000",)
    with Store.open(app.state_dir()) as store:
        assert store.snapshot("maildir").first_seen["agreed:r0000"] == NOW


# --- log -----------------------------------------------------------------------------


def test_log_text_is_colourless_when_piped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app(make_config(tmp_path), make_roster(2))
    assert cmd_log(app, argparse.Namespace(json=False)) == 0
    assert capsys.readouterr().out == "nothing sent, queued or dry-run yet\n"
    assert cmd_log(app, argparse.Namespace(json=True)) == 0
    assert json.loads(capsys.readouterr().out) == {"entries": []}
    send_due(app, NOW)
    assert cmd_log(app, argparse.Namespace(json=False)) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out
    lines = out.splitlines()
    assert lines[0].split() == ["when", "(UTC)", "state", "key", "to", "subject", "tries", "note"]
    assert lines[1].startswith("2026-09-01 15:00:00  local  request:r0000")
    assert "delivered to" in lines[1]  # the Maildir file it went into
    assert all(line == line.rstrip() for line in lines)  # no padding left in a pipe


# --- no secret leaks ---------------------------------------------------------------------


def _grep_tree(root: Path, needle: bytes) -> list[Path]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            hits.append(path)
    return hits


def test_the_password_never_leaks(tmp_path: Path) -> None:
    keyring_file = tmp_path / "keyring" / "store.json"
    keyring_file.parent.mkdir()
    keyring_file.write_text(json.dumps({f"lormail/{USER}": PASSWORD}))
    env = subprocess_env(
        PYTHON_KEYRING_BACKEND="_smtp_helpers.FileKeyring",
        LORMAIL_TEST_KEYRING=str(keyring_file),
    )
    with smtp_server(users={USER: "the-right-one"}) as server:
        config = write_setup(
            tmp_path, 2, smtp={"host": "127.0.0.1", "port": server.port, "auth": "password"}
        )
        argv = lormail(config, "send-due", "--now", NOW_TEXT)
        done = subprocess.run(argv, capture_output=True, env=env, timeout=60)
    assert done.returncode == 1
    assert b"rejected the login for 'sarah@example.edu': 535" in done.stderr
    needle = PASSWORD.encode()
    assert needle not in done.stdout and needle not in done.stderr
    assert not server.sink.received
    state = tmp_path / "state"
    assert state.is_dir() and (state / "state.db").exists()
    assert _grep_tree(state, needle) == []
    assert _grep_tree(tmp_path, needle) == [keyring_file]  # only the keyring holds it
    # The secret's wrapper hides it from repr, str and logging alike.
    from lormail.edge.credentials import Secret

    secret = Secret(PASSWORD)
    assert PASSWORD not in repr(secret) and PASSWORD not in f"{secret} {secret!r}"


def _wait_for_port(path: Path) -> int:
    _wait_for(lambda: path.exists() and path.read_text().strip() != "")
    return int(path.read_text())


def _wait_for(ready: Any, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


def test_python_dash_m_lormail_send_due(tmp_path: Path) -> None:
    """The real command line, on files: its state is the one these tests read."""
    config = write_setup(tmp_path, 1)
    done = run(lormail(config, "send-due", "--now", NOW_TEXT))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "delivered locally 1 (into the Maildir: nobody receives these)\n"
    line = done.stderr
    assert line.startswith(f"lormail: local request:r0000: delivered to {tmp_path}/outbox/new/")
    assert line.endswith(" (transport maildir: r0000@hospital.example.org gets nothing)\n")
    app = make_app(make_config(tmp_path), make_roster(1))
    assert rows(app)["request:r0000"].state == "local"
    assert os.stat(app.state_dir()).st_mode & 0o777 == 0o700
    listed = run(lormail(config, "log", "--json"))
    (entry,) = json.loads(listed.stdout)["entries"]
    assert entry["state"] == "local" and entry["sent_at"] == NOW_TEXT


def test_dry_run_flag_and_config(tmp_path: Path) -> None:
    config = write_setup(tmp_path, 2, dry_run=True)
    dry = run(lormail(config, "send-due", "--now", NOW_TEXT))
    assert dry.returncode == 0
    assert dry.stdout == "sent 0, dry-run 2 (nothing sent)\n"
    assert not (tmp_path / "outbox").exists()
    config = write_setup(tmp_path, 2, dry_run=False)
    flag = run(lormail(config, "send-due", "--dry-run", "--now", NOW_TEXT))
    assert flag.stdout == "sent 0, dry-run 0 (nothing sent)\n"  # already dry-run
    real = run(lormail(config, "send-due", "--now", NOW_TEXT))
    assert real.stdout == "delivered locally 2 (into the Maildir: nobody receives these)\n"


# --- durability ------------------------------------------------------------------------


def test_every_commit_is_durable(tmp_path: Path) -> None:
    out = Outbound("request:r0", "request", "r0", "<0@x>", "x@example.org", "s")
    with Store.open(tmp_path / "state") as store:

        def mode() -> int:
            return int(store.conn.execute("PRAGMA synchronous").fetchone()[0])

        store.mark_sending(out, NOW)
        assert mode() == 2  # FULL: the WAL is fsynced at every commit
        store.mark_sent("request:r0", NOW, "250 ok")
        assert mode() == 2
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_key_moves_through_the_log_states(tmp_path: Path) -> None:
    """Each transition keeps what it should: created_at, the attempts, retry_at."""
    later = NOW + timedelta(minutes=5)
    out = Outbound("request:r0", "request", "r0", "<0@x>", "x@example.org", "Hello")
    with Store.open(tmp_path / "state") as store:
        store.mark_sending(out, NOW)
        row = store.log_row(out.key)
        assert row is not None
        assert (row.state, row.attempts, row.created_at, row.updated_at) == ("sending", 1, NOW, NOW)
        store.mark_queued(out, NOW, later, "421 busy")
        row = store.log_row(out.key)
        assert row is not None and (row.state, row.retry_at, row.error) == (
            "queued",
            later,
            "421 busy",
        )
        store.mark_sending(replace(out, subject="Hello again"), later)
        row = store.log_row(out.key)
        assert row is not None
        assert (row.state, row.attempts, row.retry_at, row.subject) == (
            "sending",
            2,
            None,
            "Hello again",
        )
        assert (row.created_at, row.updated_at) == (NOW, later)
        store.mark_sent(out.key, later, "250 ok")
        rows = {r.key: r for r in store.log_rows()}
    assert (rows[out.key].state, rows[out.key].sent_at, rows[out.key].reply) == (
        "sent",
        later,
        "250 ok",
    )


# --- attachments that are not files -----------------------------------------------------


@pytest.mark.parametrize("what", ["fifo", "device", "huge"])
def test_a_material_that_is_no_regular_file_is_refused_at_once(tmp_path: Path, what: str) -> None:
    from lormail.model import Material

    if what == "fifo":
        path = tmp_path / "cv.pdf"
        os.mkfifo(path)  # reading it would wait for a writer for ever
        why = "not a regular file"
    elif what == "device":
        path = Path("/dev/zero")  # reading it would fill memory
        why = "not a regular file"
    else:
        path = tmp_path / "cv.pdf"
        with path.open("wb") as fh:
            fh.truncate(21 * 1024 * 1024)
        why = "larger than 20 MB"
    roster = make_roster(1, kind="packet", materials=(Material(label="CV", path=path),))
    app = make_app(make_config(tmp_path), roster)
    report = send_due(app, NOW)
    assert report.retrying == ("packet:r0000",)
    assert report.errors == (f"cannot render or compose packet:r0000: cannot attach {path}: {why}",)
    assert not (tmp_path / "outbox").exists()
