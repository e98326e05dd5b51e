"""``lormail preview``: a planned message as it would be sent, with the real Message-ID.

Reads the state (for the Message-ID secret and threading) but never creates it.
"""

from __future__ import annotations

from pathlib import Path

from lormail.app.context import App
from lormail.core.compose import ComposeContext, RenderedLike, compose, summary_text
from lormail.edge.files import read_attachment
from lormail.model import PlannedMessage


def preview_text(app: App, msg: PlannedMessage, rendered: RenderedLike) -> str:
    """The message as it would be sent, for ``lormail preview``.

    Reads the state (for the Message-ID secret and threading) but never creates
    it: with no state yet, the Message-ID shown is a stand-in.
    """
    import secrets as _secrets

    from lormail.edge.statedir import peek_message_id_secret

    secret = peek_message_id_secret(app.state_dir())
    missing: list[Path] = []

    def read(path: Path) -> bytes:
        try:
            return read_attachment(path)
        except OSError:
            missing.append(path)
            return b""

    ctx = ComposeContext(
        roster=app.roster(),
        config=app.config(),
        secret=secret or _secrets.token_bytes(32),
        log=app.snapshot().log,
        read_bytes=read,
    )
    # Dated as it will be: at its planned time (or now, for one already due).
    outgoing = compose(msg, rendered, ctx, max(msg.send_at, app.now()))
    text = summary_text(outgoing, missing)
    if secret is None:
        text = text.replace(
            f"Message-ID: {outgoing.message_id}", "Message-ID: (made at the first send)"
        )
    return text
