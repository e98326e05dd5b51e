"""From a planned, rendered message to the exact bytes that go on the wire (SPEC §3.2).

Pure: a :class:`PlannedMessage`, its rendered text, the roster, the config and
the state's Message-ID secret go in; an :class:`Outgoing` (an
``email.message.EmailMessage`` serialised with ``email.policy.SMTP``, its
bytes and its envelope) comes out.  The only reads are of the packet's
attachments, through a function the caller may replace.

Header safety is ours, not the header registry's: on Python before 3.11.10
(CVE-2024-6923) the registry's folding can turn an encoded word such as
``=?utf-8?q?A=0D=0ABcc:_x@y.test?=`` into a raw header line, and it drops the
quotes of a long display name, so that ``To`` parses as several recipients.
So every header value made from roster or template text is written here,
already folded: short plain ASCII as it is (a display name quoted as needed),
anything else as RFC 2047 base64 encoded words, which decode to text and never
to syntax.  The policy writes such values exactly as given.  Then the bytes
are parsed back with the email package, and a message whose headers, sender,
recipient or subject do not read back exactly as meant is refused
(:class:`ComposeError`, a permanent failure).

Owned here: the From/To/Date/Subject headers, the Message-ID derived from the
key (HMAC-SHA256 under the state's secret, so it is stable across retries and
restarts yet says nothing about the roster), reply threading of reminders and
follow-ups (in the thread of the last message sent, under its subject),
attachments, the HTML alternative, and the envelope (``bcc_self`` is an
envelope recipient only).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import mimetypes
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, formataddr
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from lormail.model import LOG_SENT, Config, LogEntry, PlannedMessage, Roster


class _Registry(HeaderRegistry):
    """The standard header registry, keeping what it makes: the class for a header
    name (the registry builds a new one each time it is asked), and the headers
    made from the texts seen last, so that a run's messages share their one From,
    their few subjects and their MIME headers instead of parsing them once a
    message.  The same (name, text) always makes the same header, and the email
    package never changes a header once made.  A value that is no text (an
    ``Address`` given whole) is made afresh."""

    def __init__(self) -> None:
        super().__init__()
        self._classes = lru_cache(maxsize=64)(super().__getitem__)
        self._made = lru_cache(maxsize=256)(super().__call__)

    def __getitem__(self, name: str) -> type[BaseHeader]:
        return self._classes(name)

    def __call__(self, name: str, value: Any) -> BaseHeader:
        if isinstance(value, str):
            return self._made(name, value)
        return super().__call__(name, value)


# The SMTP policy, told to write a header value given as text exactly as given:
# by default it re-folds one with a line over 78 characters through the header
# registry, which is what must never happen to roster text.  Header objects
# (a non-ASCII address) are folded by the registry as ever.
# Both use the registry above: a run's messages share their MIME headers.
_REGISTRY = _Registry()
POLICY = policy.SMTP.clone(refold_source="none", header_factory=_REGISTRY)
_FOLD_AT = POLICY.max_line_length or 78
# The parse-back's reader: the default policy, with the registry above.
_READ_BACK = policy.default.clone(header_factory=_REGISTRY)
MAX_LINE = 998  # RFC 5322 §2.1.1: no line of a message may be longer (CRLF apart)

# What may stand in a header as it is: printable ASCII words, no encoded-word opener.
_PLAIN_TEXT = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
# A display name that needs no quotes (RFC 5322 atext and spaces).
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
# An ASCII addr-spec the loaders would accept: no spaces, no specials but @ and dots.
_ADDR_SPEC = re.compile(r"[^\s<>()\[\],;:\\\"@]+@[^\s<>()\[\],;:\\\"@]+")


class RenderedLike(Protocol):
    """What :mod:`lormail.core.render` produces for one message."""

    @property
    def subject(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def html(self) -> str | None: ...


class ComposeError(ValueError):
    """The message can never be sent as it stands (unsafe text, a bad address, a
    line over 998 bytes, text that cannot be encoded): a permanent failure."""


@dataclass(frozen=True, slots=True)
class ComposeContext:
    """Everything but the message itself that composing needs."""

    roster: Roster
    config: Config
    secret: bytes  # lormail.edge.store.message_id_secret()
    log: Mapping[str, LogEntry] = field(default_factory=dict)  # Snapshot.log, for threading
    read_bytes: Callable[[Path], bytes] = Path.read_bytes


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A composed message and its SMTP envelope."""

    key: str
    message: EmailMessage = field(repr=False, compare=False)
    data: bytes  # message.as_bytes(): CRLF lines, parsed back and checked
    message_id: str
    envelope_from: str
    recipients: tuple[str, ...]  # the recommender first; then the applicant for bcc_self
    subject: str
    to: str


