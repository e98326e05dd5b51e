"""Whole-process time and peak memory of `lormail ics` on a large roster.

    python bench/bench_ics.py             # 2,000 recommenders × 5 letters; --repeat N

Each figure is a fresh process (wall time, and its own peak RSS from
``os.wait4``), next to a baseline run in the same session on the same
machine: the same roster loaded and planned by lormail, then the same events
built the plain way through the icalendar package's object model (one
``Event`` per event, a ``VALARM`` object per alarm, ``add_missing_timezones``,
``to_ical``).  The ratio is baseline / lormail.  An in-process breakdown
(load, plan, build) follows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
NOW = "2026-11-23T15:00:00Z"


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-600:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # KiB on Linux


def median_run(cmd: list[str], env: dict[str, str], n: int) -> tuple[float, float, float]:
    runs = [run(cmd, env) for _ in range(n)]
    return (
        statistics.median(r[0] for r in runs),
        statistics.median(r[1] for r in runs),
        max(r[2] for r in runs),
    )


# --- the baseline: the same events through icalendar's object model ------------------


def baseline(config: str) -> None:  # runs in a child process
    from datetime import UTC, datetime, timedelta

    import icalendar

    from lormail.app.context import App, parse_instant
    from lormail.core.calendar import message_uid
    from lormail.core.plan import ask_by_date

    app = App(config_path=Path(config), now_override=parse_instant(NOW))
    roster, cal_config = app.roster(), app.config().calendar
    plan = app.plan(app.now())
    now = datetime.now(UTC)
    cal = icalendar.Calendar()
    cal.add("prodid", "-//lormail//baseline//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", f"lormail — {roster.applicant.name}")

    def event(uid: str, summary: str, start: object, end: object, description: str) -> None:
        ev = icalendar.Event()
        ev.add("uid", uid)
        ev.add("dtstamp", now)
        ev.add("sequence", 0)
        ev.add("summary", summary)
        ev.add("dtstart", start)
        if end is not None:
            ev.add("dtend", end)
        ev.add("description", description)
        ev.add("transp", "TRANSPARENT")
        return ev

    for p in roster.programs:
        start = p.deadline_date if p.deadline_is_date else p.deadline.astimezone(p.timezone)
        end = p.deadline_date + timedelta(days=1) if p.deadline_is_date else None
        lines = [
            f"{r.name}: {r.status}"
            for r in roster.recommenders
            for lt in r.letters
            if lt.program == p.id
        ]
        ev = event(f"deadline-{p.id}@lormail", f"Deadline: {p.name}", start, end, "\n".join(lines))
        for alarm in cal_config.alarms:
            a = icalendar.Alarm()
            a.add("action", "DISPLAY")
            a.add("description", p.name)
            a.add("trigger", -alarm)
            ev.add_component(a)
        cal.add_component(ev)
    for r in roster.recommenders:
        day = ask_by_date(r, roster) if r.status == "planned" else None
        if day is not None:
            cal.add_component(
                event(
                    f"ask-{r.id}@lormail",
                    f"Ask {r.salutation} for a letter",
                    day,
                    day + timedelta(days=1),
                    r.name,
                )
            )
        for u in r.unavailable:
            cal.add_component(
                event(
                    f"away-{r.id}-{u.start}@lormail",
                    f"{r.salutation} away",
                    u.start,
                    u.end + timedelta(days=1),
                    u.note,
                )
            )
    for m in plan.messages:
        if m.status in ("scheduled", "due"):
            zone = roster.recommenders_by_id[m.recommender].timezone
            start = m.send_at.astimezone(zone)
            cal.add_component(
                event(
                    message_uid(m.key),
                    f"{m.kind} to {m.recommender}",
                    start,
                    start + timedelta(minutes=15),
                    m.reason,
                )
            )
    cal.add_missing_timezones()
    data = cal.to_ical()
    sys.stdout.buffer.write(data)


def phases(config: str) -> None:  # runs in a child process
    t0 = time.perf_counter()
    from lormail.app.context import App, parse_instant
    from lormail.core.calendar import build_calendar
    from lormail.edge.store import Store

    app = App(config_path=Path(config), now_override=parse_instant(NOW))
    t1 = time.perf_counter()
    roster = app.roster()
    t2 = time.perf_counter()
    plan = app.plan(app.now())
    t3 = time.perf_counter()
    with Store.open(app.state_dir()) as store:
        stamps = store.event_stamps()
    t4 = time.perf_counter()
    built = build_calendar(roster, plan, stamps, app.config().calendar, app.now())
    t5 = time.perf_counter()
    events = built.data.count(b"BEGIN:VEVENT")
    print(
        f"imports {t1 - t0:.3f}s, load roster {t2 - t1:.3f}s, plan {t3 - t2:.3f}s, "
        f"read stamps {t4 - t3:.3f}s, build {t5 - t4:.3f}s "
        f"({events:,} events, {len(plan.messages):,} planned messages, "
        f"{len(built.data) / 1e6:.1f} MB)",
        file=sys.stderr,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--recommenders", type=int, default=2000)
    ap.add_argument("--letters", type=int, default=5)
    ap.add_argument("--baseline-child", metavar="CONFIG", help=argparse.SUPPRESS)
    ap.add_argument("--phases-child", metavar="CONFIG", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_child:
        return baseline(args.baseline_child)
    if args.phases_child:
        return phases(args.phases_child)

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory(prefix="lormail-bench-ics-") as tmp:
        roster = Path(tmp) / "roster.yaml"
        subprocess.run(
            [
                PY,
                str(HERE / "gen_roster.py"),
                "--recommenders",
                str(args.recommenders),
                "--letters",
                str(args.letters),
                "--seed",
                "1",
                "-o",
                str(roster),
            ],
            check=True,
        )
        cfg = str(roster.parent / "config.yaml")
        state = roster.parent / "state"
        out = roster.parent / "deadlines.ics"
        ics = [PY, "-m", "lormail", "--config", cfg, "ics", "--now", NOW, "-o", str(out)]

        fresh = [run(ics, env) for _ in range(1) if not _wipe(state)]
        fresh_wall, fresh_cpu, fresh_rss = fresh[0]
        steady_wall, steady_cpu, steady_rss = median_run(ics, env, args.repeat)
        base_wall, base_cpu, base_rss = median_run(
            [PY, __file__, "--baseline-child", cfg], env, max(1, args.repeat // 2)
        )
        size = out.stat().st_size
        events = out.read_bytes().count(b"BEGIN:VEVENT")
        proc = subprocess.run(
            [PY, __file__, "--phases-child", cfg],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )

    n = args.recommenders * args.letters
    print(
        f"lormail ics, {args.recommenders:,} recommenders × {args.letters} letters "
        f"({n:,} letters, {events:,} events, {size / 1e6:.1f} MB), median of {args.repeat}:"
    )
    print(f"{'measurement':36} {'wall':>8} {'CPU':>8} {'peak RSS':>10}")
    for name, wall, cpu, rss in (
        ("lormail ics (stamps stored)", steady_wall, steady_cpu, steady_rss),
        ("lormail ics (fresh state)", fresh_wall, fresh_cpu, fresh_rss),
        ("baseline: icalendar object model", base_wall, base_cpu, base_rss),
    ):
        print(f"{name:36} {wall:7.3f}s {cpu:7.3f}s {rss:7.0f} MB")
    print(
        f"ratio baseline / lormail: {base_wall / steady_wall:.1f}× wall, "
        f"{base_cpu / steady_cpu:.1f}× CPU, {base_rss / steady_rss:.1f}× memory"
    )
    print(f"target: whole process ≤ 1.5 s (wall {steady_wall:.3f} s, CPU {steady_cpu:.3f} s)")
    load = os.getloadavg()[0]
    print(f"load average at the end: {load:.2f} on {os.cpu_count()} CPUs")
    print("in process: " + proc.stderr.strip())


def _wipe(state: Path) -> bool:
    import shutil

    shutil.rmtree(state, ignore_errors=True)
    return False


if __name__ == "__main__":
    main()
