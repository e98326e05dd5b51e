"""``lormail mark`` on the example roster: exactly the intended lines change, the
diff is printed, and every refusal says why in one line, with its exit code."""

from __future__ import annotations

import difflib
import gc
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from lormail.app.mark import prepare_mark, write_mark
from lormail.cli import main
from lormail.errors import LormailError
from lormail.load.roster import load_roster
from lormail.load.roundtrip import Mark, mark_roster
from lormail.load.samelines import LinesWouldChange, keep_untouched
from tests.conftest import ROOT

EXAMPLE = (ROOT / "roster.example.yaml").read_text()

Change = tuple[list[str], list[str]]  # (lines before, lines after) of one stretch


def changes(before: str, after: str) -> list[Change]:
    """Every stretch in which ``after`` differs from ``before``, line by line."""
    a, b = before.splitlines(), after.splitlines()
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return [(a[i1:i2], b[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "roster.yaml").write_text(EXAMPLE)
    os.chmod(tmp_path / "roster.yaml", 0o640)
    (tmp_path / "config.yaml").write_text("roster: roster.yaml\ndry_run: true\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LORMAIL_STATE_DIR", str(tmp_path / "state"))
    yield tmp_path
    gc.enable()  # main() turns the collector off for a one-shot command


def mark(*args: str) -> int:
    return main(["--config", "config.yaml", "mark", *args])


STATUS = "    status: {}"

CASES: list[tuple[list[str], list[Change]]] = [
    (
        ["patel", "asked", "--on", "2026-11-30"],
        [(["    status: planned"], ["    status: asked"]), ([], ["    asked_on: 2026-11-30"])],
    ),
    (
        ["okafor", "agreed", "--on", "2026-11-25"],
        [(["    status: asked"], ["    status: agreed"]), ([], ["    agreed_on: 2026-11-25"])],
    ),
    (
        ["lee", "declined", "--on", "2026-12-01"],
        [(["    status: planned"], ["    status: declined", "    declined_on: 2026-12-01"])],
    ),
    (["garcia", "planned"], [(["    status: agreed"], ["    status: planned"])]),
    (
        ["johnson", "submitted", "mph", "--on", "2026-11-28"],
        [(["      - {program: mph}"], ["      - {program: mph, submitted_on: 2026-11-28}"])],
    ),
    (
        ["johnson", "submitted", "--all", "--on", "2026-11-28"],
        [
            (
                [
                    "      - {program: mph}",
                    '      - {program: im-residency, letter_id: "LoR-12345"}',
                ],
                [
                    "      - {program: mph, submitted_on: 2026-11-28}",
                    '      - {program: im-residency, letter_id: "LoR-12345", '
                    "submitted_on: 2026-11-28}",
                ],
            )
        ],
    ),
    (
        ["okafor", "submitted", "--on", "2027-01-05"],
        [
            (
                ["      - {program: ucl-msc}"],
                ["      - {program: ucl-msc, submitted_on: 2027-01-05}"],
            )
        ],
    ),
    (
        ["mph", "interview", "--on", "2026-12-10"],
        [([], ["    outcome: interview", "    outcome_on: 2026-12-10"])],
    ),
    (
        ["stanford-phd", "accepted", "--on", "2027-02-01"],
        [
            (
                ["    outcome: interview", "    outcome_on: 2026-11-20"],
                ["    outcome: accepted", "    outcome_on: 2027-02-01"],
            )
        ],
    ),
]


@pytest.mark.parametrize(("args", "expected"), CASES, ids=[" ".join(c[0][:2]) for c in CASES])
def test_each_kind_of_mark_changes_exactly_the_intended_lines(
    folder: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: list[Change]
) -> None:
    assert mark(*args) == 0
    after = (folder / "roster.yaml").read_text()
    assert changes(EXAMPLE, after) == expected
    out = capsys.readouterr().out
    diff = "".join(
        difflib.unified_diff(
            EXAMPLE.splitlines(keepends=True),
            after.splitlines(keepends=True),
            "roster.yaml",
            "roster.yaml",
        )
    )
    assert out == diff + "roster.yaml: written\n"
    assert stat.S_IMODE((folder / "roster.yaml").stat().st_mode) == 0o640
    load_roster(folder / "roster.yaml")  # still valid for the loader check uses
    assert not [p for p in folder.iterdir() if p.name.startswith(".roster.yaml.")]


def test_the_marked_roster_reads_back_as_marked(folder: Path) -> None:
    assert mark("patel", "agreed", "--on", "2026-12-02") == 0
    assert mark("patel", "submitted", "ucl-msc", "--on", "2026-12-20") == 0
    assert mark("ucl-msc", "matched", "--on", "2027-03-19") == 0
    roster = load_roster(folder / "roster.yaml")
    patel = roster.recommenders_by_id["patel"]
    assert (patel.status, patel.agreed_on) == ("agreed", date(2026, 12, 2))
    assert [(lt.program, lt.submitted_on) for lt in patel.letters] == [
        ("ucl-msc", date(2026, 12, 20)),
        ("im-residency", None),
    ]
    program = roster.programs_by_id["ucl-msc"]
    assert (program.outcome, program.outcome_on) == ("matched", date(2027, 3, 19))


def test_a_date_already_set_is_kept(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mark("nguyen", "asked", "--on", "2026-12-01") == 0
    after = (folder / "roster.yaml").read_text()
    assert changes(EXAMPLE, after) == [(["    status: declined"], ["    status: asked"])]
    assert "note: nguyen: asked_on stays 2026-11-09\n" in capsys.readouterr().out


def test_marking_what_is_already_so_writes_nothing(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert mark("garcia", "submitted", "--all") == 0
    assert (folder / "roster.yaml").read_text() == EXAMPLE
    assert capsys.readouterr().out == (
        "note: garcia: letter stanford-phd was submitted on 2026-11-19 already\n"
        "note: garcia: letter mph was submitted on 2026-11-18 already\n"
        "roster.yaml: nothing to change\n"
    )


def test_dry_run_prints_the_diff_and_writes_nothing(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert mark("lee", "asked", "--on", "2026-12-01", "--dry-run") == 0
    assert (folder / "roster.yaml").read_text() == EXAMPLE
    out = capsys.readouterr().out
    assert "-    status: planned\n+    status: asked\n+    asked_on: 2026-12-01\n" in out
    assert out.endswith("roster.yaml: dry run, nothing written\n")


def test_on_defaults_to_today_in_the_applicants_zone() -> None:
    # 03:00 UTC on 1 December is still 30 November in New York.
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    edit = mark_roster(EXAMPLE, "roster.yaml", Mark("lee", "asked"), now)
    assert "    asked_on: 2026-11-30" in edit.text.splitlines()
    assert edit.changes == ("lee: status planned → asked", "lee: asked_on 2026-11-30")


def test_a_symlinked_roster_stays_a_link(folder: Path) -> None:
    real = folder / "real.yaml"
    real.write_text(EXAMPLE)
    (folder / "roster.yaml").unlink()
    (folder / "roster.yaml").symlink_to(real)
    assert mark("lee", "asked", "--on", "2026-12-01") == 0
    assert (folder / "roster.yaml").is_symlink()
    assert "    asked_on: 2026-12-01" in real.read_text().splitlines()


ERRORS = [
    (["jonson", "asked"], "roster.yaml: no recommender 'jonson' (did you mean 'johnson'?)"),
    (
        ["zed", "asked"],
        "roster.yaml: no recommender 'zed': choose garcia, johnson, lee, nguyen, okafor or patel",
    ),
    (
        ["johnson", "agred"],
        "'agred' is not something to mark for a recommender: use planned, asked, agreed, "
        "declined or submitted (did you mean 'agreed'?)",
    ),
    (
        ["mph", "intervew"],
        "'intervew' is not an outcome: use pending, interview, waitlisted, accepted, matched, "
        "rejected or withdrawn (did you mean 'interview'?)",
    ),
    (
        ["stanfrd-phd", "interview"],
        "roster.yaml: no program 'stanfrd-phd' (did you mean 'stanford-phd'?)",
    ),
    (
        ["mhp", "interview"],
        "roster.yaml: no program 'mhp': choose im-residency, mph, stanford-phd or ucl-msc",
    ),
    (
        ["mph", "asked"],
        "roster.yaml: 'mph' is a program: mark it with an outcome (pending, interview, "
        "waitlisted, accepted, matched, rejected or withdrawn)",
    ),
    (
        ["johnson", "interview"],
        "roster.yaml: 'johnson' is a recommender: mark planned, asked, agreed, declined or "
        "submitted, not an outcome",
    ),
    (
        ["jonsen", "agred"],
        "roster.yaml: no recommender or program 'jonsen' (did you mean 'johnson'?)",
    ),
    (
        ["johnson", "submitted", "im-residncy"],
        "roster.yaml: johnson has no letter 'im-residncy' (did you mean 'im-residency'?)",
    ),
    (
        ["johnson", "submitted"],
        "johnson has 2 letters still to come: name them (mph, im-residency) or give --all",
    ),
    (["johnson", "submitted", "mph", "--all"], "name letters or give --all, not both"),
    (["johnson", "agreed", "mph"], "letters are named only with 'submitted', not 'agreed'"),
    (["lee", "asked", "--on", "2026-13-01"], "--on: '2026-13-01' is not a date like 2026-11-30"),
    (
        [],
        "mark: give a recommender and asked, agreed, declined, planned or submitted, "
        "or a program and its outcome",
    ),
    (["--inbox", "lee", "asked"], "mark --inbox takes no recommender, program or --on"),
]


@pytest.mark.parametrize(("args", "message"), ERRORS, ids=[" ".join(e[0]) for e in ERRORS])
def test_refusals_are_one_line_with_exit_2_and_write_nothing(
    folder: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert mark(*args) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", message + "\n")
    assert (folder / "roster.yaml").read_text() == EXAMPLE


def test_an_invalid_result_is_printed_and_not_written(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = EXAMPLE.replace("anil.patel@aiims.example.in", "anil.patel@")
    (folder / "roster.yaml").write_text(broken)
    assert mark("lee", "asked", "--on", "2026-12-01") == 2
    line = broken.splitlines().index("    email: anil.patel@") + 1
    assert capsys.readouterr().err == (
        "roster.yaml: the roster would not be valid after this; nothing was written\n"
        f"roster.yaml:{line}:12: recommenders[1].email: 'anil.patel@' is not an e-mail address\n"
    )
    assert (folder / "roster.yaml").read_text() == broken


def test_a_save_between_read_and_write_wins_and_nothing_is_written(folder: Path) -> None:
    path = folder / "roster.yaml"
    marked = prepare_mark(path, Mark("lee", "asked", on=date(2026, 12, 1)), datetime.now(UTC))
    saved = EXAMPLE + "# a note saved by the editor meanwhile\n"
    path.write_text(saved)
    with pytest.raises(LormailError) as caught:
        write_mark(marked)
    assert caught.value.exit_code == 1
    assert str(caught.value) == (
        "roster.yaml: the file changed after it was read (saved elsewhere?); "
        "nothing was written: run the command again"
    )
    assert path.read_text() == saved
    assert not [p for p in folder.iterdir() if p.name.startswith(".roster.yaml.")]


def test_a_missing_roster_is_one_line(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "roster.yaml").unlink()
    assert mark("lee", "asked") == 2
    assert capsys.readouterr().err == ("roster.yaml: no such file; check 'roster' in config.yaml\n")


def test_unreadable_yaml_is_one_line_with_its_place(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "roster.yaml").write_text("programs:\n  - id: [mph\n")
    assert mark("mph", "interview") == 2
    err = capsys.readouterr().err
    assert err.startswith("roster.yaml:3:1: cannot read the roster: ")
    assert err.count("\n") == 1


LAYOUT = """programs:
    -   id: p
        deadline: 2027-01-01   # four spaces, and more after the dash
recommenders:
    -   id: r
        name: "Dr. Łukasz Zoë"
        email: r@example.org
        letters:
            -   program: p"""


@pytest.mark.parametrize(
    ("text", "newline"),
    [
        (LAYOUT, "\n"),
        ("# a note first\n---\n" + LAYOUT + "\n", "\n"),
        (LAYOUT.replace("\n", "\r\n") + "\r\n", "\r\n"),
        ("\ufeff" + LAYOUT + "\n", "\n"),
    ],
    ids=["no-final-newline", "document-start", "crlf", "bom"],
)
def test_other_layouts_keep_every_other_line(text: str, newline: str) -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    on = date(2026, 12, 1)
    i = " " * 8
    for mark_, added in [
        (Mark("r", "agreed", on=on), [f"{i}status: agreed", f"{i}agreed_on: 2026-12-01"]),
        (Mark("r", "submitted", on=on), [f"{i * 2}submitted_on: 2026-12-01"]),
        (Mark("p", "interview", on=on), [f"{i}outcome: interview", f"{i}outcome_on: 2026-12-01"]),
    ]:
        after = mark_roster(text, "roster.yaml", mark_, now).text
        assert [
            (old, [line.rstrip("\r") for line in new]) for old, new in changes(text, after)
        ] == [([], added)]
        assert after.startswith(text[:20])
        assert after.count("\r\n") == (after.count("\n") if newline == "\r\n" else 0)
        assert after.endswith("\n") == text.endswith("\n")


def test_lines_ruamel_would_reflow_are_put_back() -> None:
    old = "a: [1,\n    2]\nb: x\nc: [3,\n    4]\n"
    new = "a: [1, 2]\nb: y\nc: [3, 4]\nd: 5\n"  # as ruamel.yaml re-emits it, b and d edited
    assert keep_untouched(old, new, touched={2}, added={"d"}) == (
        "a: [1,\n    2]\nb: y\nc: [3,\n    4]\nd: 5\n"
    )


def test_an_edit_that_would_change_an_untouched_line_is_refused() -> None:
    with pytest.raises(LinesWouldChange) as caught:
        keep_untouched("a: 1\nb: 2\n", "a: 1\nb: 3\n", touched={0}, added=set())
    assert caught.value.lines == []  # put back, b would no longer mean what was asked
    with pytest.raises(LinesWouldChange) as caught:
        keep_untouched("a: 1\nb: 2\n", "a: 0\nb: 3\nc: 4\n", touched={0}, added=set())
    assert caught.value.lines == [1]  # a, b and c re-emitted together, b not to be touched


def test_python_m_lormail_mark_exit_codes(folder: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        return subprocess.run(
            [sys.executable, "-m", "lormail", "--config", "config.yaml", "mark", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=folder,
            timeout=120,
        )

    done = run("lee", "asked", "--on", "2026-12-01")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.endswith("roster.yaml: written\n")
    refused = run("lee", "asked", "--on", "2026-12-32")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == "--on: '2026-12-32' is not a date like 2026-11-30\n"
    usage = run("lee", "asked", "--when", "today")
    assert usage.returncode == 2
    assert usage.stderr.startswith("lormail: unrecognized arguments: --when today")
