"""The daemon: start to first plan, edit to a new feed ETag, and its idle cost.

    python bench/bench_daemon.py        # --starts 5 --edits 50 --idle 120

Runs ``lormail run`` (maildir transport, the feed on a free loopback port)
under libfaketime at Saturday 2026-11-21 12:00 UTC, on a roster generated for
that day: every recommender's send days are Monday to Friday, so nothing is
due for hours and the daemon is truly idle.  The monotonic clock is not faked.

- start to first plan: from spawn until ``/healthz`` reports a ``last_check``
  (the first check has planned, sent nothing, and published the calendar),
  median of ``--starts`` starts with the state kept;
- edit to effect: an atomic save of the roster (one program renamed) until
  the feed's ETag changes, median of the first 20 of ``--edits`` edits;
- memory over the edits: VmRSS after the 10th edit and after the last, which
  should level off (the first edits raise the allocator's high-water mark);
- idle: RSS, CPU and wake-ups (voluntary context switches, every thread)
  over ``--idle`` seconds, CPU scaled to 10 minutes and wake-ups to one
  minute.  CPU is the time the scheduler ran the daemon's threads
  (``/proc/PID/task/TID/schedstat``, in nanoseconds): the user + system
  figures of ``/proc/PID/stat`` count whole clock ticks of 10 ms, so one tick
  in the window would read as 0.05 s per 10 minutes.  With more than one
  process the RSS is the PSS sum of the process tree (shared pages counted
  once);
- the idle baseline: a bare Python process that waits in ``sigtimedwait`` a
  minute at a time, as the daemon's main thread does, and does nothing else
  (:data:`WAKER`), measured over the same window: on a shared VM, waking from
  a long sleep costs a few milliseconds of CPU whatever the process does;
- the memory floor: VmRSS of a process that imports the libraries the daemon
  runs on and builds one country's holidays (:data:`FLOOR`), measured in the
  same run.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import PY, Roster, Row, child_env, compile_lormail, generate, print_rows

TODAY = "2026-11-21"  # a Saturday
FAKE_NOW = f"@{TODAY} 12:00:00"
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
POLL = 0.02  # seconds between polls; much faster steals the daemon's CPU (2 cores)
EDITS_TIMED = 20  # edit → ETag: the median of the first 20 edits
EDITS_WARM = 10  # memory over the edits: from the 10th edit on
# What the daemon cannot do without: the libraries it loads on this roster (maildir
# transport, no inbox), and one country's holidays, which loads every country's.
FLOOR = (
    "import yaml, jinja2.sandbox, email.message, email.policy, smtplib, sqlite3, "
    "http.server, icalendar, apscheduler.schedulers.background, holidays; "
    "holidays.country_holidays('US', years=2026); "
    "print(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"
)


@dataclass(frozen=True, slots=True)
class Sample:
    rss_mb: float  # the daemon's VmRSS, or the tree's PSS sum when it has children
    cpu: float  # seconds, user + system, whole tree
    wakeups: int  # voluntary context switches, every thread of the tree
    processes: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def with_feed(roster: Roster) -> int:
    """Turn the generated config's feed on, on a free loopback port."""
    port = free_port()
    text = roster.config.read_text()
    feed = f"feed: {{enabled: true, bind: 127.0.0.1, port: {port}}}"
    roster.config.write_text(re.sub(r"feed: \{[^}]*\}", feed, text))
    return port


