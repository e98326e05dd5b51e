"""The daemon with a 10,000-letter roster: start-up, idle cost, and edit-to-effect.

    python bench/bench_daemon.py                 # --idle 90 --edits 20 --starts 5

Runs ``lormail run`` (maildir transport, feed on a free loopback port) under
libfaketime at Saturday 12:00 UTC, with the roster generated for that day:
every recommender's send days are Monday to Friday, so nothing is due for
hours and the daemon is truly idle.  The monotonic clock is not faked.

- start to first plan: from spawn until the heartbeat file appears, and until
  the feed serves the calendar (median of ``--starts`` starts, state kept);
- idle: VmRSS, CPU (utime+stime) scaled to 10 minutes, and wake-ups per
  minute (``voluntary_ctxt_switches`` summed over every thread) over ``--idle`` s;
  memory also for the check server (the daemon's one child when idle) and
  as the PSS sum of both, which counts the pages they share once;
- edit to effect: an atomic save of the roster (one program renamed) until
  the feed's ETag changes, median of ``--edits`` edits.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TODAY = "2026-11-21"  # a Saturday
FAKE_NOW = f"@{TODAY} 12:00:00"
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def setup(folder: Path) -> tuple[Path, int]:
    roster = folder / "roster.yaml"
    subprocess.run(
        [sys.executable, str(HERE / "gen_roster.py"), "--recommenders", "2000", "--letters", "5",
         "--seed", "1", "--today", TODAY, "-o", str(roster)],
        check=True,
    )  # fmt: skip
    config = folder / "config.yaml"
    port = free_port()
    text = config.read_text()
    text = re.sub(
        r"feed: \{[^}]*\}", f"feed: {{enabled: true, bind: 127.0.0.1, port: {port}}}", text
    )
    config.write_text(text)
    return config, port


def spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TZ="UTC")
    env.pop("JOURNAL_STREAM", None)
    if Path(LIBFAKETIME).exists():
        env.update(LD_PRELOAD=LIBFAKETIME, FAKETIME=FAKE_NOW, FAKETIME_DONT_FAKE_MONOTONIC="1")
    else:
        print("note: libfaketime not found; running at the real time", file=sys.stderr)
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "lormail", "--config", str(config), "run"],
            stdout=fh, stderr=fh, env=env, cwd=config.parent,
        )  # fmt: skip


_CONN: dict[int, http.client.HTTPConnection] = {}


def feed_etag(port: int, token: str) -> str | None:
    """The feed's ETag over one kept-alive connection (as a calendar app polls)."""
    try:
        conn = _CONN.get(port) or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        _CONN[port] = conn
        conn.request("HEAD", f"/{token}/lormail.ics")
        resp = conn.getresponse()
        resp.read()
    except (OSError, http.client.HTTPException):
        _CONN.pop(port, None)
        return None
    if resp.status != 200 or resp.getheader("Content-Length") in (None, "0"):
        return None
    return resp.getheader("ETag")


