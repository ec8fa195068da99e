"""The run's report: the table printed, var/bench.json and var/performance*.md written, and the
docs only when asked (`--write-docs`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from .stack import RssSampler
from .stats import evaluate_targets, machine_line, ratio, render_markdown, render_text, table_rows


def report(results: dict[str, Any], details: dict[str, Any], sampler: RssSampler,
           machine: dict[str, Any], seconds: float, var: Path, database_url: str,
           write_docs: bool) -> None:
    """Ratios and targets from the figures; print them and write var/ (and docs if asked)."""
    mb = 1024 * 1024
    results["rss_mb_api"] = sampler.peak["api"] / mb
    results["rss_mb_worker"] = sampler.peak["worker"] / mb
    results["ingest_ratio"] = ratio(results.get("ingest_rps"), results.get("ingest_baseline_rps"))
    results["pipeline_ratio"] = ratio(results.get("pipeline_cps"), results.get("noop_cps"))
    results["read_ratio"] = ratio(results.get("read_rps"), results.get("read_baseline_rps"))
    results["read_ratio_inm"] = ratio(results.get("read_rps_inm"), results.get("read_baseline_rps"))
    targets = evaluate_targets(results)
    rows = table_rows(results)
    details["rss_processes"] = sampler.processes
    details["seconds"] = seconds
    figures = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in results.items()}
    figures["targets_met"] = {k: v["met"] for k, v in targets.items()}
    figures["machine"] = machine

    notes = notes_for(details)
    text = render_text(rows)
    print(f"Triage benchmark — {machine_line(machine)}")
    print(text)
    for note in notes:
        print(f"  · {note}")
    print(f"  · total {details['seconds']:.0f} s; details in var/bench.json, logs in var/bench/")
    (var / "bench.json").write_text(json.dumps(
        {"figures": figures, "targets": targets, "details": details}, indent=2, default=str) + "\n",
        encoding="utf-8")
    md = [f"Measured by `make bench` on {machine_line(machine)}.", "", render_markdown(rows), ""]
    md += [f"- {note}" for note in notes]
    section = readme_section(database_url)
    # `make docs` (or --write-docs) copies this into the docs; a plain run changes no tracked file.
    (var / f"{section}.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    if write_docs:
        from services.readme import write_table

        try:
            write_table(section, "\n".join(md))
        except SystemExit as exc:
            print(f"bench: docs not updated: {exc}", file=sys.stderr)
    print(json.dumps(figures, separators=(",", ":"), default=str))


def readme_section(database_url: str) -> str:
    """The README section a run writes: the default SQLite's table, or its database's own, so
    a run on PostgreSQL stands beside the default's instead of replacing it."""
    backend = make_url(database_url).get_backend_name()
    return "performance" if backend == "sqlite" else f"performance-{backend}"


def notes_for(d: dict[str, Any]) -> list[str]:
    """How each figure was taken, in a few lines under the table."""
    out = []
    ing = d.get("ingest", {})
    base = d.get("ingest_baseline", {})
    out.append(f"ingest: {d.get('tool')} -t2 -c32, bodies drawn from 4,000 varied comments; worker "
               f"frozen meanwhile; {ing.get('error_count', 0)} errors (baseline "
               f"{base.get('error_count', 0)}); {len(ing.get('rounds', []))} turns each, "
               f"req/s by turn {_turns(ing)} (baseline {_turns(base)})"
               + ("; the server closes each connection after its answer, the baseline's as the "
                  "posts'" if d.get("read_check", {}).get("connection") == "close" else "") + ".")
    p = d.get("pipeline", {})
    if p:
        mix = ", ".join(f"{k} {v}" for k, v in sorted(p.get("mix", {}).items()))
        out.append(f"pipeline: {p.get('comments', 0):,} comments ({mix}) queued with the worker "
                   f"frozen, timed from its release to the last decision"
                   + ("" if p.get("complete") else f" — stopped after {p.get('cap_seconds', 0):.0f} s "
                      f"with {p.get('decided', 0):,} decided (rate over that time)")
                   + "; noop: the same count of `bench.noop` through the same broker and worker.")
    nd = d.get("noop", {})
    if nd and not nd.get("complete", True):
        out.append(f"noop: stopped after {nd.get('seconds', 0):.0f} s with {nd.get('left', 0):,} "
                   "tasks left (rate over that time).")
    rc = d.get("read_check", {})
    out.append(f"read: page of 100 of 200 approved; ETag {'served' if rc.get('etag') else 'not served'}"
               f", If-None-Match answered {rc.get('if_none_match_status') or '—'}; "
               f"req/s by turn {_turns(d.get('read', {}))}, with If-None-Match "
               f"{_turns(d.get('read_inm', {}))} (baseline {_turns(d.get('read_baseline', {}))}).")
    c = d.get("classify", {})
    if c:
        out.append(f"classify: {c.get('comments', 0):,} comments of the {c.get('source', '?')}, "
                   f"{c.get('samples', 0):,} timed calls (mean {c.get('mean', 0):,.0f} µs), in a "
                   "process holding only the engine, once the stack had "
                   + (f"used under 5% of a core for 0.5 s (waited {c.get('quiet_wait_s', 0):.1f} s)."
                      if c.get("stack_quiet") else
                      f"not gone quiet within {c.get('quiet_wait_s', 0):.0f} s (timed anyway)."))
    e = d.get("e2e", {})
    if e:
        dec = e.get("decided", {})
        out.append(f"e2e: {e.get('accepted', 0):,} clean comments at {e.get('offered_rate', 0):.0f}/s "
                   f"open loop ({e.get('achieved_rate', 0):.0f}/s achieved), visibility polled on the "
                   f"read endpoint every {e.get('poll_interval_ms', 0):.0f} ms; "
                   + "".join(f"{v} {k}, " for k, v in e.get("errors", {}).items()) +
                   f"{e.get('held_or_rejected', 0)} held by the engine (left out), "
                   f"{e.get('unseen_when_stopped', 0)} still unseen {5:.0f} s after the last POST "
                   "(counted as the time watched, so ≥ marks a lower bound); "
                   "decision alone (DB created→decided) "
                   f"p50 {_ms(dec.get('p50_ms'))}, p99 {_ms(dec.get('p99_ms'))}.")
    co = d.get("coral", {})
    if co:
        out.append(f"coral: {co.get('n', 0):,} signed requests at {co.get('rate', 0):.0f}/s open loop "
                   f"to an API of its own (worker frozen), statuses {co.get('statuses')}, "
                   f"{co.get('answered_in_budget', 0):.1%} decided in the budget, "
                   f"max {_ms(co.get('max_ms'))}.")
    return out


def _turns(run: dict[str, Any]) -> str:
    return " / ".join(f"{r:,.0f}" for r in run.get("rounds", [])) or "—"


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f} ms"
