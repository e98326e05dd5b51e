"""Marks on generated rosters change only the intended lines, and mean what they say;
and a real-size roster (25 programs, an ERAS letter serving many of them) marks as
the example does."""

from __future__ import annotations

import copy
import difflib
import gc
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lormail.cli import main
from lormail.load.roundtrip import Mark, mark_roster

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
ON = date(2026, 12, 3)
STATUSES = ("planned", "asked", "agreed", "declined")
STAMPS = {"asked": "asked_on", "agreed": "agreed_on", "declined": "declined_on"}

# --- generated rosters -------------------------------------------------------------

words = st.sampled_from(["a note", "see CV", "ok", "ask in May"])


@st.composite
def scalar(draw: st.DrawFn, text: str) -> str:
    style = draw(st.sampled_from(["", "'", '"']))
    return f"{style}{text}{style}"


@st.composite
def tail(draw: st.DrawFn) -> str:
    """An end-of-line comment, or nothing."""
    return draw(st.sampled_from(["", "  # " + draw(words), "     # " + draw(words)]))


@st.composite
def after(draw: st.DrawFn, indent: str) -> str:
    """What may follow an entry: blank lines and whole-line comments."""
    parts = draw(st.lists(st.sampled_from(["\n", f"{indent}# {draw(words)}\n"]), max_size=2))
    return "".join(parts)


@st.composite
def roster_text(draw: st.DrawFn) -> str:
    unit = draw(st.sampled_from([2, 4]))  # a mapping's indentation
    off = draw(st.sampled_from([0, unit]))  # "- id:" under its key, or indented
    pad = draw(st.sampled_from([1, 3]))  # "- id:" or "-   id:"
    dash, inner = " " * off + "-" + " " * pad, " " * (off + 1 + pad)
    n_programs = draw(st.integers(1, 4))
    pids = [f"p{i}" for i in range(n_programs)]
    head = draw(st.sampled_from(["", "# generated\n", "# generated\n---\n"]))
    key = " " * unit
    out = [head, "applicant:\n", f"{key}name: A\n", f"{key}email: a@example.org\n"]
    out.append(f"{key}timezone: UTC\n\nprograms:\n")
    for pid in pids:
        out.append(f"{dash}id: {pid}{draw(tail())}\n")
        out.append(f"{inner}deadline: 2027-01-{10 + int(pid[1:])}\n")
        if draw(st.booleans()):
            outcome = draw(scalar(draw(st.sampled_from(["pending", "interview"]))))
            out.append(f"{inner}outcome: {outcome}{draw(tail())}\n")
            if draw(st.booleans()):
                out.append(f"{inner}outcome_on: {draw(st.sampled_from(['null', '2026-11-01']))}\n")
        out.append(draw(after(inner)))
    out.append("recommenders:\n")
    for r in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 3)) == 0:  # a recommender written on one line
            status = draw(st.sampled_from(["", ", status: asked", ", status: 'agreed'"]))
            letters = ", ".join(f"{{program: {pid}}}" for pid in pids[: r + 1])
            out.append(f"{dash}{{id: r{r}, name: R, email: r{r}@example.org{status}, ")
            out.append(f"letters: [{letters}]}}{draw(tail())}\n")
            continue
        out.append(f"{dash}id: r{r}{draw(tail())}\n{inner}name: R {r}\n")
        out.append(f"{inner}email: r{r}@example.org\n")
        if draw(st.booleans()):
            status = draw(scalar(draw(st.sampled_from(STATUSES))))
            out.append(f"{inner}status: {status}{draw(tail())}\n")
        for stamp in ("asked_on", "agreed_on"):
            if draw(st.booleans()):
                out.append(f"{inner}{stamp}: {draw(st.sampled_from(['null', '2026-10-01']))}\n")
        out.append(f"{inner}letters:\n")
        inner2 = inner + " " * off
        dash2 = inner2 + "-" + " " * pad
        inner3 = " " * len(dash2)
        chosen = draw(st.lists(st.sampled_from(pids), min_size=1, unique=True))
        for pid in chosen:
            sub = draw(st.sampled_from(["", ", submitted_on: 2026-11-02", ", submitted_on: null"]))
            if draw(st.booleans()):
                out.append(f"{dash2}{{program: {pid}{sub}}}{draw(tail())}\n")
            else:
                out.append(f"{dash2}program: {pid}{draw(tail())}\n")
                if sub:
                    out.append(f"{inner3}{sub[2:]}{draw(tail())}\n")
        if draw(st.booleans()):  # one upload for several programs
            listed = ", ".join(pids)
            if draw(st.booleans()):
                out.append(f"{dash2}{{id: eras, programs: [{listed}]}}{draw(tail())}\n")
            else:
                out.append(f"{dash2}id: eras\n{inner3}programs: [{pids[0]},\n")
                out.append(f"{inner3}           {', '.join(pids[1:]) or pids[0]}]\n")
        out.append(draw(after(inner)))
    text = "".join(out)
    if draw(st.booleans()):  # no newline at the end
        text = text.removesuffix("\n")
    return text


