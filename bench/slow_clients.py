"""Slow clients against the API's gunicorn, per worker class: `python -m bench.slow_clients sync
services.gworker.Worker`. For each class: wrk on /healthz (16 connections, 8 s), then 50 sockets
trickling one header line every 2 s while /healthz is asked three times (15 s timeout each).
Runs a private API on a free port with SQLite under var/; needs Redis at REDIS_URL and wrk."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from services.config import ROOT
from services.migrate import upgrade


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(worker_class: str) -> str:
    port = _free_port()
    db = ROOT / "var" / "slow-clients.db"
    db.parent.mkdir(exist_ok=True)
    db.unlink(missing_ok=True)
    upgrade(f"sqlite:///{db}")
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{db}", METRICS_DIR="", LOG_LEVEL="WARNING",
               RATELIMIT_ENABLED="false", PORT=str(port), TRIAGE_ENV="development")
    code = ("from services.config import Settings; from services.server import _Gunicorn, "
            "gunicorn_options; s = Settings.from_env(); o = gunicorn_options(s); "
            f"o['worker_class'] = {worker_class!r}; _Gunicorn(s, o).run()")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/healthz"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base, timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        wrk = subprocess.run(["wrk", "-t2", "-c16", "-d8s", base], capture_output=True,
                             text=True).stdout
        rps = next((ln.split()[-1] for ln in wrk.splitlines() if "Requests/sec" in ln), "?")
        socks = []
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        stop = threading.Event()

        def trickle() -> None:
            for _ in range(10):
                if stop.wait(2):
                    return
                for s in socks:
                    try:
                        s.sendall(b"X-Slow: 1\r\n")
                    except OSError:
                        pass

        threading.Thread(target=trickle, daemon=True).start()
        time.sleep(1)
        answers = []
        for _ in range(3):
            started = time.monotonic()
            try:
                urllib.request.urlopen(base, timeout=15)
                answers.append(f"{time.monotonic() - started:.3f} s")
            except OSError:
                answers.append(f"none in {time.monotonic() - started:.0f} s")
            time.sleep(1)
        stop.set()
        for s in socks:
            s.close()
        return f"{worker_class}: wrk /healthz {rps} req/s; /healthz behind 50 slow clients: {answers}"
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(20)


if __name__ == "__main__":
    for name in sys.argv[1:] or ["sync", "services.gworker.Worker"]:
        print(run(name), flush=True)