class Daemon:
    """One ``lormail run`` and a kept-alive feed client, as a calendar app has."""

    def __init__(self, roster: Roster, port: int) -> None:
        env = child_env(TZ="UTC")
        env.pop("JOURNAL_STREAM", None)
        if Path(LIBFAKETIME).exists():
            env.update(LD_PRELOAD=LIBFAKETIME, FAKETIME=FAKE_NOW, FAKETIME_DONT_FAKE_MONOTONIC="1")
        self.port = port
        self.state = roster.folder / "state"
        self._conn: http.client.HTTPConnection | None = None
        with (roster.folder / "daemon.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [PY, "-m", "lormail", "--config", str(roster.config), "run"],
                stdout=log, stderr=log, env=env, cwd=roster.folder,
            )  # fmt: skip

    def _get(self, method: str, path: str) -> tuple[http.client.HTTPResponse, bytes] | None:
        try:
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self._conn.request(method, path)
            resp = self._conn.getresponse()
            return resp, resp.read()
        except (OSError, http.client.HTTPException):
            self.close_client()
            return None

    def close_client(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def checked(self) -> bool:
        """Has the daemon finished its first check (``/healthz`` has a ``last_check``)?"""
        got = self._get("GET", "/healthz")
        if got is None or got[0].status != 200:
            return False
        try:
            return json.loads(got[1]).get("last_check") is not None
        except ValueError:
            return False

    def etag(self) -> str | None:
        token = (self.state / "feed-token").read_text().strip()
        got = self._get("HEAD", f"/{token}/lormail.ics")
        if got is None or got[0].status != 200 or got[0].getheader("Content-Length") in (None, "0"):
            return None
        return got[0].getheader("ETag")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        self.close_client()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            print("note: the daemon did not stop within 30 s of SIGTERM", file=sys.stderr)


def wait_until(pred: Callable[[], bool], daemon: Daemon, timeout: float, what: str) -> float:
    start = time.perf_counter()
    while not pred():
        if not daemon.alive():
            sys.exit(f"the daemon exited ({daemon.proc.returncode}) while waiting for {what}")
        if time.perf_counter() - start > timeout:
            daemon.stop()
            sys.exit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL)
    return time.perf_counter() - start


def new_etag(d: Daemon, before: str | None) -> Callable[[], bool]:
    return lambda: d.etag() not in (None, before)


def _tree(pid: int) -> list[int]:
    pids = [pid]
    for p in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
    return pids


