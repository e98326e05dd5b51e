"""``lormail mark --inbox``: the letters portal mails confirmed, written into the roster.

Mails from the corpus in tests/inbox/ (some with their names changed to the
example roster's) go through the real classifier into a real state store, as
``inbox scan`` records them; then ``mark --inbox`` runs through the CLI.
"""

from __future__ import annotations

import difflib
import gc
import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

import lormail.app.mark
from lormail.app.context import App
from lormail.app.inbox import classify_files, scan
from lormail.cli import main
from lormail.core.inbox_marks import Submission, from_inbox
from lormail.edge import inbox_store
from lormail.edge.store import Store
from lormail.load.roster import load_roster, parse_roster
from lormail.model import InboxEvent, Roster
from tests._imap_helpers import Dovecot
from tests.conftest import ROOT
from tests.test_mark_properties import real_size_roster

CORPUS = ROOT / "tests" / "inbox"
EXAMPLE = (ROOT / "roster.example.yaml").read_text()
# lee's entry is the example's last: without it, a mail about lee is about no one.
LEE = EXAMPLE.index("\n  - id: lee")
WITHOUT_LEE = EXAMPLE[: LEE + 1]

Change = tuple[list[str], list[str]]


def changes(before: str, after: str) -> list[Change]:
    """Every stretch in which ``after`` differs from ``before``, line by line."""
    a, b = before.splitlines(), after.splitlines()
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return [(a[i1:i2], b[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def unified(before: str, after: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            "roster.yaml",
            "roster.yaml",
        )
    )


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "roster.yaml").write_text(EXAMPLE)
    os.chmod(tmp_path / "roster.yaml", 0o640)
    (tmp_path / "config.yaml").write_text("roster: roster.yaml\ndry_run: true\n")
    (tmp_path / "mails").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LORMAIL_STATE_DIR", str(tmp_path / "state"))
    yield tmp_path
    gc.enable()  # main() turns the collector off for a one-shot command


def mail(folder: Path, name: str, out: str, *swaps: tuple[str, str]) -> Path:
    """A corpus mail with some of its text changed, saved as ``out``."""
    text = (CORPUS / name).read_text()
    for old, new in swaps:
        assert old in text, (name, old)
        text = text.replace(old, new)
    path = folder / "mails" / out
    path.write_text(text)
    return path


def record(folder: Path, paths: list[Path]) -> list[InboxEvent]:
    """Classify the mails against the roster as it is now and store the events, as a scan does."""
    events = classify_files(App(folder / "config.yaml"), paths)
    with Store.open(folder / "state") as store:
        inbox_store.add_events(store, {}, events)
    return events


def mark(*args: str) -> int:
    return main(["--config", "config.yaml", "mark", *args])


def example_mails(folder: Path) -> list[Path]:
    new_id = ("Message-ID: <", "Message-ID: <changed.")
    return [
        # johnson's ERAS letter, by its letter_id: 10 Dec 21:14 UTC, 15:14 in Chicago.
        CORPUS / "portal_eras.eml",
        # johnson's SOPHAS letter (mph), by name and portal: 11 Dec in the applicant's
        # New York, but still 10 Dec in johnson's Chicago, the day status shows.
        mail(
            folder,
            "portal_liaison_sophas.eml",
            "sophas_johnson.eml",
            ("Hans Müller", "Emily Johnson"),
            ("Tue, 15 Dec 2026 09:12:00 -0500", "Fri, 11 Dec 2026 00:30:00 -0500"),
            new_id,
        ),
        # patel has two letters open; an AMCAS mail names neither.
        mail(folder, "portal_amcas.eml", "amcas_patel.eml", ("Raj Patel", "Anil Patel"), new_id),
        # nguyen declined; garcia's letter is dated already; lee will leave the roster.
        *(
            mail(
                folder,
                "portal_generic.eml",
                f"generic_{who.split()[-1].lower()}.eml",
                ("Min-jun Kim", who),
                ("PhD in Biology", program),
                ("Message-ID: <", f"Message-ID: <{who.split()[-1]}."),
            )
            for who, program in (
                ("Linh Nguyen", "Internal Medicine residency"),
                ("Maria Garcia", "Stanford PhD in Epidemiology"),
                ("Grace Lee", "Internal Medicine residency"),
            )
        ),
        CORPUS / "reply_in_thread.eml",
        CORPUS / "auto_exchange_en_until.eml",
    ]


JOHNSON: Change = (
    ["      - {program: mph}", '      - {program: im-residency, letter_id: "LoR-12345"}'],
    [
        "      - {program: mph, submitted_on: 2026-12-10}",
        '      - {program: im-residency, letter_id: "LoR-12345", submitted_on: 2026-12-10}',
    ],
)
INBOX_LINES = (
    "inbox: 8 events considered (6 portal mails)\n"
    "skipped: a portal mail of 2026-12-18 about lee's letter im-residency: "
    "no recommender 'lee' in the roster\n"
    "note: a portal mail of 2026-12-11 does not say which of patel's letters; "
    "record it with 'lormail mark patel submitted LETTER --on 2026-12-11'\n"
    "note: a portal mail of 2026-12-18 confirms nguyen's letter im-residency, "
    "but nguyen declined: left as it is\n"
)


def test_the_example_roster_gets_the_confirmed_letters_and_nothing_else(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = record(folder, example_mails(folder))
    assert [(e.kind, e.recommender, e.letter) for e in events] == [
        ("portal", "johnson", "im-residency"),
        ("portal", "johnson", "mph"),
        ("portal", "patel", None),
        ("portal", "nguyen", "im-residency"),
        ("portal", "garcia", "stanford-phd"),
        ("portal", "lee", "im-residency"),
        ("reply", "johnson", None),
        ("auto_reply", "johnson", None),
    ]
    roster = folder / "roster.yaml"
    roster.write_text(WITHOUT_LEE)

    assert mark("--inbox", "--dry-run") == 0
    assert roster.read_text() == WITHOUT_LEE
    dry = capsys.readouterr().out
    assert mark("--inbox") == 0
    after = roster.read_text()
    # Both of johnson's letters in one edit; every other line, comments and all, as it was.
    assert changes(WITHOUT_LEE, after) == [JOHNSON]
    diff = unified(WITHOUT_LEE, after)
    assert dry == diff + INBOX_LINES + "roster.yaml: dry run, nothing written\n"
    assert capsys.readouterr().out == diff + INBOX_LINES + "roster.yaml: written\n"
    assert stat.S_IMODE(roster.stat().st_mode) == 0o640
    johnson = load_roster(roster).recommenders_by_id["johnson"]
    assert [(lt.key, lt.submitted_on) for lt in johnson.letters] == [
        ("mph", date(2026, 12, 10)),
        ("im-residency", date(2026, 12, 10)),
    ]

    # Run again: the roster says it all already.
    assert mark("--inbox") == 0
    assert roster.read_text() == after
    assert capsys.readouterr().out == (
        INBOX_LINES + "roster.yaml: nothing from the inbox to record\n"
    )


def test_status_shows_the_same_days_before_and_after(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record(folder, example_mails(folder))

    def submitted() -> dict[tuple[str, str], str | None]:
        assert main(["--config", "config.yaml", "status", "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        return {
            (r["id"], lt["key"]): lt["submitted_on"]
            for r in data["recommenders"]
            for lt in r["letters"]
        }

    shown = submitted()
    assert shown[("johnson", "mph")] == shown[("johnson", "im-residency")] == "2026-12-10"
    assert mark("--inbox") == 0
    capsys.readouterr()
    assert submitted() == shown


def test_no_events_is_said_plainly(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mark("--inbox") == 0
    assert capsys.readouterr().out == (
        "inbox: no events stored yet ('lormail inbox scan' or 'lormail run' reads them)\n"
        "roster.yaml: nothing from the inbox to record\n"
    )
    record(folder, [CORPUS / "reply_in_thread.eml"])
    assert mark("--inbox") == 0
    assert capsys.readouterr().out == (
        "inbox: 1 event considered (0 portal mails)\n"
        "roster.yaml: nothing from the inbox to record\n"
    )
    assert (folder / "roster.yaml").read_text() == EXAMPLE


def test_a_save_between_read_and_write_wins(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    record(folder, [CORPUS / "portal_eras.eml"])
    roster = folder / "roster.yaml"
    saved = EXAMPLE + "# a note saved by the editor meanwhile\n"
    real_parse = parse_roster

    def parse_while_the_editor_saves(text: str, path: Path) -> Roster:
        roster.write_text(saved)
        return real_parse(text, path)

    monkeypatch.setattr(lormail.app.mark, "parse_roster", parse_while_the_editor_saves)
    assert mark("--inbox") == 1
    captured = capsys.readouterr()
    assert captured.err == (
        "roster.yaml: the file changed after it was read (saved elsewhere?); "
        "nothing was written: run the command again\n"
    )
    assert roster.read_text() == saved
    assert not [p for p in folder.iterdir() if p.name.startswith(".roster.yaml.")]


# --- the real-size ERAS season --------------------------------------------------


def eras_mail(folder: Path, out: str, letter_id: str, when: str) -> Path:
    return mail(
        folder,
        "portal_eras.eml",
        out,
        ("LoR-12345", letter_id),
        ("Thu, 10 Dec 2026 21:14:07 +0000", when),
        ("Message-ID: <", f"Message-ID: <{out}."),
    )


def test_the_real_size_eras_roster(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    roster = folder / "roster.yaml"
    text = real_size_roster()
    roster.write_text(text)
    events = record(
        folder,
        [
            eras_mail(folder, "garcia.eml", "LoR-1001", "Tue, 1 Sep 2026 15:00:00 +0000"),
            eras_mail(folder, "okafor.eml", "LoR-1002", "Wed, 2 Sep 2026 15:00:00 +0000"),
            eras_mail(folder, "again.eml", "LoR-1002", "Fri, 4 Sep 2026 15:00:00 +0000"),
            # okafor's own letter for im-01, named by its program, the same day.
            mail(
                folder,
                "portal_generic.eml",
                "okafor_im01.eml",
                ("Min-jun Kim", "Okafor"),
                ("PhD in Biology", "Internal Medicine 1"),
                ("Fri, 18 Dec 2026 15:20:00 -0600", "Wed, 2 Sep 2026 18:00:00 -0400"),
            ),
            eras_mail(folder, "patel.eml", "LoR-1003", "Thu, 3 Sep 2026 15:00:00 +0000"),
        ],
    )
    assert [(e.recommender, e.letter) for e in events] == [
        ("garcia", "eras"),
        ("okafor", "eras"),
        ("okafor", "eras"),
        ("okafor", "im-01"),
        ("patel", "eras"),
    ]
    # Since patel's mail was read, their upload got another key in the roster.
    at = text.index("id: eras", text.index("id: patel"))
    text = text[:at] + "id: eras-2026" + text[at + len("id: eras") :]
    roster.write_text(text)

    assert mark("--inbox", "--dry-run") == 0
    assert roster.read_text() == text
    capsys.readouterr()
    assert mark("--inbox") == 0
    after = roster.read_text()
    # okafor's two letters, confirmed the same day, are one edit.
    assert changes(text, after) == [
        ([], ["        submitted_on: 2026-09-01"]),
        (
            ["      - {program: im-01}         # a program that wants its own"],
            [
                "        submitted_on: 2026-09-02",
                "      - {program: im-01, submitted_on: 2026-09-02} # a program that wants its own",
            ],
        ),
    ]
    assert capsys.readouterr().out == (
        unified(text, after) + "inbox: 5 events considered (5 portal mails)\n"
        "skipped: a portal mail of 2026-09-03 about patel's letter eras: "
        "patel has no letter 'eras'\n"
        "roster.yaml: written\n"
    )
    assert mark("--inbox") == 0
    assert roster.read_text() == after
    assert capsys.readouterr().out.endswith("roster.yaml: nothing from the inbox to record\n")


# --- the deciding part, pure ----------------------------------------------------

ROSTER = """\
applicant: {name: Sarah Chen, email: sarah@example.edu, timezone: America/New_York}
programs:
  - {id: a, name: A, deadline: 2027-01-15}
  - {id: b, name: B, deadline: 2027-01-15}
  - {id: c, name: C, deadline: 2027-01-15}
  - {id: d, name: D, deadline: 2027-01-15}
recommenders:
  - id: patel
    name: Dr. Raj Patel
    email: rp@example.org
    timezone: Asia/Kolkata
    status: agreed
    letters: [{program: a}, {program: b}, {program: c, submitted_on: 2026-12-01}, {program: d}]
"""


def portal(letter: str, at: str) -> InboxEvent:
    return InboxEvent("portal", None, datetime.fromisoformat(at), "noreply@x", "patel", letter)


def test_the_day_is_the_recommenders_the_earliest_mail_counts_and_one_day_is_one_mark() -> None:
    roster = parse_roster(ROSTER, Path("roster.yaml"))
    found = from_inbox(
        roster,
        [
            portal("a", "2026-12-12T08:00:00+00:00"),  # a repeat, read first
            # 20:00 UTC on 9 Dec is 10 Dec in Kolkata (and still 9 Dec in New York).
            portal("a", "2026-12-09T20:00:00+00:00"),
            portal("d", "2026-12-10T08:00:00+00:00"),
            portal("b", "2026-12-12T08:00:00+00:00"),
            portal("c", "2026-12-12T08:00:00+00:00"),  # the roster's date stays
        ],
    )
    assert found.submissions == (
        Submission("patel", ("a", "d"), date(2026, 12, 10)),
        Submission("patel", ("b",), date(2026, 12, 12)),
    )
    assert (found.considered, found.portal, found.skipped, found.notes) == (5, 5, (), ())


# --- from a real mailbox --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.real
def test_what_a_scan_of_a_real_mailbox_stored(
    dovecot: Dovecot,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.test_inbox_imap import connected, write_config

    dovecot.append((CORPUS / "portal_eras.eml").read_bytes())
    dovecot.append((CORPUS / "reply_in_thread.eml").read_bytes())
    config = write_config(tmp_path, dovecot)
    box = connected(dovecot)
    try:
        scan(App(config), datetime(2026, 12, 20, 12, 0, tzinfo=UTC), box)
    finally:
        box.close()
    dovecot.stop()
    # The server is gone: mark --inbox reads only what the scan stored.
    monkeypatch.chdir(tmp_path)
    before = (tmp_path / "roster.yaml").read_text()
    try:
        assert main(["--config", "config.yaml", "mark", "--inbox"]) == 0
    finally:
        gc.enable()
    after = (tmp_path / "roster.yaml").read_text()
    assert changes(before, after) == [
        (
            ['      - {program: im-residency, letter_id: "LoR-12345"}'],
            ['      - {program: im-residency, letter_id: "LoR-12345", submitted_on: 2026-12-10}'],
        )
    ]
    assert capsys.readouterr().out == (
        unified(before, after)
        + "inbox: 2 events considered (1 portal mail)\nroster.yaml: written\n"
    )
