"""Publishing the calendar: build it, write it atomically, keep the event stamps.

The stamps are stored only after the bytes were published, so a failed write
leaves the next build seeing those events as changed.  ``ics`` and the daemon
share it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from lormail.core.calendar import Built, build_calendar
from lormail.edge import files, inbox_store
from lormail.edge.store import Store
from lormail.errors import EXIT_RUNTIME, LormailError, Problem
from lormail.model import CalendarConfig, Plan, Roster


@contextlib.contextmanager
def publishing(
    roster: Roster,
    plan: Plan,
    config: CalendarConfig,
    state_dir: Path,
    now: datetime,
) -> Iterator[Built]:
    """Build the calendar and give it to the caller; then store the changed stamps.

    The inbox's recorded events come from the same state, so the calendar
    tells of the replies and bounces the plan holds messages for.

    The stamps are stored only after the caller has published the bytes: if
    that fails, the next build still sees those events as changed and stamps
    them again.
    """
    with Store.open(state_dir) as store:
        stamps = store.event_stamps()
        built = build_calendar(roster, plan, stamps, config, now, inbox_store.events(store))
        yield built
        store.save_event_stamps(built.changed)


def publish(
    roster: Roster,
    plan: Plan,
    config: CalendarConfig,
    state_dir: Path,
    now: datetime,
    output: Path | None = None,
) -> bytes:
    """Build the calendar, write it to ``output`` (if any), then store the changed stamps."""
    with publishing(roster, plan, config, state_dir, now) as built:
        if output is not None:
            write_atomic(output, built.data)
    return built.data


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` all at once (new files 0600); one clear error."""
    path = path.expanduser()
    try:
        files.write_atomic(path, data)
    except OSError as err:
        raise _cannot_write(path, err) from None


def _cannot_write(path: Path, err: OSError) -> LormailError:
    return LormailError(
        [Problem(f"{path}: cannot write the calendar: {err.strerror or err}")],
        exit_code=EXIT_RUNTIME,
    )
