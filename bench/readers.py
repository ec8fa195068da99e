"""`python -m bench.readers` (`make bench` runs it after the main benchmark): what readers'
pages cost, each beside a baseline from the same run.

- the widget script's size, gzipped, against its 15 KB budget;
- `GET /v1/counts` for 100 articles against the single-article read (and one article's count);
- live updates: memory per open stream, and the time from a moderator's decision to its event
  arriving at every open stream, with 1 stream (the baseline) and with `--streams` of them.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gzip
import json
import os
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.config import ROOT, Settings

from .load import alternate, have_wrk, run_load
from .stack import Stack, _children_map, free_port, rss_bytes, tree
from .stats import ratio

WIDGET = ROOT / "services" / "api" / "static" / "widget.js"
WIDGET_BUDGET = 15 * 1024


def widget_size() -> dict[str, Any]:
    """The script as served (events URL empty), plain and gzipped at level 9."""
    plain = WIDGET.read_text(encoding="utf-8").replace('"__TRIAGE_EVENTS__"', '""').encode()
    packed = len(gzip.compress(plain, 9))
    return {"bytes": len(plain), "gzip_bytes": packed, "budget": WIDGET_BUDGET,
            "met": packed <= WIDGET_BUDGET}


class StreamClients:
    """`n` Server-Sent Events connections held by one asyncio loop in a thread; notes when each
    saw a `published` event for each comment id."""

    def __init__(self, host: str, port: int, path: str, n: int) -> None:
        self.host, self.port, self.path, self.n = host, port, path, n
        self.connected = 0
        self.arrivals: dict[str, list[float]] = {}
        self.errors = 0
        self.loop = asyncio.new_event_loop()
        self._tasks: list[asyncio.Task[None]] = []
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._open_all(), self.loop).result(timeout=120)

    async def _open_all(self) -> None:
        for i in range(self.n):
            self._tasks.append(asyncio.create_task(self._one()))
            if i % 50 == 49:
                await asyncio.sleep(0.01)  # a page load at a time, not a SYN flood

    async def _one(self) -> None:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            writer.write(f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\n"
                         "Accept: text/event-stream\r\n\r\n".encode())
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            self.connected += 1
            while True:
                line = await reader.readline()
                if not line:
                    return
                if line.startswith(b"data: "):
                    now = time.perf_counter()
                    try:
                        cid = json.loads(line[6:]).get("id")
                    except ValueError:
                        continue
                    self.arrivals.setdefault(str(cid), []).append(now)
        except (OSError, asyncio.IncompleteReadError):
            self.errors += 1

    def close(self) -> None:
        async def cancel() -> None:
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


def _open_streams(url: str) -> int:
    with urllib.request.urlopen(url + "/healthz", timeout=5) as r:
        return int(json.loads(r.read())["open_streams"])


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def measure_streams(streams_url: str, slug: str, n: int, decisions: int,
                    decide: Callable[[], tuple[str, float]], rss: Callable[[], int],
                    say: Callable[[str], None]) -> dict[str, Any]:
    """Open `n` streams, then time `decisions` decisions to their arrival at all of them."""
    host, port = streams_url.split("//", 1)[1].split(":")
    before = rss()
    clients = StreamClients(host, int(port), f"/v1/articles/{slug}/events", n)
    say(f"streams: opening {n}")
    clients.start()
    deadline = time.monotonic() + 60
    while _open_streams(streams_url) < n and time.monotonic() < deadline:
        time.sleep(0.2)
    held = _open_streams(streams_url)
    time.sleep(1.0)
    after = rss()
    say(f"streams: {held} open; {decisions} decisions")
    sent: dict[str, float] = {}
    for _ in range(decisions):
        cid, t0 = decide()
        sent[cid] = t0
        time.sleep(0.25)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(len(clients.arrivals.get(c, ())) < held for c in sent):
        time.sleep(0.1)
    to_all, each, missing = [], [], 0
    for cid, t0 in sent.items():
        got = clients.arrivals.get(cid, [])
        each += [(t - t0) * 1000 for t in got]
        missing += max(0, held - len(got))
        if len(got) >= held:
            to_all.append((max(got) - t0) * 1000)
    clients.close()
    return {"streams": n, "held": held, "connect_errors": clients.errors,
            "rss_before_mb": before / 2**20, "rss_after_mb": after / 2**20,
            "kb_per_stream": (after - before) / 1024 / max(held, 1),
            "decisions": decisions, "missing_arrivals": missing,
            "to_all_p50_ms": _pct(to_all, 0.5), "to_all_p99_ms": _pct(to_all, 0.99),
            "each_p50_ms": _pct(each, 0.5), "each_p99_ms": _pct(each, 0.99)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.readers", description=__doc__)
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--decisions", type=int, default=30)
    p.add_argument("--read-seconds", type=float, default=6)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=16)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()

    def say(msg: str) -> None:
        print(f"[bench.readers {time.monotonic() - started:5.1f}s] {msg}", file=sys.stderr, flush=True)

    var = ROOT / "var"
    work = var / "bench-readers"
    work.mkdir(parents=True, exist_ok=True)
    db_file = work / "bench.db"
    for p in (db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")):
        p.unlink(missing_ok=True)
    port, stream_port = free_port(), free_port()
    env = dict(os.environ, TRIAGE_ENV="development",  # a private, throw-away stack
               DATABASE_URL=f"sqlite:///{db_file}", HOST="127.0.0.1", PORT=str(port),
               STREAM_PORT=str(stream_port), RATELIMIT_ENABLED="false", LOG_LEVEL="WARNING",
               METRICS_DIR=str(work / "metrics"), STREAM_LIFETIME="3600")
    stack = Stack(ROOT, work, env)
    out: dict[str, Any] = {"widget": widget_size(), "tool": "wrk" if have_wrk() else "python-asyncio"}
    try:
        env["REDIS_URL"] = stack.start_redis(Settings.from_env().redis_url)
        settings = Settings.from_env(env)
        say("migrating; 100 articles with 3 approved comments each")
        stack.triage("migrate")
        from services.cache import InvalidatingPublisher, ReadCache
        from services.comments.moderation import ModerationService
        from services.comments.service import CommentService
        from services.comments.shapes import NewComment
        from services.db import Database
        from services.events import RedisPublisher

        db = Database(settings.database_url)
        svc = CommentService(db, salt=settings.author_salt, publisher=InvalidatingPublisher(
            RedisPublisher(settings.redis_url), ReadCache(settings.redis_url)))
        mod = ModerationService(svc)
        slugs = [f"bench-count-{i:03d}" for i in range(100)]
        for slug in slugs:
            svc.add_article(slug, "Benchmark: counts")
            for k in range(3):
                accepted, _ = svc.submit(slug, NewComment("Reader", f"Comment {k} on {slug}"))
                mod.decide(accepted.id, "approve", actor="bench", version=None)
        stack.start("api", "api")
        stack.start("streams", "streams")
        base = f"http://127.0.0.1:{port}"
        streams_url = f"http://127.0.0.1:{stream_port}"
        stack.wait_http(base + "/healthz")
        stack.wait_http(streams_url + "/healthz")

        lk = dict(connections=args.connections, workdir=work)

        def load(path: str) -> Callable[[float], dict[str, Any]]:
            def run(seconds: float) -> dict[str, Any]:
                say(f"GET {path[:70]}, {args.connections} clients, {seconds:.1f} s")
                return run_load(base, "GET", path, seconds=seconds, **lk)
            return run

        runs = alternate({
            "read": load(f"/v1/articles/{slugs[0]}/comments?limit=100"),
            "count": load(f"/v1/articles/{slugs[0]}/comments/count"),
            "counts100": load("/v1/counts?articles=" + ",".join(slugs)),
        }, args.read_seconds, args.rounds)
        out["counts"] = {k: {"rps": v["rps"], "latency_us": v.get("latency_us"),
                             "errors": v.get("error_count")} for k, v in runs.items()}
        out["counts"]["counts100_vs_read"] = ratio(runs["counts100"]["rps"], runs["read"]["rps"])

        live = "bench-live"
        svc.add_article(live, "Benchmark: live updates")

        def decide() -> tuple[str, float]:
            accepted, _ = svc.submit(live, NewComment("Reader", "A comment to be published."))
            t0 = time.perf_counter()
            mod.decide(accepted.id, "approve", actor="bench", version=None)
            return accepted.id, t0

        pid = stack.procs["streams"].pid

        def rss() -> int:
            return rss_bytes(tree(pid, _children_map()))

        out["streams_1"] = measure_streams(streams_url, live, 1, args.decisions, decide, rss, say)
        out["streams_n"] = measure_streams(streams_url, live, args.streams, args.decisions, decide,
                                           rss, say)
        stack.check_alive()
        db.dispose()
    finally:
        say("stopping")
        stack.stop()
    w, c, s1, sn = out["widget"], out["counts"], out["streams_1"], out["streams_n"]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f} ms"

    rows = [
        ("widget.js gzipped", f"{w['gzip_bytes']:,} B ({w['bytes']:,} B plain, unminified)",
         f"budget {w['budget']:,} B", "met" if w["met"] else "NOT met"),
        ("GET /v1/counts, 100 articles", f"{c['counts100']['rps']:,.0f} req/s",
         f"single-article read {c['read']['rps']:,.0f} req/s",
         f"ratio {c['counts100_vs_read']:.2f}" if c["counts100_vs_read"] else "-"),
        ("GET …/comments/count", f"{c['count']['rps']:,.0f} req/s",
         f"single-article read {c['read']['rps']:,.0f} req/s",
         f"ratio {ratio(c['count']['rps'], c['read']['rps']) or 0:.2f}"),
        (f"open streams held ({sn['streams']:,} asked)", f"{sn['held']:,}",
         f"{sn['connect_errors']} connect errors", ""),
        ("memory per open stream", f"{sn['kb_per_stream']:.1f} KB",
         f"process {sn['rss_before_mb']:.0f} MB idle → {sn['rss_after_mb']:.0f} MB", ""),
        (f"decision → event at all {sn['held']:,} streams", f"p50 {ms(sn['to_all_p50_ms'])}, "
         f"p99 {ms(sn['to_all_p99_ms'])}", f"1 stream: p50 {ms(s1['to_all_p50_ms'])}, "
         f"p99 {ms(s1['to_all_p99_ms'])}", f"{sn['missing_arrivals']} missing"),
    ]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"Triage readers' benchmark — {now}, {os.cpu_count()} cores (the client runs on the "
          "same machine as the servers)")
    width = max(len(r[0]) for r in rows)
    for r in rows:
        print(f"  {r[0]:<{width}}  {r[1]:<34} {r[2]:<44} {r[3]}")
    (var / "bench-readers.json").write_text(json.dumps(out, indent=2, default=str) + "\n",
                                            encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
