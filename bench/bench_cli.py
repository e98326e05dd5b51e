"""Whole-process wall time of `check`, `plan`, `status` and `ics`.

    python bench/bench_cli.py            # --repeat N (default 7)

Each figure is the median of fresh processes, with lormail's bytecode compiled
(as an installed lormail has it), next to the baseline measured in the same
run: ``python -c "import yaml, jinja2, icalendar, keyring, apscheduler"``, the
libraries lormail is built on imported and nothing else.  Targets hold for
the realistic roster (6 recommenders × 100 letters); the 10,000-letter roster
is a stress row with numbers only.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import (
    BASELINE,
    FLOOR,
    PY,
    Roster,
    Row,
    compile_lormail,
    generate,
    lormail,
    median_wall,
    print_rows,
    run_once,
    spread,
)

NOW = "2026-11-23T15:00:00Z"  # the day after the generator's default --today
ICS_TARGET = 0.5


def commands(roster: Roster) -> dict[str, list[str]]:
    cfg = roster.config
    return {
        "check": lormail(cfg, "check"),
        "plan": lormail(cfg, "plan", "--now", NOW),
        "status": lormail(cfg, "status", "--now", NOW),
        "ics": lormail(cfg, "ics", "--now", NOW, "-o", str(roster.folder / "out.ics")),
    }


def measure(roster: Roster, baseline: float, repeat: int, targets: bool) -> list[Row]:
    cmds = commands(roster)
    # Once, untimed: the state folder and the calendar's stored stamps.
    run_once(cmds["ics"], roster.folder)
    rows = []
    if targets:
        wall, times = median_wall([PY, "-c", FLOOR], repeat)
        rows.append(
            Row(
                "floor: the libraries these commands need, and one country's holidays",
                wall,
                "s",
                f"{spread(times)}; python -c {FLOOR!r}",
                baseline=baseline,
            )
        )
    for name in ("check", "plan", "status"):
        wall, times = median_wall(cmds[name], repeat, roster.folder)
        rows.append(
            Row(
                f"{name}, {roster.label}",
                wall,
                "s",
                spread(times),
                baseline=baseline,
                target="≤ 1.0× baseline" if targets else "",
                met=wall <= baseline if targets else None,
            )
        )
    wall, times = median_wall(cmds["ics"], repeat, roster.folder)
    size = (roster.folder / "out.ics").stat().st_size
    rows.append(
        Row(
            f"ics, {roster.label}",
            wall,
            "s",
            f"{spread(times)}; {size / 1e6:.2f} MB of iCalendar",
            baseline=baseline,
            target=f"≤ {ICS_TARGET} s" if targets else "",
            met=wall <= ICS_TARGET if targets else None,
        )
    )
    return rows


def baseline_wall(repeat: int) -> tuple[float, list[float]]:
    return median_wall([PY, "-c", BASELINE], repeat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    compile_lormail()
    with tempfile.TemporaryDirectory(prefix="lormail-bench-") as tmp:
        primary = generate(Path(tmp), 6, 100)
        stress = generate(Path(tmp), 2000, 5)
        base, times = baseline_wall(args.repeat)
        print(f"baseline: python -c {BASELINE!r}: {base:.3f} s ({spread(times)})")
        rows = measure(primary, base, args.repeat, targets=True)
        rows += measure(stress, base, args.repeat, targets=False)
    print_rows(rows)


if __name__ == "__main__":
    main()
