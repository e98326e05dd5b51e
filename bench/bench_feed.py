"""Latency of the calendar feed on loopback: median and p99 over many GETs.

    python bench/bench_feed.py            # 1,000 requests per row; --requests N

The feed serves the example roster's calendar (and, in a second row, the
2,000 × 5 roster's, 7 MB) from memory.  Each row is one keep-alive client
issuing requests back to back, timed from sending the request to reading the
last body byte; a row with a new connection per request follows, and a
conditional GET (``If-None-Match`` → 304), which is what subscribed clients
mostly send.  The baseline, in the same run: the standard library's
``SimpleHTTPRequestHandler`` serving the same bytes from a file, the plain
way to publish an .ics.  Ratio = baseline / feed.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from lormail.edge.feed import FeedServer  # noqa: E402

TOKEN = "b" * 32
PY = sys.executable


def timings(n: int, one: Callable[[], None]) -> tuple[float, float]:
    """Median and p99 latency in milliseconds of ``n`` calls (after 20 warm-ups)."""
    for _ in range(20):
        one()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        one()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def keepalive(port: int, path: str, headers: dict[str, str] | None = None) -> Callable[[], None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def one() -> None:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        if resp.status not in (200, 304):
            raise SystemExit(f"unexpected {resp.status}")

    return one


def fresh(port: int, path: str) -> Callable[[], None]:
    def one() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        conn.close()

    return one


class _Quiet(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass


def baseline_server(folder: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    handler = partial(_Quiet, directory=str(folder))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


def calendar_of(config: Path, now: str) -> bytes:
    env = dict(os.environ, PYTHONPATH=str(ROOT), LORMAIL_STATE_DIR=str(config.parent / "st"))
    return subprocess.run(
        [PY, "-m", "lormail", "--config", str(config), "ics", "--now", now],
        capture_output=True,
        env=env,
        check=True,
    ).stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1000)
    args = ap.parse_args()
    n = args.requests
    rows: list[tuple[str, tuple[float, float], tuple[float, float]]] = []
    with tempfile.TemporaryDirectory(prefix="lormail-bench-feed-") as tmp:
        folder = Path(tmp)
        for name in ("config.example.yaml", "roster.example.yaml"):
            (folder / name).write_bytes((ROOT / name).read_bytes())
        small = calendar_of(folder / "config.example.yaml", "2026-10-01T12:00:00Z")
        subprocess.run(
            [
                PY,
                str(HERE / "gen_roster.py"),
                "--recommenders",
                "2000",
                "--letters",
                "5",
                "--seed",
                "1",
                "-o",
                str(folder / "big" / "roster.yaml"),
            ],
            check=True,
        )
        big = calendar_of(folder / "big" / "config.yaml", "2026-11-23T15:00:00Z")

        feed = FeedServer("127.0.0.1", 0, TOKEN)
        feed.start()
        base, base_port = baseline_server(folder)
        path = f"/{TOKEN}/lormail.ics"
        try:
            for label, data, count in (
                (f"example calendar ({len(small) / 1e3:.0f} kB)", small, n),
                (f"2,000 × 5 calendar ({len(big) / 1e6:.1f} MB)", big, max(20, n // 10)),
            ):
                feed.update(data)
                (folder / "lormail.ics").write_bytes(data)
                rows.append(
                    (
                        f"GET, keep-alive, {label}, n={count}",
                        timings(count, keepalive(feed.port, path)),
                        timings(count, keepalive(base_port, "/lormail.ics")),
                    )
                )
            feed.update(small)
            (folder / "lormail.ics").write_bytes(small)
            rows.append(
                (
                    f"GET, new connection each, example, n={n}",
                    timings(n, fresh(feed.port, path)),
                    timings(n, fresh(base_port, "/lormail.ics")),
                )
            )
            etag = feed.etag
            rows.append(
                (
                    f"conditional GET → 304, example, n={n}",
                    timings(n, keepalive(feed.port, path, {"If-None-Match": etag})),
                    (float("nan"), float("nan")),
                )
            )
        finally:
            feed.stop()
            base.shutdown()

    print(
        f"{'feed on loopback':52} {'median':>8} {'p99':>8}   "
        f"{'stdlib file server':>18} {'p99':>8}  ratio"
    )
    for name, (med, p99), (bmed, bp99) in rows:
        ratio = f"{bmed / med:5.2f}×" if bmed == bmed else "   –"
        bm = f"{bmed:7.3f}ms" if bmed == bmed else "       –"
        bp = f"{bp99:7.3f}ms" if bp99 == bp99 else "       –"
        print(f"{name:52} {med:6.3f}ms {p99:6.3f}ms   {bm:>18} {bp:>8}  {ratio}")


if __name__ == "__main__":
    main()
