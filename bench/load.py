"""HTTP load: wrk with a generated Lua script, or a small asyncio client when wrk is missing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .stats import percentile

MARK = "BENCHJSON "

# wrk runs LuaJIT; `%.0f` rather than `%d` so fractional numbers never raise.
_DONE = r'''
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCHJSON {\"requests\":%.0f,\"duration_us\":%.0f,\"bytes\":%.0f," ..
    "\"errors\":{\"connect\":%.0f,\"read\":%.0f,\"write\":%.0f,\"status\":%.0f,\"timeout\":%.0f}," ..
    "\"latency_us\":{\"p50\":%.0f,\"p90\":%.0f,\"p99\":%.0f,\"max\":%.0f,\"mean\":%.1f}}\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
'''


def lua_string(text: str) -> str:
    """`text` as a Lua long-bracket literal whose level never occurs inside it."""
    level = 0
    while f"]{'=' * level}]" in text or text.endswith("]" + "=" * level):
        level += 1
    eq = "=" * level
    # A newline right after the opening bracket would be dropped by Lua: never start with one.
    return f"[{eq}[{text}]{eq}]"


def lua_script(method: str, path: str, headers: dict[str, str] | None = None,
               bodies: Sequence[str] | None = None) -> str:
    """A wrk script: every request picks one of `bodies` at random (per-thread seed)."""
    hdrs = ", ".join(f"[ {lua_string(k)} ] = {lua_string(v)}" for k, v in (headers or {}).items())
    parts = [
        f"local method = {lua_string(method)}",
        f"local path = {lua_string(path)}",
        f"local headers = {{{hdrs}}}",
        "local nthreads = 0",
        "function setup(thread) nthreads = nthreads + 1; thread:set('tid', nthreads) end",
    ]
    if bodies:
        parts.append("local bodies = {")
        parts += [f"  {lua_string(b)}," for b in bodies]
        parts.append("}")
        parts.append("local n = #bodies")
        parts.append("function init(args) math.randomseed(7919 * (tid or 1) + os.time()) end")
        parts.append("request = function() return wrk.format(method, path, headers, "
                     "bodies[math.random(n)]) end")
    else:
        parts.append("local req = wrk.format(method, path, headers, nil)")
        parts.append("request = function() return req end")
    parts.append(_DONE)
    return "\n".join(parts) + "\n"


def parse_wrk(stdout: str) -> dict[str, Any]:
    """The summary our done() prints, with successful requests per second added."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARK):
            data: dict[str, Any] = json.loads(line[len(MARK):])
            break
    else:
        raise ValueError("wrk printed no summary line:\n" + stdout[-2000:])
    errors = data["errors"]
    failed = int(errors.get("status", 0))
    seconds = data["duration_us"] / 1e6
    ok = max(0, int(data["requests"]) - failed)
    data["ok"] = ok
    data["seconds"] = seconds
    data["rps"] = ok / seconds if seconds > 0 else 0.0
    data["error_count"] = sum(int(v) for v in errors.values())
    return data


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(base_url: str, method: str, path: str, *, seconds: float, connections: int = 32,
            threads: int = 2, headers: dict[str, str] | None = None,
            bodies: Sequence[str] | None = None, workdir: Path) -> dict[str, Any]:
    """Run wrk for `seconds` and return the parsed summary."""
    workdir.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(repr((method, path, sorted((headers or {}).items()))).encode()).hexdigest()
    script = workdir / f"wrk-{method.lower()}-{key[:8]}.lua"  # same name each run: overwritten
    script.write_text(lua_script(method, path, headers, bodies), encoding="utf-8")
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
           "--timeout", "5s", "-s", str(script), base_url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    result = parse_wrk(proc.stdout)
    result["tool"] = "wrk"
    return result


# -- fallback: an asyncio client (used only when wrk cannot be installed) ---------------------

async def _one_connection(host: str, port: int, make_request: Any, deadline: float,
                          lat: list[float], counts: dict[str, int]) -> None:
    reader = writer = None
    while time.perf_counter() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            t0 = time.perf_counter()
            writer.write(make_request())
            await writer.drain()
            status_line = await reader.readline()  # type: ignore[union-attr]
            if not status_line:
                raise ConnectionError("closed")
            status = int(status_line.split()[1])
            length, close = 0, False
            while True:
                h = await reader.readline()  # type: ignore[union-attr]
                if h in (b"\r\n", b""):
                    break
                name, _, value = h.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
                elif name.lower() == "connection" and value.strip().lower() == "close":
                    close = True
            if length:
                await reader.readexactly(length)  # type: ignore[union-attr]
            lat.append(time.perf_counter() - t0)
            counts["requests"] += 1
            if status >= 400:
                counts["status"] += 1
            if close:
                writer.close()
                reader = writer = None
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
            counts["read"] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.01)


