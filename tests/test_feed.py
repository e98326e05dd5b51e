"""The feed server on loopback, and the token in the state dir.

Real sockets, a real server on port 0; raw requests where http.client would
tidy them up (traversal, over-long lines, silence).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import stat
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lormail.core.calendar import empty_calendar
from lormail.edge.feed import (
    TOKEN_FILE,
    FeedServer,
    Limits,
    etag_matches,
    feed_url,
    load_or_create_token,
    read_token,
    rotate_token,
)

TOKEN = "s3cr3t-T0ken_abcdefghijklmnopqrstu"
BODY = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nEND:VCALENDAR\r\n"
PATH = f"/{TOKEN}/lormail.ics"


@pytest.fixture
def server() -> Iterator[FeedServer]:
    srv = FeedServer("127.0.0.1", 0, TOKEN, Limits(request=1.0, reply=5.0))
    srv.update(BODY)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def request(
    srv: FeedServer, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


def raw(srv: FeedServer, data: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes as they are; everything the server answers before closing."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def assert_bare_404(answer: bytes) -> None:
    """An empty 404 (or a closed connection) that names neither the server nor the token."""
    if answer:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 404 "), head
        assert body == b""
        assert b"content-length: 0" in head.lower()
    assert TOKEN.encode() not in answer
    for leak in (b"Python", b"BaseHTTP", b"Server:", b"<html", b"<!DOCTYPE"):
        assert leak not in answer


# --- the document ------------------------------------------------------------------


def test_get_serves_the_calendar(server: FeedServer) -> None:
    resp, body = request(server, "GET", PATH)
    assert resp.status == 200
    assert body == BODY
    assert resp.getheader("Content-Type") == "text/calendar; charset=utf-8"
    assert resp.getheader("Content-Length") == str(len(BODY))
    assert resp.getheader("Cache-Control") == "no-cache"
    assert resp.getheader("Content-Encoding") is None
    assert resp.getheader("Server") is None
    etag = resp.getheader("ETag")
    assert etag is not None and etag.startswith('"') and not etag.startswith("W/")


def test_before_the_first_calendar_the_feed_asks_to_retry_rather_than_serve_nothing() -> None:
    srv = FeedServer("127.0.0.1", 0, TOKEN, Limits(request=1.0, reply=5.0))
    srv.start()
    try:
        resp, body = request(srv, "GET", PATH)
        assert (resp.status, body, resp.getheader("Retry-After")) == (503, b"", "5")
        srv.update(BODY)
        resp, body = request(srv, "GET", PATH)
        assert (resp.status, body) == (200, BODY)
    finally:
        srv.stop()


def test_gzip_is_not_applied_even_when_asked(server: FeedServer) -> None:
    resp, body = request(server, "GET", PATH, {"Accept-Encoding": "gzip, br"})
    assert resp.getheader("Content-Encoding") is None and body == BODY


def test_head_has_headers_and_no_body(server: FeedServer) -> None:
    resp, body = request(server, "HEAD", PATH)
    assert resp.status == 200 and body == b""
    assert resp.getheader("Content-Length") == str(len(BODY))
    assert resp.getheader("ETag") == server.etag
    # And on the wire, not just as http.client reports it:
    answer = raw(server, f"HEAD {PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert answer.endswith(b"\r\n\r\n")


def test_query_string_is_ignored(server: FeedServer) -> None:
    resp, body = request(server, "GET", PATH + "?refresh=1")
    assert resp.status == 200 and body == BODY


@pytest.mark.parametrize(
    "header",
    [
        "{etag}",
        'W/"nope", {etag}',
        "*",
        "W/{etag}",
        ' "other" ,{etag} ',
    ],
)
def test_if_none_match_gives_304(server: FeedServer, header: str) -> None:
    resp, body = request(server, "GET", PATH, {"If-None-Match": header.format(etag=server.etag)})
    assert resp.status == 304 and body == b""
    assert resp.getheader("ETag") == server.etag


def test_stale_etag_gets_the_new_document(server: FeedServer) -> None:
    old = server.etag
    server.update(BODY.replace(b"VERSION", b"X-A:1\r\nVERSION"))
    assert server.etag != old
    resp, body = request(server, "GET", PATH, {"If-None-Match": old})
    assert resp.status == 200 and b"X-A:1" in body
    assert resp.getheader("ETag") == server.etag


def test_keep_alive_serves_several_requests_on_one_connection(server: FeedServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    for _ in range(3):
        conn.request("GET", PATH)
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == BODY
    conn.close()


def test_readers_never_see_a_torn_update(server: FeedServer) -> None:
    docs = [empty_calendar(f"cal {i}") for i in range(20)]
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            server.update(docs[i % len(docs)])
            i += 1
            time.sleep(0.0005)

    t = threading.Thread(target=writer)
    t.start()
    try:
        import hashlib

        for _ in range(100):
            resp, body = request(server, "GET", PATH)
            assert body in docs
            assert resp.getheader("ETag") == '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    finally:
        stop.set()
        t.join()


def test_healthz(server: FeedServer) -> None:
    resp, body = request(server, "GET", "/healthz")
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "application/json"
    assert json.loads(body) == {"status": "starting", "last_check": None, "next_send": None}
    server.set_health(
        "ok", datetime(2026, 9, 1, 12, 0, 5, tzinfo=UTC), datetime(2026, 9, 14, 14, tzinfo=UTC)
    )
    _, body = request(server, "GET", "/healthz")
    assert json.loads(body) == {
        "status": "ok",
        "last_check": "2026-09-01T12:00:05Z",
        "next_send": "2026-09-14T14:00:00Z",
    }


# --- everything else is a bare 404 ----------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/lormail.ics",
        "/wrong-token-abcdefghijklmnopqrstuvw/lormail.ics",
        f"/{TOKEN[:-1]}/lormail.ics",
        f"/{TOKEN}x/lormail.ics",
        f"/{TOKEN}/",
        f"/{TOKEN}",
        f"/{TOKEN}/other.ics",
        f"/{TOKEN}/lormail.ics/",
        f"//{TOKEN}/lormail.ics",
        f"/../{TOKEN}/lormail.ics",
        f"/x/../{TOKEN}/lormail.ics",
        f"/{TOKEN}/../{TOKEN}/lormail.ics",
        f"/%2e%2e/{TOKEN}/lormail.ics",
        f"/{TOKEN}/%6Cormail.ics",
        f"/{TOKEN.upper()}/lormail.ics",
        "/healthz/",
        "/etc/passwd",
        f"http://127.0.0.1/{TOKEN}/lormail.ics",
    ],
)
def test_other_paths_get_a_bare_404(server: FeedServer, path: str) -> None:
    answer = raw(server, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 404 ")
    assert_bare_404(answer)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "FOO"])
def test_other_methods_get_a_bare_404(server: FeedServer, method: str) -> None:
    req = f"{method} {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    answer = raw(server, req.encode())
    assert answer.startswith(b"HTTP/1.1 404 ")
    assert_bare_404(answer)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\n\r\n",
        f"GET {PATH} HTTP/1.1\r\nX: {'y' * 70000}\r\n\r\n".encode(),
        b"GET\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",  # TLS hello
        f"GET {PATH} HTTP/9.9\r\n\r\n".encode(),
        f"GET {PATH} FOO/1.1\r\n\r\n".encode(),
    ],
)
def test_malformed_requests_reveal_nothing(server: FeedServer, request_bytes: bytes) -> None:
    assert_bare_404(raw(server, request_bytes))


@pytest.mark.slow
def test_http09_request_gets_nothing(server: FeedServer) -> None:
    assert raw(server, b"GET /nope\r\n") == b""


# --- slow and silent clients ---------------------------------------------------------


def good_get(srv: FeedServer, source: str = "127.0.0.1") -> bytes:
    """A whole GET, as a calendar app makes it; the timeout is generous on purpose."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", PATH)
        resp = conn.getresponse()
        assert resp.status == 200
        return resp.read()
    finally:
        conn.close()


