"""Crash safety: send-due killed with SIGKILL at random moments, restarted each time.

A recording SMTP sink runs in its own process and writes each message down
before it answers 250.  In the end every key was delivered; a key arrives
twice only if a run died with it in flight (its row found in ``sending``); and
every copy of a key carries the same Message-ID.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest
from _smtp_helpers import (
    NOW_TEXT,
    driver,
    lormail,
    make_app,
    make_config,
    make_roster,
    message_ids,
    subprocess_env,
    write_setup,
    write_spec,
)

from lormail.edge.store import Store

N = 200
KILLS = 25


def _records(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _wait_for_port(path: Path, sink: subprocess.Popen[bytes]) -> int:
    end = time.monotonic() + 20
    while not (path.exists() and path.read_text().strip()):
        assert sink.poll() is None, "the sink died"
        assert time.monotonic() < end, "the sink did not start"
        time.sleep(0.01)
    return int(path.read_text())


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_and_duplicates_only_in_flight(
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("LORMAIL_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    record = tmp_path / "record.jsonl"
    # A sink that takes 5 ms a message paces the runs, so that 25 kills fit in 200 keys.
    sink_spec = write_spec(
        tmp_path, "sink.json", record=str(record), port_file=str(tmp_path / "port"), delay=0.005
    )
    sink = subprocess.Popen(driver("sink", sink_spec), env=subprocess_env())
    env = subprocess_env()
    kills = 0
    try:
        port = _wait_for_port(tmp_path / "port", sink)
        config = write_setup(tmp_path, N, smtp={"host": "127.0.0.1", "port": port})
        send_due = lormail(config, "send-due", "--now", NOW_TEXT)
        while kills < KILLS:
            before = _count(record)
            sender = subprocess.Popen(
                send_due,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            # Once it is sending, let it run for a random while, then kill it.
            end = time.monotonic() + 30
            while _count(record) == before and sender.poll() is None:
                assert time.monotonic() < end, f"send-due made no progress (seed {seed})"
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.02))
            if sender.poll() is not None:
                break  # it finished everything before the kill
            sender.send_signal(signal.SIGKILL)
            sender.wait()
            kills += 1
        # The last run, left alone, finishes the job; one more finds nothing to do.
        for expected in (None, "sent 0"):
            done = subprocess.run(send_due, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, (seed, done.stderr)
            if expected:
                assert done.stdout.startswith(expected), (seed, done.stdout)
    finally:
        sink.kill()
        sink.wait()

    assert kills >= 20, f"only {kills} kills landed mid-run (seed {seed})"
    roster = make_roster(N)
    app = make_app(make_config(tmp_path), roster)
    expected_ids = {key: mid for mid, key in message_ids(roster, app.state_dir()).items()}
    copies: dict[str, list[str]] = defaultdict(list)
    for item in _records(record):
        to = item["to"]
        assert isinstance(to, list)
        rid = str(to[0]).split("@")[0]
        copies[f"request:{rid}"].append(str(item["message_id"]))
    with Store.open(app.state_dir()) as store:
        rows = {r.key: r for r in store.log_rows()}

    missing = sorted(set(expected_ids) - set(copies))
    assert not missing, f"never delivered: {missing[:3]} {rows.get(missing[0])} (seed {seed})"
    assert sorted(copies) == sorted(expected_ids), f"unexpected keys (seed {seed})"
    assert {r.state for r in rows.values()} == {"sent"}
    for key, ids in copies.items():
        assert set(ids) == {expected_ids[key]}, f"{key}: Message-IDs differ (seed {seed})"
        # A second copy only for a run that died with this key in flight.
        assert len(ids) <= 1 + rows[key].interruptions, f"{key} duplicated (seed {seed})"
    extra = sum(len(ids) - 1 for ids in copies.values())
    interrupted = sum(r.interruptions for r in rows.values())
    print(f"seed {seed}: {kills} kills, {interrupted} in flight, {extra} duplicate copies")
    assert extra <= interrupted <= kills, (seed, extra, interrupted, kills)
