"""The inbox's part of the state: events once per Message-ID, folder marks, lormail's own ids."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from lormail.edge import inbox_store
from lormail.edge.inbox_store import FolderMark
from lormail.edge.logrows import Outbound
from lormail.edge.store import Store
from lormail.model import InboxEvent

AT = datetime(2026, 12, 3, 15, 2, tzinfo=UTC)


def event(mid: str | None, folder: str, uid: int, kind: str = "reply") -> InboxEvent:
    return InboxEvent(
        kind=kind,
        message_id=mid,
        at=AT,
        sender="ejohnson@hospital.example.org",
        recommender="johnson" if kind != "unrelated" else None,
        until=date(2027, 1, 12) if kind == "auto_reply" else None,
        detail="x" * 150,
        folder=folder,
        uid=uid,
        entry="0123456789abcdef",
    )


def test_events_once_per_message_id_and_marks_per_folder(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        assert inbox_store.folder_marks(store) == {}
        added = inbox_store.add_events(
            store,
            {"INBOX": FolderMark(7, 2)},
            [event("<a@x>", "INBOX", 1), event(None, "INBOX", 2, "auto_reply")],
        )
        assert len(added) == 2
        # The same message in Gmail's "All Mail", and a list mail: one new row.
        again = inbox_store.add_events(
            store,
            {"[Gmail]/All Mail": FolderMark(9, 40)},
            [event("<a@x>", "[Gmail]/All Mail", 40), event("<b@x>", "INBOX", 3, "unrelated")],
        )
        assert [e.message_id for e in again] == ["<b@x>"]
        assert inbox_store.folder_marks(store) == {
            "INBOX": FolderMark(7, 2),
            "[Gmail]/All Mail": FolderMark(9, 40),
        }
        stored = inbox_store.events(store)  # not the unrelated one
    assert [(e.kind, e.message_id, e.folder, e.uid) for e in stored] == [
        ("reply", "<a@x>", "INBOX", 1),
        ("auto_reply", None, "INBOX", 2),
    ]
    assert stored[1].until == date(2027, 1, 12)
    assert stored[0].detail == "x" * 99 + "…"
    assert stored[0].at == AT and stored[0].entry == "0123456789abcdef"


def test_sent_message_ids_are_what_was_delivered(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        for key, mid in (("packet:johnson", "<p@me>"), ("reminder:patel:amcas:1", "<r@me>")):
            out = Outbound(key, key.split(":")[0], key.split(":")[1], mid, "x@y", "Subject")
            store.mark_sending(out, AT)
        store.mark_sent("packet:johnson", AT, "250 ok")
        assert inbox_store.sent_message_ids(store) == {"<p@me>": "johnson"}


def test_a_mark_never_moves_back_within_one_uidvalidity(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        inbox_store.add_events(store, {"INBOX": FolderMark(7, 9)}, [])
        inbox_store.add_events(store, {"INBOX": FolderMark(7, 4)}, [])  # a slower scan
        assert inbox_store.folder_marks(store) == {"INBOX": FolderMark(7, 9)}
        inbox_store.add_events(store, {"INBOX": FolderMark(8, 2)}, [])  # a new UIDVALIDITY
        assert inbox_store.folder_marks(store) == {"INBOX": FolderMark(8, 2)}
