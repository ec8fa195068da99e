"""The Coral phase's answer time at a steady rate: requests built and signed as Coral builds
them, sent open-loop (each at its planned time; its latency counts from that time, so a slow
answer cannot hide the ones queued behind it), against an API of its own with the secrets
set, once the rest of the run is over."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from .common import Run
from .stack import Stack, free_port
from .stats import percentile

SECRET = "ems_bench_0123456789abcdef0123456789abcdef"
PATH = "/v1/integrations/coral"


def signed(body: str, i: int) -> tuple[bytes, str]:
    """A NEW comment as Coral sends it: JSON.stringify(request, null, 2), HMAC-SHA256."""
    request = {"action": "NEW", "comment": {"body": body, "parentID": None},
               "author": {"id": f"bench-{i % 500}", "role": "COMMENTER"},
               "story": {"id": f"story-{i % 20}", "url": f"https://news.example/story-{i % 20}"},
               "site": {"id": "bench"}, "tenantID": "bench", "tenantDomain": "news.example"}
    raw = json.dumps(request, indent=2, ensure_ascii=False).encode()
    return raw, "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()


def _post(port: int, raw: bytes, sig: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", PATH, body=raw, headers={
            "Content-Type": "application/json", "X-Coral-Signature": sig})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def load(port: int, bodies: list[str], rate: float, seconds: float, threads: int = 8,
         ) -> dict[str, Any]:
    n = max(1, int(rate * seconds))
    requests = [signed(bodies[i % len(bodies)], i) for i in range(n)]
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    start = time.perf_counter() + 0.2

    def sender(k: int) -> None:
        for i in range(k, n, threads):
            planned = start + i / rate
            delay = planned - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                status = _post(port, *requests[i])
            except OSError:
                status = 0
            done = time.perf_counter()
            with lock:
                latencies.append((done - planned) * 1000)
                statuses[status] += 1

    workers = [threading.Thread(target=sender, args=(k,), daemon=True) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return {"rate": rate, "seconds": seconds, "n": n, "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99), "max_ms": max(latencies),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "answered_in_budget": statuses.get(200, 0) / n}


def phase(stack: Stack, bodies: list[str], rate: float, seconds: float,
          progress: Callable[[str], None]) -> dict[str, Any]:
    """Start an API with the Coral secret, wait until its engine answers, measure, stop it."""
    port = free_port()
    saved = stack.env
    stack.env = dict(saved, PORT=str(port), CORAL_SIGNING_SECRETS=SECRET)
    try:
        stack.start("api-coral", "api")
    finally:
        stack.env = saved
    try:
        stack.wait_http(f"http://127.0.0.1:{port}/healthz")
        progress("coral: waiting for the API processes to load the engine")
        deadline, in_a_row, i = time.monotonic() + 90, 0, 0
        while in_a_row < 40 and time.monotonic() < deadline:  # both processes answer 200
            in_a_row = in_a_row + 1 if _post(port, *signed(bodies[i % len(bodies)], i)) == 200 else 0
            i += 1
            time.sleep(0.02)
        progress(f"coral: {rate:.0f} requests/s for {seconds:.0f} s")
        return load(port, bodies, rate, seconds)
    finally:
        stack.signal("api-coral", signal.SIGTERM)
        proc = stack.procs.pop("api-coral")
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def measure(run: Run, bodies: list[str]) -> None:
    """The phase as `make bench` runs it, last, with the worker frozen (it plays no part)."""
    run.stack.pause("worker")
    try:
        coral = phase(run.stack, bodies or ["Thank you for the article."], run.args.coral_rate,
                      run.args.coral_seconds, run.progress)
    finally:
        run.stack.resume("worker")
    run.details["coral"] = coral
    run.results["coral_p50_ms"], run.results["coral_p99_ms"] = coral["p50_ms"], coral["p99_ms"]
