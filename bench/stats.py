"""Pure helpers of the benchmark: percentiles, ratios, targets and the tables it prints."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    data = sorted(values)
    if len(data) == 1:
        return float(data[0])
    pos = (len(data) - 1) * (q / 100.0)
    lo, hi = math.floor(pos), math.ceil(pos)
    if lo == hi:
        return float(data[lo])
    return float(data[lo] + (data[hi] - data[lo]) * (pos - lo))


def percentile_censored(observed: Sequence[float], censored: Sequence[float],
                        q: float) -> tuple[float | None, bool]:
    """Percentile when some samples were still unseen at the end: each counts as the time it was
    watched (a lower bound). Returns the value and whether it is only a lower bound."""
    values = list(observed) + list(censored)
    value = percentile(values, q)
    lower = value is not None and bool(censored) and value >= min(censored)
    return value, lower


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    op: str  # ">=" or "<="
    bound: float

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.bound if self.op == ">=" else value <= self.bound


TARGETS = (
    Target("ingest_ratio", "ingest / baseline", ">=", 0.5),
    # the learned layer costs the worker more than a no-op task: half its ceiling is the goal
    Target("pipeline_ratio", "pipeline / noop", ">=", 0.5),
    Target("read_ratio", "read / baseline", ">=", 0.8),
    Target("read_ratio_inm", "read (If-None-Match) / baseline", ">=", 0.8),
    Target("e2e_p50_ms", "e2e p50 (ms)", "<=", 25.0),
    Target("e2e_p99_ms", "e2e p99 (ms)", "<=", 100.0),
    # the whole chain, learned layer included, for one comment on one core
    Target("classify_us_p50", "classify p50 (µs)", "<=", 5000.0),
    # Coral waits 200 ms for an external phase by default.
    Target("coral_p99_ms", "Coral phase p99 (ms)", "<=", 200.0),
)


def evaluate_targets(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{key: {value, target, met}} for every target of the issue."""
    out = {}
    for t in TARGETS:
        value = figures.get(t.key)
        out[t.key] = {"value": value, "target": f"{t.op} {t.bound:g}", "met": t.met(value)}
    return out


def fmt(value: Any, digits: int = 0) -> str:
    """A figure for a table: thousands separators, fixed digits, '—' when missing."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            return "—"
        return f"{value:,.{digits}f}"
    return str(value)


def met_text(met: bool | None) -> str:
    return "—" if met is None else ("met" if met else "NOT MET")


# (label, measurement key, baseline key, ratio key, unit, digits)
ROWS = (
    ("ingest: POST comments, 32 clients", "ingest_rps", "ingest_baseline_rps", "ingest_ratio", "req/s", 0),
    ("pipeline: enqueue → decision", "pipeline_cps", "noop_cps", "pipeline_ratio", "comments/s", 0),
    ("read: GET 100 of 200 approved", "read_rps", "read_baseline_rps", "read_ratio", "req/s", 0),
    ("read: same, If-None-Match", "read_rps_inm", "read_baseline_rps", "read_ratio_inm", "req/s", 0),
    ("e2e POST → visible, p50", "e2e_p50_ms", None, "e2e_p50_ms", "ms", 1),
    ("e2e POST → visible, p99", "e2e_p99_ms", None, "e2e_p99_ms", "ms", 1),
    ("classify (filter chain), p50", "classify_us_p50", None, "classify_us_p50", "µs", 0),
    ("classify (filter chain), p99", "classify_us_p99", None, None, "µs", 0),
    ("Coral phase at 50/s, p50", "coral_p50_ms", None, None, "ms", 1),
    ("Coral phase at 50/s, p99", "coral_p99_ms", None, "coral_p99_ms", "ms", 1),
    ("peak RSS, API (gunicorn tree)", "rss_mb_api", None, None, "MB", 0),
    ("peak RSS, worker (celery tree)", "rss_mb_worker", None, None, "MB", 0),
)


def table_rows(figures: dict[str, Any]) -> list[list[str]]:
    """Rows of [measure, value, baseline, ratio, target, result]."""
    targets = {t.key: t for t in TARGETS}
    rows = []
    for label, key, base, rkey, unit, digits in ROWS:
        value = figures.get(key)
        baseline = fmt(figures.get(base), digits) if base else ""
        r = figures.get(rkey) if rkey and rkey != key else None
        t = targets.get(rkey) if rkey else None
        judged = figures.get(rkey) if rkey else None
        bound = "≥ " if figures.get(f"{key}_lower_bound") else ""
        rows.append([
            label,
            f"{bound}{fmt(value, digits)} {unit}",
            baseline,
            fmt(r, 2) if r is not None else "",
            f"{t.op} {t.bound:g}" if t else "",
            met_text(t.met(judged)) if t else "",
        ])
    return rows


HEADERS = ["measure", "value", "baseline", "ratio", "target", "result"]


def render_text(rows: list[list[str]], headers: Sequence[str] = HEADERS) -> str:
    """A plain aligned table for the terminal."""
    widths = [max(len(str(r[i])) for r in [list(headers), *rows]) for i in range(len(headers))]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    return "\n".join(out)


def render_markdown(rows: list[list[str]], headers: Sequence[str] = HEADERS) -> str:
    """The same table in Markdown (README)."""
    esc = [[str(c).replace("|", "\\|") for c in r] for r in rows]
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(r) + " |" for r in esc]
    return "\n".join(out)


def machine_line(machine: dict[str, Any]) -> str:
    """One line naming the machine and the versions the figures were measured with."""
    versions = ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items() if v)
    return (f"{machine.get('date', '')} · {machine.get('cores')} cores ({machine.get('cpu', '?')}) · "
            f"Python {machine.get('python')} · {machine.get('database', '?')} · {versions}")
