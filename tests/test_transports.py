"""One contract for every transport: Maildir, and SMTP (aiosmtpd with STARTTLS and AUTH).

As vdirsyncer's ``StorageTests``: :class:`TransportTests` states what any
transport does; each subclass supplies a transport and a way to read back what
arrived, and inherits every test.
"""

from __future__ import annotations

import mailbox
from collections.abc import Callable, Iterator
from dataclasses import replace
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import trustme
from _smtp_helpers import NOW, PASSWORD, USER, make_config, make_roster, smtp_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lormail.core.compose import ComposeContext, Outgoing, compose
from lormail.core.render import Rendered
from lormail.edge.credentials import Secret
from lormail.edge.transport import MaildirTransport, SmtpTransport, Transport, TransportError
from lormail.model import PlannedMessage, Roster

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

HOSPITAL = "Prof. Jane Doe, Department of Internal Medicine, Example University Hospital"
Arrived = Callable[[], list[EmailMessage]]


def outgoing(
    tmp_path: Path,
    n: int = 0,
    *,
    subject: str = "Would you write me a letter?",
    body: str = "Dear Dr. Rec,\n\nHello.\n",
    name: str | None = None,
) -> Outgoing:
    roster: Roster = make_roster(n + 1, names=(lambda i: name) if name is not None else None)
    rid = f"r{n:04d}"
    msg = PlannedMessage(
        key=f"request:{rid}",
        kind="request",
        recommender=rid,
        to=f"{rid}@hospital.example.org",
        send_at=NOW,
        expires_at=None,
        status="due",
        reason="test",
    )
    ctx = ComposeContext(roster=roster, config=make_config(tmp_path), secret=b"k" * 32)
    return compose(msg, Rendered(subject=subject, body=body), ctx, NOW)


def send(transport: Transport, out: Outgoing) -> bool:
    """Send ``out``; whether the transport says it reached nobody (local)."""
    return transport.send(out.data, out.envelope_from, out.recipients).local


class TransportTests:
    """What every transport does.  Subclasses provide ``transport``, ``arrived``, ``broken``."""

    local: bool

    def test_delivers_the_message_as_composed(
        self, tmp_path: Path, transport: Transport, arrived: Arrived
    ) -> None:
        out = outgoing(tmp_path)
        assert send(transport, out) is self.local
        (got,) = arrived()
        assert got["Message-ID"] == out.message_id
        assert got["Subject"] == out.subject
        assert got["From"] == "Sarah Chen <sarah@example.edu>"
        assert got.get_content() == "Dear Dr. Rec,\n\nHello.\n"

    def test_lines_that_look_like_the_end_of_data_arrive_unchanged(
        self, tmp_path: Path, transport: Transport, arrived: Arrived
    ) -> None:
        body = ".\n..\n.leading dot\nFrom here\n\n.\n"
        send(transport, outgoing(tmp_path, body=body))
        (got,) = arrived()
        assert got.get_content() == body

    def test_several_messages_go_in_order(
        self, tmp_path: Path, transport: Transport, arrived: Arrived
    ) -> None:
        outs = [outgoing(tmp_path, i) for i in range(3)]
        for out in outs:
            send(transport, out)
        got = sorted(str(m["Message-ID"]) for m in arrived())
        assert got == sorted(o.message_id for o in outs)

    def test_hostile_roster_text_arrives_as_text(
        self, tmp_path: Path, transport: Transport, arrived: Arrived
    ) -> None:
        subject = "=?utf-8?q?ERAS=0D=0ABcc:_x@y.test?= " + "Ünïcödé " * 12
        send(transport, outgoing(tmp_path, subject=subject.strip(), name=HOSPITAL))
        (got,) = arrived()
        assert got["Bcc"] is None and got["Cc"] is None
        assert got["Subject"] == subject.strip()
        assert [(a.display_name, a.addr_spec) for a in got["To"].addresses] == [
            (HOSPITAL, "r0000@hospital.example.org")
        ]

    def test_reconnect_then_send(
        self, tmp_path: Path, transport: Transport, arrived: Arrived
    ) -> None:
        send(transport, outgoing(tmp_path, 0))
        transport.reconnect()
        send(transport, outgoing(tmp_path, 1))
        transport.close()
        transport.close()  # closing twice is harmless
        assert len(arrived()) == 2

    def test_an_unreachable_destination_is_a_transient_connection_failure(
        self, tmp_path: Path, broken: Transport
    ) -> None:
        with pytest.raises(TransportError) as caught:
            send(broken, outgoing(tmp_path))
        assert caught.value.transient and caught.value.connection


