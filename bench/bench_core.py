"""Whole-process timings of `lormail --help`, `plan --json` and `check`.

    python bench/bench_core.py            # prints a table; --repeat N for more runs

Each figure is the median wall time of a fresh process, next to a baseline
measured in the same run on the same machine, so that a noisy, shared
machine moves both alike:

- ``--help`` against ``python -c pass`` (interpreter start) and against
  importing the heavy libraries eagerly (what lazy imports save);
- ``plan --json`` and ``check`` against parsing the same roster with PyYAML's
  CSafeLoader alone (the floor any YAML-reading tool pays);
- growth from 1,000 over 5,000 to 10,000 letters: the cost of each extra
  letter should stay the same (linear).
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
PY = sys.executable


def wall(cmd: list[str], repeat: int, env: dict[str, str] | None = None) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, env=env, check=False)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-400:]}")
    return statistics.median(times)


def generate(folder: Path, recommenders: int, letters: int) -> Path:
    out = folder / f"r{recommenders}x{letters}" / "roster.yaml"
    subprocess.run(
        [
            PY,
            str(HERE / "gen_roster.py"),
            "--recommenders",
            str(recommenders),
            "--letters",
            str(letters),
            "--seed",
            "1",
            "-o",
            str(out),
        ],
        check=True,
    )
    return out.parent / "config.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n = args.repeat
    env = dict(os.environ, LORMAIL_STATE_DIR=tempfile.mkdtemp(prefix="lormail-bench-state-"))
    # An installed lormail has its bytecode compiled; measure that, not the compiler.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(
        [PY, "-m", "compileall", "-q", str(HERE.parent / "lormail")], check=True, env=env
    )
    lormail = [PY, "-m", "lormail"]
    rows: list[tuple[str, float, str, float]] = []

    base_start = wall([PY, "-c", "pass"], n, env)
    base_eager = wall([PY, "-c", "import icalendar, apscheduler, jinja2, yaml, keyring"], n, env)
    t_help = wall([*lormail, "--help"], n, env)
    rows.append(("lormail --help", t_help, "python -c pass", base_start))
    rows.append(("lormail --help", t_help, "eager heavy imports", base_eager))

    with tempfile.TemporaryDirectory(prefix="lormail-bench-") as tmp:
        results: dict[int, tuple[float, float]] = {}
        for recs in (200, 1000, 2000):
            cfg = generate(Path(tmp), recs, 5)
            roster = cfg.parent / "roster.yaml"
            parse = wall(
                [
                    PY,
                    "-c",
                    "import sys, yaml; yaml.load(open(sys.argv[1], 'rb'), Loader=yaml.CSafeLoader)",
                    str(roster),
                ],
                n,
                env,
            )
            t_plan = wall(
                [*lormail, "--config", str(cfg), "plan", "--json", "--now", "2026-11-23T15:00:00Z"],
                n,
                env,
            )
            t_check = wall([*lormail, "--config", str(cfg), "check"], n, env)
            letters = recs * 5
            rows.append(
                (f"plan --json, {letters:,} letters", t_plan, "yaml.load(CSafeLoader) alone", parse)
            )
            rows.append(
                (f"check, {letters:,} letters", t_check, "yaml.load(CSafeLoader) alone", parse)
            )
            results[letters] = (t_plan, t_check)

    print(f"{'measurement':34} {'wall':>8}   {'baseline':30} {'wall':>8}  ratio")
    for name, t, bname, b in rows:
        print(f"{name:34} {t:7.3f}s   {bname:30} {b:7.3f}s  {t / b:5.2f}×")
    (p1, c1), (p5, c5), (p10, c10) = results[1000], results[5000], results[10000]
    print(
        f"\ngrowth 1,000 → 10,000 letters: plan {p10 / p1:.1f}×, check {c10 / c1:.1f}× "
        "(a fixed start-up cost keeps it under 10×)"
    )
    print(
        "cost per extra letter, 1k→5k and 5k→10k (equal when linear): "
        f"plan {(p5 - p1) / 4:.3f} and {(p10 - p5) / 5:.3f} ms, "
        f"check {(c5 - c1) / 4:.3f} and {(c10 - c5) / 5:.3f} ms"
    )
    print(
        f"targets: --help ≤ 0.15 s ({t_help:.3f}), plan ≤ 1.0 s ({p10:.3f}), "
        f"check ≤ 1.5 s ({c10:.3f})"
    )


if __name__ == "__main__":
    main()
