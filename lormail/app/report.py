"""What one send batch did, key by key: the tally kept while it runs, and the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class SendReport:
    """What one :func:`send_due` call did, key by key."""

    now: datetime
    dry_run: bool
    sent: tuple[str, ...] = ()  # to the recipient, or into the local Maildir
    # Of those sent, the ones that went into the local Maildir (reaching nobody).
    local: tuple[str, ...] = ()
    dry_runs: tuple[str, ...] = ()
    retrying: tuple[str, ...] = ()  # queued after a transient failure (or an outage)
    deferred: tuple[str, ...] = ()  # held back by smtp.max_per_hour
    failed: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # expired while waiting to be retried
    recovered: tuple[str, ...] = ()  # found in `sending` at start-up
    errors: tuple[str, ...] = ()  # distinct problems, one line each
    next_retry: datetime | None = None
    busy: bool = False  # another lormail holds the send lock; nothing was done
    stopped: bool = False  # a stop request ended the batch early

    @property
    def exit_code(self) -> int:
        """0 when everything due went (or was dry-run / held by the rate limit), else 1."""
        return 1 if (self.failed or self.retrying or self.errors) else 0


@dataclass
class Tally:
    sent: list[str] = field(default_factory=list)
    local: list[str] = field(default_factory=list)
    dry_runs: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    retry_times: list[datetime] = field(default_factory=list)
    stopped: bool = False

    def error(self, text: str) -> None:
        if text not in self.errors:
            self.errors.append(text)

    def report(self, now: datetime, dry_run: bool) -> SendReport:
        return SendReport(
            now=now,
            dry_run=dry_run,
            sent=tuple(self.sent),
            local=tuple(self.local),
            dry_runs=tuple(self.dry_runs),
            retrying=tuple(self.retrying),
            deferred=tuple(self.deferred),
            failed=tuple(self.failed),
            skipped=tuple(self.skipped),
            recovered=tuple(self.recovered),
            errors=tuple(self.errors),
            next_retry=min(self.retry_times) if self.retry_times else None,
            stopped=self.stopped,
        )
