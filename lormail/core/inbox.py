"""What an incoming message means: roster + lormail's Message-IDs + one message → one event.

Pure: no clock, disk or network; the same inputs always give the same event.
Each message is exactly one of the kinds of SPEC §8, decided in this order:

1. a mailing-list message (``List-Id``) is ``unrelated``, whoever sent it;
2. a delivery status notification is a ``bounce`` when mail to a recommender
   failed permanently (5.x.x), else ``unrelated`` (a delay, 4.x.x, is not a
   bounce); it is never an auto-reply, though real ones carry ``Auto-Submitted``;
3. the applicant's own mail (a ``bcc_self`` copy) is ``unrelated``;
4. an automatic reply (RFC 3834 and its cousins) from or for a recommender is
   an ``auto_reply``, with ``until`` when its text names the day they are back;
5. a portal's "letter received" mail, by the portal rules, is ``portal``;
6. any other mail from a recommender's address, or in the thread of a message
   lormail sent, is a ``reply``;
7. everything else is ``unrelated``.

Bounces are recognised by RFC 3464 (read here with the ``email`` package) and
by ``flufl.bounce``, which knows the non-standard formats of many MTAs (Exim,
qmail, old Exchange …).  Return dates are found by ``dateparser`` in the
languages it knows, right after phrases such as "back on" or "bis".
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage, Message
from email.utils import getaddresses, parsedate_to_datetime
from zoneinfo import ZoneInfo

from lormail.core.instants import utc_text
from lormail.model import DETAIL_LIMIT, InboxEvent, Letter, Recommender, Roster

__all__ = [
    "TEXT_LIMIT",
    "Known",
    "PortalRule",
    "body_text",
    "classify",
    "clip",
    "event_json",
    "return_date",
]

TEXT_LIMIT = 64 * 1024  # characters of text read from a message (SPEC §8: at most 64 KB)


@dataclass(frozen=True, slots=True)
class PortalRule:
    """One portal's "letter received" mail (``lormail/data/portals.yaml`` and the user's file)."""

    name: str  # shown in the event's detail
    senders: tuple[str, ...] = ()  # domains; empty: any sender
    local_parts: tuple[re.Pattern[str], ...] = ()  # the sender's local part must match one
    portals: tuple[str, ...] = ()  # words naming the portal in a program's portal or name
    received: tuple[re.Pattern[str], ...] = ()  # subject or text saying a letter arrived


@dataclass(frozen=True, slots=True)
class Known:
    """What classification knows besides the message."""

    roster: Roster
    sent: Mapping[str, str]  # Message-ID lormail delivered → Recommender.id
    rules: tuple[PortalRule, ...] = ()
    own: frozenset[str] = frozenset()  # the applicant's other addresses (smtp.from), lower case


def clip(text: str, limit: int = DETAIL_LIMIT) -> str:
    """One line of at most ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


# --- reading the message ---------------------------------------------------------


def _header(msg: Message, name: str) -> str | None:
    """A header's text, or None; a malformed header reads as its raw text."""
    try:
        value = msg.get(name)
    except Exception:  # the header parsers' failures are many and undocumented
        raw = msg.get_all(name, failobj=[]) if hasattr(msg, "get_all") else []
        value = str(raw[0]) if raw else None
    return None if value is None else str(value)


def _addresses(msg: Message, name: str) -> list[str]:
    values = []
    try:
        values = [str(v) for v in msg.get_all(name, failobj=[])]
    except Exception:
        return []
    return [addr.strip().lower() for _, addr in getaddresses(values) if "@" in addr]


def _message_ids(text: str | None) -> list[str]:
    return re.findall(r"<[^<>\s]+>", text or "")


def _date(msg: Message, received: datetime | None) -> datetime | None:
    text = _header(msg, "Date")
    if text:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None and when.tzinfo is not None:
            return when.astimezone(UTC)
    return received.astimezone(UTC) if received is not None else None


def _part_text(part: Message) -> str:
    try:
        if isinstance(part, EmailMessage):
            content = part.get_content()
            if isinstance(content, str):
                return content
    except Exception:
        pass  # an unknown charset or a broken transfer encoding: decode by hand below
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    try:
        return payload.decode(part.get_content_charset() or "utf-8", "replace")
    except (LookupError, ValueError):  # a charset no codec knows (".utf-8", "utf\0-8")
        return payload.decode("utf-8", "replace")


_TAG = re.compile(r"<(?:script|style)\b.*?</(?:script|style)\s*>|<[^>]*>", re.S | re.I)


