"""Throughput of `lormail send-due` against the `mailmerge` CLI, same sink, same run.

    python bench/bench_send.py            # 1,000 messages each; --messages N, --repeat N

Both tools send the same number of messages (one to each of N recipients, of
about the same size) to one local aiosmtpd sink, each as a fresh process, so
the figures include start-up, reading the inputs and rendering (lormail's
bytecode compiled first, as an installed lormail's and mailmerge's are):

- lormail: ``send-due`` over its send log (SQLite, every commit durable at
  once: a row before and a row after each message);
- mailmerge: ``--no-dry-run --no-limit`` with a template, a CSV database and a
  server config with no security (it opens one SMTP connection per message).

The sink counts what arrives, so a run that lost messages fails.  Each round
runs both tools back to back (alternating which goes first); prints the median
wall time of each, messages per second, and the median of the rounds' ratios
(the target is lormail ≥ 1× mailmerge); exits 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import PY, Row, compile_lormail, print_rows, run_once

NOW = "2026-09-01T15:00:00Z"  # a Tuesday, 10:00 in Chicago: inside the send window
TARGET = 1.0

BODY = """Dear {salutation},

I hope you are well. I am applying to the program below this cycle, and I would be
honoured if you would write a letter of recommendation in support of my application.

  - Internal Medicine (through ERAS): due Tuesday, 1 December

If you are able to, I will send you my CV, my personal statement and a short summary of
what we worked on together, along with each program's instructions, so it takes as
little of your time as possible. And if the timing does not work for you, I completely
understand.

Thank you for considering it.

With best wishes,
Sarah
"""


# --- the sink (run as `bench_send.py --sink FOLDER` in its own process) ---------------


def run_sink(folder: Path) -> None:
    from aiosmtpd.controller import Controller

    counts = {"messages": 0}
    lock = threading.Lock()

    class Counter:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with lock:
                counts["messages"] += 1
            return "250 2.0.0 Ok: queued"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Counter(), hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    (folder / "port.tmp").write_text(str(port))
    os.replace(folder / "port.tmp", folder / "port")  # never seen half-written
    # Answer "how many so far?" through a file the parent polls.
    while folder.exists():
        with lock, contextlib.suppress(OSError):  # the folder goes when the bench ends
            (folder / "count.tmp").write_text(str(counts["messages"]))
            os.replace(folder / "count.tmp", folder / "count")
        time.sleep(0.05)


class Sink:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.proc = subprocess.Popen([PY, __file__, "--sink", str(folder)])
        end = time.monotonic() + 20
        while not (folder / "port").exists():
            if time.monotonic() > end or self.proc.poll() is not None:
                sys.exit("the aiosmtpd sink did not start")
            time.sleep(0.02)
        self.port = int((folder / "port").read_text())

    def count(self) -> int:
        time.sleep(0.15)  # let the sink write its latest figure
        return int((self.folder / "count").read_text())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


# --- inputs --------------------------------------------------------------------------


def lormail_setup(folder: Path, n: int, port: int) -> Path:
    folder.mkdir(parents=True)
    lines = [
        "applicant:",
        "  name: Sarah Chen",
        "  email: sarah.chen@stateu.edu",
        "  timezone: America/New_York",
        "  signature: Sarah",
        "programs:",
        "  - {id: im, name: Internal Medicine, portal: ERAS, deadline: 2026-12-01}",
        "recommenders:",
    ]
    for i in range(n):
        lines.append(
            f"  - {{id: r{i:05d}, name: Dr. Rec {i}, salutation: Dr. Rec {i}, "
            f"email: r{i:05d}@hospital.example.org, timezone: America/Chicago, "
            f"status: planned, ask_by_email: true, ask_on: 2026-09-01, "
            f"letters: [{{program: im}}]}}"
        )
    (folder / "roster.yaml").write_text("\n".join(lines) + "\n")
    config = f"""roster: roster.yaml