def connect(srv: FeedServer, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=10, source_address=(source, 0))


def hung_up(sock: socket.socket) -> bool:
    """Has the server closed this connection (without a reply)?"""
    sock.settimeout(0.0)
    try:
        return sock.recv(100) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.settimeout(10)


def second_loopback_address() -> str:
    """127.0.0.2 (all of 127/8 is loopback on Linux); skip where it is not."""
    try:
        socket.create_connection(("127.0.0.1", 9), timeout=1, source_address=("127.0.0.2", 0))
    except ConnectionRefusedError:
        return "127.0.0.2"
    except OSError:
        pass
    pytest.skip("127.0.0.2 is not a loopback address here")


def test_a_silent_client_does_not_stall_others(server: FeedServer) -> None:
    silent = connect(server)
    half = connect(server)
    half.sendall(f"GET {PATH} HTTP/1.1\r\nHost:".encode())  # and then nothing
    try:
        assert good_get(server) == BODY
    finally:
        silent.close()
        half.close()


@pytest.mark.slow
def test_a_silent_client_is_timed_out(server: FeedServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        assert sock.recv(100) == b""  # the server hangs up (Limits.request is 1 s)


@pytest.mark.slow
def test_a_request_trickling_in_is_cut_off_as_a_whole(server: FeedServer) -> None:
    # One byte every 0.2 s never leaves the connection silent for long, but
    # the head as a whole must arrive within Limits.request (1 s here).
    sock = connect(server)
    sent = 0
    try:
        for byte in f"GET {PATH} HTTP/1.1\r\nX: {'y' * 100}".encode():
            if hung_up(sock):
                break
            sock.sendall(bytes([byte]))
            sent += 1
            time.sleep(0.2)
        else:
            pytest.fail("the server kept a trickling request open for over 20 s")
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        sock.close()
    assert sent < 50


@pytest.mark.slow
def test_a_client_that_does_not_take_its_reply_is_cut_off() -> None:
    big = b"X" * 32_000_000  # far more than the socket buffers hold
    with FeedServer("127.0.0.1", 0, TOKEN, Limits(reply=0.5)) as srv:
        srv.update(big)
        sock = connect(srv)
        try:
            sock.sendall(f"GET {PATH} HTTP/1.1\r\n\r\n".encode())
            time.sleep(1.5)  # reading nothing, well past Limits.reply
            received = 0
            with contextlib.suppress(ConnectionResetError):
                while chunk := sock.recv(1 << 20):
                    received += len(chunk)
            assert received < len(big)  # the server gave up and hung up
        finally:
            sock.close()


def test_a_good_get_gets_through_200_slow_connections() -> None:
    # The default limits, against 200 connections from the same address, each
    # sending a request a byte at a time and reconnecting when dropped (as in
    # a slow-client attack).
    with FeedServer("127.0.0.1", 0, TOKEN) as srv:
        srv.update(BODY)
        crowd = [connect(srv) for _ in range(200)]
        try:
            for _ in range(3):
                for i, sock in enumerate(crowd):
                    if hung_up(sock):
                        sock.close()
                        crowd[i] = sock = connect(srv)
                    with contextlib.suppress(OSError):
                        sock.sendall(b"G")
                assert good_get(srv) == BODY
        finally:
            for sock in crowd:
                sock.close()


def test_a_newcomer_takes_the_place_of_the_longest_waiting_connection() -> None:
    with FeedServer("127.0.0.1", 0, TOKEN, Limits(connections=2, per_client=2)) as srv:
        srv.update(BODY)
        oldest, newer = connect(srv), connect(srv)
        try:
            oldest.sendall(b"GET /")  # a request begun, never finished
            assert good_get(srv) == BODY
            assert oldest.recv(100) == b""  # dropped for the good GET
            assert not hung_up(newer)
            newer.sendall(f"GET {PATH} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
            assert newer.makefile("rb").read().endswith(BODY)  # still served
        finally:
            oldest.close()
            newer.close()


def test_one_address_cannot_crowd_out_another() -> None:
    other = second_loopback_address()
    with FeedServer("127.0.0.1", 0, TOKEN, Limits(connections=8, per_client=4)) as srv:
        srv.update(BODY)
        patient = connect(srv, other)
        patient.sendall(f"GET {PATH} HTTP/1.1\r\n".encode())  # the rest comes later
        crowd = [connect(srv) for _ in range(40)]
        try:
            assert good_get(srv) == BODY
            # The crowd displaced only its own connections, never the other address's.
            patient.sendall(b"Connection: close\r\n\r\n")
            assert patient.makefile("rb").read().endswith(BODY)
        finally:
            patient.close()
            for sock in crowd:
                sock.close()


# --- logging, URL, lifecycle ---------------------------------------------------------------


def test_the_token_is_never_logged(server: FeedServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    request(server, "GET", PATH)
    request(server, "GET", f"/{TOKEN}/nope")
    raw(server, f"POST {PATH} HTTP/1.1\r\n\r\n".encode())
    assert caplog.records
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
    assert any("/<token>/lormail.ics 200" in r.getMessage() for r in caplog.records)


def test_url_and_port(server: FeedServer) -> None:
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}{PATH}"
    assert feed_url("127.0.0.1", 8765, "abc") == "http://127.0.0.1:8765/abc/lormail.ics"
    assert feed_url("0.0.0.0", 8765, "abc") == "http://127.0.0.1:8765/abc/lormail.ics"
    assert feed_url("::1", 8765, "abc") == "http://[::1]:8765/abc/lormail.ics"


def test_set_token_switches_the_path(server: FeedServer) -> None:
    new = "n" * 32
    server.set_token(new)
    assert request(server, "GET", PATH)[0].status == 404
    assert request(server, "GET", f"/{new}/lormail.ics")[0].status == 200


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        srv = FeedServer("::1", 0, TOKEN)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with srv:
        srv.update(BODY)
        conn = http.client.HTTPConnection("::1", srv.port, timeout=5)
        conn.request("GET", PATH)
        assert conn.getresponse().read() == BODY
        conn.close()


def test_stop_returns_promptly_with_a_client_connected() -> None:
    srv = FeedServer("127.0.0.1", 0, TOKEN, Limits(request=10.0))
    srv.start()
    sock = socket.create_connection(("127.0.0.1", srv.port))
    try:
        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < 2
    finally:
        sock.close()


def test_etag_matches() -> None:
    assert etag_matches('"a"', '"a"')
    assert etag_matches('W/"a"', '"a"')
    assert etag_matches('"b", "a"', '"a"')
    assert etag_matches("*", '"a"')
    assert not etag_matches('"b"', '"a"')
    assert not etag_matches('"ab"', '"a"')
    assert not etag_matches("", '"a"')


# --- the token -----------------------------------------------------------------------


def test_token_is_made_once_private_and_kept(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert read_token(state) is None
    token = load_or_create_token(state)
    assert len(token) >= 32  # 24 random bytes, base64url: 192 bits
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert stat.S_IMODE((state / TOKEN_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert load_or_create_token(state) == token
    assert read_token(state) == token
    assert [p.name for p in state.iterdir()] == [TOKEN_FILE]  # no temp file left


def test_rotate_makes_a_new_token(tmp_path: Path) -> None:
    first = load_or_create_token(tmp_path)
    second = rotate_token(tmp_path)
    assert second != first
    assert load_or_create_token(tmp_path) == second
    assert stat.S_IMODE((tmp_path / TOKEN_FILE).stat().st_mode) == 0o600


def test_a_damaged_token_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / TOKEN_FILE).write_text("short\n")
    token = load_or_create_token(tmp_path)
    assert token != "short" and len(token) >= 32
    assert read_token(tmp_path) == token


def test_tokens_differ() -> None:
    from lormail.edge.feed import new_token

    assert len({new_token() for _ in range(100)}) == 100


def test_keep_alive_replies_do_not_wait_for_delayed_acks(server: FeedServer) -> None:
    # A reply split into packets under Nagle's algorithm costs a keep-alive
    # client the peer's delayed ACK, 40 ms, on every request.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    samples = []
    for _ in range(15):
        started = time.perf_counter()
        conn.request("GET", PATH)
        conn.getresponse().read()
        samples.append(time.perf_counter() - started)
    conn.close()
    assert sorted(samples)[len(samples) // 2] < 0.02