def body_text(msg: Message) -> str:
    """The message's readable text: its text/plain parts, else its text/html ones, no
    attachments, no enclosed messages; at most :data:`TEXT_LIMIT` characters."""
    plain: list[str] = []
    markup: list[str] = []
    for part in _text_parts(msg):
        if part.get_content_subtype() == "plain":
            plain.append(_part_text(part))
        elif part.get_content_subtype() == "html":
            markup.append(html.unescape(_TAG.sub(" ", _part_text(part))))
    return "\n".join(plain or markup)[:TEXT_LIMIT]


def _text_parts(msg: Message) -> Iterator[Message]:
    if msg.get_content_maintype() == "multipart":
        parts = msg.get_payload()
        if isinstance(parts, list):
            for part in parts:
                if isinstance(part, Message):
                    yield from _text_parts(part)
        return
    if msg.get_content_maintype() == "text" and msg.get_content_disposition() != "attachment":
        yield msg


# --- bounces -------------------------------------------------------------------

_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")


@dataclass(frozen=True, slots=True)
class _Failure:
    address: str
    status: str  # "5.1.1", or "" when the notice gives none
    diagnostic: str


def _dsn_recipients(msg: Message) -> tuple[list[_Failure], list[_Failure]] | None:
    """RFC 3464: (permanent failures, delays), or None when ``msg`` is no such report."""
    if msg.get_content_type() != "multipart/report":
        return None
    if (msg.get_param("report-type") or "").lower() != "delivery-status":  # type: ignore[union-attr]
        return None
    failed: list[_Failure] = []
    delayed: list[_Failure] = []
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        for block in blocks if isinstance(blocks, list) else []:
            if not isinstance(block, Message):
                continue
            recipient = block.get("Final-Recipient") or block.get("Original-Recipient")
            if not recipient:
                continue
            address = str(recipient).partition(";")[2].strip().strip("<>").lower()
            action = str(block.get("Action", "")).strip().lower()
            status = str(block.get("Status", "")).strip()
            diagnostic = str(block.get("Diagnostic-Code", "")).partition(";")[2]
            found = _Failure(address, status, " ".join(diagnostic.split()))
            if action == "failed" or (not action and status.startswith("5")):
                failed.append(found)
            elif action == "delayed" or status.startswith("4"):
                delayed.append(found)
    return failed, delayed


def _flufl_failures(msg: Message, text: str) -> tuple[list[_Failure], list[_Failure]]:
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector tripping over an odd message finds nothing
        return [], []
    status = _STATUS.search(text)
    code = status.group() if status is not None and status.group(1) == "5" else ""
    line = next((ln.strip() for ln in text.splitlines() if code and code in ln), "")

    def decoded(addresses: frozenset[bytes]) -> list[str]:
        return sorted(a.decode("utf-8", "replace").lower() for a in addresses)

    return (
        [_Failure(a, code, line) for a in decoded(permanent)],
        [_Failure(a, "", "") for a in decoded(temporary)],
    )


def _why(failure: _Failure) -> str:
    """ "5.1.1 User unknown": the status, then the server's words without its reply code."""
    words = re.sub(r"^\d{3}[ -]", "", failure.diagnostic)
    if failure.status and not words.startswith(failure.status):
        words = f"{failure.status} {words}".strip()
    return words or "no reason given"


# --- auto-replies --------------------------------------------------------------

_OOO_SUBJECT = re.compile(
    r"^\s*(?:(?:re|aw|antw|réf|ré|tr|wg|fw)\s*:\s*)*"
    r"(?:out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?reply|auto:|autoreply"
    r"|automatische antwort|abwesenheitsnotiz|réponse automatique|absence du bureau"
    r"|respuesta automática|fuera de la oficina|risposta automatica|fuori ufficio)",
    re.I,
)


def _is_auto_reply(msg: Message, subject: str) -> bool:
    submitted = _header(msg, "Auto-Submitted")
    if submitted is not None:
        token = re.split(r"[\s;(]", submitted.strip(), maxsplit=1)[0].lower()
        if token and token != "no":
            return True
    if _header(msg, "X-Autoreply") is not None or _header(msg, "X-Autorespond") is not None:
        return True
    if (_header(msg, "Precedence") or "").strip().lower() == "auto_reply":
        return True
    return bool(_OOO_SUBJECT.match(subject))


