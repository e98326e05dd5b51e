"""The roster and config loaders: exact problem text, defaults, warnings, robustness.

Each mistake is made by editing one line of a small valid file, so the expected
``FILE:LINE:COL: PATH: message`` lines can be read off the file below.  The
working folder is the file's folder, so FILE is just its name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lormail.app.inputs import accept, read_sources
from lormail.errors import EXIT_USAGE, LormailError
from lormail.load import yamlsrc
from lormail.load.config import load_config, parse_config
from lormail.load.roster import (
    load_roster,
    load_roster_checked,
    machine_zone,
    parse_roster,
    roster_warnings,
)

ROOT = Path(__file__).resolve().parent.parent

# Line numbers matter: the cases below point into this text.
ROSTER = """\
applicant:
  name: Sarah Chen
  email: sarah@example.edu
  timezone: America/New_York
defaults:
  reminders: [14d, 7d]
  send_window: "09:00-17:00"
programs:
  - id: mph
    name: MPH in Epidemiology
    deadline: 2026-12-01
  - id: im-residency
    name: Internal Medicine residency
    deadline: "2027-01-15T17:00:00-05:00"
recommenders:
  - id: johnson
    name: Dr. Emily Johnson
    email: ejohnson@hospital.example.org
    status: agreed
    asked_on: 2026-10-26
    letters:
      - {program: mph}
      - {program: im-residency, letter_id: "LoR-1"}
"""

CONFIG = """\
roster: roster.yaml
dry_run: true
transport: smtp
smtp:
  host: smtp.example.org
  port: 465
  security: ssl
  username: sarah@example.edu
  auth: password
  from: "Sarah Chen <sarah@example.edu>"
  timeout: 30s
  max_per_hour: 30
calendar:
  file: deadlines.ics
  alarms: [7d, 1d]
  feed: {enabled: true, bind: 127.0.0.1, port: 8765}
