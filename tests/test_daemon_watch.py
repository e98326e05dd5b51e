"""The folder watcher on its own: editors' saves are seen, other files are not."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from lormail.edge.watch import Interest, Watcher

# watchfiles (the macOS backend) polls twice a second: its tests wait longer.
BACKENDS = (
    ["inotify", pytest.param("watchfiles", marks=pytest.mark.slow)]
    if sys.platform.startswith("linux")
    else ["watchfiles"]
)
QUIET = {"inotify": 0.3, "watchfiles": 1.2}  # seconds without a further event


class Calls:
    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.event.set()

    def wait(self, timeout: float = 3.0) -> bool:
        ok = self.event.wait(timeout)
        self.event.clear()
        return ok


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


def _watch(tmp_path: Path, backend: str) -> tuple[Watcher, Calls]:
    (tmp_path / "roster.yaml").write_text("a: 1\n")
    (tmp_path / "templates").mkdir()
    calls = Calls()
    watcher = Watcher(
        Interest([tmp_path / "roster.yaml"], [tmp_path / "templates"]),
        calls,
        backend=backend,
    )
    watcher.start()
    time.sleep(0.3)  # the watches are in place
    return watcher, calls


def test_a_rename_over_the_file_is_seen_once(tmp_path: Path, backend: str) -> None:
    watcher, calls = _watch(tmp_path, backend)
    try:
        tmp = tmp_path / ".roster.yaml.swp"
        tmp.write_text("a: 2\n")
        os.replace(tmp, tmp_path / "roster.yaml")
        assert calls.wait()
        time.sleep(QUIET[backend])
        assert calls.count == 1
    finally:
        watcher.stop()


def test_writes_in_place_and_in_the_templates_folder_are_seen(tmp_path: Path, backend: str) -> None:
    watcher, calls = _watch(tmp_path, backend)
    try:
        with (tmp_path / "roster.yaml").open("a") as fh:
            fh.write("b: 2\n")
        assert calls.wait()
        (tmp_path / "templates" / "reminder.txt.j2").write_text("Subject: x\n")
        assert calls.wait()
    finally:
        watcher.stop()


def test_other_files_in_the_folder_are_ignored(tmp_path: Path, backend: str) -> None:
    watcher, calls = _watch(tmp_path, backend)
    try:
        (tmp_path / "deadlines.ics").write_text("BEGIN:VCALENDAR\n")
        (tmp_path / "notes.txt").write_text("x\n")
        assert not calls.wait(QUIET[backend])
    finally:
        watcher.stop()


def test_stop_is_prompt(tmp_path: Path, backend: str) -> None:
    watcher, _ = _watch(tmp_path, backend)
    t0 = time.monotonic()
    watcher.stop()
    assert time.monotonic() - t0 < 1.5


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_inotify_watcher_sleeps_when_idle(tmp_path: Path) -> None:
    watcher, _ = _watch(tmp_path, "inotify")
    try:
        thread = watcher._thread
        assert thread is not None and thread.native_id is not None
        status = Path(f"/proc/self/task/{thread.native_id}/status")

        def switches() -> int:
            for line in status.read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    return int(line.split()[1])
            raise AssertionError("no ctxt switches line")

        before = switches()
        time.sleep(1)
        assert switches() - before == 0
    finally:
        watcher.stop()