# Phrases after which the day they are back follows, by language.  Those that
# name the return come first: "bis 7. Januar … ab dem 8. Januar wieder" means
# back on the 8th.  ``+1`` marks phrases whose date is the last day away.
_BACK: tuple[tuple[str, re.Pattern[str], int], ...] = (
    (
        "en",
        re.compile(
            r"\b(?:back|return(?:ing|s)?|in the office)(?: to the office)?(?: on| by| from)?\s",
            re.I,
        ),
        0,
    ),
    (
        "de",
        re.compile(r"\b(?:zurück|wieder im büro)(?: am| ab)?\s|\bab (?:dem |den )?(?=\d)", re.I),
        0,
    ),
    (
        "fr",
        re.compile(
            r"\b(?:de retour|retour|au bureau)(?: le| à partir du)?\s|\bà partir du\s", re.I
        ),
        0,
    ),
    ("en", re.compile(r"\b(?:through|thru|until and including)\s", re.I), 1),
    ("de", re.compile(r"\bbis (?:einschließlich|einschl\.|inklusive|inkl\.)\s", re.I), 1),
    ("fr", re.compile(r"\bjusqu'(?:au|à)\s(?=.{0,30}\binclus)", re.I), 1),
    ("en", re.compile(r"\b(?:until|till|til)\s", re.I), 0),
    ("de", re.compile(r"\bbis (?:zum |zu |am )?", re.I), 0),
    ("fr", re.compile(r"\bjusqu'(?:au|à)\s", re.I), 0),
)
_WINDOW = 40  # characters after a phrase in which its date must begin


def return_date(text: str, sent: datetime, zone: ZoneInfo) -> date | None:
    """The day they are back, as the text names it: the next such date after ``sent``."""
    from dateparser.search import search_dates

    local = sent.astimezone(zone).replace(tzinfo=None)
    lines = [ln for ln in text[:TEXT_LIMIT].splitlines() if not ln.lstrip().startswith(">")]
    body = " ".join(" ".join(lines).split())
    for language, phrase, extra in _BACK:
        for match in phrase.finditer(body):
            window = body[match.end() : match.end() + _WINDOW]
            order = "MDY" if language == "en" and zone.key.startswith("America/") else "DMY"
            settings = {
                "PREFER_DATES_FROM": "future",
                "RELATIVE_BASE": local,
                "DATE_ORDER": order,
                "REQUIRE_PARTS": ["day", "month"],
            }
            try:
                found = search_dates(window, languages=[language], settings=settings)
            except Exception:  # dateparser's own failures on odd text: no date here
                found = None
            for said, when in found or ():
                start = window.find(said)
                if start > 12 or not any(c.isdigit() for c in said):
                    continue  # not the date this phrase introduces
                back = when.date() + timedelta(days=extra)
                if back > local.date():
                    return back
                break
    return None


# --- portals -------------------------------------------------------------------

_TITLES = frozenset({"dr", "prof", "professor", "mr", "mrs", "ms", "mx", "md", "phd", "sir"})


def _name_forms(name: str) -> list[str]:
    words = [w for w in re.split(r"[\s,]+", name) if w.rstrip(".").lower() not in _TITLES]
    if not words:
        return []
    forms = [" ".join(words)]
    if len(words) > 1:
        forms.append(f"{words[-1]}, {' '.join(words[:-1])}")
    return forms


def _mentions(text: str, phrase: str) -> bool:
    pattern = r"(?<!\w)" + r"\s+".join(re.escape(w) for w in phrase.split()) + r"(?!\w)"
    return re.search(pattern, text, re.I) is not None


def _sender_matches(rule: PortalRule, sender: str) -> bool:
    local, _, domain = sender.rpartition("@")
    if rule.senders and not any(domain == d or domain.endswith("." + d) for d in rule.senders):
        return False
    return not rule.local_parts or any(p.fullmatch(local) for p in rule.local_parts)


def _letter_key(letter: Letter) -> str:
    return letter.key


def _portal_names(roster: Roster, letter: Letter) -> str:
    """The letter's portal and name, and each of its programs' portal and name."""
    words = [letter.portal or "", letter.name]
    for pid in letter.programs or (letter.key,):
        program = roster.programs_by_id.get(pid)
        if program is not None:
            words += [program.portal or "", program.name]
    return " ".join(w for w in words if w)


def _portal_letter(
    known: Known, rule: PortalRule, text: str
) -> tuple[Recommender, Letter | None] | None:
    """The recommender (and letter) a portal mail is about: by letter_id, else by name."""
    roster = known.roster
    for r in roster.recommenders:
        for letter in r.letters:
            if letter.letter_id and _mentions(text, letter.letter_id):
                return r, letter
    named = [r for r in roster.recommenders if any(_mentions(text, f) for f in _name_forms(r.name))]
    candidates = [(r, letter) for r in named for letter in r.letters]
    if len(candidates) > 1 and rule.portals:
        candidates = [
            (r, letter)
            for r, letter in candidates
            if any(_mentions(_portal_names(roster, letter), p) for p in rule.portals)
        ] or candidates
    if len(candidates) > 1:
        by_program = [
            (r, letter)
            for r, letter in candidates
            if any(
                (p := roster.programs_by_id.get(pid)) is not None and _mentions(text, p.name)
                for pid in letter.programs or (letter.key,)
            )
        ]
        candidates = by_program or candidates
    if len({r.id for r, _ in candidates}) != 1:
        return (named[0], None) if len(named) == 1 else None
    return candidates[0] if len(candidates) == 1 else (candidates[0][0], None)


