"""From a planned, rendered message to the exact bytes-to-be on the wire (SPEC §3.2).

Pure: a :class:`PlannedMessage`, its rendered text, the roster, the config and
the state's Message-ID secret go in; an :class:`Outgoing` (the message's bytes,
as an ``email.message.EmailMessage`` with ``policy=SMTP`` writes them, the
message itself on demand, and its envelope) comes out.  A plain-text message,
the usual kind, is written directly, header by header the way the email
library writes it; a multipart one by the library.  The only reads are of the
packet's attachments, through a function the caller may replace.

Owned here: the From/To/Date/Subject headers, the Message-ID derived from the
key (HMAC-SHA256 under the state's secret, so it is stable across retries and
restarts yet says nothing about the roster), reply threading of reminders,
attachments, the HTML alternative, the envelope (``bcc_self`` is an envelope
recipient only), and the refusal of any header holding CR or LF.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import mimetypes
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from email import policy, quoprimime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Protocol

from lormail.model import LOG_SENT, Config, LogEntry, PlannedMessage, Roster


class RenderedLike(Protocol):
    """What :mod:`lormail.core.render` produces for one message."""

    @property
    def subject(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def html(self) -> str | None: ...


class ComposeError(ValueError):
    """The message cannot be built safely (a line break in a header, a bad address)."""


@dataclass(frozen=True, slots=True)
class ComposeContext:
    """Everything but the message itself that composing needs."""

    roster: Roster
    config: Config
    secret: bytes  # Store.message_id_secret()
    log: Mapping[str, LogEntry] = field(default_factory=dict)  # Snapshot.log, for threading
    read_bytes: Callable[[Path], bytes] = Path.read_bytes


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A composed message and its SMTP envelope."""

    key: str
    data: bytes  # the message as it goes on the wire (CRLF)
    message_id: str
    envelope_from: str
    recipients: tuple[str, ...]  # the recommender first; then the applicant for bcc_self
    subject: str
    to: str
    build: Callable[[], EmailMessage] = field(repr=False, compare=False)

    @property
    def message(self) -> EmailMessage:
        """The message as an ``EmailMessage`` (policy SMTP); ``data`` is its bytes.

        Sending needs only ``data``: for a plain-text message the object is built
        when first asked for, by the same code that builds every other message.
        """
        return self.build()


def _clean(name: str, value: str) -> str:
    # Defence in depth: the loaders already refuse control characters, but a
    # template can still put a newline into a subject.
    if "\r" in value or "\n" in value:
        raise ComposeError(f"{name} contains a line break; refusing to build the header")
    return value


def sender(roster: Roster, config: Config) -> tuple[str, str]:
    """The From display name and address: config ``smtp.from``, else the applicant."""
    return _sender(config.smtp.from_addr, roster.applicant.name, roster.applicant.email)


@functools.lru_cache(maxsize=8)
def _sender(configured: str, name: str, email: str) -> tuple[str, str]:
    # Cached: the same for every message of a batch, and parseaddr is not cheap.
    configured = _clean("smtp.from", configured.strip())
    if configured:
        name, addr = parseaddr(configured)
        if "@" not in addr:
            raise ComposeError(f"smtp.from: {configured!r} holds no e-mail address")
        return name, addr
    return name, email


def message_id(key: str, secret: bytes, domain: str) -> str:
    """The Message-ID of ``key``: a keyed hash, so the same key always gets the same id."""
    mac = _keyed(secret).copy()
    mac.update(key.encode("utf-8"))
    digest = mac.digest()[:20]
    token = base64.b32encode(digest).decode("ascii").lower()
    return f"<{token}@{domain}>"


@functools.lru_cache(maxsize=4)
def _keyed(secret: bytes) -> hmac.HMAC:
    # The HMAC keyed once per state secret; each Message-ID copies it, which
    # costs a fraction of keying a new one.
    return hmac.new(secret, digestmod=hashlib.sha256)


def domain_of(addr: str) -> str:
    return addr.rpartition("@")[2].strip().lower() or "localhost"


def thread_parent(msg: PlannedMessage, log: Mapping[str, LogEntry]) -> str | None:
    """The key a reminder replies to: the packet if it went, else the request if it went."""
    if msg.kind != "reminder":
        return None
    for kind in ("packet", "request"):
        parent = f"{kind}:{msg.recommender}"
        entry = log.get(parent)
        if entry is not None and entry.state == LOG_SENT:
            return parent
    return None


def _address(name: str, addr: str) -> Address:
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        raise ComposeError(f"{addr!r} is not an e-mail address")
    try:
        return Address(display_name=name, username=local, domain=domain)
    except (ValueError, IndexError) as err:
        raise ComposeError(f"{addr!r}: {err}") from None


