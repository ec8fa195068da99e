"""End to end: POST → visible on the read endpoint, at a steady offered load."""

from __future__ import annotations

import gc
import http.client
import json
import queue
import threading
import time
from collections import Counter
from typing import Any

from .common import Progress, Run
from .stats import percentile, percentile_censored


def _get(conn: http.client.HTTPConnection, path: str,
         hdrs: dict[str, str]) -> tuple[int, str | None, bytes] | None:
    try:
        conn.request("GET", path, headers=hdrs)
        r = conn.getresponse()
        return r.status, r.getheader("ETag"), r.read()
    except (OSError, http.client.HTTPException):
        conn.close()
        return None


def poll_visibility(host: str, port: int, inbox: Any, outbox: Any, stop: Any, taken: Any,
                    unseen: Any, poll_interval: float) -> None:
    """The widget-like poller of `measure_e2e`, in a process of its own (so the senders'
    threads never hold it up): every `poll_interval` it asks for the pages of the articles
    that still have comments on their way, with If-None-Match as a widget would, and notes
    when each comment is first listed. `inbox` brings (slug, comment id, POST returned at);
    `taken` counts what it brought, `unseen` what is still awaited; `outbox` gets what it saw.
    Times are `time.perf_counter()`, the system's monotonic clock, shared by both processes."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    outbox.send("ready")
    seen: dict[str, float] = {}
    waiting: dict[str, dict[str, float]] = {}  # slug -> {comment id: POST returned at}
    not_shown: list[str] = []
    polls = Counter[str]()
    etags: dict[str, str] = {}
    last_check = time.perf_counter()
    while not stop.is_set():
        cycle = time.perf_counter()
        arrived = 0
        while inbox.poll():
            slug, cid, t = inbox.recv()
            if cid not in seen:
                waiting.setdefault(slug, {})[cid] = t
            arrived += 1
        if arrived:
            # Awaited before taken: whoever sees all taken also sees them awaited.
            unseen.value = sum(len(w) for w in waiting.values())
            taken.value += arrived
        for slug in [s for s, w in waiting.items() if w]:
            hdrs = {"If-None-Match": etags[slug]} if slug in etags else {}
            got = _get(conn, f"/v1/articles/{slug}/comments?limit=100", hdrs)
            if got is None:
                polls["error"] += 1
                continue
            status, etag, data = got
            t = time.perf_counter()
            polls[str(status)] += 1
            if status == 200:
                if etag:
                    etags[slug] = etag
                for item in json.loads(data).get("items", []):
                    seen.setdefault(item["id"], t)
                    waiting.get(slug, {}).pop(item["id"], None)
        if cycle - last_check > 0.5:
            # Comments unseen for half a second: held or rejected ones are not waited for.
            last_check = cycle
            slow = [(s, c) for s, w in waiting.items() for c, t0 in w.items() if cycle - t0 > 0.5]
            for slug, cid in slow:
                got = _get(conn, f"/v1/comments/{cid}", {})
                polls["status"] += 1
                if got and got[0] == 200 and json.loads(got[2]).get("status") in ("held", "rejected"):
                    not_shown.append(cid)
                    waiting[slug].pop(cid, None)
        unseen.value = sum(len(w) for w in waiting.values())
        spare = poll_interval - (time.perf_counter() - cycle)
        time.sleep(spare if spare > 0 else 0.0005)
    outbox.send((seen, not_shown, dict(polls)))


def measure_e2e(base: str, slugs: list[str], payloads: list[dict[str, Any]], rate: float,
                seconds: float, window: int, tail: float, progress: Progress,
                poll_interval: float = 0.005) -> dict[str, Any]:
    """Open-loop POSTs at `rate`/s; each comment's time from its POST returning to the read
    endpoint listing it. Comment i goes to article i // window, so one small page holds it.

    The poller (`poll_visibility`) runs in a process of its own: in this one, sixteen sender
    threads take turns holding the interpreter, and a poller among them noticed a change only
    when its turn came. A comment unseen for a while is looked up once by id: if the engine
    held or rejected it, it is not waited for."""
    import multiprocessing as mp

    host, port = base.split("//", 1)[1].split(":")
    n = int(rate * seconds)
    returned = [0.0] * n
    ids: list[str | None] = [None] * n
    errors = Counter[str]()
    todo: queue.Queue[int | None] = queue.Queue()
    ctx = mp.get_context("spawn")
    inbox, to_poller = ctx.Pipe(duplex=False)
    from_poller, outbox = ctx.Pipe(duplex=False)
    stop, taken, unseen = ctx.Event(), ctx.Value("i", 0), ctx.Value("i", 0)
    poller = ctx.Process(target=poll_visibility, daemon=True,
                         args=(host, int(port), inbox, outbox, stop, taken, unseen, poll_interval))
    poller.start()
    # The clock starts once the poller is up (starting a process takes a good part of a second).
    if not from_poller.poll(60) or from_poller.recv() != "ready":
        raise RuntimeError("the end-to-end poller did not start")
    notify = threading.Lock()  # one sender at a time on the pipe
    # An overloaded API falls behind the schedule; what is still unsent 2 s after the last
    # slot is dropped (and counted) so the phase keeps to its time.
    send_deadline = [float("inf")]

    def sender() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        while True:
            i = todo.get()
            if i is None:
                break
            if time.perf_counter() > send_deadline[0]:
                errors["not sent (behind schedule)"] += 1
                continue
            slug = slugs[i // window]
            try:
                conn.request("POST", f"/v1/articles/{slug}/comments", json.dumps(payloads[i]),
                             {"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                t = time.perf_counter()
                if r.status == 202:
                    cid = json.loads(data)["id"]
                    ids[i], returned[i] = cid, t
                    with notify:
                        to_poller.send((slug, cid, t))
                else:
                    errors[f"post {r.status}"] += 1
            except (OSError, http.client.HTTPException) as exc:
                errors[f"post {type(exc).__name__}"] += 1
                conn.close()

    senders = [threading.Thread(target=sender, daemon=True) for _ in range(16)]
    for t in senders:
        t.start()
    t0 = time.perf_counter()
    send_deadline[0] = t0 + seconds + 2.0
    for i in range(n):
        wait = t0 + i / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        todo.put(i)
        if i % rate == 0:
            progress(f"e2e: {rate:.0f} comments/s, {i / rate:4.1f}/{seconds:.0f} s, "
                     f"{unseen.value:,} on their way", quiet=True)
    for _ in senders:
        todo.put(None)
    for t in senders:
        t.join(timeout=15)
    send_seconds = time.perf_counter() - t0
    end = time.perf_counter() + tail
    accepted = sum(1 for c in ids if c is not None)
    # Done when the poller has taken in every accepted comment and awaits none of them.
    while time.perf_counter() < end and (taken.value < accepted or unseen.value):
        progress(f"e2e: waiting for the last comments to show, {unseen.value:,} on their way",
                 quiet=True)
        time.sleep(0.05)
    stop.set()
    seen: dict[str, float] = {}
    not_shown: list[str] = []
    polls: dict[str, int] = {}
    if from_poller.poll(10):
        seen, not_shown, polls = from_poller.recv()
    else:
        errors["poller gave no answer"] += 1
    poller.join(timeout=5)
    if poller.is_alive():
        poller.kill()
    t_end = time.perf_counter()
    latency = {cid: max(0.0, seen[cid] - returned[i]) * 1000 for i, cid in enumerate(ids)
               if cid is not None and cid in seen}
    unseen_ms = {cid: (t_end - returned[i]) * 1000 for i, cid in enumerate(ids)
                 if cid is not None and cid not in seen}
    return {
        "offered_rate": rate, "seconds": seconds, "send_seconds": send_seconds,
        "achieved_rate": accepted / send_seconds if send_seconds else 0.0,
        "posted": n, "accepted": accepted, "visible": len(latency),
        "errors": dict(errors), "polls": polls, "poll_interval_ms": poll_interval * 1000,
        "not_shown": len(not_shown), "latency": latency, "unseen": unseen_ms,
    }


def e2e_summary(raw: dict[str, Any], statuses: dict[str, str]) -> dict[str, Any]:
    """Percentiles over comments that should have shown: those held or rejected by the engine
    are left out (counted); those still pending or unseen count as the time they were watched."""
    latency, unseen = raw.pop("latency"), raw.pop("unseen")
    excluded = {cid for cid in unseen if statuses.get(cid) in ("held", "rejected")}
    censored = [ms for cid, ms in unseen.items() if cid not in excluded]
    observed = list(latency.values())
    out = dict(raw, held_or_rejected=len(excluded), unseen_when_stopped=len(censored))
    for q in (50, 90, 99):
        value, lower = percentile_censored(observed, censored, q)
        out[f"p{q}_ms"], out[f"p{q}_lower_bound"] = value, lower
    out["max_ms"] = max(observed) if observed else None
    out["statuses"] = dict(Counter(statuses.values()))
    return out


def statuses_of(db: Any, ids: list[str]) -> dict[str, str]:
    from sqlalchemy import select

    from services.comments.models import Comment

    out: dict[str, str] = {}
    with db.session() as s:
        for start in range(0, len(ids), 500):
            for cid, status in s.execute(select(Comment.id, Comment.status).where(
                    Comment.id.in_(ids[start:start + 500]))):
                out[cid] = status
    return out


def decided_latency(db: Any, ids: list[str]) -> dict[str, Any]:
    """created_at → decided_at as the database recorded them (the pipeline's share of e2e)."""
    from sqlalchemy import select

    from services.comments.models import Comment

    out: list[float] = []
    with db.session() as s:
        for start in range(0, len(ids), 500):
            for created, decided in s.execute(
                    select(Comment.created_at, Comment.decided_at).where(
                        Comment.id.in_(ids[start:start + 500]))):
                if created is not None and decided is not None:
                    out.append((decided - created).total_seconds() * 1000)
    return {"p50_ms": percentile(out, 50), "p99_ms": percentile(out, 99), "n": len(out)}


def measure(run: Run, slugs: list[str]) -> None:
    """Clean comments at `--e2e-rate` for `--e2e-seconds`, each timed until readers see it."""
    args = run.args
    run.progress(f"e2e: {args.e2e_rate:.0f} comments/s for {args.e2e_seconds:.0f} s")
    payloads = [run.corpus.payload(b) for b in
                run.corpus.clean_unique(int(args.e2e_rate * args.e2e_seconds))]
    # This process holds the engine and the corpora: a full collection of them in a sender
    # thread would delay a POST or the note of when it returned.
    gc.collect()
    gc.freeze()
    e2e = measure_e2e(run.base, slugs, payloads, args.e2e_rate, args.e2e_seconds, 25, 5.0,
                      run.progress)
    e2e_ids = list(e2e["latency"]) + list(e2e["unseen"])
    e2e = e2e_summary(e2e, statuses_of(run.db, e2e_ids))
    e2e["decided"] = decided_latency(run.db, e2e_ids)
    run.details["e2e"] = e2e
    for q in ("p50", "p99"):
        run.results[f"e2e_{q}_ms"] = e2e[f"{q}_ms"]
        if e2e[f"{q}_lower_bound"]:
            run.results[f"e2e_{q}_ms_lower_bound"] = True
