"""What every benchmark here shares: rosters, fresh processes, medians, rows.

Each figure is measured on the machine at hand next to a baseline measured in
the same run, because the machines these run on are shared and noisy: a busy
moment slows both alike, so the ratio travels better than the seconds.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PY = sys.executable
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The baseline for whole-process commands: the libraries lormail is built on,
# imported and nothing else.
BASELINE = "import yaml, jinja2, icalendar, keyring, apscheduler"
# What `check`, `plan` and `status` cannot do without on a roster with public
# holidays: the libraries they use, and one country's holidays (the holidays
# package loads every country's tables for the first).
FLOOR = (
    "import yaml, jinja2, email.message, email.policy, sqlite3, holidays; "
    "holidays.country_holidays('US', years=2026)"
)


@dataclass(frozen=True, slots=True)
class Roster:
    """A generated roster and the config next to it."""

    label: str  # "6 × 100" or "2,000 × 5"
    letters: int
    config: Path

    @property
    def folder(self) -> Path:
        return self.config.parent


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the results: a figure, its baseline if any, and its target if any."""

    name: str
    value: float
    unit: str  # "s", "MB", "/min", "×"…
    detail: str = ""
    baseline: float | None = None  # same unit, measured in the same run
    target: str = ""  # e.g. "≤ 1.0× baseline"; empty for numbers only
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


def child_env(**extra: str) -> dict[str, str]:
    """The environment for lormail's processes: this checkout, compiled bytecode."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **extra)
    # An installed lormail has its bytecode compiled; measure that, not the compiler.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("LORMAIL_CONFIG", None)
    return env


def compile_lormail() -> None:
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "lormail")], check=True)


def generate(folder: Path, recommenders: int, letters: int, today: str | None = None) -> Roster:
    """``gen_roster.py --recommenders R --letters L --seed 1`` into ``folder``."""
    out = folder / f"r{recommenders}x{letters}" / "roster.yaml"
    argv = [PY, str(HERE / "gen_roster.py"), "--recommenders", str(recommenders),
            "--letters", str(letters), "--seed", "1", "-o", str(out)]  # fmt: skip
    if today is not None:
        argv += ["--today", today]
    subprocess.run(argv, check=True)
    label = f"{recommenders:,} × {letters:,}"
    return Roster(label, recommenders * letters, out.parent / "config.yaml")


def run_once(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    """Wall time of one fresh process; a failure stops the bench with its stderr."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env or child_env(), capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-600:]
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}): {tail}")
    return elapsed


def median_wall(argv: list[str], repeat: int, cwd: Path | None = None) -> tuple[float, list[float]]:
    times = [run_once(argv, cwd) for _ in range(repeat)]
    return statistics.median(times), times


def lormail(config: Path, *args: str) -> list[str]:
    return [PY, "-m", "lormail", "--config", str(config), *args]


def spread(times: list[float]) -> str:
    return f"{min(times):.3f}–{max(times):.3f} s over {len(times)}"


def print_rows(rows: list[Row]) -> None:
    print(f"{'measurement':44} {'value':>10}  {'baseline':>9}  {'ratio':>6}  {'target':20} met")
    for r in rows:
        value = f"{r.value:.3f} {r.unit}" if r.unit == "s" else f"{r.value:.2f} {r.unit}"
        base = f"{r.baseline:.3f} s" if r.baseline is not None else ""
        ratio = f"{r.ratio:.2f}×" if r.ratio is not None else ""
        met = {None: "", True: "yes", False: "NO"}[r.met]
        print(f"{r.name:44} {value:>10}  {base:>9}  {ratio:>6}  {r.target:20} {met}")
        if r.detail:
            print(f"{'':46}{r.detail}")


def markdown(rows: list[Row]) -> str:
    """The rows as a Markdown table, for bench/README.md."""
    lines = ["| measurement | result | baseline (same run) | target | met |",
             "| --- | ---: | ---: | --- | --- |"]  # fmt: skip
    for r in rows:
        value = f"{r.value:.3f} {r.unit}" if r.unit == "s" else f"{r.value:.2f} {r.unit}"
        if r.ratio is not None:
            value += f" ({r.ratio:.2f}×)"
        base = f"{r.baseline:.3f} s" if r.baseline is not None else ""
        met = {None: "numbers only", True: "yes", False: "**no**"}[r.met]
        name = r.name + (f" <br><sub>{r.detail}</sub>" if r.detail else "")
        lines.append(f"| {name} | {value} | {base} | {r.target} | {met} |")
    return "\n".join(lines) + "\n"
