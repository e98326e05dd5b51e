"""The command line as a user meets it: real subprocesses on the example files."""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

from lormail import __version__
from lormail.cli import COMMANDS, build_parser, main
from tests.conftest import ROOT

EXAMPLE = ROOT / "config.example.yaml"
NOW = "2026-11-22T12:00:00Z"


def run(
    *args: str, state: Path, cwd: Path = ROOT, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LORMAIL_STATE_DIR=str(state), NO_COLOR="")
    env.pop("LORMAIL_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "lormail", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        input=stdin,
        timeout=120,
    )


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def test_help_lists_every_command(state: Path) -> None:
    res = run("--help", state=state)
    assert res.returncode == 0
    for command in (
        "init",
        "check",
        "plan",
        "status",
        "preview",
        "send-due",
        "run",
        "ics",
        "credentials",
        "feed-url",
        "log",
        "mark",
        "retry",
        "state",
        "inbox",
    ):
        assert f"\n    {command} " in res.stdout, command


def test_no_command_and_unknown_command_are_usage_errors(state: Path) -> None:
    assert run(state=state).returncode == 2
    res = run("frobnicate", state=state)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "invalid choice: 'frobnicate'" in res.stderr


def test_check_on_the_example(state: Path) -> None:
    res = run("--config", str(EXAMPLE), "check", state=state)
    assert res.returncode == 0, res.stderr
    assert res.stdout == (
        "roster.example.yaml: ok — 6 recommenders, 4 programs, 9 letters; "
        "every template renders for every recommender\n"
    )


def test_plan_json_on_the_example(state: Path) -> None:
    res = run("--config", str(EXAMPLE), "plan", "--json", "--now", NOW, state=state)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["now"] == NOW
    msgs = data["messages"]
    assert [(m["send_at"], m["key"]) for m in msgs] == sorted(
        (m["send_at"], m["key"]) for m in msgs
    )
    assert {m["status"] for m in msgs} <= {"scheduled", "due"}
    assert set(msgs[0]) == {
        "key",
        "kind",
        "recommender",
        "to",
        "subject",
        "send_at",
        "expires_at",
        "status",
        "reason",
    }
    by_key = {m["key"]: m for m in msgs}
    # Dr. Patel in Kolkata: asked by e-mail on Mon 30 Nov at 09:00 IST.
    request = by_key["request:patel"]
    assert (request["send_at"], request["to"], request["subject"]) == (
        "2026-11-30T03:30:00Z",
        "anil.patel@aiims.example.in",
        "Would you write me a letter of recommendation?",
    )
    assert request["expires_at"] == "2027-01-16T04:59:59Z"
    # Every kind of the table is planned for the example.
    assert {m["kind"] for m in msgs} == {
        "request",
        "packet",
        "reminder",
        "thank_you",
        "decline_thanks",
        "outcome",
    }
    # Byte for byte the same on a second run.
    again = run("--config", str(EXAMPLE), "plan", "--json", "--now", NOW, state=state)
    assert again.stdout == res.stdout


def test_plan_all_shows_skipped_and_expired(state: Path) -> None:
    res = run(
        "--config",
        str(EXAMPLE),
        "plan",
        "--json",
        "--all",
        "--now",
        "2027-01-20T12:00:00Z",
        state=state,
    )
    statuses = {m["status"] for m in json.loads(res.stdout)["messages"]}
    assert {"expired", "scheduled"} <= statuses


def test_plan_for_people_is_colourless_when_piped(state: Path) -> None:
    res = run("--config", str(EXAMPLE), "plan", "--now", NOW, state=state)
    assert res.returncode == 0, res.stderr
    assert "\x1b[" not in res.stdout
    assert "Would you write me a letter of recommendation?" in res.stdout
    assert "request:patel" in res.stdout


def test_status_board_and_json(state: Path) -> None:
    res = run("--config", str(EXAMPLE), "status", "--now", NOW, state=state)
    assert res.returncode == 0, res.stderr
    assert "Dr. Emily Johnson" in res.stdout and "6 to come" in res.stdout
    assert "Daemon: not running" in res.stdout
    data = json.loads(
        run("--config", str(EXAMPLE), "status", "--json", "--now", NOW, state=state).stdout
    )
    assert data["daemon"]["running"] is False
    mph = next(p for p in data["programs"] if p["id"] == "mph")
    assert (mph["missing"], mph["deadline"]) == (1, "2026-12-02T04:59:00Z")
    garcia = next(r for r in data["recommenders"] if r["id"] == "garcia")
    assert [lt["state"] for lt in garcia["letters"]] == ["submitted", "submitted"]
    assert garcia["next_message"]["key"] == "outcome:garcia:stanford-phd:interview"


