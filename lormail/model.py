"""The trusted, frozen objects everything else works on.

The loaders (``roster.py``, ``config.py``) are the only code that builds these
from user input; nothing downstream re-validates them.  All instants are
timezone-aware; all offsets that make a nominal date are whole days.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

# The message kinds, in the order SPEC §3 lists them; that order also breaks
# ties between messages to one recipient at the same instant.
KINDS: tuple[str, ...] = (
    "request",
    "packet",
    "request_followup",
    "reminder",
    "thank_you",
    "decline_thanks",
    "outcome",
)
KIND_ORDER: Mapping[str, int] = {k: i for i, k in enumerate(KINDS)}
# Kinds that never move for ``min_gap`` (but count as a previous message).
GAP_EXEMPT: frozenset[str] = frozenset({"thank_you", "decline_thanks", "outcome"})

STATUSES = ("planned", "asked", "agreed", "declined")
OUTCOMES = (
    "pending",
    "interview",
    "waitlisted",
    "accepted",
    "matched",
    "rejected",
    "withdrawn",
)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Plan statuses (SPEC §6).
SCHEDULED = "scheduled"
DUE = "due"
SENT = "sent"
DRY_RUN = "dry-run"
FAILED = "failed"
SKIPPED = "skipped"
EXPIRED = "expired"
HELD = "held"  # by a reply or a bounce seen in the inbox (SPEC §8)
PLAN_STATUSES = (SCHEDULED, DUE, HELD, SENT, DRY_RUN, FAILED, SKIPPED, EXPIRED)


@dataclass(frozen=True, slots=True)
class Material:
    label: str
    path: Path | None = None  # attached to the packet
    url: str | None = None  # linked in the packet


@dataclass(frozen=True, slots=True)
class Applicant:
    name: str
    email: str
    timezone: ZoneInfo
    signature: str = ""
    materials: tuple[Material, ...] = ()


@dataclass(frozen=True, slots=True)
class Policy:
    """Timing policy: the roster's ``defaults`` merged with a recommender's overrides."""

    ask_lead: int = 42  # days
    reminders: tuple[int, ...] = (14, 7)  # days before the anchor, largest first
    min_gap: timedelta = timedelta(days=5)
    thank_you_delay: int = 1  # days
    window_start: time = time(9, 0)
    window_end: time = time(17, 0)
    send_days: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # date.weekday() numbers
    decline_thanks: bool = True
    notify_outcomes: frozenset[str] = frozenset({"interview", "accepted", "matched"})
    check_in_every: int = 90  # days; 0 = never
    followup_after: int = 7  # days after a sent request, while still planned
    reply_hold: timedelta = timedelta(days=7)  # a reply holds reminders this long (inbox)
    # Public holidays: a country code with an optional subdivision (US, US-CA,
    # DE-BY), "auto" (the country of the recipient's zone) or "none".
    holidays: str = "auto"


@dataclass(frozen=True, slots=True)
class Program:
    id: str
    name: str
    deadline: datetime  # the instant (aware); a date means 23:59:59 in `timezone`
    deadline_is_date: bool
    timezone: ZoneInfo
    portal: str | None = None
    outcome: str = "pending"
    outcome_on: date | None = None

    @property
    def deadline_date(self) -> date:
        """The deadline's calendar date in the program's own zone."""
        return self.deadline.astimezone(self.timezone).date()


@dataclass(frozen=True, slots=True)
class Unavailable:
    start: date  # inclusive
    end: date  # inclusive
    note: str = ""

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end


_UTC_ZONE = ZoneInfo("UTC")
_UNRESOLVED = datetime.min.replace(tzinfo=_UTC_ZONE)


@dataclass(frozen=True, slots=True)
class Letter:
    """One upload by a recommender, serving one program or several.

    The roster's own keys come first; the :class:`Roster` resolves the rest
    from its programs, so a letter always agrees with them: the deadline
    (``due``, else the earliest of its programs') with the zone its date is
    shown in, and the name messages use (``name``, else ``portal``, else the
    single program's name, else the key).
    """

    key: str  # the id, else the single program's id; the L of reminder:R:L:N
    letter_id: str | None = None
    submitted_on: date | None = None
    programs: tuple[str, ...] = ()  # Program ids, as listed; () = (key,)
    due: datetime | None = None  # its own deadline (a date-only due: in the applicant's zone)
    due_is_date: bool = False
    own_name: str | None = None  # the letter's ``name``
    own_portal: str | None = None  # the letter's ``portal``
    # Resolved by the Roster:
    deadline: datetime = _UNRESOLVED  # the instant (aware)
    deadline_is_date: bool = True  # a date-only deadline: shown as that date everywhere
    timezone: ZoneInfo = _UTC_ZONE  # the zone the deadline's date is read in
    name: str = ""
    portal: str | None = None  # its own, else the one portal all its programs share

    @property
    def program(self) -> str:
        """The first program: the only one of a single-program letter."""
        return self.programs[0] if self.programs else self.key

    @property
    def deadline_date(self) -> date:
        """The date the deadline states (in its own zone)."""
        return self.deadline.astimezone(self.timezone).date()


@dataclass(frozen=True, slots=True)
class Recommender:
    id: str
    name: str
    email: str
    timezone: ZoneInfo
    status: str  # one of STATUSES
    policy: Policy
    salutation: str = ""  # the loader fills it with `name` when absent
    title: str = ""
    relationship: str = ""
    ask_on: date | None = None
    ask_by_email: bool = False
    asked_on: date | None = None
    agreed_on: date | None = None
    declined_on: date | None = None
    waived: bool | None = None
    highlights: tuple[str, ...] = ()
    unavailable: tuple[Unavailable, ...] = ()
    letters: tuple[Letter, ...] = ()
    # The resolved public-holiday calendar: (country, subdivision or None),
    # or None when off (``holidays: none``, or a zone with no country).
    holidays: tuple[str, str | None] | None = None

    def letter(self, key: str) -> Letter | None:
        return next((lt for lt in self.letters if lt.key == key), None)


@dataclass(frozen=True, slots=True)
class Roster:
    applicant: Applicant
    defaults: Policy
    programs: tuple[Program, ...] = ()
    recommenders: tuple[Recommender, ...] = ()
    unavailable: tuple[Unavailable, ...] = ()  # ``defaults: unavailable``: for everyone
    path: Path | None = None
    programs_by_id: Mapping[str, Program] = field(default_factory=dict, compare=False)
    recommenders_by_id: Mapping[str, Recommender] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.programs_by_id and self.programs:
            object.__setattr__(self, "programs_by_id", {p.id: p for p in self.programs})
        if any(r.letters for r in self.recommenders):
            resolved = tuple(self._resolve(r) for r in self.recommenders)
            object.__setattr__(self, "recommenders", resolved)
            object.__setattr__(self, "recommenders_by_id", {})
        if not self.recommenders_by_id and self.recommenders:
            object.__setattr__(self, "recommenders_by_id", {r.id: r for r in self.recommenders})

    def _resolve(self, rec: Recommender) -> Recommender:
        """``rec`` with its letters' deadlines, zones and names taken from the programs."""
        letters = tuple(self._letter(lt) for lt in rec.letters)
        return rec if letters == rec.letters else replace(rec, letters=letters)

    def _letter(self, lt: Letter) -> Letter:
        ids = lt.programs or (lt.key,)
        progs = [self.programs_by_id[p] for p in ids if p in self.programs_by_id]
        if not progs:
            return lt
        first = min(progs, key=lambda p: (p.deadline, p.id))
        portals = {p.portal for p in progs}
        portal = lt.own_portal or (portals.pop() if len(portals) == 1 else None)
        single = first.name if len(progs) == 1 else None
        if lt.due is not None:
            zone = lt.due.tzinfo if isinstance(lt.due.tzinfo, ZoneInfo) else self.applicant.timezone
            deadline, is_date = lt.due, lt.due_is_date
        else:
            zone, deadline, is_date = first.timezone, first.deadline, first.deadline_is_date
        return replace(
            lt,
            programs=ids,
            deadline=deadline,
            deadline_is_date=is_date,
            timezone=zone,
            name=lt.own_name or lt.own_portal or single or portal or lt.key,
            portal=portal,
        )


# --- config -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str = "localhost"
    port: int = 465
    security: str = "ssl"  # ssl | starttls | none
    username: str = ""
    auth: str = "password"  # password | xoauth2 | none
    token_command: str | None = None
    from_addr: str = ""  # the `from` key: "Name <addr>"
    bcc_self: bool = False
    timeout: timedelta = timedelta(seconds=30)
    max_per_hour: int = 30


@dataclass(frozen=True, slots=True)
class FeedConfig:
    enabled: bool = True
    bind: str = "127.0.0.1"
    port: int = 8765


@dataclass(frozen=True, slots=True)
class CalendarConfig:
    file: Path | None = None
    alarms: tuple[timedelta, ...] = (timedelta(days=7), timedelta(days=1))
    include_messages: bool = True
    feed: FeedConfig = FeedConfig()


DEFAULT_EDIT_GRACE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class ImapConfig:
    """The ``imap:`` section (SPEC §8): where the inbox is read from, read-only."""

    host: str
    port: int = 993
    security: str = "ssl"  # ssl | starttls | none (loopback only)
    username: str = ""  # default: smtp.username, so one keyring entry serves both
    auth: str = "password"  # password | xoauth2 | none
    token_command: str | None = None
    folders: tuple[str, ...] = ("INBOX",)
    poll: timedelta = timedelta(minutes=5)  # when the server offers no IDLE
    portals: Path | None = None  # the user's own portal rules, absolute
    timeout: timedelta = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class Config:
    path: Path  # the config file itself
    roster: Path  # absolute
    templates: Path | None = None  # absolute folder of overrides, if any
    state_dir: Path | None = None  # absolute; None = $LORMAIL_STATE_DIR or platform dir
    dry_run: bool = True
    transport: str = "maildir"  # maildir | smtp
    maildir: Path = Path("outbox")  # absolute after loading
    smtp: SmtpConfig = SmtpConfig()
    calendar: CalendarConfig = CalendarConfig()
    # The daemon sends nothing an edit made due sooner than this after it (SPEC §7).
    edit_grace: timedelta = DEFAULT_EDIT_GRACE
    imap: ImapConfig | None = None  # None: lormail reads no mail


# --- state snapshot and plan -------------------------------------------------

# Send-log states (SPEC §4).
LOG_QUEUED = "queued"
LOG_SENDING = "sending"
LOG_SENT = "sent"
LOG_FAILED = "failed"
LOG_SKIPPED = "skipped"
LOG_DRY_RUN = "dry-run"
# Delivered into the local Maildir (transport maildir): it reached no recommender,
# so it never counts as sent once the transport is smtp (see Store.snapshot).
LOG_LOCAL = "local"


@dataclass(frozen=True, slots=True)
class LogEntry:
    """The send log's last word on one key, as the planner needs it."""

    key: str
    state: str  # one of the LOG_* states
    at: datetime  # when it was sent (sent) or last changed
    retry_at: datetime | None = None  # queued after a transient failure: not before this
    error: str | None = None
    # The address the message went to (sent) or was refused for (failed): a
    # failed message whose recommender's address has changed since goes again.
    to: str | None = None
    # The subject as it was sent (sent, local): shown as is, never rendered again.
    subject: str | None = None
    # The Message-ID it went with: a reminder that went in another's round
    # shares the round's.
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the planner may know of the past: the send log and first-seen instants.

    ``first_seen`` keys: ``asked:R``, ``agreed:R``, ``declined:R`` and
    ``outcome:P:OUTCOME``; values are the instants lormail first saw them.
    """

    log: Mapping[str, LogEntry] = field(default_factory=dict)
    first_seen: Mapping[str, datetime] = field(default_factory=dict)
    inbox: tuple[InboxEvent, ...] = ()  # what the inbox told (SPEC §8), oldest first


EMPTY_SNAPSHOT = Snapshot()


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    key: str
    kind: str
    recommender: str  # Recommender.id
    to: str
    send_at: datetime  # UTC; for sent messages, when it was sent
    expires_at: datetime | None  # UTC; None = never
    status: str  # one of PLAN_STATUSES
    reason: str
    # The programs the message is about: the reminded letters' (reminder), the
    # covered letters' (thank_you), the outcomes' programs (outcome), the open
    # letters' (request, packet).  Sorted by deadline, then id.
    programs: tuple[str, ...] = ()
    reminder_number: int | None = None
    final_reminder: bool = False
    outcomes: tuple[tuple[str, str], ...] = ()  # (program id, outcome), sorted
    # The letters the message is about (Letter.key), by deadline then key:
    # a reminder round's letters, a thank-you's covered letters.
    letters: tuple[str, ...] = ()
    # A reminder round: every reminder key it stands for (its own first).
    # When it goes, each of them is logged as sent.
    joined: tuple[str, ...] = ()
    # A reminder to someone asked in person who has had no mail from lormail.
    first_contact: bool = False
    # request_followup: the date (recipient's zone) the request went.
    request_date: date | None = None
    subject: str | None = None  # a sent message: the subject as logged
    # Held with no end in time (a bounce, until the address changes): the JSON's
    # send_at is null; ``send_at`` keeps the time it would have had.
    held_open: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    now: datetime
    messages: tuple[PlannedMessage, ...]
    # First-seen facts the planner assumed (with `now`) because the snapshot
    # lacked them; commands that own the state persist them.
    observed: Mapping[str, datetime] = field(default_factory=dict)


class EventStamp(NamedTuple):
    """A calendar event's last published content hash, SEQUENCE and DTSTAMP."""

    hash: str
    sequence: int
    stamp: datetime


# --- inbox (SPEC §8) -----------------------------------------------------------

INBOX_KINDS = ("reply", "auto_reply", "bounce", "portal", "unrelated")
DETAIL_LIMIT = 100  # characters of an event's detail, the most the state keeps


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """What one incoming message means (SPEC §8); only this is ever stored, never a body."""

    kind: str  # one of INBOX_KINDS
    message_id: str | None
    at: datetime | None  # UTC; the message's Date, else when the server received it
    sender: str  # the From address, lower case ("" when there is none)
    recommender: str | None = None  # Recommender.id
    letter: str | None = None  # the letter's key
    until: date | None = None  # auto_reply: the day they are back
    detail: str = ""
    file: str | None = None  # where it was read from: a file, or an IMAP folder and UID
    folder: str | None = None
    uid: int | None = None
    address: str | None = None  # bounce: the address that failed
    entry: str | None = None  # digest of the recommender's roster entry when it was recorded