def _mailbox(name: str, addr: str) -> str | Address:
    local, at, domain = addr.rpartition("@")
    if name.isascii() and addr.isascii() and local and at and domain:
        # The loaders validated the address; formataddr quotes the name as needed.
        return formataddr((name, addr))
    return _address(name, addr)


# The SMTP policy's line length: a shorter ASCII header is written exactly as given.
_FAST_LIMIT = policy.SMTP.max_line_length or 78

_Header = tuple[str, "str | Address"]


def _is_plain(name: str, value: str | Address) -> bool:
    """A value the SMTP policy writes out exactly as given: short ASCII text."""
    return isinstance(value, str) and value.isascii() and len(name) + 2 + len(value) <= _FAST_LIMIT


def _put(message: EmailMessage, name: str, value: str | Address) -> None:
    """Set a header; short ASCII text skips the header registry's parse.

    The registry parses every value it is given, which made composing cost
    more than sending.  The SMTP policy writes a short ASCII value out exactly
    as given, so only non-ASCII or long values (which need encoded words or
    folding) go through it.  Every value was checked for CR/LF already.
    """
    if _is_plain(name, value):
        message.set_raw(name, value)
    else:
        message[name] = value


def _header_line(name: str, value: str | Address) -> bytes:
    """The header as the generator writes what :func:`_put` stored."""
    if _is_plain(name, value):
        return f"{name}: {value}\r\n".encode("ascii")
    # Through the registry, as message[name] = value and as_bytes() do.
    return policy.SMTP.fold_binary(name, policy.SMTP.header_store_parse(name, value)[1])


@functools.lru_cache(maxsize=8)
def _from_line(name: str, addr: str) -> bytes:
    # The same for a whole batch, and a non-ASCII name costs a registry parse.
    return _header_line("From", _mailbox(name, addr))


@functools.cache
def _plain_utf8() -> object:
    # Parsed once and shared: header objects are immutable, and the generator
    # reads the content type of every message it writes.
    return policy.SMTP.header_factory("Content-Type", 'text/plain; charset="utf-8"')


def _text_payload(text: str) -> tuple[str, str]:
    """The plain-text body's transfer encoding and payload, as ``set_content`` makes them.

    7bit when the text is ASCII in short lines, else quoted-printable UTF-8
    (readable in any client, safe through any relay).
    """
    lines = text.encode("utf-8").splitlines()
    body = b"\n".join(lines) + b"\n"
    if body.isascii() and all(len(line) <= _FAST_LIMIT for line in lines):
        return "7bit", body.decode("ascii")
    # quoprimime.body_encode(body.decode("latin-1"), _FAST_LIMIT), a line at a time.
    return "quoted-printable", "".join(map(_qp_line, body.decode("latin-1").split("\n")[:-1]))


@functools.lru_cache(maxsize=2048)
def _qp_line(line: str) -> str:
    # body_encode encodes each line on its own, and the messages of a batch
    # share most of their lines (the template's): each is encoded once.
    return quoprimime.body_encode(line + "\n", _FAST_LIMIT)


def _set_text(message: EmailMessage, text: str) -> None:
    """The plain-text body, as ``set_content`` would write it, without its header parses."""
    _set_text_part(message, *_text_payload(text))


def _set_text_part(message: EmailMessage, cte: str, payload: str) -> None:
    message.set_raw("Content-Type", _plain_utf8())
    message.set_raw("Content-Transfer-Encoding", cte)
    message.set_raw("MIME-Version", "1.0")
    message.set_payload(payload)


# How the generator splits a payload into lines, each then ended with CRLF.
_NEWLINE = re.compile(r"\r\n|\r|\n")


@functools.cache
def _end_of_headers(cte: str) -> bytes:
    # The headers _set_text_part adds, as the generator writes them, and the
    # blank line after them.
    message = EmailMessage(policy=policy.SMTP)
    _set_text_part(message, cte, "")
    return b"".join(policy.SMTP.fold_binary(k, v) for k, v in message.raw_items()) + b"\r\n"


def _plain_wire(header_lines: list[bytes], text: str) -> bytes:
    """What ``as_bytes()`` writes for a plain-text message, without building one:
    the headers (from :func:`_header_line`), the text part's own, then the
    payload with CRLF line ends (``test_compose`` checks the two agree byte for
    byte)."""
    cte, payload = _text_payload(text)
    # A payload with no CR (the usual) needs only its LFs turned into CRLFs.
    lines = payload.replace("\n", "\r\n") if "\r" not in payload else _NEWLINE.sub("\r\n", payload)
    body = lines.encode("ascii")
    return b"".join((*header_lines, _end_of_headers(cte), body))