# --- what a mark should do, on plain data ------------------------------------------


def letter_key(letter: dict[str, Any]) -> str:
    return str(letter["program"] if "program" in letter else letter["id"])


def expected(data: dict[str, Any], mark: Mark) -> dict[str, Any]:
    data = copy.deepcopy(data)
    on = mark.on or NOW.date()
    if mark.what in STATUSES or mark.what == "submitted":
        entry = next(r for r in data["recommenders"] if r["id"] == mark.target)
        if mark.what == "submitted":
            for letter in entry["letters"]:
                if letter_key(letter) in mark.letters and letter.get("submitted_on") is None:
                    letter["submitted_on"] = on
        elif entry.get("status", "planned") != mark.what:  # no status means planned
            entry["status"] = mark.what
        stamp = STAMPS.get(mark.what)
        if stamp and entry.get(stamp) is None:
            entry[stamp] = on
    else:
        entry = next(p for p in data["programs"] if p["id"] == mark.target)
        changed = entry.get("outcome", "pending") != mark.what
        entry["outcome"] = mark.what
        if changed or entry.get("outcome_on") is None:
            entry["outcome_on"] = on
    return data


def intended_lines(text: str, mark: Mark) -> set[int]:
    """Lines (0-based) a mark may rewrite: the values it replaces, and a flow mapping
    it adds to — found with PyYAML's own node marks, apart from the code under test."""
    root = yaml.compose(text)
    assert isinstance(root, yaml.MappingNode)

    def get(node: yaml.MappingNode, key: str) -> yaml.Node | None:
        return next((v for k, v in node.value if k.value == key), None)

    def entries(section: str) -> list[yaml.MappingNode]:
        seq = get(root, section)
        assert isinstance(seq, yaml.SequenceNode)
        return [e for e in seq.value if isinstance(e, yaml.MappingNode)]

    def find(section: str) -> yaml.MappingNode:
        return next(e for e in entries(section) if get(e, "id").value == mark.target)  # type: ignore[union-attr]

    targets: list[tuple[yaml.MappingNode, tuple[str, ...]]] = []
    if mark.what == "submitted":
        letters = get(find("recommenders"), "letters")
        assert isinstance(letters, yaml.SequenceNode)
        for letter in letters.value:
            key = get(letter, "program") or get(letter, "id")
            if key is not None and key.value in mark.letters:
                targets.append((letter, ("submitted_on",)))
    elif mark.what in STATUSES:
        targets.append((find("recommenders"), ("status", *STAMPS.values())))
    else:
        targets.append((find("programs"), ("outcome", "outcome_on")))
    lines: set[int] = set()
    for node, keys in targets:
        if node.flow_style:
            lines.update(range(node.start_mark.line, node.end_mark.line + 1))
        for key in keys:
            value = get(node, key)
            if value is not None:
                lines.add(value.start_mark.line)
    return lines


@st.composite
def roster_and_mark(draw: st.DrawFn) -> tuple[str, Mark]:
    text = draw(roster_text())
    data = yaml.safe_load(text)
    kind = draw(st.sampled_from(["status", "submitted", "outcome"]))
    on = draw(st.sampled_from([None, ON]))
    if kind == "outcome":
        program = draw(st.sampled_from(data["programs"]))
        what = draw(st.sampled_from(["interview", "accepted", "matched", "rejected"]))
        return text, Mark(program["id"], what, on=on)
    rec = draw(st.sampled_from(data["recommenders"]))
    if kind == "status":
        return text, Mark(rec["id"], draw(st.sampled_from(STATUSES)), on=on)
    keys = [letter_key(letter) for letter in rec["letters"]]
    chosen = draw(st.lists(st.sampled_from(keys), min_size=1, unique=True))
    return text, Mark(rec["id"], "submitted", tuple(chosen), on=on)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(roster_and_mark())
def test_marks_change_only_the_intended_lines(case: tuple[str, Mark]) -> None:
    text, mark = case
    edit = mark_roster(text, "roster.yaml", mark, NOW)
    assert yaml.safe_load(edit.text) == expected(yaml.safe_load(text), mark)
    allowed = intended_lines(text, mark)
    a, b = text.splitlines(), edit.text.splitlines()
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, _ in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            assert set(range(i1, i2)) <= allowed, (tag, a[i1:i2])
        if tag == "insert":  # a new key goes with its entry, not after a gap or a comment
            previous = b[j1 - 1].strip()
            assert previous and not previous.startswith("#"), b[j1 - 1 : j1 + 1]
    assert (edit.text == text) == (not edit.changes)


