"""The end-to-end measurement against a stand-in server whose comments show a known time after
they are posted: the poller (a process of its own) must report about that time."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.common import Progress
from bench.e2e import e2e_summary, measure_e2e

SHOWS_AFTER = 0.08  # seconds from a POST's answer to its comment being listed


def _server() -> tuple[ThreadingHTTPServer, dict[str, str]]:
    posted: dict[str, list[tuple[str, float]]] = {}
    status: dict[str, str] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            slug = self.path.split("/")[3]
            cid = uuid.uuid4().hex
            # The second comment of each article is held: never listed.
            with lock:
                mine = posted.setdefault(slug, [])
                status[cid] = "held" if len(mine) == 1 else "approved"
                mine.append((cid, time.perf_counter() + SHOWS_AFTER))
            self._send(202, {"id": cid})

        def do_GET(self) -> None:
            parts = self.path.split("?")[0].split("/")
            if parts[2] == "comments":
                self._send(200, {"status": status.get(parts[3], "pending")})
                return
            now = time.perf_counter()
            with lock:
                items = [{"id": c} for c, t in posted.get(parts[3], [])
                         if t <= now and status[c] == "approved"]
            self._send(200, {"items": items})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, status


def test_end_to_end_reports_the_time_until_a_comment_is_listed_and_leaves_out_held_ones():
    server, status = _server()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        slugs = [f"e2e-{i}" for i in range(4)]
        payloads = [{"author": "A", "body": f"comment {i}"} for i in range(60)]
        raw = measure_e2e(base, slugs, payloads, rate=60, seconds=1, window=20, tail=3,
                          progress=Progress(), poll_interval=0.005)
    finally:
        server.shutdown()
    assert raw["accepted"] == 60 and raw["errors"] == {}
    held = {cid for cid, s in status.items() if s == "held"}
    assert len(held) == 3 and raw["not_shown"] == 3 and raw["visible"] == 57
    assert not held & set(raw["latency"])
    # Listed 80 ms after the server answered. The median, not the minimum: on a busy machine a
    # sender thread can lose the processor between reading the answer and reading the clock, and
    # the poller may list that comment first. A clock started at the wrong end shifts them all.
    latencies = sorted(raw["latency"].values())
    assert latencies[len(latencies) // 2] >= SHOWS_AFTER * 1000 - 20
    summary = e2e_summary(raw, status)
    assert summary["p50_ms"] < SHOWS_AFTER * 1000 + 100
    assert summary["p90_ms"] < SHOWS_AFTER * 1000 + 150