def proc_sample(pid: int) -> tuple[int, float, int]:
    """(VmRSS kB, CPU seconds, voluntary context switches over all threads)."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    switches = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    switches += int(line.split()[1])
        except OSError:
            continue
    return rss, cpu, switches


def tree_memory(pid: int) -> tuple[float, float, float]:
    """(the daemon's VmRSS, its check server's VmRSS, both processes' PSS sum), in MB.

    The two share the interpreter and its imports copy-on-write: RSS counts
    those pages in each, PSS splits them, so the PSS sum is what the
    service really holds."""

    def kb(path: str, field: str) -> int:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
        return 0

    children = [
        int(c)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for c in (task / "children").read_text().split()
    ]
    server = children[0] if children else None
    rss = kb(f"/proc/{pid}/status", "VmRSS:")
    server_rss = kb(f"/proc/{server}/status", "VmRSS:") if server else 0
    pss = sum(kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in [pid, *children])
    return rss / 1024, server_rss / 1024, pss / 1024


def wait_until(pred, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    while not pred():
        if time.perf_counter() - t0 > timeout:
            sys.exit(f"timed out waiting for {what}")
        # Polling much faster would steal the daemon's CPU (2 cores, one GIL).
        time.sleep(0.025)
    return time.perf_counter() - t0


def stop(proc: subprocess.Popen[bytes]) -> None:
    for conn in _CONN.values():
        conn.close()
    _CONN.clear()
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=float, default=90.0, help="seconds of idle measurement")
    ap.add_argument("--edits", type=int, default=20)
    ap.add_argument("--starts", type=int, default=5)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="lormail-bench-daemon-"))
    config, port = setup(folder)
    state = folder / "state"
    log = folder / "daemon.log"
    heartbeat = state / "daemon.json"

    # A first run fills the state (first-seen facts, calendar stamps, token).
    proc = spawn(config, log)
    wait_until(heartbeat.exists, 60, "the first heartbeat")
    time.sleep(5)
    stop(proc)
    token = (state / "feed-token").read_text().strip()

    to_heartbeat, to_feed = [], []
    for _ in range(args.starts):
        heartbeat.unlink(missing_ok=True)
        t0 = time.perf_counter()
        proc = spawn(config, log)
        wait_until(heartbeat.exists, 60, "the heartbeat")
        to_heartbeat.append(time.perf_counter() - t0)
        wait_until(lambda: feed_etag(port, token) is not None, 60, "the feed")
        to_feed.append(time.perf_counter() - t0)
        stop(proc)

    proc = spawn(config, log)
    wait_until(lambda: feed_etag(port, token) is not None, 60, "the feed")
    for conn in _CONN.values():  # an open client keeps a feed thread waking
        conn.close()
    _CONN.clear()
    time.sleep(15)  # the start's send_due and calendar are done
    rss0, cpu0, sw0 = proc_sample(proc.pid)
    time.sleep(args.idle)
    rss1, cpu1, sw1 = proc_sample(proc.pid)
    idle_tree = tree_memory(proc.pid)
    minutes = args.idle / 60

    roster = folder / "roster.yaml"
    original = roster.read_text()
    effects = []
    for i in range(args.edits):
        before = feed_etag(port, token)
        text = original.replace(
            'name: "Pediatrics PhD #0"', f'name: "Pediatrics PhD #0 (edit {i})"'
        )
        tmp = roster.with_name(".roster.yaml.tmp")
        tmp.write_text(text)
        t0 = time.perf_counter()
        os.replace(tmp, roster)
        effects.append(wait_until(lambda b=before: feed_etag(port, token) != b, 30, "new ETag"))
        time.sleep(0.5)
    rss2, _, _ = proc_sample(proc.pid)
    edited_tree = tree_memory(proc.pid)
    status = Path(f"/proc/{proc.pid}/status").read_text()
    split = " ".join(re.findall(r"^(Rss\w+:\s+\d+ kB)", status, flags=re.M))
    stop(proc)

    print(f"roster: 2000 recommenders x 5 letters; faked now {FAKE_NOW} UTC; folder {folder}")
    print(f"start to heartbeat (first plan): median {statistics.median(to_heartbeat):.2f} s "
          f"of {[round(t, 2) for t in to_heartbeat]}")  # fmt: skip
    print(f"start to feed serving the calendar: median {statistics.median(to_feed):.2f} s "
          f"of {[round(t, 2) for t in to_feed]}")  # fmt: skip
    print(f"idle over {args.idle:.0f} s: VmRSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MB; "
          f"CPU {(cpu1 - cpu0) / minutes * 10:.2f} s per 10 min; "
          f"wake-ups {(sw1 - sw0) / minutes:.1f} per minute")  # fmt: skip
    for when, (rss, server_rss, pss) in (("idle", idle_tree), ("after the edits", edited_tree)):
        print(f"memory {when}: daemon VmRSS {rss:.1f} MB, check server VmRSS "
              f"{server_rss:.1f} MB, both together (PSS) {pss:.1f} MB")  # fmt: skip
    print(f"edit to new ETag: median {statistics.median(effects):.2f} s, "
          f"max {max(effects):.2f} s over {len(effects)} edits")  # fmt: skip
    print(f"VmRSS after the edits: {rss2 / 1024:.1f} MB ({split})")


if __name__ == "__main__":
    main()