def test_preview_shows_the_whole_message_and_suggests_near_keys(state: Path) -> None:
    res = run("--config", str(EXAMPLE), "preview", "packet:johnson", "--now", NOW, state=state)
    assert res.returncode == 0, res.stderr
    assert "Dear Dr. Johnson," in res.stdout
    assert "the heart-failure readmission study" in res.stdout
    assert "Subject: Thank you — everything for my letters in one place\n" in res.stdout
    assert 'To: "Dr. Emily Johnson" <ejohnson@hospital.example.org>\n' in res.stdout
    bad = run("--config", str(EXAMPLE), "preview", "packet:jonson", "--now", NOW, state=state)
    assert bad.returncode == 2
    assert bad.stderr == "no message with key 'packet:jonson' (did you mean 'packet:johnson'?)\n"


IDENTITY = (
    "--name",
    "Ada Lovelace",
    "--email",
    "ada@analytical.org",
    "--timezone",
    "Europe/London",
)


def test_init_writes_files_that_check_accepts_and_never_overwrites(
    tmp_path: Path, state: Path
) -> None:
    target = tmp_path / "conf"
    res = run("init", str(target), *IDENTITY, state=state)
    assert res.returncode == 0, res.stderr
    assert (target / "config.yaml").is_file() and (target / "roster.yaml").is_file()
    assert len(list((target / "templates").glob("*.txt.j2"))) == 7
    ok = run("--config", str(target / "config.yaml"), "check", state=state)
    assert ok.returncode == 0, ok.stderr
    again = run("init", str(target), *IDENTITY, state=state)
    assert again.returncode == 2
    assert again.stderr.splitlines()[0] == (
        f"{target / 'config.yaml'}: already exists; keep it, or run 'lormail init --force'"
    )


def _identity_lines(target: Path) -> list[str]:
    config = (target / "config.yaml").read_text("utf-8").splitlines()
    roster = (target / "roster.yaml").read_text("utf-8").splitlines()
    return [line for line in config if line.startswith(("  from:", "  username:"))] + roster[3:9]


def test_init_writes_the_identity_given(tmp_path: Path, state: Path) -> None:
    target = tmp_path / "conf"
    res = run(
        "init",
        str(target),
        "--name",
        "O'Brien, Pat",
        "--email",
        "pat@uni.edu",
        "--timezone",
        "Europe/Paris",
        state=state,
    )
    assert res.returncode == 0, res.stderr
    assert _identity_lines(target) == [
        "  username: pat@uni.edu    # the keyring entry is lormail / this name",
        '  from: "\\"O\'Brien, Pat\\" <pat@uni.edu>"',
        "applicant:",
        '  name: "O\'Brien, Pat"',
        "  email: pat@uni.edu",
        "  timezone: Europe/Paris",
        "  signature: |",
        "    O'Brien, Pat",
    ]
    assert "Sarah" not in (target / "config.yaml").read_text("utf-8")
    preview = run(
        "--config",
        str(target / "config.yaml"),
        "preview",
        "packet:johnson",
        "--now",
        NOW,
        state=state,
    )
    assert preview.returncode == 0, preview.stderr
    assert 'From: "O\'Brien, Pat" <pat@uni.edu>\n' in preview.stdout
    assert "Sarah" not in preview.stdout
    other = tmp_path / "other"
    res = run("init", str(other), "--name", "José Müller", "--email", "jm@uni.edu", state=state)
    assert res.returncode == 0, res.stderr
    assert _identity_lines(other)[1] == '  from: "José Müller <jm@uni.edu>"'


def test_init_without_a_terminal_needs_the_identity(tmp_path: Path, state: Path) -> None:
    res = run("init", str(tmp_path / "conf"), "--name", "Ada", state=state)
    assert (res.returncode, res.stderr) == (
        2,
        "init: give --email (there is no terminal to ask on)\n",
    )
    res = run("init", str(tmp_path / "conf"), state=state)
    assert res.stderr == "init: give --name and --email (there is no terminal to ask on)\n"
    bad = run(
        "init", str(tmp_path / "conf"), "--email", "ada@", "--timezone", "Mars/Base", state=state
    )
    assert (bad.returncode, bad.stderr.splitlines()) == (
        2,
        [
            "--email: 'ada@' is not an e-mail address",
            "--timezone: 'Mars/Base' is not an IANA time zone",
        ],
    )
    assert not (tmp_path / "conf").exists()


def test_init_asks_on_a_terminal_with_the_machine_s_defaults(tmp_path: Path) -> None:
    target = tmp_path / "conf"
    env = dict(os.environ, EMAIL="ada@analytical.org", TZ="Europe/Berlin", NO_COLOR="")
    answers = b"Ada Lovelace\nnope\n\nEurope/Lndon\n\n"
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lormail", "init", str(target)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=ROOT,
    )
    os.close(slave)
    os.write(master, answers)
    output = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        assert ready, output
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal's other end closed: the command is done
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0, output
    text = output.decode().replace("\r\n", "\n")
    assert "Your e-mail address [ada@analytical.org]: " in text
    assert "  'nope' is not an e-mail address\n" in text
    assert "Your time zone [Europe/Berlin]: " in text
    assert "  'Europe/Lndon' is not an IANA time zone (did you mean 'Europe/London'?)\n" in text
    assert _identity_lines(target)[1:6] == [
        '  from: "Ada Lovelace <ada@analytical.org>"',
        "applicant:",
        '  name: "Ada Lovelace"',
        "  email: ada@analytical.org",
        "  timezone: Europe/Berlin",
    ]


