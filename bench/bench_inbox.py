"""The inbox in the running daemon: a reply's APPEND to its reminder held, and idle wake-ups.

    python bench/bench_inbox.py         # --replies 5 --idle 120

Starts Dovecot on loopback (the tests' server, tests/_imap_helpers.py:
implicit TLS with a trustme CA, IDLE on) and ``lormail run`` with an
``imap:`` section pointing at it and the feed on.  The roster has one
recommender per reply, each with a reminder six days away.  Real clock (no
libfaketime): the server's dates and the replies' must agree with the
daemon's.

- idle wake-ups with IMAP on: voluntary context switches over every thread
  of the daemon (as bench_daemon.py counts them) over ``--idle`` seconds
  while it sits in IDLE, scaled to one minute.  The target is the daemon's
  own tick (one a minute) plus one for each keep-alive the server sends an
  idling client (Dovecot's "* OK Still here", every 2 minutes here): nothing
  of lormail's own;
- reply → held: from the APPEND of a recommender's reply (on a connection
  already logged in) until the feed shows the reply's event ("Dr. X replied
  — update the roster") and no longer the reminder's: the check that
  published it planned with the reply and held the reminder.  Median of
  ``--replies``, each from another recommender.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_daemon import POLL, Daemon, free_port, sample, wait_until
from common import PY, ROOT, Roster, Row, child_env, compile_lormail, print_rows

sys.path.insert(0, str(ROOT))  # the tests' Dovecot, and lormail's UIDs, from this checkout

from lormail.core.ical import message_uid
from lormail.core.inbox_calendar import inbox_uid
from lormail.model import InboxEvent
from tests._imap_helpers import PASSWORD, USER, Dovecot, dovecot_binary

PROGRAM = "p"


def _roster(folder: Path, replies: int, port: int, feed: int) -> Roster:
    today = datetime.now(UTC).date()
    recs = "".join(
        f"  - {{id: r{i}, name: Dr. Bench {i}, email: r{i}@lab.example.com, timezone: UTC,\n"
        f"     status: asked, asked_on: {today - timedelta(days=30)}, letters: [{{program: p}}]}}\n"
        for i in range(replies)
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "roster.yaml").write_text(
        "applicant: {name: Sarah Chen, email: sarah.chen@example.edu, timezone: UTC}\n"
        # The reminder 14 days before a deadline 20 days away: six days from now.
        "defaults: {reminders: [14d], send_window: '09:00-17:00', "
        "send_days: [mon, tue, wed, thu, fri, sat, sun]}\n"
        f"programs: [{{id: {PROGRAM}, name: PhD in Biology, "
        f"deadline: {today + timedelta(days=20)}}}]\n"
        f"recommenders:\n{recs}"
    )
    config = folder / "config.yaml"
    config.write_text(
        "roster: roster.yaml\nstate_dir: state\ndry_run: false\ntransport: maildir\n"
        "smtp: {host: smtp.example.edu, username: sarah@example.edu, "
        "from: 'Sarah Chen <sarah.chen@example.edu>'}\n"
        f"calendar: {{feed: {{enabled: true, bind: 127.0.0.1, port: {feed}}}}}\n"
        f"imap: {{host: 127.0.0.1, port: {port}}}\n"
    )
    return Roster(f"{replies} recommenders", replies, config)


class InboxDaemon(Daemon):
    """``lormail run`` on the real clock, its IMAP password in a file keyring."""

    def __init__(self, roster: Roster, port: int, server: Dovecot) -> None:
        keyring = roster.folder / "keyring.json"
        keyring.write_text(json.dumps({f"lormail/{USER}": PASSWORD}))
        env = child_env(
            TZ="UTC",
            PYTHON_KEYRING_BACKEND="_smtp_helpers.FileKeyring",
            LORMAIL_TEST_KEYRING=str(keyring),
            SSL_CERT_FILE=str(server.ca_file),
        )
        env["PYTHONPATH"] = f"{ROOT}:{ROOT / 'tests'}"  # the keyring backend lives there
        env.pop("JOURNAL_STREAM", None)
        self.port = port
        self.state = roster.folder / "state"
        self._conn = None
        self.heartbeat = self.state / "daemon.json"
        with (roster.folder / "daemon.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [PY, "-m", "lormail", "--config", str(roster.config), "run"],
                stdout=log, stderr=log, env=env, cwd=roster.folder,
            )  # fmt: skip

    def idling(self) -> bool:
        try:
            beat = json.loads(self.heartbeat.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return bool(beat.get("inbox") == "watching INBOX (IDLE)")

    def feed(self) -> bytes | None:
        token = (self.state / "feed-token").read_text().strip()
        got = self._get("GET", f"/{token}/lormail.ics")
        return got[1] if got is not None and got[0].status == 200 else None


def _reply(i: int, nonce: str) -> tuple[bytes, str]:
    mid = f"<bench-{nonce}-{i}@lab.example.com>"
    now = datetime.now(UTC)
    text = (
        f"From: Dr. Bench {i} <r{i}@lab.example.com>\r\nTo: sarah.chen@example.edu\r\n"
        f"Subject: Re: your letter\r\nDate: {now:%a, %d %b %Y %H:%M:%S +0000}\r\n"
        f"Message-ID: {mid}\r\n\r\nI am on it!\r\n"
    )
    return text.encode(), mid


KEEP_ALIVE = 120.0  # seconds between Dovecot's keep-alives (imap_idle_notify_interval)


def measure(replies: int, idle: float) -> list[Row]:
    binary = dovecot_binary()
    if binary is None:
        sys.exit("needs dovecot: apt-get install dovecot-imapd")
    import trustme

    server = Dovecot(binary, trustme.CA())
    folder = Path(tempfile.mkdtemp(prefix="lormail-bench-inbox-"))
    try:
        server.start()
        port = free_port()
        roster = _roster(folder, replies, server.ssl_port, port)
        d = InboxDaemon(roster, port, server)
        try:
            wait_until(d.checked, d, 120, "the first check")
            wait_until(d.idling, d, 60, "IMAP IDLE")
            before = d.feed() or b""
            for i in range(replies):
                assert message_uid(f"reminder:r{i}:{PROGRAM}:1").encode() in before, i
            d.close_client()  # an open client would keep a feed thread waking
            time.sleep(10)  # the start's work is done
            s0 = sample(d.proc.pid)
            time.sleep(idle)
            s1 = sample(d.proc.pid)

            latencies = []
            nonce = f"{os.getpid()}-{time.time_ns()}"
            with server.client() as imap:
                for i in range(replies):
                    data, mid = _reply(i, nonce)
                    shown = inbox_uid(InboxEvent("reply", mid, None, "")).encode()
                    gone = message_uid(f"reminder:r{i}:{PROGRAM}:1").encode()

                    def held(shown: bytes = shown, gone: bytes = gone) -> bool:
                        cal = d.feed()
                        return cal is not None and shown in cal and gone not in cal

                    start = time.perf_counter()
                    imap.append("INBOX", data, flags=())
                    wait_until(held, d, 60, f"reply {i} to hold its reminder")
                    latencies.append(time.perf_counter() - start)
                    time.sleep(max(POLL, 0.5))
        finally:
            d.stop()
    finally:
        server.cleanup()
        if os.environ.get("LORMAIL_BENCH_KEEP"):
            print(f"roster, state and the daemon's log: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)

    wakes = (s1.wakeups - s0.wakeups) / (idle / 60)
    med = statistics.median(latencies)
    return [
        Row("inbox: IMAP APPEND of a reply → reminder held", med, "s",
            "median of " + ", ".join(f"{t:.2f}" for t in latencies) + "; IDLE, seen in the feed",
            target="≤ 2 s", met=med <= 2.0),
        Row("daemon idle wake-ups, IMAP IDLE on", wakes, "/min",
            f"{s1.wakeups - s0.wakeups} over {idle:.0f} s",
            target="≤ 1 a minute + keep-alives", met=wakes <= 1.0 + 60 / KEEP_ALIVE),
    ]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replies", type=int, default=5, help="replies timed, one per recommender")
    ap.add_argument("--idle", type=float, default=120.0, help="seconds of idle measurement")
    args = ap.parse_args()
    compile_lormail()
    print_rows(measure(args.replies, args.idle))


if __name__ == "__main__":
    main()
