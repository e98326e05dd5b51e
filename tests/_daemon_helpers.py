"""The daemon as a real subprocess, an SMTP sink that outlives it, and small YAML files.

- :class:`Sink` / :func:`sink_server`: aiosmtpd on 127.0.0.1 in the test
  process, recording every accepted message (with its Message-ID) so that a
  daemon killed and restarted many times is judged by what really arrived.
- :func:`write_setup`: a config and roster in a folder (SMTP to the sink,
  no password, state beside them, optional feed and calendar file).
- :class:`DaemonProc`: ``python -m lormail --config CFG run``, optionally
  under libfaketime, with a short tick (``LORMAIL_TICK``), its stderr in a
  file and helpers to wait on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LIBFAKETIME_DIRS = ("/usr/lib/x86_64-linux-gnu/faketime", "/usr/lib/aarch64-linux-gnu/faketime")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def libfaketime() -> Path | None:
    for folder in LIBFAKETIME_DIRS:
        lib = Path(folder) / "libfaketime.so.1"
        if lib.exists():
            return lib
    return None


# --- the SMTP sink ------------------------------------------------------------------


@dataclass
class Got:
    message_id: str
    to: list[str]
    subject: str
    key_hint: str  # the X-header-free way to tell messages apart: subject + recipient
    at: datetime = field(default_factory=lambda: datetime.now(UTC))  # when it was accepted


@dataclass
class Sink:
    """Records accepted messages; ``delay`` seconds per DATA slow a batch down."""

    delay: float = 0.0
    started: int = 0  # DATA commands begun (a message in flight counts)
    got: list[Got] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.started += 1
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        msg = message_from_bytes(envelope.content, policy=policy.default)
        item = Got(
            message_id=str(msg["Message-ID"]),
            to=list(envelope.rcpt_tos),
            subject=str(msg["Subject"]),
            key_hint=f"{msg['To']}|{msg['Subject']}",
        )
        with self.lock:
            self.got.append(item)
        return "250 2.0.0 Ok: queued"

    def snapshot(self) -> list[Got]:
        with self.lock:
            return list(self.got)

    def to(self, address: str) -> list[Got]:
        return [g for g in self.snapshot() if address in g.to]


@contextlib.contextmanager
def sink_server(sink: Sink | None = None) -> Iterator[tuple[Sink, int]]:
    from aiosmtpd.controller import Controller

    sink = sink or Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


# --- files --------------------------------------------------------------------------


def write_setup(
    folder: Path,
    roster: str,
    smtp_port: int,
    *,
    feed_port: int | None = None,
    calendar_file: bool = False,
    extra: str = "",
    edit_grace: str = "0s",
) -> Path:
    """config.yaml + roster.yaml in ``folder``; returns the config's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "roster.yaml").write_text(roster, encoding="utf-8")
    feed = (
        f"  feed: {{enabled: true, bind: 127.0.0.1, port: {feed_port}}}\n"
        if feed_port is not None
        else "  feed: {enabled: false}\n"
    )
    config = (
        "roster: roster.yaml\n"
        "state_dir: state\n"
        "dry_run: false\n"
        f"edit_grace: {edit_grace}\n"
        "transport: smtp\n"
        "smtp:\n"
        "  host: 127.0.0.1\n"
        f"  port: {smtp_port}\n"
        "  security: none\n"
        "  auth: none\n"
        '  from: "Sarah Chen <sarah.chen@example.edu>"\n'
        "  timeout: 10s\n"
        "  max_per_hour: 100000\n"
        "calendar:\n" + ("  file: deadlines.ics\n" if calendar_file else "") + feed + extra
    )
    path = folder / "config.yaml"
    path.write_text(config, encoding="utf-8")
    return path


def save_atomic(path: Path, text: str) -> None:
    """Save as editors do: a temporary file beside it, renamed over it."""
    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --- the daemon ---------------------------------------------------------------------


class DaemonProc:
    """``python -m lormail --config CFG run`` in its own process group."""

    def __init__(
        self,
        config: Path,
        *,
        env: dict[str, str] | None = None,
        prefix: list[str] | None = None,
        log_name: str = "daemon.log",
        tick: float = 0.5,
        limit: float | None = None,
    ) -> None:
        self.config = config
        self.log_path = config.parent / log_name
        full_env = dict(os.environ)
        full_env.pop("JOURNAL_STREAM", None)
        full_env.update({"PYTHONUNBUFFERED": "1", "TZ": "UTC", "PYTHONPATH": str(ROOT)})
        # The tick is injected: no test waits for a real minute.
        full_env["LORMAIL_TICK"] = str(tick)
        if limit is not None:
            full_env["LORMAIL_CHECK_LIMIT"] = str(limit)
        full_env.update(env or {})
        cmd = [*(prefix or []), sys.executable, "-m", "lormail", "--config", str(config), "run"]
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=self._log,
            env=full_env,
            cwd=config.parent,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, needle: str, timeout: float, after: int = 0) -> str:
        """Wait until ``needle`` appears in the log (past offset ``after``); return the log."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if needle in text[after:]:
                return text
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {needle!r} within {timeout}s:\n{text}")
            time.sleep(0.05)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._log.close()
        return code

    def __enter__(self) -> DaemonProc:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.kill()
        else:
            self._log.close()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def heartbeat(config: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(
            (config.parent / "state" / "daemon.json").read_text(encoding="utf-8")
        )
    except (OSError, ValueError):
        return None
    return data


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def plan_json(config: Path, now: str | None = None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "lormail", "--config", str(config), "plan", "--json", "--all"]
    if now:
        cmd += ["--now", now]
    env = dict(os.environ, PYTHONPATH=str(ROOT), TZ="UTC")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True, timeout=60)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def lormail_log(config: Path) -> list[dict[str, Any]]:
    cmd = [sys.executable, "-m", "lormail", "--config", str(config), "log", "--json"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), TZ="UTC")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True, timeout=60)
    data = json.loads(out.stdout)
    rows: list[dict[str, Any]] = data if isinstance(data, list) else data.get("entries", data)
    return rows


def which(name: str) -> str | None:
    return shutil.which(name)


def lormail_cli(config: Path, *args: str) -> str:
    """``lormail --config CFG ARGS…``'s stdout (it must exit 0)."""
    cmd = [sys.executable, "-m", "lormail", "--config", str(config), *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT), TZ="UTC")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True, timeout=60)
    return out.stdout