def sender(roster: Roster, config: Config) -> tuple[str, str]:
    """The From display name and address: config ``smtp.from``, else the applicant."""
    configured = config.smtp.from_addr.strip()
    if configured:
        return _configured_sender(configured)
    return roster.applicant.name, roster.applicant.email


def _configured_sender(configured: str) -> tuple[str, str]:
    _no_breaks("smtp.from", configured)
    mailboxes: tuple[Address, ...] = ()
    # An encoded word in it that decodes to a line break is a ValueError.  Read
    # through the parse-back's registry, which keeps the run's one From.
    with contextlib.suppress(ValueError):
        header = _READ_BACK.header_factory("From", configured)
        mailboxes = tuple(getattr(header, "addresses", ()))
    if len(mailboxes) != 1 or "@" not in mailboxes[0].addr_spec:
        raise ComposeError(f"smtp.from: {configured!r} is not one e-mail address")
    return str(mailboxes[0].display_name), str(mailboxes[0].addr_spec)


def message_id(key: str, secret: bytes, domain: str) -> str:
    """The Message-ID of ``key``: a keyed hash, so the same key always gets the same id."""
    digest = hmac.new(secret, key.encode("utf-8"), hashlib.sha256).digest()[:20]
    token = base64.b32encode(digest).decode("ascii").lower()
    return f"<{token}@{domain}>"


def domain_of(addr: str) -> str:
    return addr.rpartition("@")[2].strip().lower() or "localhost"


# Kinds that reply in the thread of the last message sent to the recommender.
REPLY_KINDS = frozenset({"reminder", "request_followup"})


@dataclass(frozen=True, slots=True)
class Thread:
    """Where a reply goes (SPEC §3.2): the message it answers, the thread's Message-IDs
    oldest first, and the thread's subject with ``Re:`` (None when the log lacks it)."""

    in_reply_to: str
    references: tuple[str, ...]
    subject: str | None


def thread_of(
    msg: PlannedMessage, log: Mapping[str, LogEntry], secret: bytes, domain: str
) -> Thread | None:
    """The thread a reminder or follow-up replies in: that of the last message sent to
    its recommender, so that every mail client shows one conversation (Gmail threads
    by subject too, hence the subject).  None for other kinds, or before any message
    went."""
    if msg.kind not in REPLY_KINDS:
        return None
    sent = sorted(
        (
            entry
            for entry in log.values()
            if entry.state == LOG_SENT
            and entry.key != msg.key
            and entry.key.split(":")[1:2] == [msg.recommender]
        ),
        key=lambda entry: (entry.at, entry.key),
    )
    if not sent:
        return None
    # The thread: the last message that was not itself a reply, and the replies since.
    starts = [i for i, entry in enumerate(sent) if entry.key.split(":", 1)[0] not in REPLY_KINDS]
    chain = sent[starts[-1] if starts else 0 :]
    # A reminder round's joined reminders are logged with the round's Message-ID:
    # one message, named once.
    ids = tuple(
        dict.fromkeys(entry.message_id or message_id(entry.key, secret, domain) for entry in chain)
    )
    root = (chain[0].subject or "").strip()
    subject = None
    if root:
        subject = root if root[:3].lower() == "re:" else f"Re: {root}"
    return Thread(in_reply_to=ids[-1], references=ids, subject=subject)


# --- header values ---------------------------------------------------------------


def _no_breaks(what: str, value: str) -> None:
    # The loaders refuse control characters already; a template can still put
    # a line break into a subject, and a subject is one line.
    if "\r" in value or "\n" in value:
        raise ComposeError(f"{what} contains a line break; refusing to build the header")