# --- the classifier --------------------------------------------------------------


def classify(known: Known, msg: Message, received: datetime | None = None) -> InboxEvent:
    """The one event ``msg`` is (SPEC §8); ``received`` stands in for a missing Date."""
    roster = known.roster
    senders = _addresses(msg, "From")
    sender = senders[0] if senders else ""
    subject = " ".join((_header(msg, "Subject") or "").split())
    message_id = next(iter(_message_ids(_header(msg, "Message-ID"))), None)
    when = _date(msg, received)

    def event(kind: str, detail: str, r: Recommender | None = None, **kw: object) -> InboxEvent:
        return InboxEvent(
            kind=kind,
            message_id=message_id,
            at=when,
            sender=sender,
            recommender=r.id if r is not None else None,
            detail=clip(detail),
            **kw,  # type: ignore[arg-type]
        )

    if _header(msg, "List-Id") is not None:
        return event("unrelated", f"a mailing list message: {subject}")
    text = body_text(msg)
    by_address = {r.email.lower(): r for r in roster.recommenders}
    dsn = _dsn_recipients(msg)
    failed, delayed = dsn if dsn is not None else _flufl_failures(msg, text)
    if dsn is not None and not failed and not delayed:
        failed, delayed = _flufl_failures(msg, text)
    if dsn is not None or failed or delayed:
        for failure in failed:
            r = by_address.get(failure.address)
            if r is not None:
                why = _why(failure)
                detail = f"{r.name}'s address bounced: {why}"
                return event("bounce", detail, r, address=failure.address)
        if failed:
            return event("unrelated", f"a bounce for {failed[0].address}, not a recommender")
        if delayed:
            code = f" ({delayed[0].status})" if delayed[0].status else ""
            return event(
                "unrelated", f"delivery to {delayed[0].address} delayed{code}, not a bounce"
            )
        return event("unrelated", f"a delivery report with no failure: {subject}")
    if message_id in known.sent:
        return event("unrelated", f"your own copy: {subject}")
    if sender and (sender == roster.applicant.email.lower() or sender in known.own):
        return event("unrelated", f"your own message: {subject}")
    thread = [
        known.sent[i]
        for i in _message_ids(_header(msg, "In-Reply-To"))
        + _message_ids(_header(msg, "References"))
        if i in known.sent
    ]
    r = by_address.get(sender) or next(
        (roster.recommenders_by_id[rid] for rid in thread if rid in roster.recommenders_by_id),
        None,
    )
    if _is_auto_reply(msg, subject):
        if r is None:
            return event("unrelated", f"an automatic reply from {sender or 'nobody'}: {subject}")
        until = return_date(text, when, r.timezone) if when is not None else None
        if until is None:
            return event("auto_reply", f"automatic reply from {r.name}, no return date", r)
        shown = f"{until:%a} {until.day} {until:%b}"
        return event("auto_reply", f"{r.name} is away until {shown}", r, until=until)
    for rule in known.rules:
        haystack = f"{subject}\n{text}"
        if not _sender_matches(rule, sender) or not any(p.search(haystack) for p in rule.received):
            continue
        found = _portal_letter(known, rule, haystack)
        if found is None:
            return event("unrelated", f"{rule.name}: a letter from someone not in the roster")
        who, letter = found
        if letter is None:
            return event(
                "portal", f"{rule.name}: a letter from {who.name} (which one is unclear)", who
            )
        key = _letter_key(letter)
        return event(
            "portal", f"{rule.name}: {who.name}'s letter ({key}) received", who, letter=key
        )
    if r is not None:
        if by_address.get(sender) is r:
            return event("reply", f"{r.name} replied: {subject}", r)
        return event("reply", f"{sender} replied for {r.name}: {subject}", r)
    return event("unrelated", f"not from a recommender: {subject}")


def event_json(e: InboxEvent) -> dict[str, object]:
    """The event as SPEC §8's JSON object; outside tools rely on these names."""
    return {
        "file": e.file,
        "uid": e.uid,
        "folder": e.folder,
        "message_id": e.message_id,
        "date": utc_text(e.at),
        "from": e.sender,
        "kind": e.kind,
        "recommender": e.recommender,
        "letter": e.letter,
        "until": e.until.isoformat() if e.until else None,
        "detail": e.detail,
    }
