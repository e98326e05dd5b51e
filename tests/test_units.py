"""The service files: the systemd user unit verifies and is hardened; the plist parses."""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, require_real

UNIT = ROOT / "systemd" / "lormail.service"
PLIST = ROOT / "systemd" / "com.lormail.agent.plist"
MAX_EXPOSURE = 5.0


def _analyze_env(tmp_path: Path) -> dict[str, str]:
    """A private runtime dir, and a home whose ~/.local/bin/lormail is this venv's."""
    if shutil.which("systemd-analyze") is None:
        require_real("systemd-analyze (Debian: apt-get install systemd) is not installed")
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    home = tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    exe = home / ".local" / "bin" / "lormail"
    exe.write_text(f'#!/bin/sh\nexec {sys.executable} -m lormail "$@"\n')
    exe.chmod(0o755)
    return dict(os.environ, XDG_RUNTIME_DIR=str(runtime), HOME=str(home), SYSTEMD_LOG_COLOR="0")


def _unit_values(key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", UNIT.read_text(), flags=re.M)


def test_unit_says_what_the_daemon_needs() -> None:
    assert _unit_values("ExecStart") == ["%h/.local/bin/lormail run"]
    assert _unit_values("Restart") == ["on-failure"]
    assert _unit_values("RestartPreventExitStatus") == ["2"]
    assert "PYTHONUNBUFFERED=1" in _unit_values("Environment")
    assert _unit_values("WantedBy") == ["default.target"]
    assert _unit_values("RestrictAddressFamilies") == ["AF_UNIX AF_INET AF_INET6"]
    assert _unit_values("UMask") == ["0077"]


@pytest.mark.real
def test_unit_verifies_as_a_user_unit(tmp_path: Path) -> None:
    env = _analyze_env(tmp_path)
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--user", str(UNIT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


@pytest.mark.real
def test_unit_exposure_is_5_or_lower(tmp_path: Path) -> None:
    env = _analyze_env(tmp_path)
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--user", str(UNIT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for lormail\.service: (\d+\.\d+)", proc.stdout)
    assert found, proc.stdout + proc.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, proc.stdout


def test_launchd_agent_parses_and_restarts_on_failure_only() -> None:
    with PLIST.open("rb") as fh:
        agent = plistlib.load(fh)
    assert agent["Label"] == "com.lormail.agent"
    assert agent["ProgramArguments"][-1] == "run"
    assert agent["ProgramArguments"][0].endswith("/.local/bin/lormail")
    assert agent["RunAtLoad"] is True
    assert agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["ProcessType"] == "Background"
    assert agent["EnvironmentVariables"]["PYTHONUNBUFFERED"] == "1"
    for key in ("StandardOutPath", "StandardErrorPath"):
        assert "/Library/Logs/lormail/" in agent[key]
    assert agent["Umask"] == 0o077