def _encoded(name: str, text: str) -> str:
    """``text`` as UTF-8 base64 encoded words, folded so that no line passes the
    policy's limit.  Written here rather than by ``email.header.Header``, which
    turns the characters ``str.splitlines`` splits at (NEL, U+2028, …) into spaces."""
    words: list[bytes] = []
    chunk = b""
    # RFC 2047 §2: an encoded word is at most 75 characters, 12 of them "=?utf-8?b?" "?=".
    room = min(75, _FOLD_AT - len(name) - 2) - 12
    for char in text:
        data = char.encode("utf-8")  # a lone surrogate: UnicodeEncodeError
        if chunk and len(base64.b64encode(chunk + data)) > room:
            words.append(chunk)
            chunk = b""
            room = 75 - 12  # a continuation line: a space, then the word
        chunk += data
    words.append(chunk)
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?=" for w in words)


def _fits(name: str, value: str) -> bool:
    return len(name) + 2 + len(value) <= _FOLD_AT


def text_value(name: str, text: str) -> str:
    """An unstructured header (the Subject) as it goes on the wire."""
    if _PLAIN_TEXT.fullmatch(text) and "=?" not in text and _fits(name, text):
        return text
    return _encoded(name, text) if text else ""


def mailbox_value(name: str, display: str, addr: str) -> str | Address:
    """One mailbox, ``Name <addr>``, for the ``name`` header.

    A plain ASCII address gets a value written here: the display name as atoms,
    or quoted and folded at its spaces, or as encoded words.  A non-ASCII address
    (SMTPUTF8) goes through the header registry, and the parse-back check
    stands guard over it.
    """
    if not (addr.isascii() and _ADDR_SPEC.fullmatch(addr)):
        local, at, domain = addr.rpartition("@")
        if not at or not local or not domain or any(c.isspace() for c in addr):
            raise ComposeError(f"{addr!r} is not an e-mail address")
        try:
            return Address(display_name=display, username=local, domain=domain)
        except (ValueError, IndexError) as err:
            raise ComposeError(f"{addr!r}: {err}") from None
    if not display:
        return addr
    if _PLAIN_TEXT.fullmatch(display) and "=?" not in display:
        if _ATOMS.fullmatch(display) and _fits(name, f"{display} <{addr}>"):
            return f"{display} <{addr}>"
        return _fold_words(name, formataddr((display, addr)))
    # Non-ASCII, control characters, or text that looks like an encoded word:
    # encoded words, which decode to text and never to syntax.
    return _fold_words(name, f"{_encoded(name, display)} <{addr}>")


def _fold_words(name: str, value: str) -> str:
    """``value`` folded at its spaces, each line within the policy's limit where a
    word allows.  Folding inside a quoted display name is allowed (RFC 5322 FWS)
    and unfolds to the same text, quotes and all.  A line never starts with an
    empty word: a blank continuation line could end the header block for some
    reader."""
    words = value.replace("\r\n ", " ").split(" ")
    lines: list[str] = []
    line = words[0]
    room = _FOLD_AT - len(name) - 2
    for word in words[1:]:
        if not word or len(line) + 1 + len(word) <= room:
            line += " " + word
            continue
        lines.append(line)
        room = _FOLD_AT - 1  # a continuation line starts with a space
        line = word
    lines.append(line)
    return "\r\n ".join(lines)


# --- the message ----------------------------------------------------------------


def _body(message: EmailMessage, text: str) -> None:
    """The plain-text part: 7bit when ASCII in short lines, else quoted-printable UTF-8
    (readable in any client, safe through any relay)."""
    ascii_short = text.isascii() and all(len(line) <= _FOLD_AT for line in text.splitlines())
    message.set_content(text, cte="7bit" if ascii_short else "quoted-printable")


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


@dataclass(frozen=True, slots=True)
class _Meant:
    """What the headers must read back as."""

    names: tuple[str, ...]
    sender: tuple[str, str]
    to: tuple[str, str]
    subject: str


