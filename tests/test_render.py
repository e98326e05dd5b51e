"""render: templates in the sandbox with StrictUndefined; exact texts and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from _smtp_helpers import make_roster

from lormail.app.check import sample_messages
from lormail.core.render import Rendered, Templates, context
from lormail.errors import LormailError
from lormail.model import PlannedMessage, Roster


def request(roster: Roster) -> PlannedMessage:
    return sample_messages(roster, roster.recommenders[0])[0]


def problem_text(folder: Path, template: str) -> str:
    (folder / "request.txt.j2").write_text(template)
    roster = make_roster(1)
    with pytest.raises(LormailError) as caught:
        Templates(folder).render(request(roster), roster)
    (problem,) = caught.value.problems
    return str(problem)


def test_the_shipped_request_renders_exactly() -> None:
    roster = make_roster(1)
    got = Templates(None).render(request(roster), roster)
    assert got.subject == "Would you write me a letter of recommendation?"
    assert got.html is None
    assert got.body.startswith("Dear Dr. Rec 0,\n\nI hope you are well. I am applying to ")
    assert "  - Internal Medicine (through ERAS): due Tuesday, 1 December\n" in got.body
    assert got.body.endswith("With best wishes,\nSarah\n")


def test_an_override_and_its_html_part_render_with_the_whole_context(tmp_path: Path) -> None:
    (tmp_path / "request.txt.j2").write_text(
        "Subject: Hello {{ recommender.name }}\n"
        "{% include 'parts.j2' %}{{ program.program }} by {{ deadline }} ({{ days_left }})\n"
    )
    (tmp_path / "parts.j2").write_text("{{ applicant.name }} {{ letters | length }}\n")
    (tmp_path / "request.html.j2").write_text("<p>{{ recommender.salutation ~ ' & co' }}</p>\n")
    roster = make_roster(1)
    got = Templates(tmp_path).render(request(roster), roster)
    assert got == Rendered(
        subject="Hello Dr. Rec 0",
        body="Sarah Chen 1\nInternal Medicine by Tuesday, 1 December (0)\n",
        html="<p>Dr. Rec 0 &amp; co</p>\n",
    )
    assert Templates(tmp_path).subject(request(roster), roster) == "Hello Dr. Rec 0"


def test_the_context_has_every_entry() -> None:
    roster = make_roster(1)
    assert sorted(context(request(roster), roster)) == [
        "applicant",
        "days_left",
        "deadline",
        "final_reminder",
        "first_contact",
        "letters",
        "materials",
        "others",
        "outcomes",
        "program",
        "recommender",
        "reminded",
        "reminder_number",
        "request_date",
        "send_date",
        "submitted",
    ]


def test_an_undefined_name_lists_every_entry(tmp_path: Path) -> None:
    assert problem_text(tmp_path, "Subject: Hi\n{{ recomender.name }}\n") == (
        f"{tmp_path}/request.txt.j2:2:1: 'recomender' is undefined (available: applicant, "
        "days_left, deadline, final_reminder, first_contact, letters, materials, others, "
        "outcomes, program, recommender, reminded, reminder_number, request_date, send_date, "
        "submitted)"
    )


def test_a_huge_range_is_refused_by_the_sandbox(tmp_path: Path) -> None:
    text = "Subject: Hi\n\n{% for i in range(10**12) %}x{% endfor %}\n"
    assert problem_text(tmp_path, text) == (
        f"{tmp_path}/request.txt.j2:3:1: OverflowError: Range too big. The sandbox blocks "
        "ranges larger than MAX_RANGE (100000)."
    )


def test_a_huge_string_or_number_is_refused_before_it_takes_the_memory(tmp_path: Path) -> None:
    text = "Subject: Hi\n\n{{ 'x' * 10**10 }}\n"
    assert problem_text(tmp_path, text) == (
        f"{tmp_path}/request.txt.j2:3:1: '*' would make 10,000,000,000 items (at most 1,000,000)"
    )
    text = "Subject: Hi\n{{ [recommender.name] * 10**7 }}\n"
    assert problem_text(tmp_path, text) == (
        f"{tmp_path}/request.txt.j2:2:1: '*' would make 10,000,000 items (at most 1,000,000)"
    )
    text = "Subject: Hi\n{{ 7 ** (10**9) }}\n"
    assert problem_text(tmp_path, text) == (
        f"{tmp_path}/request.txt.j2:2:1: '**' would make a number of about 3,000,000,000 bits"
    )
    # What a letter might do still works.
    (tmp_path / "request.txt.j2").write_text("Subject: Hi\n{{ '-' * 4 }} {{ 2 ** 10 }}\n")
    roster = make_roster(1)
    assert Templates(tmp_path).render(request(roster), roster).body == "---- 1024\n"


def test_unsafe_attributes_are_refused(tmp_path: Path) -> None:
    text = "Subject: Hi\n{{ recommender.__class__.__mro__ }}\n"
    assert problem_text(tmp_path, text) == (
        f"{tmp_path}/request.txt.j2:2:1: access to attribute '__class__' of 'dict' object "
        "is unsafe."
    )


def test_an_error_raised_by_an_expression_is_one_line(tmp_path: Path) -> None:
    assert problem_text(tmp_path, "Subject: Hi\n{{ 1 // 0 }}\n") == (
        f"{tmp_path}/request.txt.j2:2:1: ZeroDivisionError: integer division or modulo by zero"
    )


def test_a_syntax_error_is_one_line(tmp_path: Path) -> None:
    assert problem_text(tmp_path, "Subject: Hi\n{% if %}\n") == (
        f"{tmp_path}/request.txt.j2:2:1: template syntax: Expected an expression, got 'end of "
        "statement block'"
    )
