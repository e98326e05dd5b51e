"""The daemon's heartbeat file, so that `lormail status` can say whether it runs.

The daemon rewrites ``daemon.json`` in the state dir (atomically) after every
check; ``status`` reads it and checks that the process is still alive.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lormail.edge.files import write_atomic

HEALTH_FILE = "daemon.json"


@dataclass(frozen=True, slots=True)
class Health:
    running: bool
    pid: int | None = None
    started_at: str | None = None
    last_check: str | None = None  # RFC 3339 UTC
    next_send: str | None = None
    last_error: str | None = None
    inbox: str | None = None  # the inbox watcher's state, with an imap section (SPEC §8)

    def as_json(self) -> dict[str, object]:
        return {
            "running": self.running,
            "pid": self.pid,
            "started_at": self.started_at,
            "last_check": self.last_check,
            "next_send": self.next_send,
            "last_error": self.last_error,
            "inbox": self.inbox,
        }


def write_health(state_dir: Path, health: Health) -> None:
    data = json.dumps(health.as_json()).encode()
    write_atomic(state_dir / HEALTH_FILE, data, keep_mode=False, durable=False)


def clear_health(state_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (state_dir / HEALTH_FILE).unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_health(state_dir: Path, now: datetime | None = None) -> Health:
    """What the heartbeat says; ``running`` only if its process still exists."""
    try:
        data = json.loads((state_dir / HEALTH_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Health(running=False)
    pid = data.get("pid")
    running = bool(data.get("running")) and isinstance(pid, int) and _alive(pid)
    return Health(
        running=running,
        pid=pid if isinstance(pid, int) else None,
        started_at=data.get("started_at"),
        last_check=data.get("last_check"),
        next_send=data.get("next_send"),
        last_error=data.get("last_error"),
        inbox=data.get("inbox"),
    )
