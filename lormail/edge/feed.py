"""The calendar feed: a small HTTP server, and the secret token in its URL.

SPEC §5.  :class:`FeedServer` serves one document, ``GET``/``HEAD
/<token>/lormail.ics``, from memory (the daemon calls :meth:`FeedServer.update`
once per re-plan), with a strong ETag and ``304`` on ``If-None-Match``; and
``GET /healthz`` with the daemon's health as JSON.  Anything else — another
path, a wrong token, another method, a malformed or over-long request — gets
``404`` with an empty body and nothing that names the server.

It is :class:`http.server.ThreadingHTTPServer`: the standard library's HTTP
parsing, one thread per connection.  A feed has a handful of clients (the
user's calendar apps), so threads are cheap here; what needs care is clients
that are slow on purpose (:class:`Limits`):

- a request's head must arrive whole within ``Limits.request`` seconds of the
  server starting to wait for it, however the bytes trickle in (a per-read
  timeout alone lets one byte every few seconds hold a connection for ever);
  the reply must be taken within ``Limits.reply`` seconds;
- at most ``Limits.connections`` connections (and threads), at most
  ``Limits.per_client`` of them from one address.  A newcomer over a limit
  does not get turned away: it takes the place of the connection that has
  waited longest for its request (from the same address, when that address is
  at its own limit).  A real client sends its request the moment it connects,
  so idle and trickling connections are the ones that go; and one address,
  however busy, only ever displaces its own connections.

The token (≥ 128 random bits) lives in the state dir in a 0600 file; the
functions at the bottom create, read and rotate it.  It is compared in
constant time and never logged: paths are logged as ``/<token>/lormail.ics``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import logging
import secrets
import socket
import socketserver
import threading
import time
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
IDLE_POLL = 3600.0  # seconds serve_forever's select() sleeps; stop() wakes it sooner
# The standard library accepts request lines up to 64 KiB; a feed URL is
# under 100 bytes, so anything near this is garbage.
MAX_REQUEST_LINE = 2048
_REASONS = {200: "OK", 304: "Not Modified"}


@dataclass(frozen=True, slots=True)
class Limits:
    """How long a request may take and how many connections the feed holds."""

    request: float = 5.0  # seconds from waiting for a request to having its whole head
    reply: float = 10.0  # seconds for the client to take the whole reply
    connections: int = 128  # in all (one thread each)
    per_client: int = 32  # from one address


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


class _DeadlineReader(io.RawIOBase):
    """A socket's bytes, but only until :attr:`deadline` (``time.monotonic()``).

    Each read may wait only for what is left of the time, so the head of a
    request is bounded as a whole, not read by read.
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self.deadline = 0.0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request took too long")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class _Connections:
    """The open connections: whose each one is, and since when it has waited for a request."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._lock = threading.Lock()
        self._client: dict[socket.socket, str] = {}
        self._waiting: dict[socket.socket, float] = {}  # since (monotonic); absent while replying

    def admit(self, sock: socket.socket, client: str) -> bool:
        """Make room for ``sock`` if need be; False when every candidate is replying."""
        with self._lock:
            mine = [s for s, c in self._client.items() if c == client]
            if len(mine) >= self._limits.per_client:
                crowd: list[socket.socket] | None = mine
            elif len(self._client) >= self._limits.connections:
                crowd = list(self._client)
            else:
                crowd = None
            if crowd is not None:
                waiting = [s for s in crowd if s in self._waiting]
                if not waiting:
                    return False
                self._evict(min(waiting, key=self._waiting.__getitem__))
            self._client[sock] = client
            self._waiting[sock] = time.monotonic()
            return True

    def _evict(self, sock: socket.socket) -> None:
        # Wakes the connection's thread, blocked in recv(), with end-of-file;
        # that thread closes the socket.
        self._client.pop(sock, None)
        self._waiting.pop(sock, None)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        log.debug("feed: dropped a connection waiting for its request, for a newer one")

    def waiting(self, sock: socket.socket) -> None:
        with self._lock:
            if sock in self._client:
                self._waiting[sock] = time.monotonic()

    def replying(self, sock: socket.socket) -> None:
        with self._lock:
            self._waiting.pop(sock, None)

    def forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._client.pop(sock, None)
            self._waiting.pop(sock, None)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: calendar apps poll repeatedly
    # Without TCP_NODELAY a keep-alive client waits out its delayed ACK
    # (40 ms) on every small reply.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the stdlib's reader; ours below bounds each request
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        # Waiting for the next request (keep-alive included) counts against
        # its head's time: an idle connection goes after Limits.request.
        limits = self.server.limits
        self.server.connections.waiting(self.connection)
        self._reader.deadline = time.monotonic() + limits.request
        try:
            # The stdlib reads up to 64 KiB of request line; read to a shorter
            # limit first so an over-long line is refused without echoing it.
            line = self.rfile.readline(MAX_REQUEST_LINE + 1)
            if not line:
                self.close_connection = True
                return
            self.raw_requestline = line
            if len(line) > MAX_REQUEST_LINE:
                self.requestline = ""
                self.request_version = "HTTP/1.1"
                self.command = ""
                self.connection.settimeout(limits.reply)
                self._not_found()
                return
            if not self.parse_request():  # reads the headers; errors went to send_error
                return
            self.server.connections.replying(self.connection)
            # sendall() takes the timeout as a bound on the whole reply.
            self.connection.settimeout(limits.reply)
            if self.command in ("GET", "HEAD"):
                self._get()
            else:
                self._not_found()
            self.wfile.flush()
        except OSError:  # timed out, reset, or dropped for a newer connection
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
            if not doc.body:
                # No calendar yet (the first check is still running): an empty
                # 200 would make a subscribed calendar drop every event.
                self._unavailable()
                return
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

    def _unavailable(self) -> None:
        self.send_response_only(503)
        self.send_header("Content-Length", "0")
        self.send_header("Retry-After", "5")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()

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
    # A burst of connections must not overflow the accept queue: a dropped
    # SYN costs the client a second before it tries again.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], token: str, limits: Limits) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.token_bytes = token.encode()
        self.limits = limits
        self.connections = _Connections(limits)
        self.document = _document(b"")
        self.health = Health()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall
        # for seconds offline; the name is never used.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.connections.admit(request, str(client_address[0])):
            log.debug("feed: connection refused, every connection is replying")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        # Forgotten first, under the registry's lock, so that no eviction can
        # shut down a socket number already closed and reused.
        self.connections.forget(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The stdlib prints a traceback to stderr; a client's misbehaviour is
        # not the daemon's error.
        log.debug("feed: a connection failed", exc_info=True)


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
        limits: Limits = Limits(),
    ) -> None:
        self._server = _Server((bind, port), token, limits)
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
