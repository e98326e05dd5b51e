"""compose: headers, Message-IDs, threading, attachments, HTML, Bcc, header injection."""

from __future__ import annotations

import base64
import hashlib
import hmac
import mailbox
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from pathlib import Path

import pytest
from _smtp_helpers import NOW, make_app, make_config, make_roster, replace_smtp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lormail.core.compose import ComposeContext, ComposeError, compose, message_id
from lormail.core.render import Rendered
from lormail.model import LogEntry, Material, PlannedMessage, Roster

SECRET = bytes(range(32))
RENDERED = Rendered(subject="Would you write me a letter?", body="Dear Dr. Rec 0,\n\nHello.\n")


def planned(kind: str = "request", rid: str = "r0000", **kw: object) -> PlannedMessage:
    key = {"reminder": f"reminder:{rid}:im:1"}.get(kind, f"{kind}:{rid}")
    return PlannedMessage(
        key=key,
        kind=kind,
        recommender=rid,
        to=f"{rid}@hospital.example.org",
        send_at=NOW,
        expires_at=None,
        status="due",
        reason="test",
        **kw,  # type: ignore[arg-type]
    )


def context(tmp_path: Path, **kw: object) -> ComposeContext:
    roster = kw.pop("roster", None) or make_roster(1)
    config = kw.pop("config", None) or make_config(tmp_path)
    return ComposeContext(roster=roster, config=config, secret=SECRET, **kw)  # type: ignore[arg-type]


