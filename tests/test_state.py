"""The state folder: local deliveries, a lost log, `state reset`, `retry`, disk trouble."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _smtp_helpers import (
    NOW,
    NOW_TEXT,
    Sink,
    make_app,
    make_config,
    make_roster,
    smtp_server,
    subprocess_env,
    write_setup,
)

from lormail.app.send import send_due
from lormail.edge.statedir import SECRET_FILE, peek_message_id_secret
from lormail.edge.store import Store
from lormail.model import FAILED, SENT

PYTHON = [os.fspath(Path(os.sys.executable)), "-m", "lormail"]


def run(config: Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PYTHON, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(),
        check=False,
        **kw,
    )


def rows(state_dir: Path) -> dict[str, Any]:
    with Store.open(state_dir) as store:
        return {r.key: r for r in store.log_rows()}


# --- Maildir deliveries are local ----------------------------------------------------


def test_maildir_deliveries_never_count_as_sent_once_the_transport_is_smtp(
    tmp_path: Path,
) -> None:
    roster = make_roster(1)
    maildir = make_app(make_config(tmp_path), roster)
    assert send_due(maildir, NOW).sent == ("request:r0000",)
    assert rows(maildir.state_dir())["request:r0000"].state == "local"
    # While the transport is maildir, it went: planned as sent, not delivered twice.
    (msg,) = [m for m in maildir.plan(NOW).messages if m.kind == "request"]
    assert msg.status == SENT
    assert send_due(maildir, NOW).sent == ()
    with smtp_server() as server:
        config = make_config(tmp_path, transport="smtp", host="127.0.0.1", port=server.port)
        smtp = make_app(config, roster)
        (msg,) = smtp.plan(NOW).messages
        assert msg.status == "due"
        # A dry run first: logged once, as for any message never sent.
        assert send_due(smtp, NOW, dry_run=True).dry_runs == ("request:r0000",)
        assert send_due(smtp, NOW, dry_run=True).dry_runs == ()
        report = send_due(smtp, NOW)
    assert report.sent == ("request:r0000",)
    (got,) = server.sink.received
    assert got.rcpt_tos == ["r0000@hospital.example.org"]
    row = rows(smtp.state_dir())["request:r0000"]
    assert (row.state, row.message_id) == ("sent", got.message_id)


# --- the Message-ID secret and a lost log ------------------------------------------------


def test_the_secret_lives_apart_from_the_log(tmp_path: Path) -> None:
    app = make_app(make_config(tmp_path), make_roster(1))
    send_due(app, NOW)
    secret_file = app.state_dir() / SECRET_FILE
    assert os.stat(secret_file).st_mode & 0o777 == 0o600
    secret = peek_message_id_secret(app.state_dir())
    assert secret is not None and len(secret) == 32
    with sqlite3.connect(app.state_dir() / "state.db") as conn:
        assert conn.execute("SELECT value FROM meta WHERE name LIKE '%secret%'").fetchall() == []


def test_an_older_state_keeps_its_message_ids(tmp_path: Path) -> None:
    """A state that kept the secret in the database moves it, unchanged, to its file."""
    state = tmp_path / "state"
    state.mkdir()
    with sqlite3.connect(state / "state.db") as conn:
        conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute(
            "INSERT INTO meta VALUES ('schema', '2'), ('message_id_secret', ?)", ("ab" * 32,)
        )
    Store.open(state).close()
    assert peek_message_id_secret(state) == bytes.fromhex("ab" * 32)


LOST = (
    "{db} is missing or empty, but this state folder was used before; nothing is "
    "sent until you restore it from a backup, or run 'lormail state reset' to start a new "
    "log (messages already sent may then go again)\n"
)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["missing", "empty"])
def test_a_lost_log_sends_nothing_until_state_reset(tmp_path: Path, how: str) -> None:
    config = write_setup(tmp_path, 2)
    first = run(config, "send-due", "--now", NOW_TEXT)
    assert first.returncode == 0, first.stderr
    outbox = tmp_path / "outbox" / "new"
    ids_before = sorted(_message_ids(outbox))
    db = tmp_path / "state" / "state.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    if how == "missing":
        db.unlink()
    else:
        db.write_bytes(b"")
    for argv in (["send-due", "--now", NOW_TEXT], ["run"]):
        done = run(config, *argv)
        assert (done.returncode, done.stdout, done.stderr) == (1, "", LOST.format(db=db)), argv
    assert len(list(outbox.iterdir())) == 2  # nothing went again
    reset = run(config, "state", "reset")
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout.startswith(f"started a new send log in {tmp_path / 'state'}")
    again = run(config, "send-due", "--now", NOW_TEXT)
    assert again.returncode == 0, again.stderr
    # On purpose, everything went again: with the Message-IDs it had.
    assert sorted(_message_ids(outbox)) == sorted(ids_before * 2)


def _message_ids(folder: Path) -> list[str]:
    from email import message_from_bytes, policy

    return [
        str(message_from_bytes(f.read_bytes(), policy=policy.default)["Message-ID"])
        for f in folder.iterdir()
    ]


def test_a_fresh_folder_with_only_a_feed_token_is_not_a_lost_log(tmp_path: Path) -> None:
    config = write_setup(tmp_path, 1)
    assert run(config, "feed-url").returncode == 0
    done = run(config, "send-due", "--now", NOW_TEXT)
    assert (done.returncode, done.stdout) == (
        0,
        "delivered locally 1 (into the Maildir: nobody receives these)\n",
    ), done.stderr


# --- retry ---------------------------------------------------------------------------------


def test_retry_plans_a_failed_message_again_with_its_message_id(tmp_path: Path) -> None:
    roster = make_roster(1)
    with smtp_server(
        Sink(rcpt_replies={"r0000@hospital.example.org": "550 5.1.1 no such user"})
    ) as server:
        config = make_config(tmp_path, transport="smtp", host="127.0.0.1", port=server.port)
        app = make_app(config, roster)
        assert send_due(app, NOW).failed == ("request:r0000",)
    (msg,) = app.plan(NOW).messages
    assert msg.status == FAILED
    failed = rows(app.state_dir())["request:r0000"]
    assert (failed.to, failed.subject) == (
        "r0000@hospital.example.org",
        "Would you write me a letter of recommendation?",
    )
    yaml_config = write_setup(tmp_path, 1, smtp={"host": "127.0.0.1", "port": server.port})
    done = run(yaml_config, "retry", "request:r0000", "--now", NOW_TEXT)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        f"request:r0000 to r0000@hospital.example.org is planned again, with its Message-ID "
        f"{failed.message_id}\n"
    )
    (msg,) = app.plan(NOW).messages
    assert msg.status == "due"
    with smtp_server(port=server.port) as server:
        assert send_due(app, NOW).sent == ("request:r0000",)
    (got,) = server.sink.received
    assert got.message_id == failed.message_id
    again = run(yaml_config, "retry", "request:r0000")
    assert (again.returncode, again.stderr) == (
        2,
        "retry: request:r0000 is sent; only a failed message is retried\n",
    )
    unknown = run(yaml_config, "retry", "request:nobody")
    assert (unknown.returncode, unknown.stderr) == (
        2,
        "retry: no message 'request:nobody' in the log (see 'lormail log')\n",
    )


# --- a message that can never be sent -----------------------------------------------------


def test_an_unsendable_message_fails_at_once_and_is_never_retried(tmp_path: Path) -> None:
    from lormail.core.render import Rendered

    roster = make_roster(1)
    app = make_app(make_config(tmp_path), roster)

    class Surrogate:
        def render(self, msg: object, roster: object) -> Rendered:
            return Rendered(subject="Caf\udce9", body="x")

    app._templates = Surrogate()  # type: ignore[assignment]
    report = send_due(app, NOW)
    assert (report.failed, report.retrying) == (("request:r0000",), ())
    row = rows(app.state_dir())["request:r0000"]
    assert row.state == "failed" and row.retry_at is None
    assert row.error.startswith("not sent: the message cannot be encoded: ")
    assert send_due(app, NOW).failed == ()  # final: not tried again


# --- a read-only or full state folder -------------------------------------------------------


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only: by its modes, or for root (whom modes do not stop) by a
    read-only bind mount of it."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in (folder, *folder.iterdir())}
        for path in modes:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    mount = shutil.which("mount")
    bind = subprocess.run(
        [mount or "mount", "--bind", str(folder), str(folder)], capture_output=True, check=False
    )
    if bind.returncode != 0:
        pytest.skip(f"running as root and cannot bind-mount: {bind.stderr.decode().strip()}")
    try:
        subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True, check=True
        )
        yield
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, check=False)


def test_a_read_only_state_folder_is_one_clear_line(tmp_path: Path) -> None:
    config = write_setup(tmp_path, 1)
    first = run(config, "ics")  # makes the state: its database and secret
    assert first.returncode == 0, first.stderr
    state = tmp_path / "state"
    with read_only(state):
        done = run(config, "send-due", "--now", NOW_TEXT)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"state folder is read-only: {state}\n"
    assert not (tmp_path / "outbox").exists()  # nothing went


def _small_files() -> None:
    # Every file write past 64 KiB fails (EFBIG), as on a full disk: the state
    # database's journal cannot grow.
    resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))


def test_a_full_state_folder_is_one_clear_line_and_sends_nothing(tmp_path: Path) -> None:
    config = write_setup(tmp_path, 40)
    state = tmp_path / "state"
    done = run(config, "send-due", "--now", NOW_TEXT, preexec_fn=_small_files)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()[-1:]
    # Where the limit strikes depends on the database's size: before any
    # delivery, or just after one whose row could not be written.
    assert re.fullmatch(
        rf"cannot write the state folder {re.escape(str(state))}: .+ \(is the disk full\?\)"
        r"(; request:r\d{4} went to r\d{4}@hospital\.example\.org but could not be logged, "
        r"so it may go once more \(with the same Message-ID\))?",
        line,
    ), line
    assert "internal error" not in done.stderr and "OperationalError" not in done.stderr
    sent = len(list((tmp_path / "outbox" / "new").iterdir()))
    # What went is logged as such, or is the one message in flight ("sending"):
    # nothing delivered is ever marked failed.
    after = run(config, "send-due", "--now", NOW_TEXT)
    assert after.returncode == 0, after.stderr
    states = {k: r.state for k, r in rows(state).items()}
    assert set(states.values()) == {"local"}
    total = len(list((tmp_path / "outbox" / "new").iterdir()))
    assert sent < 40 and total in (40, 41)


def test_check_finds_a_message_that_can_never_be_sent(tmp_path: Path) -> None:
    config = write_setup(tmp_path, 1)
    config.write_text(config.read_text() + "templates: templates\n")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "request.txt.j2").write_text(
        'Subject: Caf{{ "\\udce9" }} for {{ recommender.name }}\n\nHello\n'
    )
    done = run(config, "check")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "the request message to r0000 can never be sent: the message cannot be encoded: "
        "'utf-8' codec can't encode character '\\udce9' in position 0: surrogates not allowed\n"
    )


def test_a_delivery_the_log_could_not_record_is_logged_later_never_sent_again(
    tmp_path: Path,
) -> None:
    """The daemon's case: the disk fills between the delivery and its log entry."""
    from lormail.app.send import Batch, run_batch
    from lormail.core.render import Templates
    from lormail.edge.statedir import StateError
    from lormail.edge.transport import Accepted, MaildirTransport

    config = make_config(tmp_path)
    roster = make_roster(1)
    state = tmp_path / "state"
    wal = state / "state.db-wal"
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)

    class FillsTheDisk(MaildirTransport):
        def send(self, data: bytes, from_addr: str, to_addrs: Any) -> Accepted:
            accepted = super().send(data, from_addr, to_addrs)
            # No file may grow from here on: the log's next commit cannot be written.
            size = wal.stat().st_size
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, limits[1]))
            return accepted

    def batch(store: Store, transport: type[MaildirTransport]) -> Batch:
        templates = Templates(None)
        return Batch(
            store=store,
            roster=roster,
            config=config,
            render=lambda msg: templates.render(msg, roster),
            transport=lambda: contextlib.closing(transport(config.maildir)),
            clock=lambda: NOW,
        )

    with Store.open(state) as store:
        try:
            with pytest.raises(StateError) as caught:
                run_batch(batch(store, FillsTheDisk), NOW)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, limits)
    assert str(caught.value) == (
        f"cannot write the state folder {state}: disk I/O error (is the disk full?); "
        "request:r0000 went to r0000@hospital.example.org but could not be logged, so it "
        "may go once more (with the same Message-ID)"
    )
    assert rows(state)["request:r0000"].state == "sending"
    with Store.open(state) as store:
        report = run_batch(batch(store, MaildirTransport), NOW)
    assert (report.sent, report.recovered, report.failed) == ((), (), ())
    assert rows(state)["request:r0000"].state == "local"
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 1
