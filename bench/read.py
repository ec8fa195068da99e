"""Reads: a page of approved comments (and its If-None-Match) against a trivial GET."""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from collections import Counter
from typing import Any

from . import corpus as corpus_mod
from .common import Progress, Run, count_status, http_json
from .load import alternate


def post_many(base: str, slug: str, payloads: list[dict[str, Any]], threads: int = 4) -> list[str]:
    """POST comments (a few keep-alive clients); returns the ids accepted."""
    ids: list[str] = []
    lock = threading.Lock()
    todo: queue.Queue[dict[str, Any] | None] = queue.Queue()
    for p in payloads:
        todo.put(p)
    host, port = base.split("//", 1)[1].split(":")

    def run() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        while True:
            try:
                p = todo.get_nowait()
            except queue.Empty:
                break
            conn.request("POST", f"/v1/articles/{slug}/comments", json.dumps(p),
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            if r.status == 202:
                with lock:
                    ids.append(json.loads(data)["id"])
        conn.close()

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return ids


def prepare_read(base: str, db: Any, art_id: int, slug: str, corpus: corpus_mod.Corpus,
                 progress: Progress, deadline: float, want: int = 200) -> dict[str, Any]:
    """Post clean comments until `want` are approved (this also warms every worker process)."""
    posted = 0
    t0 = time.monotonic()
    counts: Counter[str] = Counter()
    while time.monotonic() < deadline:
        counts = count_status(db, art_id)
        approved, pending = counts.get("approved", 0), counts.get("pending", 0)
        if approved >= want:
            break
        missing = want - approved - pending
        if missing > 0:
            payloads = [corpus.payload(b) for b in corpus.clean_unique(missing)]
            posted += len(post_many(base, slug, payloads))
        progress(f"read setup: {approved}/{want} approved, {pending} pending "
                 "(first tasks also load the engine in each worker process)", quiet=True)
        time.sleep(0.2)
    counts = count_status(db, art_id)
    return {"posted": posted, "approved": counts.get("approved", 0), "statuses": dict(counts),
            "seconds": time.monotonic() - t0}


def measure(run: Run, read_slug: str) -> None:
    """The read page, the same with If-None-Match, and the baseline, taking turns."""
    read_path = f"/v1/articles/{read_slug}/comments?limit=100"
    status, headers, body = http_json(run.base, "GET", read_path)
    etag = headers.get("etag")
    inm_status = None
    if etag:
        inm_status, _, _ = http_json(run.base, "GET", read_path, headers={"If-None-Match": etag})
    run.details["read_check"] = {"status": status, "items": len((body or {}).get("items", [])),
                                 "etag": etag, "if_none_match_status": inm_status,
                                 "connection": headers.get("connection")}
    read_runs = alternate({
        "hello": run.load("read baseline: GET /bench/hello", "GET", "/bench/hello"),
        "read": run.load(f"read: GET {read_path}", "GET", read_path),
        "inm": run.load(f"read: same with If-None-Match ({'ETag ' + etag if etag else 'no ETag served'})",
                        "GET", read_path, headers={"If-None-Match": etag or '"no-etag-served"'}),
    }, run.args.read_seconds, run.args.rounds)
    hello, read, read_inm = read_runs["hello"], read_runs["read"], read_runs["inm"]
    run.details["read_baseline"], run.details["read"], run.details["read_inm"] = hello, read, read_inm
    run.results["read_rps"], run.results["read_rps_inm"] = read["rps"], read_inm["rps"]
    run.results["read_baseline_rps"] = hello["rps"]