def _field(path: str, name: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(name):
                return int(line.split()[1])
    return 0


def sample(pid: int) -> Sample:
    pids = _tree(pid)
    cpu = 0.0
    wakeups = 0
    for p in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                cpu += int((task / "schedstat").read_text().split()[0]) / 1e9
                wakeups += _field(str(task / "status"), "voluntary_ctxt_switches")
    if len(pids) == 1:
        rss = _field(f"/proc/{pid}/status", "VmRSS:")
    else:
        rss = sum(_field(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
    return Sample(rss / 1024, cpu, wakeups, len(pids))


# A process that wakes once a minute and does nothing: the idle CPU's baseline.
WAKER = (
    "import signal\n"
    "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])\n"
    "while not signal.sigtimedwait([signal.SIGTERM], 60): pass"
)


def memory_floor() -> float:
    """MB: VmRSS of a process with the daemon's libraries and nothing of lormail."""
    out = subprocess.run([PY, "-c", FLOOR], capture_output=True, text=True, check=True)
    return int(out.stdout) / 1024


def edit_roster(roster: Roster, i: int, original: str) -> None:
    """Rename the first program, saved as editors do (write a temp file, rename)."""
    text = re.sub(r'(\n    name: "[^"]*)"', rf'\1 (edit {i})"', original, count=1)
    tmp = roster.folder / ".roster.yaml.tmp"
    tmp.write_text(text)
    os.replace(tmp, roster.folder / "roster.yaml")


def measure(roster: Roster, starts: int, edits: int, idle: float, targets: bool) -> list[Row]:
    port = with_feed(roster)
    d = Daemon(roster, port)  # the first run fills the state: stamps, token
    wait_until(d.checked, d, 120, "the first check")
    time.sleep(3)
    d.stop()

    to_plan = []
    for _ in range(starts):
        start = time.perf_counter()
        d = Daemon(roster, port)
        wait_until(d.checked, d, 120, "the first check")
        to_plan.append(time.perf_counter() - start)
        d.stop()

    d = Daemon(roster, port)
    try:
        wait_until(d.checked, d, 120, "the first check")
        d.close_client()  # an open client would keep a feed thread waking
        waker = subprocess.Popen([PY, "-c", WAKER])
        try:
            time.sleep(10)  # the start's work is done
            s0, w0 = sample(d.proc.pid), sample(waker.pid)
            time.sleep(idle)
            s1, w1 = sample(d.proc.pid), sample(waker.pid)
        finally:
            waker.terminate()
            waker.wait()

        original = (roster.folder / "roster.yaml").read_text()
        effects = []
        after_ten = None
        for i in range(edits):
            wait_until(lambda: d.etag() is not None, d, 30, "the feed")
            before = d.etag()
            edit_roster(roster, i, original)
            effects.append(wait_until(new_etag(d, before), d, 60, "a new ETag"))
            time.sleep(0.3)
            if i + 1 == EDITS_WARM:
                after_ten = sample(d.proc.pid)
        d.close_client()
        time.sleep(2)
        s2 = sample(d.proc.pid)
    finally:
        d.stop()

    floor = memory_floor() if targets else None
    minutes = idle / 60
    cpu10 = (s1.cpu - s0.cpu) / minutes * 10
    waker10 = (w1.cpu - w0.cpu) / minutes * 10
    wakes = (s1.wakeups - s0.wakeups) / minutes
    start_med = statistics.median(to_plan)
    timed = effects[:EDITS_TIMED]
    edit_med = statistics.median(timed)
    tree = f"{s1.processes} processes, PSS sum" if s1.processes > 1 else "one process, VmRSS"
    at = f", {roster.label}"

    def row(name: str, value: float, unit: str, detail: str, target: str, met: bool | None) -> Row:
        if not targets:
            return Row(name + at, value, unit, detail)
        return Row(name + at, value, unit, detail, target=target, met=met)

    rows = [
        row("daemon start → first plan", start_med, "s",
            "median of " + ", ".join(f"{t:.2f}" for t in to_plan), "≤ 0.6 s", start_med <= 0.6),
        row("daemon edit → new feed ETag", edit_med, "s",
            f"median of {len(timed)}, {min(timed):.2f}–{max(timed):.2f} s",
            "≤ 0.3 s", edit_med <= 0.3),
        row("daemon idle memory", s1.rss_mb, "MB",
            f"{tree}; {s0.rss_mb:.1f} MB at the start of the window, "
            f"{s2.rss_mb:.1f} MB after {edits} edits", "≤ 45 MB", s1.rss_mb <= 45),
        row("idle baseline: a process that wakes once a minute, CPU per 10 min", waker10, "s",
            f"{(w1.cpu - w0.cpu) * 1000:.1f} ms over {idle:.0f} s (schedstat), "
            f"wake-ups: {w1.wakeups - w0.wakeups}", "", None),
        row("daemon idle CPU per 10 min", cpu10, "s",
            f"{(s1.cpu - s0.cpu) * 1000:.1f} ms over {idle:.0f} s (schedstat), scaled to 10 min; "
            f"the bare waker's {waker10:.3f} s",
            "0.0 s", round(cpu10, 1) == 0.0),
        row("daemon idle wake-ups", wakes, "/min",
            f"{s1.wakeups - s0.wakeups} over {idle:.0f} s", "≤ 1 a minute", wakes <= 1.0),
    ]  # fmt: skip
    if after_ten is not None:
        growth = s2.rss_mb - after_ten.rss_mb
        rows.insert(
            3,
            row(
                f"daemon memory, edit {EDITS_WARM} → edit {edits}",
                growth,
                "MB",
                f"VmRSS {after_ten.rss_mb:.1f} MB after {EDITS_WARM} edits, "
                f"{s2.rss_mb:.1f} MB after {edits}",
                "levels off (≤ 1 MB)",
                growth <= 1.0,
            ),
        )
    if floor is not None:
        rows.insert(
            3,
            Row(
                "memory floor: the daemon's libraries and one country's holidays",
                floor,
                "MB",
                f"VmRSS of python -c {FLOOR.rsplit('; print', 1)[0]!r}",
            ),
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--edits", type=int, default=50)
    ap.add_argument("--idle", type=float, default=120.0, help="seconds of idle measurement")
    ap.add_argument("--keep", action="store_true", help="keep the folder (roster, state, log)")
    args = ap.parse_args()
    if not Path(LIBFAKETIME).exists():
        sys.exit(f"needs libfaketime ({LIBFAKETIME}): apt-get install libfaketime")
    compile_lormail()
    tmp = Path(tempfile.mkdtemp(prefix="lormail-bench-"))
    try:
        roster = generate(tmp, 6, 100, today=TODAY)
        print_rows(measure(roster, args.starts, args.edits, args.idle, targets=True))
    finally:
        if args.keep:
            print(f"rosters, state and the daemon's log: {tmp}")
        else:
            shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