state_dir: state
dry_run: false
transport: smtp
smtp:
  host: 127.0.0.1
  port: {port}
  security: none
  auth: none
  from: "Sarah Chen <sarah.chen@stateu.edu>"
  timeout: 30s
  max_per_hour: 1000000
"""
    (folder / "config.yaml").write_text(config)
    return folder / "config.yaml"


def mailmerge_setup(folder: Path, n: int, port: int) -> list[str]:
    folder.mkdir(parents=True)
    template = (
        "TO: {{email}}\n"
        "SUBJECT: Would you write me a letter of recommendation?\n"
        "FROM: Sarah Chen <sarah.chen@stateu.edu>\n\n"
        + BODY.replace("{salutation}", "{{salutation}}")
    )
    (folder / "template.txt").write_text(template)
    with (folder / "database.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["email", "salutation"])
        for i in range(n):
            writer.writerow([f"r{i:05d}@hospital.example.org", f"Dr. Rec {i}"])
    (folder / "server.conf").write_text(
        f"[smtp_server]\nhost = 127.0.0.1\nport = {port}\nratelimit = 0\n"
    )
    mailmerge = Path(PY).with_name("mailmerge")
    return [
        str(mailmerge) if mailmerge.exists() else "mailmerge",
        "--no-dry-run", "--no-limit", "--output-format", "raw",
        "--template", str(folder / "template.txt"),
        "--database", str(folder / "database.csv"),
        "--config", str(folder / "server.conf"),
    ]  # fmt: skip


# --- measuring -----------------------------------------------------------------------------


def one_round(work: Path, n: int, sink: Sink, index: int) -> tuple[float, float]:
    """One timed run of each tool, in alternating order so that drift in the
    machine's load does not always favour the same one."""
    config = lormail_setup(work / f"lormail-{index}", n, sink.port)
    argv = mailmerge_setup(work / f"mailmerge-{index}", n, sink.port)
    runs = {
        "lormail": ([PY, "-m", "lormail", "--config", str(config), "send-due", "--now", NOW],
                    config.parent),
        "mailmerge": (argv, work / f"mailmerge-{index}"),
    }  # fmt: skip
    order = ["lormail", "mailmerge"] if index % 2 == 0 else ["mailmerge", "lormail"]
    seconds: dict[str, float] = {}
    for name in order:
        before = sink.count()
        seconds[name] = run_once(*runs[name])
        got = sink.count() - before
        if got != n:
            sys.exit(f"the sink got {got} messages from {name}, not {n}")
    return seconds["lormail"], seconds["mailmerge"]


def measure(n: int, repeat: int) -> list[Row]:
    """lormail's throughput, with mailmerge's measured in the same run as its baseline."""
    with tempfile.TemporaryDirectory(prefix="lormail-bench-") as tmp:
        work = Path(tmp)
        (work / "sink").mkdir()
        sink = Sink(work / "sink")
        try:
            rounds = [one_round(work, n, sink, i) for i in range(repeat)]
        finally:
            sink.close()
    lormail = statistics.median(r[0] for r in rounds)
    mailmerge = statistics.median(r[1] for r in rounds)
    # Each round's two runs are back to back: their ratio is the fairer figure.
    ratio = statistics.median(r[1] / r[0] for r in rounds)
    each = ", ".join(f"{r[1] / r[0]:.2f}" for r in rounds)
    return [
        Row(f"send-due, {n:,} messages", lormail, "s",
            f"{n / lormail:.0f} msg/s; mailmerge {mailmerge:.2f} s, {n / mailmerge:.0f} msg/s"),
        Row("send-due throughput ÷ mailmerge's", ratio, "×",
            f"median of the rounds' ratios: {each}",
            target=f"≥ {TARGET:g}×", met=ratio >= TARGET),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sink", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sink is not None:
        run_sink(args.sink)
        return 0
    compile_lormail()
    rows = measure(args.messages, args.repeat)
    print_rows(rows)
    return 0 if rows[-1].met else 1


if __name__ == "__main__":
    sys.exit(main())
