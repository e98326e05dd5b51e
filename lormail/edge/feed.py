"""The calendar feed: a small HTTP server, and the secret token in its URL.

SPEC §5.  :class:`FeedServer` serves one document, ``GET``/``HEAD
/<token>/lormail.ics``, from memory (the daemon calls :meth:`FeedServer.update`
once per re-plan), with a strong ETag and ``304`` on ``If-None-Match``; and
``GET /healthz`` with the daemon's health as JSON.  Anything else — another
path, a wrong token, another method, a malformed or over-long request — gets
``404`` with an empty body and nothing that names the server.

It is :class:`http.server.ThreadingHTTPServer`: the standard library, one
thread per connection, so a client that connects and says nothing holds only
its own thread until its socket times out.  A feed has a handful of clients
(the user's calendar apps); asyncio would buy nothing here but a hand-written
HTTP parser.  Connections beyond :attr:`FeedServer.max_clients` are closed at
once, so a flood cannot exhaust threads.

The token (≥ 128 random bits) lives in the state dir in a 0600 file; the
functions at the bottom create, read and rotate it.  The token is never
logged: paths are logged as ``/<token>/lormail.ics``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import socket
import socketserver
import threading
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lormail.core.instants import utc_text
from lormail.edge.files import ensure_private_dir, write_atomic

log = logging.getLogger("lormail.feed")

FEED_NAME = "lormail.ics"
TOKEN_FILE = "feed-token"
CLIENT_TIMEOUT = 10.0  # seconds a client may stay silent mid-request
MAX_CLIENTS = 64
IDLE_POLL = 3600.0  # seconds serve_forever's select() sleeps; stop() wakes it sooner
# The standard library accepts request lines up to 64 KiB; a feed URL is
# under 100 bytes, so anything near this is garbage.
MAX_REQUEST_LINE = 2048
_REASONS = {200: "OK", 304: "Not Modified"}


@dataclass(frozen=True, slots=True)
class Health:
    """What ``/healthz`` reports; the daemon sets it after each check."""

    status: str = "starting"
    last_check: datetime | None = None
    next_send: datetime | None = None

    def to_json(self) -> bytes:
        body = {
            "status": self.status,
            "last_check": utc_text(self.last_check),
            "next_send": utc_text(self.next_send),
        }
        return json.dumps(body, sort_keys=True).encode() + b"\n"


@dataclass(frozen=True, slots=True)
class _Document:
    body: bytes
    etag: str  # quoted, strong


def _document(body: bytes) -> _Document:
    return _Document(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def etag_matches(header: str, etag: str) -> bool:
    """Does an ``If-None-Match`` value match ``etag``?  Weak comparison (RFC 9110 §13.1.2)."""
    header = header.strip()
    if header == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(c.strip().removeprefix("W/") == bare for c in header.split(","))


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: calendar apps poll repeatedly
    # Without TCP_NODELAY a keep-alive client waits out its delayed ACK
    # (40 ms) on every small reply.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.client_timeout)

    def handle_one_request(self) -> None:
        # The stdlib reads up to 64 KiB of request line; peek at a shorter
        # limit first so an over-long line is refused without echoing it.
        try:
            line = self.rfile.readline(MAX_REQUEST_LINE + 1)
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        if not line:
            self.close_connection = True
            return
        if len(line) > MAX_REQUEST_LINE:
            self.requestline = ""
            self.request_version = "HTTP/1.1"
            self.command = ""
            self._not_found()
            self.close_connection = True
            return
        self.raw_requestline = line
        try:
            if not self.parse_request():  # reads the headers; errors went to send_error
                return
            if self.command in ("GET", "HEAD"):
                self._get()
            else:
                self._not_found()
            self.wfile.flush()
        except (TimeoutError, ConnectionError):
            self.close_connection = True

    def _get(self) -> None:
        # The target exactly as sent (self.path has "//" collapsed), without a
        # query string, never percent-decoded: only the one exact path matches.
        words = self.requestline.split()
        path = words[1].split("?", 1)[0] if len(words) > 1 else ""
        if path == "/healthz":
            self._send(200, "application/json", self.server.health.to_json(), None)
            log.debug("%s /healthz 200", self.command)
            return
        token = self.server.token_bytes
        parts = path.split("/")
        if (
            len(parts) == 3
            and parts[0] == ""
            and parts[2] == FEED_NAME
            and hmac.compare_digest(parts[1].encode("latin-1", "replace"), token)
        ):
            doc = self.server.document
            inm = self.headers.get("If-None-Match")
            if inm is not None and etag_matches(inm, doc.etag):
                self._send(304, None, b"", doc.etag)
                log.debug("%s /<token>/%s 304", self.command, FEED_NAME)
            else:
                self._send(200, "text/calendar; charset=utf-8", doc.body, doc.etag)
                log.debug("%s /<token>/%s 200", self.command, FEED_NAME)
            return
        self._not_found()

    def _send(self, code: int, ctype: str | None, body: bytes, etag: str | None) -> None:
        """Status, headers and body in one write: with TCP_NODELAY, one segment
        train per reply instead of a headers packet and a body packet."""
        lines = [
            f"{self.protocol_version} {code} {_REASONS[code]}",
            f"Date: {self.date_time_string()}",
        ]
        if ctype is not None:
            lines += [f"Content-Type: {ctype}", f"Content-Length: {len(body)}"]
        if etag is not None:
            lines.append(f"ETag: {etag}")
        lines += ["Cache-Control: no-cache", "X-Content-Type-Options: nosniff", "", ""]
        # HTTP/0.9 has neither status line nor headers.
        head = b"" if self.request_version == "HTTP/0.9" else "\r\n".join(lines).encode()
        if code == 304 or self.command == "HEAD":
            body = b""
        self.wfile.write(head + body)

    def _not_found(self) -> None:
        self.send_response_only(404)
        self.send_header("Content-Length", "0")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        log.debug("%s 404", self.command or "-")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Malformed requests (bad version, bad headers, unsupported method)
        # all look alike from outside: 404, empty, closed.
        self._not_found()

    def log_message(self, format: str, *args: Any) -> None:
        # The stdlib would log the request line, token included.
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a silent client

    def __init__(self, address: tuple[str, int], token: str, client_timeout: float) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.token_bytes = token.encode()
        self.client_timeout = client_timeout
        self.document = _document(b"")
        self.health = Health()
        self.slots = threading.BoundedSemaphore(MAX_CLIENTS)
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall
        # for seconds offline; the name is never used.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class FeedServer:
    """The feed on ``bind:port`` (port 0 picks a free one); serves from memory.

    >>> server = FeedServer("127.0.0.1", 0, token)
    >>> server.start(); server.update(ics_bytes); ...; server.stop()
    """

    def __init__(
        self,
        bind: str,
        port: int,
        token: str,
        client_timeout: float = CLIENT_TIMEOUT,
    ) -> None:
        self._server = _Server((bind, port), token, client_timeout)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def bind(self) -> str:
        return str(self._server.server_address[0])

    @property
    def url(self) -> str:
        token = self._server.token_bytes.decode()
        return feed_url(self.bind, self.port, token)

    @property
    def etag(self) -> str:
        return self._server.document.etag

    def start(self) -> None:
        """Serve in a background thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            # Idle, the loop sleeps in select() for an hour: the daemon's
            # budget is two wake-ups a minute.  stop() does not wait for it.
            kwargs={"poll_interval": IDLE_POLL},
            name="lormail-feed",
            daemon=True,
        )
        self._thread.start()
        log.info("calendar feed on %s", feed_url(self.bind, self.port, "<token>"))

    def update(self, calendar: bytes) -> None:
        """Serve ``calendar`` from now on (one reference swap: readers never see a mix)."""
        self._server.document = _document(calendar)

    def set_health(
        self,
        status: str,
        last_check: datetime | None = None,
        next_send: datetime | None = None,
    ) -> None:
        self._server.health = Health(status, last_check, next_send)

    def set_token(self, token: str) -> None:
        """Switch to a new token (after ``lormail feed-url --rotate``)."""
        self._server.token_bytes = token.encode()

    def stop(self) -> None:
        """Stop serving; returns at once even while clients are connected."""
        if self._thread is not None:
            stopper = threading.Thread(target=self._server.shutdown, daemon=True)
            stopper.start()
            # serve_forever notices the request only when its select() wakes;
            # a connection of our own wakes it now instead of a poll later.
            while stopper.is_alive():
                self._wake()
                stopper.join(0.05)
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def _wake(self) -> None:
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.bind, self.bind)
        with contextlib.suppress(OSError), socket.create_connection((host, self.port), 0.5):
            pass

    def __enter__(self) -> FeedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def feed_url(bind: str, port: int, token: str) -> str:
    """``http://127.0.0.1:8765/<token>/lormail.ics``; a wildcard bind is shown as loopback."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(bind, bind)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/{token}/{FEED_NAME}"


# --- the token ----------------------------------------------------------------


def new_token() -> str:
    """192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


def _valid(token: str) -> bool:
    return len(token) >= 22 and all(c.isascii() and (c.isalnum() or c in "-_") for c in token)


def read_token(state_dir: Path) -> str | None:
    """The stored token, or None when there is none (or it is unusable)."""
    try:
        text = (state_dir / TOKEN_FILE).read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return text if _valid(text) else None


def load_or_create_token(state_dir: Path) -> str:
    """The feed token, made at first use and kept in ``state_dir`` (0600, folder 0700)."""
    token = read_token(state_dir)
    if token is not None:
        return token
    return rotate_token(state_dir)


def rotate_token(state_dir: Path) -> str:
    """Write a new token (atomically, 0600) and return it; the old URL stops working."""
    ensure_private_dir(state_dir)
    token = new_token()
    write_atomic(state_dir / TOKEN_FILE, (token + "\n").encode("ascii"), keep_mode=False)
    return token
