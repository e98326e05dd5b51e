"""The inbox against a real Dovecot (SPEC §8): read-only, only what is needed, outages.

Dovecot runs on loopback ports with its own config (tests/_imap_helpers.py);
messages arrive by IMAP APPEND from the test.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from lormail.app.context import App
from lormail.app.inbox import Watcher, scan
from lormail.edge.credentials import Secret
from lormail.edge.imap import ImapError, Mailbox
from lormail.model import ImapConfig, InboxEvent
from tests.conftest import require_real

pytest.importorskip("trustme")
import trustme

from tests._imap_helpers import PASSWORD, USER, Dovecot, dovecot_binary

pytestmark = pytest.mark.real
CORPUS = Path(__file__).parent / "inbox"
NOW = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)


def imap_for(server: Dovecot, **changes: object) -> ImapConfig:
    base = ImapConfig(host="127.0.0.1", port=server.ssl_port, username=USER)
    return replace(base, **changes)  # type: ignore[arg-type]


def write_config(tmp: Path, server: Dovecot, folders: str = "[INBOX]") -> Path:
    shutil.copy(CORPUS / "roster.yaml", tmp / "roster.yaml")
    config = tmp / "config.yaml"
    config.write_text(
        "roster: roster.yaml\n"
        "state_dir: state\n"
        "smtp: {host: smtp.example.edu, username: sarah@example.edu, "
        "from: 'Sarah Chen <sarah.chen@example.edu>'}\n"
        f"imap: {{host: 127.0.0.1, port: {server.ssl_port}, folders: {folders}}}\n"
    )
    return config


def connected(server: Dovecot, imap: ImapConfig | None = None) -> Mailbox:
    box = Mailbox(imap or imap_for(server), lambda: Secret(server.password()))
    box.connect()
    return box


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def kinds(events: list[InboxEvent]) -> list[tuple[str, str | None]]:
    return [(e.kind, e.recommender) for e in events]


def test_scan_reads_what_is_new_and_marks_nothing(dovecot: Dovecot, tmp_path: Path) -> None:
    for name in ("reply_in_thread.eml", "auto_exchange_de_until.eml", "bounce_gmail.eml"):
        dovecot.append(corpus(name))
    dovecot.append(corpus("portal_eras.eml"))
    flags_before = dovecot.flags()
    app = App(write_config(tmp_path, dovecot))
    box = connected(dovecot)
    try:
        first = scan(app, NOW, box)
        assert kinds(first) == [
            ("reply", "johnson"),
            ("auto_reply", "mueller"),
            ("bounce", "mueller"),
            ("portal", "johnson"),
        ]
        assert [(e.folder, e.uid) for e in first] == [
            ("INBOX", 1),
            ("INBOX", 2),
            ("INBOX", 3),
            ("INBOX", 4),
        ]
        assert first[1].until is not None and first[1].until.isoformat() == "2027-01-08"
        assert scan(app, NOW, box) == []
        dovecot.append(corpus("reply_out_of_thread.eml"))
        assert [(e.kind, e.uid) for e in scan(app, NOW, box)] == [("reply", 5)]
    finally:
        box.close()
    after = dovecot.flags()
    assert {uid: flags for uid, flags in after.items() if uid in flags_before} == flags_before
    assert not any(b"\\Seen" in flags for flags in after.values())
    # Only the events are stored: no body text, nothing but the fields.
    state = (tmp_path / "state" / "state.db").read_bytes()
    assert b"Uploaded it this morning" not in state and b"Ich bin bis" not in state
    with sqlite3.connect(tmp_path / "state" / "state.db") as db:
        rows = db.execute("SELECT folder, uidvalidity > 0, last_uid FROM inbox_folders").fetchall()
        details = [r[0] for r in db.execute("SELECT detail FROM inbox_events ORDER BY uid")]
    assert rows == [("INBOX", 1, 5)]
    assert all(len(d) <= 100 for d in details) and len(details) == 5


def test_attachments_are_never_downloaded_and_text_is_cut_at_64k(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    msg = EmailMessage()
    msg["From"] = "Dr. Emily Johnson <ejohnson@hospital.example.org>"
    msg["To"] = "sarah.chen@example.edu"
    msg["Subject"] = "The signed letter"
    msg["Date"] = "Thu, 17 Dec 2026 10:00:00 -0600"
    msg["Message-ID"] = "<big@hospital.example.org>"
    msg.set_content("Here it is.\n" + "More text. " * 20_000)  # 220 KB of text
    msg.add_attachment(b"%PDF-" + bytes(2_000_000), maintype="application", subtype="pdf")
    dovecot.append(msg.as_bytes())
    box = connected(dovecot)
    try:
        mark, fetched = box.new_messages("INBOX", None, NOW.date() - timedelta(days=30))
    finally:
        box.close()
    assert mark.last_uid == 1
    body = fetched[0].message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert text.startswith("Here it is.") and 60_000 < len(text) <= 64 * 1024
    assert [p.get_content_type() for p in fetched[0].message.walk()] == [
        "multipart/mixed",
        "text/plain",
    ]
    # Dovecot's own count of body bytes sent in that session.
    sent = [int(n) for n in re.findall(r"body_bytes=(\d+)", dovecot.log())]
    assert sent and max(sent) <= 64 * 1024 + 1024


def test_a_new_uidvalidity_reads_the_folder_again(dovecot: Dovecot, tmp_path: Path) -> None:
    dovecot.append(corpus("reply_in_thread.eml"), folder="Letters")
    app = App(write_config(tmp_path, dovecot, folders="[Letters]"))
    box = connected(dovecot)
    try:
        assert [(e.kind, e.uid) for e in scan(app, NOW, box)] == [("reply", 1)]
        dovecot.recreate("Letters")
        dovecot.append(corpus("portal_interfolio.eml"), folder="Letters")
        again = scan(app, NOW, box)
    finally:
        box.close()
    # UID 1 again, in a folder with a new UIDVALIDITY: read, not skipped as old.
    assert [(e.kind, e.recommender, e.uid) for e in again] == [("portal", "dubois", 1)]


def test_tls_is_verified(dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")
    box = Mailbox(imap_for(dovecot), lambda: Secret(PASSWORD))
    with pytest.raises(ImapError) as caught:
        box.connect()
    box.close()
    assert str(caught.value).startswith(
        f"TLS certificate verification failed for 127.0.0.1:{dovecot.ssl_port}: "
    )


def test_starttls_and_clear_text_to_loopback(dovecot: Dovecot) -> None:
    dovecot.append(corpus("reply_in_thread.eml"))
    for security in ("starttls", "none"):
        box = connected(dovecot, imap_for(dovecot, port=dovecot.plain_port, security=security))
        try:
            assert box.examine("INBOX") > 0
        finally:
            box.close()
    with pytest.raises(ImapError) as caught:
        Mailbox(imap_for(dovecot, host="imap.example.org", security="none"))
    assert str(caught.value) == (
        "imap.security none is allowed only to a loopback host, not imap.example.org"
    )


def test_a_wrong_password_is_one_line_without_the_secret(dovecot: Dovecot) -> None:
    box = Mailbox(imap_for(dovecot), lambda: Secret("wrong-" + PASSWORD))
    with pytest.raises(ImapError) as caught:
        box.connect()
    box.close()
    assert str(caught.value) == f"127.0.0.1:{dovecot.ssl_port} refused the login for {USER}"
    assert caught.value.auth
    assert PASSWORD not in repr(caught.value.__context__) if caught.value.__context__ else True


class Events:
    """What a watcher reported, for a test to wait on."""

    def __init__(self) -> None:
        self.got: list[InboxEvent] = []
        self.cond = threading.Condition()

    def __call__(self, events: list[InboxEvent]) -> None:
        with self.cond:
            self.got += events
            self.cond.notify_all()

    def wait_for(self, count: int) -> list[InboxEvent]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.got) >= count, timeout=30), self.got
            return list(self.got)


@pytest.mark.slow
def test_watcher_idles_and_survives_a_restart_and_a_changed_password(
    dovecot: Dovecot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lormail")
    events = Events()
    password = {"now": PASSWORD}
    app = App(write_config(tmp_path, dovecot))
    watcher = Watcher(
        lambda: app,
        events,
        now=lambda: NOW,
        secret=lambda: Secret(password["now"]),
        pause=lambda n: timedelta(seconds=0.2),
    )
    watcher.start()
    try:
        dovecot.append(corpus("reply_in_thread.eml"))
        assert kinds(events.wait_for(1)) == [("reply", "johnson")]
        assert watcher.state.detail == "watching INBOX (IDLE)"

        dovecot.restart()  # the IDLE connection drops; the watcher reconnects
        dovecot.append(corpus("auto_fr_until.eml"))
        assert kinds(events.wait_for(2))[1] == ("auto_reply", "dubois")

        dovecot.set_password("a-new-one")  # changed on the server, not yet in the keyring
        dovecot.restart()
        dovecot.append(corpus("bounce_postfix.eml"))
        with caplog.at_level(logging.WARNING):
            _wait_until(lambda: "refused the login" in caplog.text)
        assert not watcher.state.ok
        assert watcher.state.detail == f"127.0.0.1:{dovecot.ssl_port} refused the login for {USER}"
        password["now"] = "a-new-one"  # the user fixes the keyring entry
        assert kinds(events.wait_for(3))[2] == ("bounce", "okafor")
    finally:
        watcher.stop()
    assert not watcher.thread.is_alive()
    assert PASSWORD not in caplog.text and "a-new-one" not in caplog.text
    assert not any(b"\\Seen" in flags for flags in dovecot.flags().values())


@pytest.mark.slow
def test_watcher_polls_a_server_without_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = dovecot_binary()
    if binary is None:
        require_real("dovecot (Debian package dovecot-imapd) is not installed")
    server = Dovecot(binary, trustme.CA(), idle=False)
    try:
        server.start()
        app = App(write_config(tmp_path, server))
        imap = replace(app.config().imap, poll=timedelta(seconds=0.2))  # type: ignore[arg-type]
        app._config = replace(app.config(), imap=imap)
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
        events = Events()
        watcher = Watcher(lambda: app, events, now=lambda: NOW, secret=lambda: Secret(PASSWORD))
        watcher.start()
        try:
            server.append(corpus("portal_commonapp.eml"))
            assert kinds(events.wait_for(1)) == [("portal", "okafor")]
            assert watcher.state.detail == "watching INBOX (a poll every 0.2 s)"
        finally:
            watcher.stop()
    finally:
        server.cleanup()


def test_idle_watches_the_first_folder_and_polls_the_others(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    """A reply filed into a second folder (a Gmail label, a filter) is seen within
    ``poll``, not only when IDLE on the first is renewed 24 minutes later."""
    dovecot.append(corpus("newsletter_list_id.eml"), folder="Letters")  # the folder exists
    app = App(write_config(tmp_path, dovecot, folders="[INBOX, Letters]"))
    imap = replace(app.config().imap, poll=timedelta(seconds=0.3))  # type: ignore[arg-type]
    app._config = replace(app.config(), imap=imap)
    events = Events()
    watcher = Watcher(lambda: app, events, now=lambda: NOW, secret=lambda: Secret(PASSWORD))
    watcher.start()
    try:
        _wait_until(lambda: watcher.state.detail.startswith("watching"))
        assert watcher.state.detail == "watching INBOX (IDLE), Letters (a poll every 0.3 s)"
        dovecot.append(corpus("reply_in_thread.eml"), folder="Letters")
        assert kinds(events.wait_for(1)) == [("reply", "johnson")]
    finally:
        watcher.stop()


@pytest.mark.slow
def test_a_keep_alive_during_idle_is_not_news(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dovecot says "* OK Still here" while a client idles: no mail, so the wait goes on
    (a scan for each keep-alive would wake the laptop for nothing)."""
    binary = dovecot_binary()
    if binary is None:
        require_real("dovecot (Debian package dovecot-imapd) is not installed")
    server = Dovecot(binary, trustme.CA(), still_here="1 secs")
    try:
        server.start()
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
        box = connected(server)
        try:
            assert box.idle("INBOX", 3.5) is False  # three keep-alives heard, none news
            threading.Timer(0.5, server.append, [corpus("reply_in_thread.eml")]).start()
            assert box.idle("INBOX", 30) is True
        finally:
            box.close()
    finally:
        server.cleanup()