def wire(out_message: EmailMessage) -> EmailMessage:
    """The message as a receiver parses it."""
    parsed = message_from_bytes(out_message.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_headers(tmp_path: Path) -> None:
    out = compose(planned(), RENDERED, context(tmp_path), NOW)
    msg = wire(out.message)
    assert msg["From"] == "Sarah Chen <sarah@example.edu>"
    assert msg["To"] == '"Dr. Rec 0" <r0000@hospital.example.org>'
    assert msg["Subject"] == "Would you write me a letter?"
    assert msg["Date"] == "Tue, 01 Sep 2026 11:00:00 -0400"  # the applicant's zone
    assert msg["Message-ID"] == out.message_id
    assert out.message_id.endswith("@example.edu>")
    assert out.envelope_from == "sarah@example.edu"
    assert out.recipients == ("r0000@hospital.example.org",)
    assert b"\r\n" in out.message.as_bytes()  # policy SMTP: CRLF on the wire
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().replace("\r\n", "\n") == "Dear Dr. Rec 0,\n\nHello.\n"


def test_message_id_is_stable_keyed_and_opaque() -> None:
    a = message_id("reminder:johnson:im-residency:1", SECRET, "example.edu")
    assert a == message_id("reminder:johnson:im-residency:1", SECRET, "example.edu")
    assert a != message_id("reminder:johnson:im-residency:2", SECRET, "example.edu")
    assert a != message_id("reminder:johnson:im-residency:1", bytes(32), "example.edu")
    local = a[1:].split("@")[0]
    assert "johnson" not in a and "im" not in local and "reminder" not in a
    assert len(local) == 32 and local.isalnum()
    # The same id as every earlier lormail made for the key: a retry after an
    # upgrade still carries it.
    digest = hmac.new(SECRET, b"reminder:johnson:im-residency:1", hashlib.sha256).digest()
    assert local == base64.b32encode(digest[:20]).decode().lower()


def test_non_ascii_display_names_are_encoded(tmp_path: Path) -> None:
    roster = make_roster(1, names=lambda i: "Dr. Zoë Müller-Łukasiewicz")
    config = replace_smtp(make_config(tmp_path), from_addr="Séverine Çelik <sev@example.edu>")
    out = compose(planned(), RENDERED, context(tmp_path, roster=roster, config=config), NOW)
    raw = out.message.as_bytes()
    assert raw.isascii()
    assert b"=?utf-8?" in raw
    msg = wire(out.message)
    assert msg["To"].addresses[0].display_name == "Dr. Zoë Müller-Łukasiewicz"
    assert msg["To"].addresses[0].addr_spec == "r0000@hospital.example.org"
    assert str(msg["From"]) == "Séverine Çelik <sev@example.edu>"
    assert out.message_id.endswith("@example.edu>")


def test_from_defaults_to_the_applicant(tmp_path: Path) -> None:
    config = replace_smtp(make_config(tmp_path), from_addr="")
    out = compose(planned(), RENDERED, context(tmp_path, config=config), NOW)
    assert wire(out.message)["From"] == "Sarah Chen <sarah@example.edu>"


def _sent(key: str, hours: int, subject: str | None) -> LogEntry:
    return LogEntry(key=key, state="sent", at=NOW + timedelta(hours=hours), subject=subject)


def _mid(key: str) -> str:
    return message_id(key, SECRET, "example.edu")


@pytest.mark.parametrize(
    ("log", "in_reply_to", "references", "subject"),
    [
        # The last message sent starts the thread: the packet, after the request.
        (
            [
                _sent("request:r0000", 0, "A letter?"),
                _sent("packet:r0000", 1, "Your packet"),
                _sent("request:r0001", 2, "Another person's"),
            ],
            "packet:r0000",
            ("packet:r0000",),
            "Re: Your packet",
        ),
        # A reminder that went joins the thread; the next replies to it.
        (
            [
                _sent("request:r0000", 0, "A letter?"),
                _sent("reminder:r0000:cv:1", 1, "Re: A letter?"),
            ],
            "reminder:r0000:cv:1",
            ("request:r0000", "reminder:r0000:cv:1"),
            "Re: A letter?",
        ),
        # A log row from before subjects were kept: the template's subject stays.
        ([_sent("request:r0000", 0, None)], "request:r0000", ("request:r0000",), None),
        ([], None, (), None),
    ],
)
def test_reminders_reply_in_the_thread_of_the_last_message_sent(
    tmp_path: Path,
    log: list[LogEntry],
    in_reply_to: str | None,
    references: tuple[str, ...],
    subject: str | None,
) -> None:
    entries = {e.key: e for e in log}
    # A packet that was only dry-run is not in the recommender's mailbox.
    entries.setdefault("packet:r0000", LogEntry(key="packet:r0000", state="dry-run", at=NOW))
    msg = planned("reminder", reminder_number=2)
    out = compose(msg, RENDERED, context(tmp_path, log=entries), NOW)
    headers = wire(out.message)
    if in_reply_to is None:
        assert headers["In-Reply-To"] is None and headers["References"] is None
    else:
        assert headers["In-Reply-To"] == _mid(in_reply_to)
        assert str(headers["References"]).split() == [_mid(k) for k in references]
    assert headers["Subject"] == out.subject == (subject or RENDERED.subject)


def test_other_kinds_start_their_own_thread(tmp_path: Path) -> None:
    log = {"request:r0000": _sent("request:r0000", 0, "A letter?")}
    out = compose(planned("packet"), RENDERED, context(tmp_path, log=log), NOW)
    assert wire(out.message)["In-Reply-To"] is None
    assert out.subject == RENDERED.subject


def test_packet_attaches_files_and_leaves_urls_to_the_template(tmp_path: Path) -> None:
    cv = tmp_path / "cv.pdf"
    cv.write_bytes(b"%PDF-1.4 fake")
    notes = tmp_path / "notes.unknownext"
    notes.write_bytes(b"\x00\x01")
    roster = make_roster(
        1,
        kind="packet",
        materials=(
            Material(label="CV", path=cv),
            Material(label="Notes", path=notes),
            Material(label="Statement", url="https://example.edu/ps.pdf"),
        ),
    )
    rendered = replace(RENDERED, html="<p>Dear Dr. Rec 0,</p>")
    out = compose(planned("packet"), rendered, context(tmp_path, roster=roster), NOW)
    msg = wire(out.message)
    assert msg.get_content_type() == "multipart/mixed"
    attachments = list(msg.iter_attachments())
    assert [(a.get_filename(), a.get_content_type()) for a in attachments] == [
        ("cv.pdf", "application/pdf"),
        ("notes.unknownext", "application/octet-stream"),
    ]
    assert attachments[0].get_content() == b"%PDF-1.4 fake"
    body = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert body is not None and html is not None
    assert html.get_content().strip() == "<p>Dear Dr. Rec 0,</p>"


def test_missing_attachment_is_an_error(tmp_path: Path) -> None:
    roster = make_roster(1, kind="packet", materials=(Material("CV", path=tmp_path / "no.pdf"),))
    with pytest.raises(OSError, match="cannot attach"):
        compose(planned("packet"), RENDERED, context(tmp_path, roster=roster), NOW)


def test_bcc_self_is_envelope_only(tmp_path: Path) -> None:
    config = replace_smtp(make_config(tmp_path), bcc_self=True)
    out = compose(planned(), RENDERED, context(tmp_path, config=config), NOW)
    assert out.recipients == ("r0000@hospital.example.org", "sarah@example.edu")
    raw = out.message.as_bytes()
    assert b"Bcc" not in raw and b"bcc" not in raw.lower().split(b"\r\n\r\n")[0]
    assert raw.count(b"sarah@example.edu") == 1  # in From only


@pytest.mark.parametrize(
    "subject",
    ["Hello\r\nBcc: victim@example.com", "Hello\nX-Evil: 1", "Hello\rX-Evil: 1"],
)
def test_line_breaks_in_the_subject_are_refused(tmp_path: Path, subject: str) -> None:
    with pytest.raises(ComposeError, match="line break"):
        compose(planned(), replace(RENDERED, subject=subject), context(tmp_path), NOW)


def test_line_breaks_in_names_are_refused(tmp_path: Path) -> None:
    roster = make_roster(1, names=lambda i: "Dr. X\r\nBcc: victim@example.com")
    with pytest.raises(ComposeError, match="line break"):
        compose(planned(), RENDERED, context(tmp_path, roster=roster), NOW)
    config = replace_smtp(make_config(tmp_path), from_addr="Me\n<me@example.edu>")
    with pytest.raises(ComposeError, match="line break"):
        compose(planned(), RENDERED, context(tmp_path, config=config), NOW)


def test_an_injected_subject_is_never_sent(tmp_path: Path) -> None:
    """End to end: the batch fails that message instead of sending it."""
    from lormail.app.send import send_due

    config = make_config(tmp_path)
    app = make_app(config, make_roster(2))

    class Evil:
        def render(self, msg: PlannedMessage, roster: object) -> Rendered:
            if msg.recommender == "r0000":
                return Rendered(subject="Hi\r\nBcc: victim@example.com", body="x")
            return RENDERED

    app._templates = Evil()  # type: ignore[assignment]
    report = send_due(app, NOW)
    assert report.failed == ("request:r0000",)
    assert report.sent == ("request:r0001",)
    box = mailbox.Maildir(config.maildir, create=False)
    assert len(box) == 1
    assert all(b"victim" not in box.get_bytes(k) for k in box.iterkeys())


def test_maildir_delivers_a_parseable_message(tmp_path: Path) -> None:
    from lormail.app.send import send_due

    config = make_config(tmp_path)
    report = send_due(make_app(config, make_roster(1)), NOW)
    assert report.sent == ("request:r0000",)
    files = list((config.maildir / "new").iterdir())
    assert len(files) == 1
    assert (config.maildir / "cur").is_dir() and (config.maildir / "tmp").is_dir()
    assert not list((config.maildir / "tmp").iterdir())
    raw = files[0].read_bytes()
    assert b"\r\n" not in raw  # LF line ends in a Maildir file
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["To"] == '"Dr. Rec 0" <r0000@hospital.example.org>'
    assert msg["Subject"]
    assert msg["Message-ID"].endswith("@example.edu>")
    assert msg["Date"] == "Tue, 01 Sep 2026 11:00:00 -0400"
    assert datetime(2026, 9, 1, tzinfo=UTC) < NOW


def test_loaded_templates_never_read_the_files_again(tmp_path: Path) -> None:
    """What a daemon accepted is what it sends: a later save reaches it only by a reload."""
    from lormail.app.check import sample_messages
    from lormail.core.render import Templates
    from lormail.model import Letter
    from tests.builders import program, recommender, roster

    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "request.txt.j2").write_text("Subject: A letter for {{ applicant.name }}?\n\nHello\n")
    rec = recommender("lee", status="planned", letters=(Letter("im"),))
    ros = roster([program("im", date(2026, 12, 1))], [rec])
    request = next(m for m in sample_messages(ros, rec) if m.kind == "request")
    templates = Templates(folder).load_all()
    (folder / "request.txt.j2").write_text("Subject: Changed on disk\n\nBye\n")
    assert templates.subject(request, ros).startswith("A letter for ")
    assert templates.render(request, ros).body == "Hello\n"
    assert Templates(folder).subject(request, ros) == "Changed on disk"