def _check_wire(data: bytes, meant: _Meant) -> None:
    """Parse the bytes back; refuse them unless they say exactly what was meant."""
    head = data.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if len(line) > MAX_LINE:
            raise ComposeError(f"a header line is {len(line)} bytes long, over the limit of 998")
    parsed = BytesParser(policy=_READ_BACK).parsebytes(data, headersonly=True)
    names = tuple(parsed.keys())
    if names[: len(meant.names)] != meant.names or any(
        n.lower() in ("bcc", "cc", "to", "from", "subject", "resent-to", "resent-bcc")
        for n in names[len(meant.names) :]
    ):
        raise ComposeError("the headers would not read back as written; refusing to send")
    for header, (display, addr) in (("From", meant.sender), ("To", meant.to)):
        mailboxes: tuple[Address, ...] = tuple(getattr(parsed[header], "addresses", ()))
        # The display name is compared without its spaces: Python's parser (the
        # reader here) keeps the space between two encoded words in a name,
        # which RFC 2047 readers drop; what is at stake is the one address.
        if (
            len(mailboxes) != 1
            or mailboxes[0].addr_spec != addr
            or "".join(mailboxes[0].display_name.split()) != "".join(display.split())
        ):
            raise ComposeError(
                f"the {header} header would not read back as the one address {addr}; "
                "refusing to send"
            )
    if str(parsed["Subject"] or "") != meant.subject:
        raise ComposeError("the subject would not read back as written; refusing to send")


def compose(
    msg: PlannedMessage, rendered: RenderedLike, ctx: ComposeContext, at: datetime
) -> Outgoing:
    """Build the message for ``msg`` as sent at ``at`` (the Date header)."""
    roster, config = ctx.roster, ctx.config
    from_name, from_addr = sender(roster, config)
    from_name = from_name.strip()
    recommender = roster.recommenders_by_id.get(msg.recommender)
    to_name = recommender.name.strip() if recommender is not None else ""
    domain = domain_of(from_addr)
    thread = thread_of(msg, ctx.log, ctx.secret, domain)
    subject = rendered.subject.strip()
    if thread is not None and thread.subject is not None:
        subject = thread.subject
    _no_breaks("the subject", subject)
    _no_breaks("the recipient's name", to_name)
    _no_breaks("the sender's name", from_name)
    _no_breaks("the recipient's address", msg.to)

    mid = message_id(msg.key, ctx.secret, domain)
    message = EmailMessage(policy=POLICY)
    try:
        headers: list[tuple[str, str | Address]] = [
            ("From", mailbox_value("From", from_name, from_addr)),
            ("To", mailbox_value("To", to_name, msg.to)),
            ("Subject", text_value("Subject", subject)),
            ("Date", format_datetime(at.astimezone(roster.applicant.timezone))),
            ("Message-ID", mid),
        ]
        if thread is not None:
            references = _fold_words("References", " ".join(thread.references))
            headers += [("In-Reply-To", thread.in_reply_to), ("References", references)]
        for name, value in headers:
            if isinstance(value, str):
                message.set_raw(name, value)  # written as given: see text_value
            else:
                message[name] = value
        _body(message, rendered.body)
        if rendered.html:
            message.add_alternative(rendered.html, subtype="html")
        if msg.kind == "packet":
            for material in roster.applicant.materials:
                if material.path is not None:
                    _attach(message, material.path, ctx.read_bytes)
        data = message.as_bytes()
    except (UnicodeError, ValueError, TypeError) as err:
        # Text no encoding can carry (a lone surrogate), or a header the library
        # refuses: no retry can change that.
        raise ComposeError(f"the message cannot be encoded: {err}") from None
    meant = _Meant(
        names=tuple(name for name, _ in headers),
        sender=(from_name, from_addr),
        to=(to_name, msg.to),
        subject=subject,
    )
    _check_wire(data, meant)

    recipients = [msg.to]
    applicant = roster.applicant.email
    if config.smtp.bcc_self and applicant.lower() != msg.to.lower():
        recipients.append(applicant)
    return Outgoing(
        key=msg.key,
        message=message,
        data=data,
        message_id=mid,
        envelope_from=from_addr,
        recipients=tuple(recipients),
        subject=subject,
        to=msg.to,
    )


def wire_problem(
    msg: PlannedMessage, rendered: RenderedLike, roster: Roster, config: Config
) -> str | None:
    """Why ``msg`` could never be sent as rendered (for ``check``), or None.

    Pure: attachments are not read (``check`` reports a missing file on its own).
    """
    ctx = ComposeContext(roster, config, secret=b"check", read_bytes=lambda _path: b"")
    try:
        compose(msg, rendered, ctx, msg.send_at)
    except ComposeError as err:
        return str(err)
    return None


def summary_text(outgoing: Outgoing, missing: list[Path]) -> str:
    """The message as ``lormail preview`` shows it: headers decoded, the text part, extras."""
    message = outgoing.message
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