def _wait_until(check: object) -> None:
    event = threading.Event()
    for _ in range(300):
        if check():  # type: ignore[operator]
            return
        event.wait(0.1)
    raise AssertionError("the condition never held")


@pytest.mark.slow
def test_inbox_scan_command(dovecot: Dovecot, tmp_path: Path) -> None:
    from tests._smtp_helpers import subprocess_env

    dovecot.append(corpus("reply_in_thread.eml"))
    config = write_config(tmp_path, dovecot)
    keyring_file = tmp_path / "keyring.json"
    keyring_file.write_text(json.dumps({f"lormail/{USER}": PASSWORD}))
    env = subprocess_env(
        PYTHON_KEYRING_BACKEND="_smtp_helpers.FileKeyring",
        LORMAIL_TEST_KEYRING=str(keyring_file),
        SSL_CERT_FILE=str(dovecot.ca_file),
    )
    argv = [sys.executable, "-m", "lormail", "--config", str(config), "inbox", "scan", "--json"]
    done = subprocess.run(argv, capture_output=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "events": [
            {
                "file": None,
                "uid": 1,
                "folder": "INBOX",
                "message_id": "<CAF3x9=Zq8bQ@mail.hospital.example.org>",
                "date": "2026-12-03T15:02:00Z",
                "from": "ejohnson@hospital.example.org",
                "kind": "reply",
                "recommender": "johnson",
                "letter": None,
                "until": None,
                "detail": "Dr. Emily Johnson replied: "
                "Re: Your letter for the Internal Medicine residency (ERAS)",
            }
        ]
    }
    dovecot.stop()
    done = subprocess.run(argv, capture_output=True, env=env, timeout=60)
    assert (done.returncode, done.stdout) == (1, b"")
    assert done.stderr.decode() == f"connection refused by 127.0.0.1:{dovecot.ssl_port}\n"