def test_bad_now_and_missing_config_are_one_line_errors(tmp_path: Path, state: Path) -> None:
    res = run("--config", str(EXAMPLE), "plan", "--now", "yesterday", state=state)
    assert (res.returncode, res.stderr) == (
        2,
        "--now: 'yesterday' is not an RFC 3339 timestamp, e.g. 2026-09-01T12:00:00Z\n",
    )
    missing = run("--config", str(tmp_path / "nope.yaml"), "plan", state=state)
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and "nope.yaml" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_a_broken_roster_is_reported_by_line_with_no_traceback(tmp_path: Path, state: Path) -> None:
    (tmp_path / "config.yaml").write_text("roster: roster.yaml\n")
    (tmp_path / "roster.yaml").write_text(
        "applicant:\n  name: Sarah\n  email: sarah@example.edu\n  timezone: America/New_York\n"
        "defaults:\n  send_window: 9:00-17:00\n"
        "recommenders:\n  - id: x\n    name: X\n    emial: x@example.org\n"
    )
    res = run("--config", str(tmp_path / "config.yaml"), "check", state=state, cwd=tmp_path)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert all(line.startswith("roster.yaml:") for line in lines), lines
    assert any(
        line.startswith("roster.yaml:10:5: recommenders[0]: unknown key 'emial'") for line in lines
    ), lines


def _minimal_argv(parser: argparse.ArgumentParser) -> list[str]:
    """The command words and positionals a sub-parser needs, down to its leaf."""
    argv: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name, sub = next(iter(action.choices.items()))
            return [*argv, name, *_minimal_argv(sub)]
        if not action.option_strings and action.nargs not in ("?", "*"):
            argv.append(str(next(iter(action.choices))) if action.choices else "x")
    return argv


def test_global_options_work_after_every_command() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == set(COMMANDS)
    for name, sub in commands.choices.items():
        argv = [name, *_minimal_argv(sub)]
        after = parser.parse_args([*argv, "--config", "after.yaml", "--debug"])
        assert (after.config, after.debug) == (Path("after.yaml"), True), name
        before = parser.parse_args(["--config", "before.yaml", "--debug", *argv])
        assert (before.config, before.debug) == (Path("before.yaml"), True), name
        neither = parser.parse_args(argv)
        assert (neither.config, neither.debug) == (None, False), name


def test_plan_with_the_config_after_the_command(state: Path) -> None:
    res = run("plan", "--json", "--config", str(EXAMPLE), "--now", NOW, state=state)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["now"] == NOW


def test_python_m_lormail_runs(state: Path) -> None:
    res = run("--version", state=state)
    assert (res.returncode, res.stdout, res.stderr) == (0, f"lormail {__version__}\n", "")


def _boom(app: object, args: object) -> int:
    raise ValueError("the disk said no")


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(COMMANDS, "check", "tests.test_cli:_boom")
    assert main(["--config", str(EXAMPLE), "check"]) == 1
    assert capsys.readouterr().err == (
        "lormail: internal error: ValueError: the disk said no (run with --debug for details)\n"
    )
    assert gc.isenabled()
    with pytest.raises(ValueError, match="the disk said no"):
        main(["check", "--config", str(EXAMPLE), "--debug"])


def test_the_example_config_says_what_to_flip_and_check_then_refuses_the_example(
    tmp_path: Path, state: Path
) -> None:
    text = EXAMPLE.read_text("utf-8")
    assert "Set `transport: smtp` and `dry_run: false` together" in text
    assert re.findall(r"^#   (\d)\. ", text, flags=re.M) == ["1", "2", "3", "4"]
    live = text.replace("roster: roster.example.yaml", f"roster: {ROOT / 'roster.example.yaml'}")
    live = live.replace("\ndry_run: true\n", "\ndry_run: false\n")
    live = live.replace("\ntransport: maildir ", "\ntransport: smtp    ")
    (tmp_path / "config.yaml").write_text(live, "utf-8")
    res = run("check", "--config", str(tmp_path / "config.yaml"), state=state, cwd=tmp_path)
    refused = "is an example address; put your own before sending for real"
    from_line = next(i for i, ln in enumerate(live.splitlines(), 1) if ln.startswith("  from:"))
    assert (res.returncode, res.stderr.splitlines()) == (
        2,
        [
            f"config.yaml:{from_line}:9: smtp.from: sarah.chen@example.edu {refused}",
            f"{ROOT / 'roster.example.yaml'}:6:10: applicant.email: sarah.chen@example.edu "
            f"{refused}",
        ],
    )
