"""Ingest: POSTs against a same-run echo baseline, taking turns, with the worker frozen."""

from __future__ import annotations

import json
from typing import Any

from .common import Run, purge_queue
from .load import alternate


def measure(run: Run) -> None:
    """The worker is frozen so the API alone is measured; the backlog is purged after."""
    run.stack.pause("worker")
    bodies = [json.dumps(run.corpus.payload(b)) for _, b in run.corpus.mixed(4000)]
    json_type = {"Content-Type": "application/json"}
    post_path = f"/v1/articles/{run.settings.demo_article_slug}/comments"
    kw: dict[str, Any] = {"headers": json_type, "bodies": bodies}
    runs = alternate({
        "echo": run.load("ingest baseline: POST /bench/echo", "POST", "/bench/echo", **kw),
        "post": run.load("ingest: POST /v1/articles/…/comments", "POST", post_path, **kw),
    }, run.args.ingest_seconds, run.args.rounds)
    echo, ingest = runs["echo"], runs["post"]
    run.details["ingest"], run.details["ingest_baseline"] = ingest, echo
    run.results["ingest_rps"], run.results["ingest_baseline_rps"] = ingest["rps"], echo["rps"]
    run.details["ingest_purged"] = purge_queue(run.r, run.qname)