@pytest.mark.slow
def test_credentials_for_an_inbox_with_its_own_login(dovecot: Dovecot, tmp_path: Path) -> None:
    """imap.username differs from smtp.username: `--imap` stores, tests and deletes the
    inbox's own keyring entry; the password is read from stdin and never printed."""
    from tests._smtp_helpers import subprocess_env

    config = write_config(tmp_path, dovecot)
    text = config.read_text().replace("username: sarah@example.edu", "username: other@example.edu")
    config.write_text(text.replace("imap: {", f"imap: {{username: {USER}, "))
    keyring_file = tmp_path / "keyring.json"
    env = subprocess_env(
        PYTHON_KEYRING_BACKEND="_smtp_helpers.FileKeyring",
        LORMAIL_TEST_KEYRING=str(keyring_file),
        SSL_CERT_FILE=str(dovecot.ca_file),
    )

    def credentials(*args: str, stdin: str = "") -> tuple[int, str, str]:
        argv = [sys.executable, "-m", "lormail", "--config", str(config), "credentials", *args]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, input=stdin)
        assert PASSWORD not in done.stdout + done.stderr
        return done.returncode, done.stdout, done.stderr

    assert credentials("set", "--imap", stdin="wrong\n") == (
        0,
        f"stored the password for lormail/{USER} in the keyring\n",
        "",
    )
    assert credentials("test", "--imap") == (
        1,
        "",
        f"lormail: IMAP test failed: 127.0.0.1:{dovecot.ssl_port} refused the login for {USER}\n",
    )
    assert credentials("set", "--imap", stdin=PASSWORD + "\n")[0] == 0
    assert json.loads(keyring_file.read_text()) == {f"lormail/{USER}": PASSWORD}
    assert credentials("test", "--imap") == (
        0,
        f"ok: IMAP 127.0.0.1:{dovecot.ssl_port} over TLS, authenticated as {USER} (IDLE)\n",
        "",
    )
    assert credentials("delete", "--imap") == (
        0,
        f"deleted the password for lormail/{USER} from the keyring\n",
        "",
    )
    assert json.loads(keyring_file.read_text()) == {}