def _attach(message: EmailMessage, path: Path, read: Callable[[Path], bytes]) -> None:
    path = path.expanduser()
    try:
        data = read(path)
    except OSError as err:
        # `check` reports a missing file; at send time it is worth a retry, not a
        # packet without the CV.
        raise OSError(f"cannot attach {path}: {err.strerror or err}") from None
    guessed, encoding = mimetypes.guess_type(path.name)
    if guessed is None or encoding is not None:
        guessed = "application/octet-stream"
    maintype, _, subtype = guessed.partition("/")
    message.add_attachment(data, maintype=maintype, subtype=subtype, filename=path.name)


def compose(
    msg: PlannedMessage, rendered: RenderedLike, ctx: ComposeContext, at: datetime
) -> Outgoing:
    """Build the message for ``msg`` as sent at ``at`` (the Date header)."""
    roster, config = ctx.roster, ctx.config
    from_name, from_addr = sender(roster, config)
    recommender = roster.recommenders_by_id.get(msg.recommender)
    to_name = recommender.name if recommender is not None else ""
    subject = _clean("the subject", rendered.subject.strip())
    _clean("the recipient's name", to_name)
    _clean("the sender's name", from_name)
    _clean("the recipient's address", msg.to)

    domain = domain_of(from_addr)
    mid = message_id(msg.key, ctx.secret, domain)
    sender_line = _from_line(from_name, from_addr)  # the same for a whole batch
    headers: list[_Header] = [
        ("To", _mailbox(to_name, msg.to)),
        ("Subject", subject),
        ("Date", _date(at, roster.applicant.timezone)),
        ("Message-ID", mid),
    ]
    parent = thread_parent(msg, ctx.log)
    if parent is not None:
        parent_id = message_id(parent, ctx.secret, domain)
        headers += [("In-Reply-To", parent_id), ("References", parent_id)]
    attachments: tuple[Path, ...] = ()
    if msg.kind == "packet":
        attachments = tuple(m.path for m in roster.applicant.materials if m.path is not None)

    def build() -> EmailMessage:
        message = EmailMessage(policy=policy.SMTP)
        _put(message, "From", _mailbox(from_name, from_addr))
        for name, value in headers:
            _put(message, name, value)
        _set_text(message, rendered.body)
        if rendered.html:
            message.add_alternative(rendered.html, subtype="html")
        for path in attachments:
            _attach(message, path, ctx.read_bytes)
        return message

    if rendered.html or attachments:
        # A multipart message: the email library writes it (and reads the files now).
        message = build()
        data = message.as_bytes()
        made: Callable[[], EmailMessage] = functools.partial(_same, message)
    else:
        # Plain text, the usual case: its bytes directly, the object only on demand.
        lines = [sender_line, *(_header_line(name, value) for name, value in headers)]
        data = _plain_wire(lines, rendered.body)
        made = _Once(build)

    recipients = [msg.to]
    applicant = roster.applicant.email
    if config.smtp.bcc_self and applicant.lower() != msg.to.lower():
        recipients.append(applicant)
    return Outgoing(
        key=msg.key,
        data=data,
        message_id=mid,
        envelope_from=from_addr,
        recipients=tuple(recipients),
        subject=subject,
        to=msg.to,
        build=made,
    )


def _same(message: EmailMessage) -> EmailMessage:
    return message


class _Once:
    """``make()``'s result, made at the first call (lighter than functools.cache)."""

    __slots__ = ("_made", "_make")

    def __init__(self, make: Callable[[], EmailMessage]) -> None:
        self._make = make
        self._made: EmailMessage | None = None

    def __call__(self) -> EmailMessage:
        if self._made is None:
            self._made = self._make()
        return self._made


@functools.lru_cache(maxsize=4)
def _date(at: datetime, zone: tzinfo) -> str:
    # The same instant for every message of a batch run with --now.
    return format_datetime(at.astimezone(zone))


def _summary(message: EmailMessage, outgoing: Outgoing, missing: list[Path]) -> str:
    lines = [
        f"{name}: {message[name]}"
        for name in ("From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References")
        if message[name] is not None
    ]
    if len(outgoing.recipients) > 1:
        lines.append(f"(a copy to {', '.join(outgoing.recipients[1:])}, envelope only)")
    lines.append("")
    text_part = message.get_body(preferencelist=("plain",))
    body = text_part.get_content() if isinstance(text_part, EmailMessage) else ""
    lines.append(body.rstrip("\n"))
    extras = []
    if message.get_body(preferencelist=("html",)) is not None:
        extras.append("[an HTML alternative is included]")
    for part in message.iter_attachments():
        if isinstance(part, EmailMessage):
            size = len(part.get_content()) if part.get_content_maintype() != "text" else 0
            extras.append(
                f"[attached: {part.get_filename()} ({part.get_content_type()}, {size} bytes)]"
            )
    extras += [f"[MISSING attachment: {p} — the packet cannot go until it exists]" for p in missing]
    if extras:
        lines += ["", *extras]
    return "\n".join(lines) + "\n"
