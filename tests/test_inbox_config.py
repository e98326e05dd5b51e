"""The config's imap: section and the reply_hold policy key (SPEC §8)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from lormail.errors import LormailError
from lormail.load.config import parse_config
from lormail.load.roster import parse_roster
from lormail.model import ImapConfig

BASE = """\
roster: roster.yaml
transport: smtp
smtp:
  host: smtp.example.org
  username: sarah@example.edu
  from: "Sarah Chen <sarah@example.edu>"
"""


def problems(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(LormailError) as caught:
        parse_config(text, tmp_path / "config.yaml")
    return [str(p).replace(str(tmp_path) + "/", "") for p in caught.value.problems]


def test_no_section_reads_no_mail(tmp_path: Path) -> None:
    assert parse_config(BASE, tmp_path / "config.yaml").imap is None
    assert parse_config(BASE + "imap: null\n", tmp_path / "config.yaml").imap is None


def test_defaults_share_the_smtp_username(tmp_path: Path) -> None:
    config = parse_config(BASE + "imap: {host: imap.example.org}\n", tmp_path / "config.yaml")
    assert config.imap == ImapConfig(host="imap.example.org", username="sarah@example.edu")
    assert config.imap.port == 993
    assert config.imap.poll == timedelta(minutes=5)


def test_every_key(tmp_path: Path) -> None:
    text = BASE + (
        "imap:\n"
        "  host: 127.0.0.1\n"
        "  port: 1143\n"
        "  security: none\n"
        "  username: inbox@example.edu\n"
        "  auth: xoauth2\n"
        "  token_command: oauth2-token --imap\n"
        "  folders: [INBOX, Letters]\n"
        "  poll: 2m\n"
        "  timeout: 10s\n"
        "  portals: rules/portals.yaml\n"
    )
    assert parse_config(text, tmp_path / "config.yaml").imap == ImapConfig(
        host="127.0.0.1",
        port=1143,
        security="none",
        username="inbox@example.edu",
        auth="xoauth2",
        token_command="oauth2-token --imap",
        folders=("INBOX", "Letters"),
        poll=timedelta(minutes=2),
        timeout=timedelta(seconds=10),
        portals=tmp_path / "rules" / "portals.yaml",
    )


def test_starttls_port_default(tmp_path: Path) -> None:
    text = BASE + "imap: {host: imap.example.org, security: starttls}\n"
    imap = parse_config(text, tmp_path / "config.yaml").imap
    assert imap is not None and imap.port == 143


def test_mistakes(tmp_path: Path) -> None:
    text = BASE + (
        "imap:\n"
        "  host: imap.example.org\n"
        "  security: none\n"
        "  auth: xoauth2\n"
        "  folder: [INBOX]\n"
        "  poll: 0m\n"
        "  password: x\n"
    )
    assert problems(text, tmp_path) == [
        "config.yaml:9:13: imap.security: none reads in the clear, so it is allowed only from a "
        "loopback host (localhost, 127.0.0.1, ::1), not 'imap.example.org'",
        "config.yaml:10:9: imap.auth: xoauth2 needs token_command, a command that prints an "
        "access token",
        "config.yaml:11:3: imap: unknown key 'folder' (did you mean 'folders'?)",
        "config.yaml:12:9: imap.poll: must be longer than 0s",
        "config.yaml:13:3: imap.password: never put a password in the config; run "
        "'lormail credentials set' to keep it in the OS keyring",
    ]


def test_host_is_required_and_a_username_needed(tmp_path: Path) -> None:
    text = "roster: roster.yaml\nimap:\n  port: 993\n  folders: []\n"
    assert problems(text, tmp_path) == [
        "config.yaml:3:3: imap: missing key 'host'",
    ]
    text = "roster: roster.yaml\nimap:\n  host: imap.example.org\n  folders: []\n"
    assert problems(text, tmp_path) == [
        "config.yaml:3:3: imap: missing key 'username' (nor is there an smtp.username to share)",
        "config.yaml:4:12: imap.folders: needs at least one folder, like [INBOX]",
    ]


ROSTER = """\
applicant: {name: Sarah Chen, email: sarah@example.edu, timezone: America/New_York}
defaults: {reply_hold: 10d}
programs: []
recommenders:
  - {id: a, name: Dr. A, email: a@example.org, status: agreed}
  - {id: b, name: Dr. B, email: b@example.org, status: agreed, reply_hold: 36h}
"""


def test_reply_hold_in_defaults_and_per_recommender(tmp_path: Path) -> None:
    roster = parse_roster(ROSTER, tmp_path / "roster.yaml")
    assert roster.defaults.reply_hold == timedelta(days=10)
    assert [r.policy.reply_hold for r in roster.recommenders] == [
        timedelta(days=10),
        timedelta(hours=36),
    ]
    plain = parse_roster(ROSTER.replace("defaults: {reply_hold: 10d}", ""), tmp_path / "r.yaml")
    assert plain.defaults.reply_hold == timedelta(days=7)
