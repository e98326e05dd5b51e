"""``lormail status``: rows per recommender and letter, one recommender, the programs, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NOW = "2026-11-22T12:00:00Z"

# The example roster's shape, fixed here (public holidays off) so that the
# texts below change only when status does.
ROSTER = """\
applicant: {name: Sarah Chen, email: sarah.chen@example.edu, timezone: America/New_York}
defaults: {holidays: none}
programs:
  - {id: mph, name: MPH in Epidemiology (SOPHAS), portal: SOPHAS,
     deadline: "2026-12-01T23:59:00-05:00"}
  - {id: stanford-phd, name: Stanford PhD in Epidemiology, portal: Stanford Graduate Admissions,
     deadline: 2026-12-15, timezone: America/Los_Angeles, outcome: interview,
     outcome_on: 2026-11-20}
  - {id: im-residency, name: Internal Medicine residency (ERAS), portal: ERAS LoR Portal,
     deadline: 2027-01-15}
  - {id: ucl-msc, name: UCL MSc Global Health, portal: UCL referee portal, deadline: 2027-01-29,
     timezone: Europe/London}
recommenders:
  - id: johnson
    name: Dr. Emily Johnson
    salutation: Dr. Johnson
    email: ejohnson@hospital.example.org
    timezone: America/Chicago
    status: agreed
    asked_on: 2026-10-26
    agreed_on: 2026-10-28
    letters:
      - {program: mph}
      - {program: im-residency, letter_id: "LoR-12345"}
  - id: patel
    name: Dr. Anil Patel
    salutation: Dr. Patel
    email: anil.patel@aiims.example.in
    timezone: Asia/Kolkata
    status: planned
    ask_by_email: true
    ask_on: 2026-11-30
    letters: [{program: ucl-msc}, {program: im-residency}]
  - id: garcia
    name: Dr. Maria Garcia
    salutation: Dr. Garcia
    email: mgarcia@university.example.edu
    timezone: America/Los_Angeles
    status: agreed
    asked_on: 2026-09-14
    agreed_on: 2026-09-15
    letters:
      - {program: stanford-phd, submitted_on: 2026-11-19}
      - {program: mph, submitted_on: 2026-11-18}
  - id: okafor
    name: Dr. Chidi Okafor
    salutation: Dr. Okafor
    email: c.okafor@nhs.example.uk
    timezone: Europe/London
    status: asked
    asked_on: 2026-11-16
    reminders: [14d, 5d]
    letters: [{program: ucl-msc}]
  - id: nguyen
    name: Prof. Linh Nguyen
    salutation: Professor Nguyen
    email: lnguyen@college.example.edu
    timezone: America/New_York
    status: declined
    asked_on: 2026-11-09
    declined_on: 2026-11-19
    letters: [{program: im-residency}]
  - id: lee
    name: Dr. Grace Lee
    salutation: Dr. Lee
    email: glee@clinic.example.org
    status: planned
    letters: [{program: im-residency}]
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "roster.yaml").write_text(ROSTER)
    (tmp_path / "config.yaml").write_text("roster: roster.yaml\ntemplates: null\n")
    return tmp_path / "config.yaml"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def lormail(config: Path, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LORMAIL_STATE_DIR=str(state), NO_COLOR="1", COLUMNS="100")
    env.pop("LORMAIL_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "lormail", "--config", str(config), *args, "--now", NOW],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def test_one_recommender_with_their_letters_and_messages(config: Path, state: Path) -> None:
    res = lormail(config, state, "status", "johnson")
    assert res.returncode == 0, res.stderr
    # Columns as rich aligns them; each row's words exactly.
    assert [" ".join(line.split()) for line in lines(res.stdout)] == [
        "Letters as of Sun 22 Nov 2026",
        "",
        "letter due / when state",
        "─" * 92,
        "Dr. Emily Johnson (agreed) Mon 23 Nov 09:00 CST next: packet",
        "MPH in Epidemiology (SOPHAS) Tue 1 Dec 23:59 EST (9d) agreed",
        "Internal Medicine residency (ERAS) [LoR-12345] Fri 15 Jan 2027 (54d) agreed",
        "Mon 30 Nov 09:00 CST then: reminder",
        "Fri 1 Jan 2027 09:00 CST then: reminder",
        "Fri 8 Jan 2027 09:00 CST then: reminder",
        "",
        "2 letters: 2 to come.",
        "Daemon: not running. Start it with 'lormail run' or 'systemctl --user enable --now "
        "lormail'.",
    ]


def test_everyone_fits_100_columns_and_declined_or_submitted_letters_are_not_to_come(
    config: Path, state: Path
) -> None:
    res = lormail(config, state, "status")
    assert res.returncode == 0, res.stderr
    out = lines(res.stdout)
    assert max(len(line) for line in out) <= 100
    assert "9 letters: 6 to come, 2 submitted, 1 declined." in out
    assert any(line.startswith("  Prof. Linh Nguyen (declined)") for line in out)
    assert any("✓ 18 Nov" in line for line in out)


@pytest.mark.parametrize("command", ["status", "plan"])
def test_a_pipe_gets_no_padding(config: Path, state: Path, command: str) -> None:
    res = lormail(config, state, command)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) > 5
    padded = [line for line in res.stdout.splitlines() if line != line.rstrip()]
    assert padded == []