def run_python(base_url: str, method: str, path: str, *, seconds: float, connections: int = 32,
               headers: dict[str, str] | None = None, bodies: Sequence[str] | None = None,
               **_: Any) -> dict[str, Any]:
    """The same measurement with an asyncio keep-alive client (slower than wrk)."""
    u = urlsplit(base_url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    rng = random.Random(6)
    hdr = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())

    def make_request() -> bytes:
        body = rng.choice(bodies).encode() if bodies else b""
        head = (f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{hdr}"
                f"Content-Length: {len(body)}\r\n\r\n")
        return head.encode() + body

    lat: list[float] = []
    counts = {"requests": 0, "status": 0, "read": 0}

    async def main() -> float:
        t0 = time.perf_counter()
        deadline = t0 + seconds
        await asyncio.gather(*(_one_connection(host, port, make_request, deadline, lat, counts)
                               for _ in range(connections)))
        return time.perf_counter() - t0

    elapsed = asyncio.run(main())
    us = [x * 1e6 for x in lat]
    ok = counts["requests"] - counts["status"]
    return {
        "tool": "python-asyncio",
        "requests": counts["requests"], "duration_us": elapsed * 1e6, "bytes": 0,
        "errors": {"connect": 0, "read": counts["read"], "write": 0, "status": counts["status"],
                   "timeout": 0},
        "latency_us": {"p50": percentile(us, 50), "p90": percentile(us, 90),
                       "p99": percentile(us, 99), "max": max(us) if us else None,
                       "mean": sum(us) / len(us) if us else None},
        "ok": ok, "seconds": elapsed, "rps": ok / elapsed if elapsed else 0.0,
        "error_count": counts["status"] + counts["read"],
    }


def run_load(base_url: str, method: str, path: str, **kw: Any) -> dict[str, Any]:
    """wrk when installed, else the asyncio client."""
    if have_wrk():
        return run_wrk(base_url, method, path, **kw)
    kw.pop("workdir", None)
    kw.pop("threads", None)
    return run_python(base_url, method, path, **kw)


def merge_runs(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of one load as one: requests, errors and time added up. Percentiles do not
    add up, so the merged latency is the median run's p50 and the worst run's p99 and max."""
    seconds = sum(r["seconds"] for r in runs)
    ok = sum(r["ok"] for r in runs)
    errors: dict[str, int] = {}
    for r in runs:
        for k, v in r.get("errors", {}).items():
            errors[k] = errors.get(k, 0) + int(v)
    lat = [r.get("latency_us") or {} for r in runs]

    def worst(key: str) -> float | None:
        vals = [x[key] for x in lat if x.get(key) is not None]
        return max(vals) if vals else None

    p50s = sorted(x["p50"] for x in lat if x.get("p50") is not None)
    return {
        "tool": runs[0].get("tool") if runs else None,
        "requests": sum(r.get("requests", 0) for r in runs), "ok": ok, "seconds": seconds,
        "rps": ok / seconds if seconds > 0 else 0.0, "errors": errors,
        "error_count": sum(r.get("error_count", 0) for r in runs),
        "latency_us": {"p50": p50s[len(p50s) // 2] if p50s else None, "p99": worst("p99"),
                       "max": worst("max")},
        "rounds": [round(r["rps"], 1) for r in runs],
    }


def alternate(loads: dict[str, Callable[[float], dict[str, Any]]], seconds: float,
              rounds: int) -> dict[str, dict[str, Any]]:
    """Run the loads in turn, `rounds` times, each for `seconds / rounds`, and merge each
    load's runs. A baseline and its measurement then share the machine's slow and fast spells
    (these machines drift by a tenth and more within a minute), where back-to-back runs of a
    whole `seconds` each put a spell on one side of the ratio only."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in loads}
    for _ in range(rounds):
        for name, run in loads.items():
            runs[name].append(run(seconds / rounds))
    return {name: merge_runs(r) for name, r in runs.items()}