# --- a real-size roster: 25 programs, an ERAS letter per recommender -----------------

PROGRAMS = [f"im-{n:02d}" for n in range(1, 26)]


def real_size_roster(eras: bool = True) -> str:
    """25 programs; each recommender uploads once through ERAS (or once per program)."""
    out = [
        "# Residency season: 25 internal medicine programs through ERAS.\n",
        "applicant:\n  name: Sarah Chen\n  email: sarah.chen@example.edu\n",
        "  timezone: America/New_York\n\nprograms:\n",
    ]
    for n, pid in enumerate(PROGRAMS):
        out.append(f"  - id: {pid}\n    name: Internal Medicine {n + 1}\n")
        out.append(f"    portal: ERAS\n    deadline: 2026-09-{n % 20 + 10:02d}\n")
    out.append("\nrecommenders:\n")
    for i, rid in enumerate(["johnson", "garcia", "okafor", "patel"]):
        out.append(f"  - id: {rid}                 # letter writer {i + 1}\n")
        out.append(f"    name: Dr. {rid.title()}\n    email: {rid}@hospital.example.org\n")
        out.append("    status: asked\n    asked_on: 2026-07-01\n    letters:\n")
        if not eras:
            out.extend(f"      - {{program: {pid}}}\n" for pid in PROGRAMS[1:])
        else:
            out.append("      - id: eras                # one upload serves every program\n")
            out.append(f"        programs: [{', '.join(PROGRAMS[1:9])},\n")
            out.append(f"                   {', '.join(PROGRAMS[9:17])},\n")
            out.append(f"                   {', '.join(PROGRAMS[17:])}]\n")
            out.append(f'        letter_id: "LoR-{1000 + i}"\n')
        out.append("      - {program: im-01}         # a program that wants its own\n\n")
    return "".join(out)


def test_real_size_eras_marks_touch_one_line_each() -> None:
    text = real_size_roster()
    status = (["    status: asked"], ["    status: agreed"])
    steps = [
        (
            Mark("garcia", "agreed", on=date(2026, 7, 3)),
            [status, ([], ["    agreed_on: 2026-07-03"])],
        ),
        (
            Mark("garcia", "submitted", ("eras",), on=date(2026, 9, 1)),
            [([], ["        submitted_on: 2026-09-01"])],
        ),
        (
            Mark("im-07", "interview", on=date(2026, 10, 14)),
            [([], ["    outcome: interview", "    outcome_on: 2026-10-14"])],
        ),
    ]
    for mark, want in steps:
        edit = mark_roster(text, "roster.yaml", mark, NOW)
        a, b = text.splitlines(), edit.text.splitlines()
        matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
        got = [(a[i1:i2], b[j1:j2]) for t, i1, i2, j1, j2 in matcher.get_opcodes() if t != "equal"]
        assert got == want, mark
        text = edit.text
    assert text.count("submitted_on") == 1


@pytest.fixture
def real_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "roster.yaml").write_text(real_size_roster())
    (tmp_path / "config.yaml").write_text("roster: roster.yaml\n")
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    gc.enable()


def test_real_size_eras_through_the_command(
    real_size: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (real_size / "roster.yaml").read_text()
    assert main(["--config", "config.yaml", "mark", "okafor", "submitted", "eras"]) == 0
    after = (real_size / "roster.yaml").read_text()
    assert len(after.splitlines()) == len(before.splitlines()) + 1
    assert capsys.readouterr().out.endswith("roster.yaml: written\n")


def test_real_size_letters_per_program_through_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The same season where every program takes its own upload: --all marks 25 lines.
    text = real_size_roster(eras=False)
    (tmp_path / "roster.yaml").write_text(text)
    (tmp_path / "config.yaml").write_text("roster: roster.yaml\n")
    monkeypatch.chdir(tmp_path)
    try:
        assert main(["--config", "config.yaml", "mark", "patel", "submitted", "--all",
                     "--on", "2026-09-02"]) == 0  # fmt: skip
    finally:
        gc.enable()
    after = (tmp_path / "roster.yaml").read_text()
    got = [
        (text.splitlines()[i1:i2], after.splitlines()[j1:j2])
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(
            None, text.splitlines(), after.splitlines(), autojunk=False
        ).get_opcodes()
        if tag != "equal"
    ]
    assert len(got) == 1
    old, new = got[0]
    assert len(old) == len(new) == 25
    for o, n in zip(old, new, strict=True):
        # A comment after a line that grew moves out of the way, and stays.
        (o_code, _, o_note), (n_code, _, n_note) = o.partition("#"), n.partition("#")
        assert n_code.rstrip() == o_code.rstrip().replace("}", ", submitted_on: 2026-09-02}")
        assert n_note == o_note
    assert capsys.readouterr().out.endswith("roster.yaml: written\n")