def _parse(data: bytes) -> EmailMessage:
    # As a mail reader stores it: LF line ends.
    message = message_from_bytes(data.replace(b"\r\n", b"\n"), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


class TestMaildir(TransportTests):
    local = True

    @pytest.fixture
    def transport(self, tmp_path: Path) -> Iterator[Transport]:
        transport = MaildirTransport(tmp_path / "outbox")
        yield transport
        transport.close()

    @pytest.fixture
    def arrived(self, tmp_path: Path) -> Arrived:
        def read() -> list[EmailMessage]:
            box = mailbox.Maildir(tmp_path / "outbox", create=False)
            return [_parse(box.get_bytes(key)) for key in box.iterkeys()]

        return read

    @pytest.fixture
    def broken(self, tmp_path: Path) -> Transport:
        (tmp_path / "a-file").write_text("not a folder")
        return MaildirTransport(tmp_path / "a-file" / "outbox")


class TestSmtp(TransportTests):
    """aiosmtpd on loopback, STARTTLS required, AUTH PLAIN with the password."""

    local = False

    @pytest.fixture
    def server(self, trusted: trustme.LeafCert) -> Iterator[object]:
        with smtp_server(security="starttls", cert=trusted, users={USER: PASSWORD}) as server:
            yield server

    @pytest.fixture
    def transport(self, tmp_path: Path, server: object) -> Iterator[Transport]:
        smtp = make_config(
            tmp_path,
            transport="smtp",
            host="127.0.0.1",
            port=server.port,  # type: ignore[attr-defined]
            security="starttls",
            auth="password",
        ).smtp
        transport = SmtpTransport(smtp, lambda: Secret(PASSWORD))
        yield transport
        transport.close()

    @pytest.fixture
    def arrived(self, server: object) -> Arrived:
        def read() -> list[EmailMessage]:
            return [_parse(r.content) for r in server.sink.received]  # type: ignore[attr-defined]

        return read

    @pytest.fixture
    def broken(self, tmp_path: Path) -> Transport:
        from _smtp_helpers import free_port

        smtp = make_config(tmp_path, transport="smtp", host="127.0.0.1", port=free_port()).smtp
        return SmtpTransport(replace(smtp, security="starttls", auth="none"))


# --- any roster text, through a real server ------------------------------------------

_TEXT = st.text(st.characters(exclude_characters="\r\n", exclude_categories=("Cs",)), max_size=60)
_PIECES = st.sampled_from(["=?utf-8?q?", "?=", "=0D=0A", "Bcc: x@y.test", ",", ":", '"', " "])
_ROSTER_TEXT = st.lists(st.one_of(_TEXT, _PIECES), max_size=6).map("".join)


@pytest.fixture(scope="module")
def plain_server() -> Iterator[object]:
    with smtp_server() as server:
        yield server


@given(name=_ROSTER_TEXT, subject=_ROSTER_TEXT)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_what_the_server_receives_has_one_recipient_and_the_subject_as_written(
    plain_server: object, tmp_path: Path, name: str, subject: str
) -> None:
    sink = plain_server.sink  # type: ignore[attr-defined]
    sink.received.clear()
    out = outgoing(tmp_path, subject=subject.strip(), name=name)
    smtp = make_config(
        tmp_path,
        transport="smtp",
        host="127.0.0.1",
        port=plain_server.port,  # type: ignore[attr-defined]
    ).smtp
    transport = SmtpTransport(smtp)
    try:
        send(transport, out)
    finally:
        transport.close()
    (got,) = sink.received
    assert got.rcpt_tos == ["r0000@hospital.example.org"]
    parsed = _parse(got.content)
    assert [k.lower() for k in parsed] == [
        "from", "to", "subject", "date", "message-id",
        "content-type", "content-transfer-encoding", "mime-version",
    ]  # fmt: skip
    assert [a.addr_spec for a in parsed["To"].addresses] == ["r0000@hospital.example.org"]
    assert "".join(parsed["To"].addresses[0].display_name.split()) == "".join(name.split())
    assert parsed["Subject"] == subject.strip()