def test_an_unknown_recommender_is_one_line_with_a_suggestion(config: Path, state: Path) -> None:
    res = lormail(config, state, "status", "jonson")
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == "no recommender 'jonson' (did you mean 'johnson'?)\n"


def test_the_programs_view_shows_outcomes_and_who_is_to_come(config: Path, state: Path) -> None:
    res = lormail(config, state, "status", "--programs")
    assert res.returncode == 0, res.stderr
    out = lines(res.stdout)
    assert out[0] == "Programs as of Sun 22 Nov 2026"
    stanford = next(i for i, line in enumerate(out) if "Stanford PhD" in line)
    assert " ".join(out[stanford].split()) == (
        "Stanford PhD in Tue 15 Dec (23d) 1 of 1 in interview Fri 20 Nov"
    )
    ims = next(i for i, line in enumerate(out) if "Internal Medicine" in line)
    block = " ".join(" ".join(out[ims : ims + 3]).split())
    assert block == (
        "Internal Medicine Fri 15 Jan 2027 (54d) 0 of 4 in; to come: pending residency (ERAS) "
        "Dr. Johnson, Dr. ERAS LoR Portal Patel, Dr. Lee"
    )


def test_json_carries_letters_with_their_programs(config: Path, state: Path) -> None:
    res = lormail(config, state, "status", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    johnson = next(r for r in data["recommenders"] if r["id"] == "johnson")
    assert johnson["letters"][1] == {
        "key": "im-residency",
        "name": "Internal Medicine residency (ERAS)",
        "programs": ["im-residency"],
        "letter_id": "LoR-12345",
        "deadline": "2027-01-16T04:59:59Z",
        "state": "agreed",
        "submitted_on": None,
        "to_come": True,
    }
    im = next(p for p in data["programs"] if p["id"] == "im-residency")
    assert (im["missing"], im["submitted"]) == (3, 0)  # Nguyen declined: not to come
    assert {lt["recommender"]: lt["state"] for lt in im["letters"]}["nguyen"] == "declined"
    one = json.loads(lormail(config, state, "status", "okafor", "--json").stdout)
    assert [r["id"] for r in one["recommenders"]] == ["okafor"]


def test_plan_reads_at_100_columns(config: Path, state: Path) -> None:
    res = lormail(config, state, "plan")
    assert res.returncode == 0, res.stderr
    out = lines(res.stdout)
    assert max(len(line) for line in out) <= 100
    # One block per message: when and status, to whom, the subject, then key and reason.
    assert [" ".join(line.split()) for line in out[:9]] == [
        "Plan as of 2026-11-22T12:00:00Z",
        "",
        "when (their time) to subject, then key: why",
        "─" * 98,
        "Mon 23 Nov 09:00 EST Professor Nguyen Thank you for letting me know",
        "scheduled decline_thanks:nguyen: Professor Nguyen declined",
        "on Thu 19 Nov; thanks all the same; overdue since",
        "Fri 20 Nov, so at the first chance",
        "",
    ]


ERAS_ROSTER = """\
applicant: {name: Sarah Chen, email: sarah@example.edu, timezone: America/New_York}
programs:
  - {id: bwh, name: BWH Internal Medicine, deadline: 2026-12-20, portal: ERAS}
  - {id: mgh, name: MGH Internal Medicine, deadline: 2026-12-10, portal: ERAS}
  - {id: ucl, name: UCL MSc, deadline: 2026-11-20, timezone: Europe/London}
recommenders:
  - id: lee
    name: Dr. Grace Lee
    email: lee@example.org
    status: agreed
    agreed_on: 2026-10-01
    letters:
      - {id: eras, programs: [bwh, mgh], letter_id: LoR-1}
      - {program: ucl}
"""


def test_a_letter_for_several_programs_is_one_row_and_lists_them_for_one_recommender(
    tmp_path: Path, state: Path
) -> None:
    (tmp_path / "roster.yaml").write_text(ERAS_ROSTER)
    (tmp_path / "config.yaml").write_text("roster: roster.yaml\ntemplates: null\n")
    env = dict(os.environ, LORMAIL_STATE_DIR=str(state), NO_COLOR="1", COLUMNS="100")
    env.pop("LORMAIL_CONFIG", None)

    config = str(tmp_path / "config.yaml")

    def run(*args: str) -> str:
        res = subprocess.run(
            [sys.executable, "-m", "lormail", "--config", config, "status", *args, "--now", NOW],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        return res.stdout

    rows = [" ".join(line.split()) for line in run().splitlines()]
    assert "UCL MSc Fri 20 Nov (past) past deadline" in rows
    assert "ERAS [LoR-1] (2 programs) Thu 10 Dec (18d) agreed" in rows
    assert "2 letters: 1 to come, 1 past deadline." in rows
    one = [" ".join(line.split()) for line in run("lee").splitlines()]
    at = one.index("ERAS [LoR-1] Thu 10 Dec (18d) agreed")
    assert one[at + 1 : at + 3] == ["MGH Internal Medicine", "BWH Internal Medicine"]
    data = json.loads(run("--json"))
    eras = data["recommenders"][0]["letters"][1]
    assert (eras["key"], eras["programs"], eras["to_come"]) == ("eras", ["mgh", "bwh"], True)
    by_id = {p["id"]: p for p in data["programs"]}
    assert [lt["letter"] for lt in by_id["bwh"]["letters"]] == ["eras"]
    assert (by_id["bwh"]["missing"], by_id["ucl"]["missing"]) == (1, 0)