# --- what goes on the wire reads back as written ---------------------------------

LONG_SUBJECT = "A letter of recommendation for " + "Internal Medicine, Pediatrics, " * 4 + "please"
HOSPITAL = "Prof. Jane Doe, Department of Internal Medicine, Example University Hospital"


def _squeezed(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize(
    ("name", "sender", "subject", "body"),
    [
        ("Dr. Rec 0", "Sarah Chen <sarah@example.edu>", "Hello", "Dear Dr. Rec 0,\n\nHello.\n"),
        ("Rec, Jr.", "sarah@example.edu", "Hi", "x"),  # a name that needs quotes; no name
        ("Dr. Zoë Müller", "Séverine Çelik <sev@example.edu>", "Réponse — merci", "Grüße\n"),
        ("Dr. " + "Verylongname " * 8, "Sarah Chen <sarah@example.edu>", LONG_SUBJECT, "ok\n"),
        ("Dr. Łukasz " * 6, "Sarah Chen <sarah@example.edu>", "Ünïcödé " * 12, "ok"),
        ("Dr. Rec", "Sarah Chen <sarah@example.edu>", "Long body", "word " * 40 + "\nend"),
        ("Dr. Rec", "Sarah Chen <sarah@example.edu>", "Line ends", "a\r\nb\rc\n\nd\r\n"),
        ("Dr. Rec", "Sarah Chen <sarah@example.edu>", "Empty body", ""),
        ("Dr. Rec", "Sarah Chen <sarah@example.edu>", "Dots", ".\n.leading dot\nFrom here\n"),
        ("Dr. Rec", "Sarah Chen <sarah@example.edu>", "Trailing space", "a  \n\tb\t\n"),
    ],
)
@pytest.mark.parametrize("kind", ["request", "reminder"])
def test_messages_read_back_as_written(
    tmp_path: Path, name: str, sender: str, subject: str, body: str, kind: str
) -> None:
    roster = make_roster(1, names=lambda i: name)
    config = replace_smtp(make_config(tmp_path), from_addr=sender, bcc_self=True)
    sent = {"request:r0000": LogEntry(key="request:r0000", state="sent", at=NOW)}
    ctx = context(tmp_path, roster=roster, config=config, log=sent)
    msg = planned(kind, reminder_number=1) if kind == "reminder" else planned(kind)
    out = compose(msg, Rendered(subject=subject, body=body), ctx, NOW)
    assert out.data == out.message.as_bytes()  # serialised by the email package, policy SMTP
    used = out.message.policy
    assert isinstance(used.header_factory, HeaderRegistry)  # the standard one, keeping headers
    expected = policy.SMTP.clone(refold_source="none", header_factory=used.header_factory)
    assert repr(used) == repr(expected)
    parsed = message_from_bytes(out.data, policy=policy.default)
    assert parsed["Subject"] == subject.strip() == out.subject
    (to,) = parsed["To"].addresses
    assert to.addr_spec == "r0000@hospital.example.org"
    assert _squeezed(to.display_name) == _squeezed(name)
    if name.isascii():  # quoted, folded at its spaces: exactly the name
        assert to.display_name == name.strip()
    assert parsed["Bcc"] is None
    if "Verylongname" not in name:
        assert all(len(line) <= 78 for line in out.data.split(b"\r\n\r\n")[0].split(b"\r\n"))
    if kind == "reminder":
        assert (
            parsed["In-Reply-To"]
            == parsed["References"]
            == message_id(
                "request:r0000", SECRET, config.smtp.from_addr.rpartition("@")[2].rstrip(">")
            )
        )
    assert parsed.get_content().replace("\r\n", "\n") == (
        "\n".join(body.splitlines()) + "\n" if body else "\n"
    )


def test_multipart_messages_are_the_email_librarys(tmp_path: Path) -> None:
    cv = tmp_path / "cv.pdf"
    cv.write_bytes(b"%PDF-1.4 fake")
    roster = make_roster(1, kind="packet", materials=(Material(label="CV", path=cv),))
    for html in (None, "<p>Dear Dr. Rec 0,</p>"):
        rendered = replace(RENDERED, html=html)
        out = compose(planned("packet"), rendered, context(tmp_path, roster=roster), NOW)
        assert out.data == out.message.as_bytes()
        assert out.data.count(b"%PDF") == 0 and b"JVBERi0xLjQgZmFrZQ==" in out.data


def test_a_long_display_name_with_commas_keeps_its_quotes(tmp_path: Path) -> None:
    """Python 3.11.7's own folding drops the quotes and makes three recipients of this."""
    roster = make_roster(1, names=lambda i: HOSPITAL)
    out = compose(planned(), RENDERED, context(tmp_path, roster=roster), NOW)
    head = out.data.split(b"\r\n\r\n")[0].decode("ascii")
    assert (
        'To: "Prof. Jane Doe, Department of Internal Medicine, Example University\r\n'
        ' Hospital" <r0000@hospital.example.org>\r\n'
    ) in head
    parsed = message_from_bytes(out.data, policy=policy.default)
    assert [(a.display_name, a.addr_spec) for a in parsed["To"].addresses] == [
        (HOSPITAL, "r0000@hospital.example.org")
    ]


@pytest.mark.parametrize(
    "text",
    [
        "=?utf-8?q?ERAS=0D=0ABcc:_x@y.test?=",
        "=?utf-8?b?RVJBUw0KQmNjOiB4QHkudGVzdA==?=",
        "ERAS =?utf-8?q?=0D=0A=0D=0A?= body",
        "=?utf-8?q?" + "a" * 90 + "=0D=0ABcc:_x@y.test?=",
    ],
)
def test_encoded_word_text_stays_text(tmp_path: Path, text: str) -> None:
    """On Python 3.11.7 the header registry decodes such text and folds it back raw
    (CVE-2024-6923): a Bcc line on the wire.  Here it is text, in any header."""
    roster = _applicant_named(make_roster(1, names=lambda i: text), text)
    config = replace_smtp(make_config(tmp_path), from_addr="")
    ctx = context(tmp_path, roster=roster, config=config)
    out = compose(planned(), replace(RENDERED, subject=text), ctx, NOW)
    head = out.data.split(b"\r\n\r\n")[0]
    assert b"Bcc" not in head and b"bcc" not in head
    parsed = message_from_bytes(out.data, policy=policy.default)
    assert parsed.keys() == [
        "From", "To", "Subject", "Date", "Message-ID",
        "Content-Type", "Content-Transfer-Encoding", "MIME-Version",
    ]  # fmt: skip
    assert parsed["Subject"] == text
    assert [a.addr_spec for a in parsed["To"].addresses] == ["r0000@hospital.example.org"]
    assert [a.addr_spec for a in parsed["From"].addresses] == ["sarah@example.edu"]


def _applicant_named(roster: Roster, name: str) -> Roster:
    return replace(roster, applicant=replace(roster.applicant, name=name))


def test_a_from_that_is_not_one_address_is_refused(tmp_path: Path) -> None:
    config = replace_smtp(make_config(tmp_path), from_addr="a@example.edu, b@example.edu")
    with pytest.raises(ComposeError) as err:
        compose(planned(), RENDERED, context(tmp_path, config=config), NOW)
    assert str(err.value) == ("smtp.from: 'a@example.edu, b@example.edu' is not one e-mail address")


def test_the_registry_would_have_put_a_bcc_on_the_wire() -> None:
    """Why header values are written here: the stdlib on this machine is vulnerable
    (skipped where Python has the fix)."""
    message = EmailMessage(policy=policy.SMTP)
    message["Subject"] = "=?utf-8?q?" + "a" * 60 + "=0D=0ABcc:_x@y.test?="
    if b"\r\nBcc:" not in message.as_bytes():
        pytest.skip("this Python folds encoded words safely")
    assert b"\r\nBcc: x@y.test" in message.as_bytes()


# Any text but a line break (a subject is one line; names cannot hold one).
_LINE = st.text(st.characters(exclude_characters="\r\n", exclude_categories=("Cs",)), max_size=200)
_TRICKY = st.sampled_from(
    ["=?utf-8?q?", "?=", "=0D=0A", "Bcc: x@y.test", ",", ":", ";", '"', "\\", "<", ">", "@", " "]
)
# At most 450 characters: even quoted with every character escaped, one word
# of it fits the 998 bytes a header line may hold.
_HOSTILE = (
    st.lists(st.one_of(_LINE, _TRICKY), max_size=8).map("".join).filter(lambda t: len(t) <= 450)
)


@pytest.mark.slow
@given(name=_HOSTILE, sender_name=_HOSTILE, subject=_HOSTILE, body=_HOSTILE)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_text_adds_a_header_or_a_recipient(
    name: str, sender_name: str, subject: str, body: str
) -> None:
    """Whatever names and subjects hold, the sent bytes parse back to exactly these
    headers, the one recipient and the sender, with the subject as written."""
    roster = _applicant_named(make_roster(1, names=lambda i: name), sender_name)
    config = replace_smtp(make_config(Path("/nonexistent")), from_addr="")
    ctx = ComposeContext(roster=roster, config=config, secret=SECRET)
    out = compose(planned(), Rendered(subject=subject, body=body), ctx, NOW)
    head, _, _ = out.data.partition(b"\r\n\r\n")
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    assert b"\r" not in head.replace(b"\r\n", b"") and b"\n" not in head.replace(b"\r\n", b"")
    parsed = message_from_bytes(out.data, policy=policy.default)
    assert [k.lower() for k in parsed] == [
        "from", "to", "subject", "date", "message-id",
        "content-type", "content-transfer-encoding", "mime-version",
    ]  # fmt: skip
    (to,) = parsed["To"].addresses
    assert to.addr_spec == "r0000@hospital.example.org"
    assert _squeezed(to.display_name) == _squeezed(name)
    (me,) = parsed["From"].addresses
    assert me.addr_spec == "sarah@example.edu"
    assert _squeezed(me.display_name) == _squeezed(sender_name)
    assert parsed["Subject"] == subject.strip()
    assert out.recipients == ("r0000@hospital.example.org",)


def test_a_long_address_after_a_long_name_is_one_recipient(tmp_path: Path) -> None:
    roster = make_roster(1, names=lambda i: HOSPITAL)
    addr = "firstname.middlename.lastname@department-of-medicine.hospital.example.org"
    out = compose(replace(planned(), to=addr), RENDERED, context(tmp_path, roster=roster), NOW)
    parsed = message_from_bytes(out.data, policy=policy.default)
    assert [(a.display_name, a.addr_spec) for a in parsed["To"].addresses] == [(HOSPITAL, addr)]


def test_a_header_line_over_998_bytes_is_refused(tmp_path: Path) -> None:
    from lormail.core.compose import wire_problem

    addr = "r0000@" + "d" * 1000 + ".example.org"
    config = make_config(tmp_path)
    msg = replace(planned(), to=addr)
    assert wire_problem(msg, RENDERED, make_roster(1), config) == (
        "a header line is 1021 bytes long, over the limit of 998"
    )


def test_text_no_encoding_carries_is_a_permanent_compose_error(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match="cannot be encoded"):
        compose(
            planned(), replace(RENDERED, body="a lone \ud800 surrogate"), context(tmp_path), NOW
        )


def test_wire_problem_names_what_can_never_be_sent(tmp_path: Path) -> None:
    from lormail.core.compose import wire_problem

    roster = make_roster(1)
    config = make_config(tmp_path)
    assert wire_problem(planned(), RENDERED, roster, config) is None
    bad = replace(RENDERED, subject="Hi\nBcc: x@y.test")
    assert wire_problem(planned(), bad, roster, config) == (
        "the subject contains a line break; refusing to build the header"
    )
    surrogate = replace(RENDERED, subject="caf\udce9")
    assert (wire_problem(planned(), surrogate, roster, config) or "").startswith(
        "the message cannot be encoded: "
    )