"""


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} must occur once"
    return text.replace(old, new)


def roster_problems(folder: Path, text: str) -> list[str]:
    (folder / "roster.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(LormailError) as caught:
        load_roster(Path("roster.yaml"))
    assert caught.value.exit_code == EXIT_USAGE
    return [str(p) for p in caught.value.problems]


def config_problems(folder: Path, text: str) -> list[str]:
    (folder / "config.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(LormailError) as caught:
        load_config(Path("config.yaml"))
    assert caught.value.exit_code == EXIT_USAGE
    return [str(p) for p in caught.value.problems]


WINDOW = '"09:00-17:00"'
STATUSES = "planned | asked | agreed | declined"
NOTIFIABLE = "interview | waitlisted | accepted | matched | rejected | withdrawn"
DAYS = "mon | tue | wed | thu | fri | sat | sun"
ID_RULE = "use letters, digits, '.', '_' and '-', starting with a letter or digit"
WHOLE_DAYS = "write days or weeks, like 14d or 2w (or ISO 8601 P14D)"

# (case id, old text, new text, expected problems)
ROSTER_CASES = [
    (
        "bad-email",
        "email: ejohnson@hospital.example.org",
        "email: ejohnson@",
        ["roster.yaml:18:12: recommenders[0].email: 'ejohnson@' is not an e-mail address"],
    ),
    (
        "email-with-name",
        "email: ejohnson@hospital.example.org",
        'email: "Emily <ejohnson@hospital.example.org>"',
        [
            "roster.yaml:18:12: recommenders[0].email: 'Emily <ejohnson@hospital.example.org>' "
            "is not an e-mail address; write only the address here"
        ],
    ),
    (
        "email-without-dot",
        "email: sarah@example.edu",
        "email: sarah@example",
        ["roster.yaml:3:10: applicant.email: 'sarah@example' is not an e-mail address"],
    ),
    (
        "email-line-break",
        "email: ejohnson@hospital.example.org",
        'email: "ejohnson@hospital.example.org\\r\\nBcc: x@evil.example"',
        [
            "roster.yaml:18:12: recommenders[0].email: holds a line break, which a mail "
            "header cannot carry; keep it on one line"
        ],
    ),
    (
        "unknown-key-did-you-mean",
        "    email: ejohnson@hospital.example.org",
        "    emial: ejohnson@hospital.example.org",
        [
            "roster.yaml:16:5: recommenders[0]: missing key 'email'",
            "roster.yaml:18:5: recommenders[0]: unknown key 'emial' (did you mean 'email'?)",
        ],
    ),
    (
        "unknown-top-level-key",
        "defaults:",
        "default:",
        ["roster.yaml:5:1: unknown key 'default' (did you mean 'defaults'?)"],
    ),
    (
        "unknown-key-no-suggestion",
        "    status: agreed",
        "    status: agreed\n    favourite_colour: blue",
        ["roster.yaml:20:5: recommenders[0]: unknown key 'favourite_colour'"],
    ),
    (
        "duplicate-key",
        "    name: Dr. Emily Johnson",
        "    name: Dr. Emily Johnson\n    name: Dr. E. Johnson",
        ["roster.yaml:18:5: recommenders[0]: duplicate key 'name' (first on line 17)"],
    ),
    (
        "missing-applicant",
        ROSTER[: ROSTER.index("defaults:")],
        "",
        ["roster.yaml:1:1: missing key 'applicant'"],
    ),
    (
        "empty-applicant",
        ROSTER[: ROSTER.index("defaults:")],
        "applicant:\n",
        ["roster.yaml:1:11: applicant: needs a value"],
    ),
    (
        "applicant-as-text",
        ROSTER[: ROSTER.index("defaults:")],
        "applicant: Sarah Chen\n",
        ["roster.yaml:1:12: applicant: expected keys and values (key: value), not 'Sarah Chen'"],
    ),
    (
        "empty-unavailable-entry",
        "    status: agreed",
        "    status: agreed\n    unavailable:\n      -\n        note: x",
        [
            "roster.yaml:22:9: recommenders[0].unavailable[0]: missing key 'from'",
            "roster.yaml:22:9: recommenders[0].unavailable[0]: missing key 'to'",
        ],
    ),
    (
        "null-required",
        "  name: Sarah Chen",
        "  name:",
        ["roster.yaml:2:8: applicant.name: needs a value"],
    ),
    (
        "empty-name",
        "    name: Dr. Emily Johnson",
        "    name: ''",
        ["roster.yaml:17:11: recommenders[0].name: must not be empty"],
    ),
    (
        "sexagesimal-window",
        f"send_window: {WINDOW}",
        "send_window: 9:30",
        [
            "roster.yaml:7:16: defaults.send_window: YAML reads 9:30 as the number 570; "
            f"write the window in quotes, like {WINDOW}"
        ],
    ),
    (
        "window-backwards",
        f"send_window: {WINDOW}",
        'send_window: "17:00-09:00"',
        [
            "roster.yaml:7:16: defaults.send_window: the window must end after it starts, "
            "not '17:00-09:00'"
        ],
    ),
    (
        "window-words",
        f"send_window: {WINDOW}",
        "send_window: 9am-5pm",
        [f"roster.yaml:7:16: defaults.send_window: expected a window like {WINDOW}, not '9am-5pm'"],
    ),
    (
        "window-impossible-time",
        f"send_window: {WINDOW}",
        'send_window: "09:00-25:00"',
        [
            f"roster.yaml:7:16: defaults.send_window: '09:00-25:00' is not a window of real times, "
            f"like {WINDOW}"
        ],
    ),
    (
        "status-typo",
        "status: agreed",
        "status: agred",
        [
            f"roster.yaml:19:13: recommenders[0].status: 'agred' is not one of {STATUSES} "
            "(did you mean 'agreed'?)"
        ],
    ),
    (
        "id-with-colon",
        "  - id: im-residency",
        "  - id: im:residency",
        [
            f"roster.yaml:12:9: programs[1].id: 'im:residency' is not a valid id: {ID_RULE}",
            "roster.yaml:23:19: recommenders[0].letters[1].program: no program has the id "
            "'im-residency' (did you mean 'im:residency'?)",
        ],
    ),
    (
        "id-with-plus",
        "  - id: johnson",
        "  - id: johnson+lee",
        [f"roster.yaml:16:9: recommenders[0].id: 'johnson+lee' is not a valid id: {ID_RULE}"],
    ),
    (
        "duplicate-program-id",
        "  - id: im-residency",
        "  - id: mph",
        [
            "roster.yaml:12:9: programs[1].id: duplicate id 'mph' (also programs[0])",
            "roster.yaml:23:19: recommenders[0].letters[1].program: no program has the id "
            "'im-residency'",
        ],
    ),
    (
        "duplicate-recommender-id",
        '      - {program: im-residency, letter_id: "LoR-1"}\n',
        '      - {program: im-residency, letter_id: "LoR-1"}\n'
        "  - id: johnson\n    name: Dr. J\n    email: j@example.org\n",
        ["roster.yaml:24:9: recommenders[1].id: duplicate id 'johnson' (also recommenders[0])"],
    ),
    (
        "letter-program-typo",
        "{program: im-residency,",
        "{program: im-residncy,",
        [
            "roster.yaml:23:19: recommenders[0].letters[1].program: no program has the id "
            "'im-residncy' (did you mean 'im-residency'?)"
        ],
    ),
    (
        "two-letters-one-program",
        "{program: im-residency,",
        "{program: mph,",
        [
            "roster.yaml:23:19: recommenders[0].letters[1].program: a second letter for 'mph' "
            "(the first is letters[0])"
        ],
    ),
    (
        "zone-near-miss",
        "timezone: America/New_York",
        "timezone: America/NewYork",
        [
            "roster.yaml:4:13: applicant.timezone: 'America/NewYork' is not an IANA time zone "
            "(did you mean 'America/New_York'?)"
        ],
    ),
    (
        "zone-path",
        "timezone: America/New_York",
        "timezone: /etc/passwd",
        ["roster.yaml:4:13: applicant.timezone: '/etc/passwd' is not an IANA time zone"],
    ),
    (
        "date-not-real",
        "deadline: 2026-12-01",
        "deadline: 2026-02-30",
        [
            "roster.yaml:11:15: programs[0].deadline: '2026-02-30' is not a real date "
            "(day is out of range for month)"
        ],
    ),
    (
        "deadline-words",
        "deadline: 2026-12-01",
        "deadline: next week",
        [
            "roster.yaml:11:15: programs[0].deadline: expected a date like 2026-09-24 or a "
            "timestamp like 2026-08-01T17:00:00-04:00, not 'next week'"
        ],
    ),
    (
        "asked-on-not-a-date",
        "asked_on: 2026-10-26",
        "asked_on: 26/10/2026",
        [
            "roster.yaml:20:15: recommenders[0].asked_on: expected a date like 2026-09-24, "
            "not '26/10/2026'"
        ],
    ),
    (
        "reminder-in-hours",
        "reminders: [14d, 7d]",
        "reminders: [14d, 6h]",
        [
            f"roster.yaml:6:20: defaults.reminders[1]: '6h' is not a whole number of days; "
            f"{WHOLE_DAYS}"
        ],
    ),
    (
        "reminder-twice",
        "reminders: [14d, 7d]",
        "reminders: [7d, 1w]",
        ["roster.yaml:6:19: defaults.reminders[1]: 7 days is listed twice"],
    ),
    (
        "reminders-not-a-list",
        "reminders: [14d, 7d]",
        "reminders: 14d",
        ["roster.yaml:6:14: defaults.reminders: expected a list, like [14d, 7d], not '14d'"],
    ),
    (
        "min-gap-without-unit",
        "  reminders: [14d, 7d]",
        "  reminders: [14d, 7d]\n  min_gap: 5",
        [
            "roster.yaml:7:12: defaults.min_gap: '5' is not a duration; write one like "
            "14d, 2w, 6h or ISO 8601 P14D"
        ],
    ),
    (
        "ask-lead-in-months",
        "  reminders: [14d, 7d]",
        "  reminders: [14d, 7d]\n  ask_lead: P1M",
        [
            "roster.yaml:7:13: defaults.ask_lead: 'P1M' uses years or months, which have no "
            "fixed length; use days or weeks"
        ],
    ),
    (
        "check-in-in-hours",
        "  reminders: [14d, 7d]",
        "  reminders: [14d, 7d]\n  check_in_every: PT6H",
        [
            f"roster.yaml:7:19: defaults.check_in_every: 'PT6H' is not a whole number of days; "
            f"{WHOLE_DAYS}"
        ],
    ),
    (
        "send-day-typo",
        "  reminders: [14d, 7d]",
        "  reminders: [14d, 7d]\n  send_days: [mon, thur]",
        [
            f"roster.yaml:7:20: defaults.send_days[1]: 'thur' is not one of {DAYS} "
            "(did you mean 'thu'?)"
        ],
    ),
    (
        "no-send-days",
        "  reminders: [14d, 7d]",
        "  reminders: [14d, 7d]\n  send_days: []",
        [
            "roster.yaml:7:14: defaults.send_days: must name at least one day, like "
            "[mon, tue, wed, thu, fri]"
        ],
    ),
    (
        "notify-pending",
        "  reminders: [14d, 7d]",
        "  reminders: [14d, 7d]\n  notify_outcomes: [interview, pending]",
        [f"roster.yaml:7:32: defaults.notify_outcomes[1]: 'pending' is not one of {NOTIFIABLE}"],
    ),
    (
        "quoted-boolean",
        "  reminders: [14d, 7d]",
        '  reminders: [14d, 7d]\n  decline_thanks: "yes"',
        [
            "roster.yaml:7:19: defaults.decline_thanks: expected true or false without quotes, "
            'not "yes"'
        ],
    ),
    (
        "number-as-boolean",
        "    status: agreed",
        "    status: agreed\n    waived: 1",
        ["roster.yaml:20:13: recommenders[0].waived: expected true or false, not '1'"],
    ),
    (
        "boolean-as-name",
        "    name: Dr. Emily Johnson",
        "    name: no",
        ['roster.yaml:17:11: recommenders[0].name: YAML reads no as false; quote it: "no"'],
    ),
    (
        "control-character",
        "    status: agreed",
        '    status: agreed\n    title: "Professor\\a"',
        ["roster.yaml:20:12: recommenders[0].title: holds a control character (U+0007); remove it"],
    ),
    (
        "tab-in-header",
        "    name: MPH in Epidemiology",
        '    name: "MPH\\tin Epidemiology"',
        ["roster.yaml:10:11: programs[0].name: holds a control character (U+0009); remove it"],
    ),
    (
        "outcome-typo",
        "    deadline: 2026-12-01",
        "    deadline: 2026-12-01\n    outcome: accpeted",
        [
            "roster.yaml:12:14: programs[0].outcome: 'accpeted' is not one of pending | "
            f"{NOTIFIABLE} (did you mean 'accepted'?)"
        ],
    ),
    (
        "vacation-backwards",
        "    status: agreed",
        "    status: agreed\n    unavailable:\n      - {from: 2026-08-17, to: 2026-08-10}",
        [
            "roster.yaml:21:32: recommenders[0].unavailable[0].to: 2026-08-10 is before "
            "'from' (2026-08-17)"
        ],
    ),
    (
        "vacation-without-end",
        "    status: agreed",
        "    status: agreed\n    unavailable:\n      - {from: 2026-08-17, note: away}",
        ["roster.yaml:21:9: recommenders[0].unavailable[0]: missing key 'to'"],
    ),
    (
        "material-path-and-url",
        "  timezone: America/New_York",
        "  timezone: America/New_York\n  materials:\n"
        '    - {label: CV, path: cv.pdf, url: "https://example.edu/cv.pdf"}',
        [
            "roster.yaml:6:7: applicant.materials[0]: give either a path (a file to attach) or a "
            "url (a link), not both"
        ],
    ),
    (
        "material-ftp",
        "  timezone: America/New_York",
        "  timezone: America/New_York\n  materials:\n"
        '    - {label: CV, url: "ftp://example.edu/cv.pdf"}',
        [
            "roster.yaml:6:24: applicant.materials[0].url: 'ftp://example.edu/cv.pdf' is not "
            "an http(s) URL"
        ],
    ),
    (
        "letters-not-a-list",
        ROSTER[ROSTER.index("    letters:") :],
        "    letters: mph\n",
        [
            "roster.yaml:21:14: recommenders[0].letters: expected a list, like [{program: ...}], "
            "not 'mph'"
        ],
    ),
    (
        "programs-a-mapping",
        "programs:\n",
        "programs: {mph: 2026-12-01}\nold_programs:\n",
        [
            "roster.yaml:8:11: programs: expected a list, like [{id: ..., deadline: ...}], "
            "not a mapping",
            "roster.yaml:9:1: unknown key 'old_programs' (did you mean 'programs'?)",
            "roster.yaml:23:19: recommenders[0].letters[0].program: no program has the id 'mph'",
            "roster.yaml:24:19: recommenders[0].letters[1].program: no program has the id "
            "'im-residency'",
        ],
    ),
    (
        "yaml-syntax",
        "  name: Sarah Chen",
        "  name: [Sarah Chen",
        ["roster.yaml:2:9: this [ is never closed"],
    ),
    (
        "tab-indent",
        "  name: Sarah Chen",
        "\tname: Sarah Chen",
        [
            "roster.yaml:2:1: found character that cannot start any token "
            "(while scanning for the next token)"
        ],
    ),
    (
        "alias",
        "    name: Internal Medicine residency",
        "    name: *mph",
        ["roster.yaml:13:11: aliases (*mph) are not supported; write the value out in full"],
    ),
    (
        "anchor-and-alias",
        "    name: MPH in Epidemiology",
        "    name: &n MPH in Epidemiology\n    portal: *n",
        ["roster.yaml:11:13: aliases (*n) are not supported; write the value out in full"],
    ),
    (
        "merge-key",
        "  - id: mph\n",
        "  - <<: {id: mph}\n    id: mph\n",
        ["roster.yaml:9:5: programs[0]: merge keys (<<) are not supported; write the keys out"],
    ),
    (
        "explicit-tag",
        "    name: MPH in Epidemiology",
        "    name: !!binary TVBI",
        ["roster.yaml:10:11: explicit tags (tag:yaml.org,2002:binary) are not supported"],
    ),
    (
        "two-documents",
        "recommenders:",
        "---\nrecommenders:",
        ["roster.yaml:15:1: a second document (---); keep everything in one"],
    ),
    (
        "programs-without-id",
        '      - {program: mph}\n      - {program: im-residency, letter_id: "LoR-1"}',
        "      - {programs: [mph, im-residency]}",
        [
            "roster.yaml:22:20: recommenders[0].letters[0].programs: a letter for several "
            "programs needs an id (like id: eras), unique among this recommender's letters"
        ],
    ),
    (
        "program-and-programs",
        "      - {program: mph}",
        "      - {program: mph, programs: [mph], id: x}",
        [
            "roster.yaml:22:9: recommenders[0].letters[0]: give either program (one program) "
            "or programs (several, with an id), not both"
        ],
    ),
    (
        "program-in-two-letters",
        "      - {program: mph}",
        "      - {id: eras, programs: [mph, im-residency]}",
        [
            "roster.yaml:23:19: recommenders[0].letters[1].program: a second letter for "
            "'im-residency' (the first is letters[0])"
        ],
    ),
    (
        "program-twice-in-a-letter",
        "      - {program: mph}",
        "      - {id: eras, programs: [mph, mph]}",
        [
            "roster.yaml:22:36: recommenders[0].letters[0].programs[1]: a second letter for "
            "'mph' (the first is letters[0])"
        ],
    ),
    (
        "duplicate-letter-id",
        '      - {program: mph}\n      - {program: im-residency, letter_id: "LoR-1"}',
        "      - {id: x, programs: [mph]}\n      - {id: x, programs: [im-residency]}",
        [
            "roster.yaml:23:14: recommenders[0].letters[1].id: duplicate letter id 'x' "
            "(also letters[0])"
        ],
    ),
    (
        "letter-id-is-a-program-key",
        '      - {program: mph}\n      - {program: im-residency, letter_id: "LoR-1"}',
        "      - {id: im-residency, programs: [mph]}\n      - {program: im-residency}",
        [
            "roster.yaml:23:19: recommenders[0].letters[1].program: 'im-residency' is also "
            "the id of letters[0]"
        ],
    ),
    (
        "bad-due",
        "      - {program: mph}",
        "      - {id: x, programs: [mph], due: 15 Sep}",
        [
            "roster.yaml:22:39: recommenders[0].letters[0].due: expected a date like 2026-09-24 "
            "or a timestamp like 2026-08-01T17:00:00-04:00, not '15 Sep'"
        ],
    ),
    (
        "unknown-holidays",
        "  reminders: [14d, 7d]",
        "  reminders: [14d, 7d]\n  holidays: XX",
        [
            "roster.yaml:7:13: defaults.holidays: 'XX' is not a country the holidays calendar "
            "knows (like US, DE-BY, auto, none)"
        ],
    ),
    (
        "unknown-subdivision",
        "    status: agreed",
        "    status: agreed\n    holidays: US-QQ",
        [
            "roster.yaml:20:15: recommenders[0].holidays: 'QQ' is not a subdivision of US the "
            "holidays calendar knows"
        ],
    ),
    (
        "defaults-unavailable-backwards",
        "  reminders: [14d, 7d]",
        "  reminders: [14d, 7d]\n  unavailable:\n    - {from: 2027-01-01, to: 2026-12-24}",
        ["roster.yaml:8:30: defaults.unavailable[0].to: 2026-12-24 is before 'from' (2027-01-01)"],
    ),
    (
        "control-character-in-file",
        "    name: Dr. Emily Johnson",
        "    name: Dr. Émily\x07 Johnson",
        ["roster.yaml:17:20: character U+0007 is not allowed (control characters are not allowed)"],
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [c[1:] for c in ROSTER_CASES],
    ids=[c[0] for c in ROSTER_CASES],
)
def test_roster_mistake(here: Path, old: str, new: str, expected: list[str]) -> None:
    assert roster_problems(here, edit(ROSTER, old, new)) == expected


def test_the_base_roster_is_valid(here: Path) -> None:
    (here / "roster.yaml").write_text(ROSTER, encoding="utf-8")
    roster = load_roster(Path("roster.yaml"))
    assert [p.id for p in roster.programs] == ["mph", "im-residency"]
    assert roster.recommenders[0].letters[1].letter_id == "LoR-1"


def test_letters_for_several_programs(here: Path) -> None:
    text = edit(
        ROSTER,
        '      - {program: mph}\n      - {program: im-residency, letter_id: "LoR-1"}',
        "      - {id: eras, programs: [im-residency, mph], letter_id: LoR-9}\n",
    )
    (here / "roster.yaml").write_text(text, encoding="utf-8")
    [letter] = load_roster(Path("roster.yaml")).recommenders[0].letters
    assert (letter.key, letter.programs, letter.name) == ("eras", ("im-residency", "mph"), "eras")
    # The earliest deadline of its programs, shown as that program states it.
    assert (letter.deadline_date, letter.deadline_is_date) == (date(2026, 12, 1), True)
    text = text.replace("letter_id: LoR-9}", "name: ERAS, due: 2026-11-15}")
    (here / "roster.yaml").write_text(text, encoding="utf-8")
    [letter] = load_roster(Path("roster.yaml")).recommenders[0].letters
    assert letter.name == "ERAS"
    # A date-only due ends that day in the applicant's zone.
    assert letter.deadline == datetime(2026, 11, 16, 4, 59, 59, tzinfo=UTC)
    assert letter.deadline_date == date(2026, 11, 15)


def test_holidays_and_blackouts_for_everyone(here: Path) -> None:
    text = edit(
        ROSTER,
        "  reminders: [14d, 7d]",
        "  reminders: [14d, 7d]\n  unavailable:\n    - {from: 2026-12-24, to: 2027-01-01, "
        "note: winter break}",
    )
    text += "  - {id: weber, name: Prof. Weber, email: w@uni.example, timezone: Europe/Berlin}\n"
    text += (
        "  - {id: ito, name: Dr. Ito, email: i@u.example, timezone: Asia/Tokyo, holidays: none}\n"
    )
    text += "  - {id: ca, name: Dr. Ca, email: c@u.example, holidays: us-ca}\n"
    (here / "roster.yaml").write_text(text, encoding="utf-8")
    roster = load_roster(Path("roster.yaml"))
    assert [r.holidays for r in roster.recommenders] == [
        ("US", None),
        ("DE", None),
        None,
        ("US", "CA"),
    ]
    assert [(u.start, u.end, u.note) for u in roster.unavailable] == [
        (date(2026, 12, 24), date(2027, 1, 1), "winter break")
    ]


def test_material_file_must_exist(here: Path) -> None:
    text = edit(
        ROSTER,
        "  timezone: America/New_York",
        "  timezone: America/New_York\n  materials:\n"
        "    - {label: CV, path: cv.pdf}\n    - {label: PS, path: ps.pdf}",
    )
    (here / "ps.pdf").write_bytes(b"%PDF-1.4\n")
    assert roster_problems(here, text) == [
        f"roster.yaml:6:25: applicant.materials[0].path: no such file: {here / 'cv.pdf'}"
    ]
    os.mkfifo(here / "cv.pdf")  # a pipe would block the packet, and is not "missing"
    assert roster_problems(here, text) == [
        f"roster.yaml:6:25: applicant.materials[0].path: not a regular file: {here / 'cv.pdf'}"
    ]
    (here / "cv.pdf").unlink()
    (here / "cv.pdf").write_bytes(b"%PDF-1.4\n")
    roster = load_roster(Path("roster.yaml"))
    assert [m.path for m in roster.applicant.materials] == [here / "cv.pdf", here / "ps.pdf"]


def test_empty_roster(here: Path) -> None:
    assert roster_problems(here, "# nothing yet\n") == [
        "roster.yaml: the roster is empty; start from 'lormail init'"
    ]


def test_missing_roster_file(here: Path) -> None:
    with pytest.raises(LormailError) as caught:
        load_roster(Path("nope.yaml"))
    assert [str(p) for p in caught.value.problems] == [
        "nope.yaml: no such file; check 'roster' in config.yaml"
    ]


def test_not_utf8(here: Path) -> None:
    (here / "roster.yaml").write_bytes(ROSTER.replace("Sarah", "S\xe4rah").encode("latin-1"))
    with pytest.raises(LormailError) as caught:
        load_roster(Path("roster.yaml"))
    assert [str(p) for p in caught.value.problems] == [
        "roster.yaml:2:10: not UTF-8 text (byte 0xe4); save the file as UTF-8"
    ]


def test_many_problems_come_together_in_file_order(here: Path) -> None:
    text = edit(ROSTER, "email: ejohnson@hospital.example.org", "email: ejohnson@")
    text = edit(text, "status: agreed", "status: agred")
    text = edit(text, "timezone: America/New_York", "timezone: Mars/Olympus")
    text = edit(text, "deadline: 2026-12-01", "deadline: 2026-13-01")
    problems = roster_problems(here, text)
    assert [p.split(": ")[0] for p in problems] == [
        "roster.yaml:4:13",
        "roster.yaml:11:15",
        "roster.yaml:18:12",
        "roster.yaml:19:13",
    ]


def test_file_name_outside_the_working_folder(tmp_path: Path) -> None:
    path = tmp_path / "roster.yaml"
    path.write_text("applicant: {name: S, email: nope}\n", encoding="utf-8")
    with pytest.raises(LormailError) as caught:
        load_roster(path)
    assert str(caught.value) == f"{path}:1:29: applicant.email: 'nope' is not an e-mail address"


def test_file_name_below_the_working_folder(here: Path) -> None:
    (here / "sub").mkdir()
    (here / "sub" / "roster.yaml").write_text("applicant: {name: S, email: nope}\n", "utf-8")
    with pytest.raises(LormailError) as caught:
        load_roster(here / "sub" / "roster.yaml")
    assert (
        str(caught.value)
        == "sub/roster.yaml:1:29: applicant.email: 'nope' is not an e-mail address"
    )


# --- what a valid roster means ---------------------------------------------------


def test_example_roster_loads_and_is_frozen() -> None:
    roster = load_roster(ROOT / "roster.example.yaml")
    assert len(roster.programs) == 4 and len(roster.recommenders) == 6
    with pytest.raises(dataclasses.FrozenInstanceError):
        roster.programs[0].id = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        roster.recommenders[0].policy.reminders = ()  # type: ignore[misc]
    okafor = roster.recommenders_by_id["okafor"]
    assert okafor.policy.reminders == (14, 5)
    assert okafor.policy.min_gap == roster.defaults.min_gap
    assert roster.recommenders_by_id["johnson"].policy is roster.defaults
    assert roster.recommenders_by_id["nguyen"].salutation == "Professor Nguyen"


def test_deadlines(here: Path) -> None:
    text = edit(
        ROSTER,
        "    deadline: 2026-12-01",
        "    deadline: 2026-12-01\n    timezone: Europe/London",
    )
    text += "programs_extra: null\n" if False else ""
    roster = parse_roster(text, Path("roster.yaml"))
    mph, im = roster.programs
    assert mph.deadline_is_date and mph.timezone == ZoneInfo("Europe/London")
    assert mph.deadline == datetime(2026, 12, 1, 23, 59, 59, tzinfo=ZoneInfo("Europe/London"))
    assert not im.deadline_is_date and im.timezone == ZoneInfo("America/New_York")
    assert im.deadline == datetime(2027, 1, 15, 22, 0, tzinfo=UTC)
    naive = parse_roster(
        edit(ROSTER, '"2027-01-15T17:00:00-05:00"', "2027-07-15 17:00"), Path("roster.yaml")
    )
    assert naive.programs[1].deadline == datetime(2027, 7, 15, 21, 0, tzinfo=UTC)


def test_defaults_and_overrides(here: Path) -> None:
    text = edit(
        ROSTER,
        "    status: agreed",
        "    status: agreed\n    reminders: [P1W, 3w, 2d]\n    send_days: [Mon, wed]\n"
        "    check_in_every: 0\n    timezone: Asia/Kolkata",
    )
    roster = parse_roster(text, Path("roster.yaml"))
    r = roster.recommenders[0]
    assert r.policy.reminders == (21, 7, 2)
    assert r.policy.send_days == frozenset({0, 2})
    assert r.policy.check_in_every == 0
    assert r.policy.window_start == time(9) and r.policy.window_end == time(17)
    assert r.timezone == ZoneInfo("Asia/Kolkata")
    assert r.salutation == "Dr. Emily Johnson"
    assert roster.defaults.ask_lead == 42 and roster.defaults.min_gap == timedelta(days=5)


def test_unquoted_yaml_booleans_and_numbers_where_they_belong(here: Path) -> None:
    text = edit(
        ROSTER,
        "    status: agreed",
        "    status: agreed\n    waived: yes\n    ask_by_email: off\n    title: 2026",
    )
    r = parse_roster(text, Path("roster.yaml")).recommenders[0]
    assert r.waived is True and r.ask_by_email is False and r.title == "2026"


def test_empty_sections_are_valid(here: Path) -> None:
    roster = parse_roster(
        "applicant: {name: S, email: s@example.org}\nprograms: []\nrecommenders:\n",
        Path("roster.yaml"),
    )
    assert roster.programs == () and roster.recommenders == ()


def test_machine_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    assert machine_zone() == ZoneInfo("Asia/Kolkata")
    monkeypatch.setenv("TZ", ":/usr/share/zoneinfo/Europe/London")
    assert machine_zone() == ZoneInfo("Europe/London")
    roster = parse_roster("applicant: {name: S, email: s@example.org}\n", Path("r.yaml"))
    assert roster.applicant.timezone == ZoneInfo("Europe/London")


# --- warnings --------------------------------------------------------------------


def test_warnings(here: Path) -> None:
    text = edit(ROSTER, "asked_on: 2026-10-26", "asked_on: 2026-12-05")
    text = edit(text, "{program: mph}", "{program: mph, submitted_on: 2026-12-30}")
    (here / "roster.yaml").write_text(text, encoding="utf-8")
    now = datetime(2026, 12, 10, 12, tzinfo=UTC)
    _, warnings = load_roster_checked(Path("roster.yaml"), now)
    assert [str(w) for w in warnings] == [
        "roster.yaml:20:15: recommenders[0].asked_on: 2026-12-05 is after the deadline of "
        "mph (2026-12-01)",
        "roster.yaml:22:38: recommenders[0].letters[0].submitted_on: 2026-12-30 is in the future",
    ]
    _, later = load_roster_checked(Path("roster.yaml"), datetime(2027, 1, 20, tzinfo=UTC))
    assert [str(w) for w in later] == [
        "roster.yaml:14:15: programs[1].deadline: the deadline 2027-01-15 has passed and "
        "1 letter is not in (johnson)",
        "roster.yaml:20:15: recommenders[0].asked_on: 2026-12-05 is after the deadline of "
        "mph (2026-12-01)",
    ]


def test_ask_on_after_the_ask_by_date_is_a_warning(here: Path) -> None:
    text = edit(
        ROSTER,
        "status: agreed\n    asked_on: 2026-10-26",
        "status: planned\n    ask_by_email: true\n    ask_on: 2026-10-21",
    )
    (here / "roster.yaml").write_text(text, encoding="utf-8")
    now = datetime(2026, 10, 1, tzinfo=UTC)
    assert [str(w) for w in load_roster_checked(Path("roster.yaml"), now)[1]] == [
        "roster.yaml:21:13: recommenders[0].ask_on: 2026-10-21 is after the ask-by date "
        "2026-10-20 (42 days before the first deadline)"
    ]
    (here / "roster.yaml").write_text(edit(text, "2026-10-21", "2026-10-20"), encoding="utf-8")
    assert load_roster_checked(Path("roster.yaml"), now)[1] == []


def test_warnings_for_a_roster_built_elsewhere(here: Path) -> None:
    roster = parse_roster(ROSTER, Path("roster.yaml"))
    copy = dataclasses.replace(roster)
    assert [str(w) for w in roster_warnings(copy, datetime(2027, 1, 20, tzinfo=UTC))] == [
        "roster.yaml: programs[0].deadline: the deadline 2026-12-01 has passed and "
        "1 letter is not in (johnson)",
        "roster.yaml: programs[1].deadline: the deadline 2027-01-15 has passed and "
        "1 letter is not in (johnson)",
    ]


# --- config ----------------------------------------------------------------------

CONFIG_CASES = [
    (
        "password",
        "  auth: password",
        "  auth: password\n  password: hunter2",
        [
            "config.yaml:10:3: smtp.password: never put a password in the config; run "
            "'lormail credentials set' to keep it in the OS keyring"
        ],
    ),
    (
        "password-anywhere",
        "dry_run: true",
        "dry_run: true\nextra:\n  - {Password: x}",
        [
            "config.yaml:3:1: unknown key 'extra'",
            "config.yaml:4:6: extra[0].Password: never put a password in the config; run "
            "'lormail credentials set' to keep it in the OS keyring",
        ],
    ),
    (
        "clear-text-to-a-server",
        "security: ssl",
        "security: none",
        [
            "config.yaml:7:13: smtp.security: none sends in the clear, so it is allowed only to "
            "a loopback host (localhost, 127.0.0.1, ::1), not 'smtp.example.org'"
        ],
    ),
    (
        "smtp-without-section",
        CONFIG[CONFIG.index("smtp:") : CONFIG.index("calendar:")],
        "",
        ["config.yaml:3:12: transport: smtp needs an smtp section with host and from"],
    ),
    (
        "smtp-without-from",
        '  from: "Sarah Chen <sarah@example.edu>"\n',
        "",
        ["config.yaml:5:3: smtp: missing key 'from'"],
    ),
    (
        "xoauth2-without-command",
        "auth: password",
        "auth: xoauth2",
        [
            "config.yaml:9:9: smtp.auth: xoauth2 needs token_command, a command that prints an "
            "access token"
        ],
    ),
    (
        "auth-without-username",
        "  username: sarah@example.edu\n",
        "",
        ["config.yaml:5:3: smtp: missing key 'username', which auth: password needs"],
    ),
    (
        "port-out-of-range",
        "port: 465",
        "port: 70000",
        ["config.yaml:6:9: smtp.port: must be between 1 and 65535, not 70000"],
    ),
    (
        "port-as-text",
        "port: 465",
        'port: "465"',
        ["config.yaml:6:9: smtp.port: expected a whole number, not '465'"],
    ),
    (
        "max-per-hour-zero",
        "max_per_hour: 30",
        "max_per_hour: 0",
        ["config.yaml:12:17: smtp.max_per_hour: must be at least 1, not 0"],
    ),
    (
        "from-invalid",
        '"Sarah Chen <sarah@example.edu>"',
        '"Sarah Chen <sarah@>"',
        [
            "config.yaml:10:9: smtp.from: 'Sarah Chen <sarah@>' is not an address like "
            '"Sarah Chen <sarah@example.edu>"'
        ],
    ),
    (
        "from-two-addresses",
        '"Sarah Chen <sarah@example.edu>"',
        '"sarah@example.edu, boss@example.edu"',
        [
            "config.yaml:10:9: smtp.from: 'sarah@example.edu, boss@example.edu' is not an address "
            'like "Sarah Chen <sarah@example.edu>"'
        ],
    ),
    (
        "from-header-injection",
        '"Sarah Chen <sarah@example.edu>"',
        '"Sarah Chen <sarah@example.edu>\\nBcc: all@example.org"',
        [
            "config.yaml:10:9: smtp.from: holds a line break, which a mail header cannot carry; "
            "keep it on one line"
        ],
    ),
    (
        "timeout-without-unit",
        "timeout: 30s",
        "timeout: 30",
        [
            "config.yaml:11:12: smtp.timeout: '30' is not a duration; write one like 14d, 2w, 6h "
            "or ISO 8601 P14D"
        ],
    ),
    (
        "transport-typo",
        "transport: smtp",
        "transport: smpt",
        ["config.yaml:3:12: transport: 'smpt' is not one of maildir | smtp (did you mean 'smtp'?)"],
    ),
    (
        "unknown-key-did-you-mean",
        "dry_run: true",
        "dryrun: true",
        ["config.yaml:2:1: unknown key 'dryrun' (did you mean 'dry_run'?)"],
    ),
    (
        "dry-run-not-boolean",
        "dry_run: true",
        "dry_run: maybe",
        ["config.yaml:2:10: dry_run: expected true or false, not 'maybe'"],
    ),
    (
        "feed-bind",
        "bind: 127.0.0.1",
        "bind: my-laptop",
        ["config.yaml:16:31: calendar.feed.bind: 'my-laptop' is not an IP address, like 127.0.0.1"],
    ),
    (
        "alarm-words",
        "alarms: [7d, 1d]",
        "alarms: [7d, soon]",
        [
            "config.yaml:15:16: calendar.alarms[1]: 'soon' is not a duration; write one like "
            "14d, 2w, 6h or ISO 8601 P14D"
        ],
    ),
    (
        "security-typo",
        "security: ssl",
        "security: tls",
        ["config.yaml:7:13: smtp.security: 'tls' is not one of ssl | starttls | none"],
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [c[1:] for c in CONFIG_CASES],
    ids=[c[0] for c in CONFIG_CASES],
)
def test_config_mistake(here: Path, old: str, new: str, expected: list[str]) -> None:
    assert config_problems(here, edit(CONFIG, old, new)) == expected


def test_missing_config_file(here: Path) -> None:
    with pytest.raises(LormailError) as caught:
        load_config(Path("config.yaml"))
    assert caught.value.exit_code == EXIT_USAGE
    assert str(caught.value) == "config.yaml: no such file; run 'lormail init' to write one"


def test_example_config_loads() -> None:
    config = load_config(ROOT / "config.example.yaml")
    assert config.roster == ROOT / "roster.example.yaml"
    assert config.maildir == ROOT / "outbox" and config.templates == ROOT / "templates"
    assert config.smtp.from_addr == "Sarah Chen <sarah.chen@example.edu>"
    assert config.smtp.timeout == timedelta(seconds=30)
    assert config.calendar.alarms == (timedelta(days=7), timedelta(days=1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.dry_run = False  # type: ignore[misc]


def test_config_paths_and_defaults(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(here / "home"))
    (here / "conf").mkdir()
    config = parse_config(
        "roster: ../rosters/r.yaml\nstate_dir: ~/state\ntransport: smtp\n"
        "smtp: {host: localhost, security: none, auth: none, from: me@example.org}\n",
        here / "conf" / "config.yaml",
    )
    assert config.roster == here / "rosters" / "r.yaml"
    assert config.state_dir == here / "home" / "state"
    assert config.maildir == here / "conf" / "outbox"
    assert config.smtp.port == 25 and config.smtp.security == "none"
    assert config.dry_run is True and config.calendar.file is None
    starttls = parse_config("smtp: {security: starttls}\n", here / "c.yaml")
    assert starttls.smtp.port == 587
    assert parse_config("", here / "c.yaml").roster == here / "roster.yaml"


# --- the command line ------------------------------------------------------------


def run_lormail(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LORMAIL_STATE_DIR": str(folder / "state")}
    return subprocess.run(
        [sys.executable, "-m", "lormail", "--config", "config.yaml", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_reports_roster_problems_with_exit_2(here: Path) -> None:
    (here / "config.yaml").write_text("roster: roster.yaml\n", encoding="utf-8")
    text = edit(ROSTER, "email: ejohnson@hospital.example.org", "email: ejohnson@")
    (here / "roster.yaml").write_text(edit(text, "status: agreed", "status: agred"), "utf-8")
    result = run_lormail(here, "plan", "--json")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "roster.yaml:18:12: recommenders[0].email: 'ejohnson@' is not an e-mail address",
        f"roster.yaml:19:13: recommenders[0].status: 'agred' is not one of {STATUSES} "
        "(did you mean 'agreed'?)",
    ]
    assert result.stdout == ""


def test_cli_reports_config_problems_with_exit_2(here: Path) -> None:
    (here / "config.yaml").write_text("roster: roster.yaml\nsmtp:\n  password: x\n", "utf-8")
    result = run_lormail(here, "plan", "--json")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "config.yaml:3:3: smtp.password: never put a password in the config; run "
        "'lormail credentials set' to keep it in the OS keyring"
    ]


def test_cli_missing_config(here: Path) -> None:
    result = run_lormail(here, "plan", "--json")
    assert result.returncode == 2
    assert result.stderr == "config.yaml: no such file; run 'lormail init' to write one\n"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # The quote runs on to the next quote, 13 lines down, where YAML gives up.
        (
            "    name: Dr. Emily Johnson",
            '    name: "Dr. Emily Johnson',
            "17:11: this quoted string is never closed",
        ),
        (
            "    name: MPH in Epidemiology",
            "    name: 'MPH in Epidemiology",
            "10:11: this quoted string is never closed",
        ),
        (
            '      - {program: im-residency, letter_id: "LoR-1"}',
            '      - {program: im-residency, letter_id: "LoR-1}',
            "23:44: this quoted string is never closed",
        ),
        ("  reminders: [14d, 7d]", "  reminders: [14d, 7d", "6:14: this [ is never closed"),
        ("      - {program: mph}", "      - {program: mph", "22:9: this { is never closed"),
        ("    status: agreed", "    status agreed", "19:5: this key has no ':' after it"),
        (
            "    email: ejohnson@hospital.example.org",
            "   email: ejohnson@hospital.example.org",
            "18:4: did not find expected '-' indicator (in the list that begins at line 16)",
        ),
    ],
)
def test_an_unclosed_quote_bracket_or_block_is_reported_where_it_began(
    here: Path, old: str, new: str, expected: str
) -> None:
    assert roster_problems(here, edit(ROSTER, old, new)) == [f"roster.yaml:{expected}"]


def test_a_quoted_string_over_several_lines_is_still_fine(here: Path) -> None:
    text = edit(ROSTER, "    name: Dr. Emily Johnson", '    name: "Dr. Emily\n      Note: Johnson"')
    (here / "roster.yaml").write_text(text, "utf-8")
    assert load_roster(Path("roster.yaml")).recommenders[0].name == "Dr. Emily Note: Johnson"
    broken = edit(text, "    email: ejohnson@", "   email: ejohnson@")
    assert roster_problems(here, broken) == [
        "roster.yaml:19:4: did not find expected '-' indicator (in the list that begins at line 16)"
    ]


def check_in(folder: Path, config: str, roster: str = ROSTER) -> tuple[int, list[str]]:
    (folder / "config.yaml").write_text(config, "utf-8")
    (folder / "roster.yaml").write_text(roster, "utf-8")
    result = run_lormail(folder, "check")
    return result.returncode, result.stderr.splitlines()


EXAMPLE_REFUSED = "is an example address; put your own before sending for real"


def test_check_refuses_example_addresses_only_when_sending_for_real(here: Path) -> None:
    assert check_in(here, CONFIG) == (0, [])  # a dry run: examples are fine
    live = edit(CONFIG, "dry_run: true", "dry_run: false")
    assert check_in(here, live) == (
        2,
        [
            f"config.yaml:10:9: smtp.from: sarah@example.edu {EXAMPLE_REFUSED}",
            f"roster.yaml:3:10: applicant.email: sarah@example.edu {EXAMPLE_REFUSED}",
        ],
    )
    own = edit(live, "<sarah@example.edu>", "<sarah.chen@uni.edu>")
    assert check_in(here, own, edit(ROSTER, "sarah@example.edu", "sarah.chen@uni.edu")) == (0, [])
    assert check_in(here, own, edit(ROSTER, "sarah@example.edu", "sc@hospital.example.org"))[1] == [
        f"roster.yaml:3:10: applicant.email: sc@hospital.example.org {EXAMPLE_REFUSED}"
    ]


def test_check_warns_when_the_sender_is_not_the_applicant(here: Path) -> None:
    config = edit(CONFIG, "<sarah@example.edu>", "<sarah.chen@uni.edu>")
    assert check_in(here, config) == (
        0,
        [
            "config.yaml:10:9: smtp.from: sends as sarah.chen@uni.edu, but the roster's "
            "applicant.email is sarah@example.edu; make them the same address (warning)"
        ],
    )


def test_check_warns_that_a_live_maildir_reaches_no_one(here: Path) -> None:
    config = edit(edit(CONFIG, "dry_run: true", "dry_run: false"), "transport: smtp", "")
    assert check_in(here, config) == (
        0,
        [
            "config.yaml:2:10: dry_run: maildir only fills the folder outbox: nothing reaches "
            "anyone; set transport: smtp to send (warning)"
        ],
    )
    config = edit(CONFIG, "dry_run: true", "dry_run: false\nmaildir: out")
    config = edit(config, "transport: smtp", "transport: maildir")
    assert check_in(here, config) == (
        0,
        [
            "config.yaml:4:12: transport: maildir only fills the folder out: nothing reaches "
            "anyone; set transport: smtp to send (warning)"
        ],
    )


def test_special_files_are_refused_before_reading(here: Path) -> None:
    os.mkfifo(here / "roster.yaml")
    (here / "config.yaml").write_text("roster: roster.yaml\n", "utf-8")
    result = run_lormail(here, "check")  # a FIFO with no writer: this would wait for ever
    assert (result.returncode, result.stderr) == (
        2,
        "roster.yaml: is a named pipe (FIFO), not a regular file\n",
    )
    (here / "zero.yaml").symlink_to("/dev/zero")
    (here / "config.yaml").write_text("roster: zero.yaml\n", "utf-8")
    result = run_lormail(here, "check")  # /dev/zero: this would read until memory ran out
    assert (result.returncode, result.stderr) == (2, "zero.yaml: is a device, not a regular file\n")
    with pytest.raises(LormailError) as caught:
        load_config(Path("/dev/zero"))
    assert str(caught.value) == "/dev/zero: is a device, not a regular file"


def test_a_file_over_5_mb_is_refused(here: Path) -> None:
    (here / "roster.yaml").write_text(ROSTER + "#" * (5 * 2**20), "utf-8")
    assert roster_problems(here, (here / "roster.yaml").read_text("utf-8")) == [
        "roster.yaml: is 5.0 MB; lormail reads files up to 5 MB"
    ]
    (here / "roster.yaml").write_text(ROSTER + "#" * (5 * 2**20 - len(ROSTER) - 1), "utf-8")
    assert load_roster(Path("roster.yaml")).applicant.name == "Sarah Chen"


def test_a_template_that_is_a_fifo_is_refused(here: Path) -> None:
    (here / "roster.yaml").write_text(ROSTER, "utf-8")
    (here / "config.yaml").write_text("roster: roster.yaml\ntemplates: mine\n", "utf-8")
    (here / "mine").mkdir()
    os.mkfifo(here / "mine" / "request.txt.j2")
    result = run_lormail(here, "check")
    assert (result.returncode, result.stderr) == (
        2,
        "mine/request.txt.j2: is a named pipe (FIFO), not a regular file\n",
    )
    with pytest.raises(LormailError) as caught:  # the daemon's way in
        accept(read_sources(Path("config.yaml")))
    assert str(caught.value) == "mine/request.txt.j2: is a named pipe (FIFO), not a regular file"
    (here / "mine" / "request.txt.j2").unlink()
    (here / "mine" / "request.txt.j2").write_text("x" * (5 * 2**20 + 1), "utf-8")
    assert run_lormail(here, "check").stderr == (
        "mine/request.txt.j2: is 5.0 MB; lormail reads files up to 5 MB\n"
    )


def test_a_file_that_is_not_yaml_is_never_echoed(here: Path) -> None:
    secret = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAABlwAAAAdzc2gtcn"
    key = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{secret}\n-----END OPENSSH PRIVATE KEY-----\n"
    passwd = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    for text in (key, passwd):
        assert roster_problems(here, text) == [
            "roster.yaml:1:1: expected keys and values (key: value), not text; "
            "is this the right file?"
        ]
        assert config_problems(here, text) == [
            "config.yaml:1:1: expected keys and values (key: value), not text; "
            "is this the right file?"
        ]


# --- the generator ---------------------------------------------------------------


def test_generated_roster_loads(here: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import gen_roster  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert gen_roster.main(["--recommenders", "120", "--letters", "5", "--seed", "7",
                            "-o", "out/roster.yaml"]) == 0  # fmt: skip
    first = (here / "out" / "roster.yaml").read_text("utf-8")
    config = load_config(here / "out" / "config.yaml")
    assert config.transport == "maildir" and not config.dry_run
    assert config.state_dir == here / "out" / "state"
    roster = load_roster(config.roster)
    assert len(roster.recommenders) == 120 and len(roster.programs) == 60
    assert sum(len(r.letters) for r in roster.recommenders) == 600
    # An ERAS or AMCAS upload serves every program of the recommender that uses it.
    several = [lt for r in roster.recommenders for lt in r.letters if len(lt.programs) > 1]
    assert several and {lt.key for lt in several} == {"eras", "amcas"}
    assert {r.status for r in roster.recommenders} == {"planned", "asked", "agreed", "declined"}
    assert len({r.timezone for r in roster.recommenders}) == 6
    assert any(r.unavailable for r in roster.recommenders)
    assert any(r.policy is not roster.defaults for r in roster.recommenders)
    assert any(lt.submitted_on for r in roster.recommenders for lt in r.letters)
    today = date(2026, 11, 22)
    assert max(p.deadline_date for p in roster.programs) > today + timedelta(days=90)
    gen_roster.main(["--recommenders", "120", "--letters", "5", "--seed", "7",
                     "-o", "out/roster.yaml"])  # fmt: skip
    assert (here / "out" / "roster.yaml").read_text("utf-8") == first


# --- robustness: no traceback, and the two YAML readers agree -------------------

EXAMPLE = (ROOT / "roster.example.yaml").read_text(encoding="utf-8")
EXAMPLE_CONFIG = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
# Characters that matter to YAML, and a few that matter to the loaders.
TOUCHY = [*" \t\n\r-:#[]{},|>&*!%@?'\"`~\\", "\x07", "\u2028", "é", "9", "a", "  ", "- "]


@st.composite
def mutated(draw: st.DrawFn, base: str) -> str:
    lines = base.split("\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        op = draw(st.sampled_from(["insert", "delete", "indent", "dedent", "dup", "drop"]))
        at = draw(st.integers(0, len(line)))
        if op == "insert":
            lines[i] = line[:at] + draw(st.sampled_from(TOUCHY)) + line[at:]
        elif op == "delete" and line:
            at = min(at, len(line) - 1)
            lines[i] = line[:at] + line[at + 1 :]
        elif op == "indent":
            lines[i] = " " * draw(st.integers(1, 3)) + line
        elif op == "dedent":
            lines[i] = line[min(len(line) - len(line.lstrip(" ")), draw(st.integers(1, 3))) :]
        elif op == "dup":
            lines.insert(i, line)
        elif op == "drop" and len(lines) > 1:
            del lines[i]
    return "\n".join(lines)


def tree(node: yamlsrc.Node | None) -> object:
    if node is None:
        return None
    if isinstance(node, yamlsrc.Scalar):
        return ("S", node.line, node.col, node.text, node.plain)
    if isinstance(node, yamlsrc.MapNode):
        return ("M", node.line, node.col, [(tree(k), tree(v)) for k, v in node.items])
    assert isinstance(node, yamlsrc.SeqNode)
    return ("Q", node.line, node.col, [tree(x) for x in node.items])


def loads_or_refuses(text: str) -> None:
    try:
        parse_roster(text, Path("roster.yaml"))
    except LormailError as err:
        assert err.problems and all(str(p) and "\n" not in str(p) for p in err.problems)


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow
@SETTINGS
@given(mutated(EXAMPLE))
def test_mutated_roster_never_escapes(text: str) -> None:
    loads_or_refuses(text)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_random_text_never_escapes(text: str) -> None:
    loads_or_refuses(text)
    with contextlib.suppress(LormailError):
        parse_config(text, Path("config.yaml"))


@settings(max_examples=100, deadline=None)
@given(st.binary())
def test_random_bytes_never_escape(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("bytes") / "roster.yaml"
    path.write_bytes(data)
    with contextlib.suppress(LormailError):
        load_roster(path)
