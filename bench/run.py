"""Every benchmark, in one run, each figure next to its baseline and target.

    python bench/run.py                 # 8–12 minutes; needs '.[bench]', libfaketime, dovecot
    python bench/run.py --quick         # fewer repeats, a shorter idle window

- ``check``, ``plan``, ``status``, ``ics``: whole-process wall time against
  ``python -c "import yaml, jinja2, icalendar, keyring, apscheduler"``
  measured in the same run (bench_cli.py);
- the daemon: start to first plan, edit to a new feed ETag, idle memory, CPU
  and wake-ups (bench_daemon.py);
- the inbox: an IMAP APPEND of a reply until the daemon holds the reminder,
  and idle wake-ups with IMAP IDLE on, against Dovecot (bench_inbox.py);
- ``send-due`` of 1,000 messages to an aiosmtpd sink against mailmerge's
  ``--no-dry-run`` to the same sink, in the same run (bench_send.py).

Targets apply to the realistic roster, ``gen_roster.py --recommenders 6
--letters 100``; the 10,000-letter roster (2,000 × 5) is a stress row with
numbers only.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_cli
import bench_daemon
import bench_inbox
import bench_send
from common import (
    BASELINE,
    ROOT,
    Row,
    compile_lormail,
    generate,
    markdown,
    print_rows,
    spread,
)


def describe_machine() -> str:
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; lormail {commit}; "
        f"Python {platform.python_version()}; {os.cpu_count()} CPUs; load average {load}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, 30 s idle window")
    ap.add_argument("--no-stress", action="store_true", help="skip the 10,000-letter rows")
    ap.add_argument("--markdown", type=Path, help="also write the results there as a table")
    args = ap.parse_args()
    repeat, starts, edits, idle, rounds = (
        (3, 3, 12, 30.0, 1) if args.quick else (7, 5, 50, 120.0, 5)
    )
    if not Path(bench_daemon.LIBFAKETIME).exists():
        sys.exit(f"needs libfaketime ({bench_daemon.LIBFAKETIME}): apt-get install libfaketime")
    if bench_inbox.dovecot_binary() is None:
        sys.exit("needs dovecot: apt-get install dovecot-imapd")

    print(describe_machine(), flush=True)
    compile_lormail()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="lormail-bench-") as tmp:
        folder = Path(tmp)
        base, times = bench_cli.baseline_wall(repeat)
        rows.append(Row(f"baseline: python -c {BASELINE!r}", base, "s", spread(times)))
        primary = generate(folder / "cli", 6, 100)
        rows += bench_cli.measure(primary, base, repeat, targets=True)
        print_rows(rows[-4:])
        live = generate(folder / "daemon", 6, 100, today=bench_daemon.TODAY)
        daemon_rows = bench_daemon.measure(live, starts, edits, idle, targets=True)
        rows += daemon_rows
        print_rows(daemon_rows)
        rows += bench_inbox.measure(3 if args.quick else 5, 30.0 if args.quick else 120.0)
        print_rows(rows[-2:])
        rows += bench_send.measure(1000, rounds)
        print_rows(rows[-2:])
        if not args.no_stress:
            stress = generate(folder / "cli", 2000, 5)
            rows += bench_cli.measure(stress, base, 2 if args.quick else 3, targets=False)
            big = generate(folder / "daemon", 2000, 5, today=bench_daemon.TODAY)
            rows += bench_daemon.measure(big, 3, 5, 30.0 if args.quick else 60.0, targets=False)
    print()
    print(describe_machine())
    print_rows(rows)
    if args.markdown is not None:
        args.markdown.write_text(describe_machine() + "\n\n" + markdown(rows))
    missed = [r.name for r in rows if r.met is False]
    print(f"\ntargets met: {sum(r.met is True for r in rows)}, missed: {len(missed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