E2E_ROSTER = """\
applicant: {name: Sarah Chen, email: sarah.chen@example.edu, timezone: America/New_York}
programs:
  - {id: im-residency, name: Internal Medicine residency, deadline: 2026-12-17}
recommenders:
  - id: johnson
    name: Dr. Emily Johnson
    salutation: Dr. Johnson
    email: ejohnson@hospital.example.org
    timezone: America/Chicago
    status: asked
    asked_on: 2026-11-02
    letters: [{program: im-residency}]
"""


@pytest.mark.slow
def test_a_reply_holds_the_reminder_and_plan_says_why(dovecot: Dovecot, tmp_path: Path) -> None:
    from tests._smtp_helpers import subprocess_env

    (tmp_path / "roster.yaml").write_text(E2E_ROSTER)
    config = tmp_path / "config.yaml"
    config.write_text(
        "roster: roster.yaml\nstate_dir: state\n"
        "smtp: {host: smtp.example.edu, username: sarah@example.edu, "
        "from: 'Sarah Chen <sarah.chen@example.edu>'}\n"
        f"imap: {{host: 127.0.0.1, port: {dovecot.ssl_port}}}\n"
    )
    keyring_file = tmp_path / "keyring.json"
    keyring_file.write_text(json.dumps({f"lormail/{USER}": PASSWORD}))
    env = subprocess_env(
        PYTHON_KEYRING_BACKEND="_smtp_helpers.FileKeyring",
        LORMAIL_TEST_KEYRING=str(keyring_file),
        SSL_CERT_FILE=str(dovecot.ca_file),
    )

    def lormail(*args: str) -> object:
        argv = [sys.executable, "-m", "lormail", "--config", str(config), *args]
        done = subprocess.run(argv, capture_output=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    # 30 s before the first reminder's slot (09:00 in Chicago on 3 Dec).
    now = ["--now", "2026-12-03T14:59:30Z"]

    def reminders() -> list[tuple[str, str, str]]:
        plan = lormail("plan", "--json", "--all", *now)
        return [
            (m["status"], m["send_at"], m["reason"])  # type: ignore[index]
            for m in plan["messages"]  # type: ignore[index]
            if m["kind"] == "reminder"
        ]

    assert [r[:2] for r in reminders()] == [
        ("scheduled", "2026-12-03T15:00:00Z"),
        ("scheduled", "2026-12-10T15:00:00Z"),
    ]
    reply = corpus("reply_in_thread.eml").replace(
        b"Date: Thu, 3 Dec 2026 09:02:00 -0600", b"Date: Thu, 3 Dec 2026 08:59:00 -0600"
    )
    dovecot.append(reply)
    scanned = lormail("inbox", "scan", "--json", *now)
    assert [e["kind"] for e in scanned["events"]] == ["reply"]  # type: ignore[index]
    why = (
        "held: Dr. Johnson replied on 3 Dec; reminders wait until 10 Dec "
        "or until you update the roster"
    )
    # The reply also counts as a message for min_gap (5 days): the second
    # reminder keeps that gap after the first's time.
    held = reminders()
    assert [r[:2] for r in held] == [
        ("held", "2026-12-10T14:59:00Z"),
        ("scheduled", "2026-12-14T15:00:00Z"),
    ]
    assert held[0][2] == why
    board = lormail("status", "--json", *now)
    assert [r["inbox"] for r in board["recommenders"]] == [  # type: ignore[index]
        "replied 3 Dec: Re: Your letter for the Internal Medicine residency (ERAS)"
    ]
    # Any change to their roster entry ends the hold; the reply still keeps the gap.
    edited = E2E_ROSTER.replace("asked_on: 2026-11-02", "asked_on: 2026-11-01")
    (tmp_path / "roster.yaml").write_text(edited)
    after = reminders()
    assert [r[:2] for r in after] == [
        ("scheduled", "2026-12-08T15:00:00Z"),
        ("scheduled", "2026-12-14T15:00:00Z"),
    ]
    assert after[0][2].endswith("moved to Tue 8 Dec to keep 5 days after the previous message")


@pytest.mark.slow
def test_the_daemon_holds_a_reminder_when_a_reply_arrives(dovecot: Dovecot, tmp_path: Path) -> None:
    """The running daemon, IDLE on: a reply APPENDed before a reminder's slot holds it."""
    from tests._daemon_helpers import DaemonProc, heartbeat, plan_json, wait_for

    real_now = datetime.now(UTC)
    # A zone where it is daytime, so that today's window opens in two minutes.
    offset = next(h for h in range(-12, 13) if 7 <= (real_now.hour + h) % 24 <= 15)
    zone = f"Etc/GMT{-offset:+d}" if offset else "UTC"
    local = real_now + timedelta(hours=offset)
    start = local + timedelta(minutes=2)
    window = f"{start:%H:%M}-{(start + timedelta(hours=2)):%H:%M}"
    deadline = (local + timedelta(days=14)).date()
    roster = (
        f"applicant: {{name: Sarah Chen, email: sarah.chen@example.edu, timezone: {zone}}}\n"
        f"defaults: {{reminders: [14d], send_window: '{window}', "
        "send_days: [mon, tue, wed, thu, fri, sat, sun]}\n"
        f"programs: [{{id: p, name: PhD in Biology, deadline: {deadline}}}]\n"
        "recommenders:\n"
        "  - {id: kim, name: Dr. Min-jun Kim, salutation: Dr. Kim, email: mkim@lab.example.com,\n"
        f"     timezone: {zone}, status: asked, asked_on: {local.date() - timedelta(days=30)},\n"
        "     letters: [{program: p}]}\n"
    )
    (tmp_path / "roster.yaml").write_text(roster)
    config = tmp_path / "config.yaml"
    config.write_text(
        "roster: roster.yaml\nstate_dir: state\ndry_run: false\ntransport: maildir\n"
        "smtp: {host: smtp.example.edu, username: sarah@example.edu, "
        "from: 'Sarah Chen <sarah.chen@example.edu>'}\n"
        "calendar: {feed: {enabled: false}}\n"
        f"imap: {{host: 127.0.0.1, port: {dovecot.ssl_port}}}\n"
    )
    keyring_file = tmp_path / "keyring.json"
    keyring_file.write_text(json.dumps({f"lormail/{USER}": PASSWORD}))
    env = {
        "PYTHONPATH": f"{Path(__file__).parent.parent}:{Path(__file__).parent}",
        "PYTHON_KEYRING_BACKEND": "_smtp_helpers.FileKeyring",
        "LORMAIL_TEST_KEYRING": str(keyring_file),
        "SSL_CERT_FILE": str(dovecot.ca_file),
    }
    with DaemonProc(config, env=env) as daemon:
        wait_for(
            lambda: (heartbeat(config) or {}).get("inbox") == "watching INBOX (IDLE)", 30, "IDLE"
        )
        before = {m["key"]: m["status"] for m in plan_json(config)["messages"]}
        assert before == {"reminder:kim:p:1": "scheduled"}
        reply = (
            "From: Min-jun Kim <mkim@lab.example.com>\nTo: sarah.chen@example.edu\n"
            f"Subject: Re: your letter\nDate: {real_now:%a, %d %b %Y %H:%M:%S +0000}\n"
            "Message-ID: <daemon-e2e@lab.example.com>\n\nI am on it!\n"
        )
        dovecot.append(reply.encode())
        daemon.wait_log("inbox: reply: Dr. Min-jun Kim replied: Re: your letter", 30)
        held = plan_json(config)["messages"]
        assert daemon.stop() == 0
    assert [(m["key"], m["status"]) for m in held] == [("reminder:kim:p:1", "held")]
    assert held[0]["reason"].startswith(f"held: Dr. Kim replied on {local.day} ")  # their day
