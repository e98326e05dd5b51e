"""render: a template is given only the context entries it reads, with the same result."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from _smtp_helpers import make_roster

from lormail.app.check import sample_messages
from lormail.core.render import CONTEXT_NAMES, Rendered, Templates, context, split_subject
from lormail.errors import LormailError
from lormail.model import Material, Roster


def full_render(templates: Templates, roster: Roster, kind: str, msg: object) -> Rendered:
    """What rendering gave before: every context entry, for both templates."""
    ctx = context(msg, roster)  # type: ignore[arg-type]
    name = f"{kind}.txt.j2"
    text = templates._call(name, ctx)
    subject, body = split_subject(text, name)
    html = None
    if templates._has(f"{kind}.html.j2"):
        html = templates._call(f"{kind}.html.j2", ctx)
    return Rendered(subject=subject, body=body, html=html)


def rosters() -> list[Roster]:
    materials = (
        Material(label="CV", path=Path("/tmp/cv.pdf")),
        Material(label="Statement", url="https://example.edu/ps.pdf"),
    )
    roster = make_roster(3, kind="packet")
    applicant = replace(roster.applicant, materials=materials, signature="Sarah\nPhD student")
    return [make_roster(3), replace(roster, applicant=applicant)]


def assert_renders_as_with_every_entry(templates: Templates) -> None:
    for roster in rosters():
        for rec in roster.recommenders:
            for msg in sample_messages(roster, rec):
                got = templates.render(msg, roster)
                assert got == full_render(templates, roster, msg.kind, msg), msg.key


def test_the_shipped_templates_render_as_with_every_entry() -> None:
    assert_renders_as_with_every_entry(Templates(None))


OVERRIDES = {
    # Reads a name in a block the subject line does not; tests one with `is defined`.
    "request.txt.j2": (
        "Subject: Hello {{ recommender.name }}\n"
        "{% if program is defined %}{{ program.program }} by {{ deadline }}{% endif %}\n"
        "{{ send_date }}\n"
    ),
    # Reads nothing itself; what it includes reads the rest.
    "packet.txt.j2": "Subject: Packet\n{% include 'parts.j2' %}\n",
    "parts.j2": "{{ applicant.name }} {{ materials | length }} {{ letters | length }}\n",
    # An HTML alternative reading what the text template does not.
    "reminder.txt.j2": "Subject: Reminder {{ reminder_number }}\nText\n",
    "reminder.html.j2": "<p>{{ days_left }} days, {{ final_reminder }}, {{ recommender.id }}</p>\n",
    # A macro reading the context from inside.
    "thank_you.txt.j2": (
        "Subject: Thanks\n{% macro who() %}{{ recommender.salutation }}{% endmacro %}"
        "{{ who() }} {% for s in submitted %}{{ s.program }}{% endfor %}\n"
    ),
}


def test_overrides_with_includes_macros_and_html_render_as_with_every_entry(
    tmp_path: Path,
) -> None:
    for name, text in OVERRIDES.items():
        (tmp_path / name).write_text(text)
    templates = Templates(tmp_path)
    assert_renders_as_with_every_entry(templates)
    assert templates._reads("packet.txt.j2") == CONTEXT_NAMES  # it includes another
    assert templates._reads("request.txt.j2") == ("recommender", "program", "deadline", "send_date")


def test_an_undefined_name_lists_every_entry(tmp_path: Path) -> None:
    (tmp_path / "request.txt.j2").write_text("Subject: Hi\n{{ recomender.name }}\n")
    roster = make_roster(1)
    msg = sample_messages(roster, roster.recommenders[0])[0]
    with pytest.raises(LormailError) as caught:
        Templates(tmp_path).render(msg, roster)
    (problem,) = caught.value.problems
    assert problem.message == (
        "'recomender' is undefined (available: applicant, days_left, deadline, "
        "final_reminder, letters, materials, outcomes, program, recommender, "
        "reminder_number, send_date, submitted)"
    )
