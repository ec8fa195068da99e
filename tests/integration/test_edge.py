"""The API at its edge, as a real `triage api` process serves it: slow clients, bodies."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
import requests

pytestmark = pytest.mark.integration


def _slow_clients(port: int, n: int, rounds: int, every: float, stop: threading.Event) -> list[socket.socket]:
    """n sockets that each start a request and then send one header line every `every` seconds
    (slowloris); a thread keeps them trickling for `rounds` rounds at most."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)

    def trickle() -> None:
        for i in range(rounds):
            if stop.wait(every):
                return
            for s in socks:
                try:
                    s.sendall(f"X-Slow-{i}: 1\r\n".encode())
                except OSError:
                    pass

    threading.Thread(target=trickle, daemon=True).start()
    return socks


def test_fifty_slow_clients_cost_connections_not_workers(settings, api_factory) -> None:
    api, base = api_factory(settings, WEB_CONCURRENCY="2")
    port = int(base.rsplit(":", 1)[1])
    for _ in range(4):  # both processes past their first request (imports, connections)
        requests.get(f"{base}/healthz", timeout=10)
    stop = threading.Event()
    socks = _slow_clients(port, 50, rounds=6, every=2.0, stop=stop)
    try:
        time.sleep(1.0)  # every slow request has reached a worker, if workers take them
        for _ in range(3):
            started = time.monotonic()
            resp = requests.get(f"{base}/healthz", timeout=10)
            elapsed = time.monotonic() - started
            assert resp.status_code == 200
            # Sync workers each stuck on a slow header took 30 s here (and were killed).
            assert elapsed < 1.0, f"/healthz took {elapsed:.2f}s behind 50 slow clients"
            time.sleep(2.0)
        assert api.proc.poll() is None
        # gunicorn 25+ opens a control socket shared by every instance on the host; ours is off.
        assert "Control socket" not in api.log_path.read_text(errors="replace")
    finally:
        stop.set()
        for s in socks:
            s.close()


def test_a_chunked_body_over_the_limit_is_413(settings, service, api_factory) -> None:
    from tests.conftest import DEMO

    _api, base = api_factory(settings, WEB_CONCURRENCY="1")

    def chunked(size: int):  # no Content-Length: requests sends Transfer-Encoding: chunked
        data = ('{"author": "Big", "body": "' + "a" * size + '"}').encode()
        for i in range(0, len(data), 8192):
            yield data[i:i + 8192]

    url = f"{base}/v1/articles/{DEMO}/comments"
    resp = requests.post(url, data=chunked(100_000), timeout=10,
                         headers={"Content-Type": "application/json"})
    # Werkzeug cut the body at 64 KiB and the broken JSON was a 400.
    assert resp.status_code == 413, resp.text
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    small = requests.post(url, data=chunked(1000), timeout=10,
                          headers={"Content-Type": "application/json"})
    assert small.status_code == 202, small.text


@pytest.fixture
def nginx_front(tmp_path):  # type: ignore[no-untyped-def]
    """deploy/nginx.conf run by Debian's nginx in front of a given API port (the compose file's
    proxy, with its upstream and port swapped for the test's)."""
    import shutil
    import subprocess

    from services.config import ROOT
    from tests.conftest import free_port, wait_port

    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if binary is None:
        pytest.skip("nginx is not installed (make test installs Debian's nginx-light as root)")
    started: list[subprocess.Popen[bytes]] = []

    def start(api_port: int) -> int:
        port = free_port()
        conf = (ROOT / "deploy" / "nginx.conf").read_text()
        assert "server api:8000;" in conf and "listen 8080;" in conf
        temp = "".join(f"    {name}_temp_path {tmp_path / name};\n"
                       for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        # No streams process here: its upstream only has to resolve.
        conf = (conf.replace("server api:8000;", f"server 127.0.0.1:{api_port};")
                .replace("server streams:8001;", f"server 127.0.0.1:{free_port()};")
                .replace("listen 8080;", f"listen 127.0.0.1:{port};")
                .replace("http {\n", "http {\n" + temp, 1))
        path = tmp_path / "nginx.conf"
        path.write_text(conf)
        # Workers of a root master run as nobody, who may not write under the test's tmp_path.
        user = "user root; " if os.geteuid() == 0 else ""
        proc = subprocess.Popen([binary, "-e", "stderr", "-c", str(path), "-g",
                                 f"{user}daemon off; pid {tmp_path / 'nginx.pid'};"])
        started.append(proc)
        wait_port(port)
        return port

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(10)


def test_behind_the_compose_proxy_slow_clients_and_big_bodies_never_reach_the_api(
        settings, service, api_factory, nginx_front) -> None:
    from tests.conftest import DEMO

    _api, base = api_factory(settings, WEB_CONCURRENCY="1", PROXY_HOPS="1")
    port = nginx_front(int(base.rsplit(":", 1)[1]))
    front = f"http://127.0.0.1:{port}"
    assert requests.get(f"{front}/healthz", timeout=10).status_code == 200
    stop = threading.Event()
    socks = _slow_clients(port, 50, rounds=3, every=2.0, stop=stop)
    try:
        time.sleep(1.0)
        started = time.monotonic()
        assert requests.get(f"{front}/healthz", timeout=10).status_code == 200
        assert time.monotonic() - started < 1.0
    finally:
        stop.set()
        for s in socks:
            s.close()
    big = requests.post(f"{front}/v1/articles/{DEMO}/comments", timeout=10,
                        data=(b"x" * 8192 for _ in range(13)),
                        headers={"Content-Type": "application/json"})
    assert big.status_code == 413
    assert requests.get(f"{front}/metrics", timeout=10).status_code == 404
    # The client address the API sees is nginx's X-Forwarded-For, not a spoofed one.
    resp = requests.post(f"{front}/v1/articles/{DEMO}/comments", timeout=10,
                         json={"author": "Proxied", "body": "through nginx"},
                         headers={"X-Forwarded-For": "198.51.100.9"})
    assert resp.status_code == 202
    from services.comments.models import Comment

    with service.db.session() as s:
        row = s.get(Comment, resp.json()["id"])
        assert row.ip_hash == service.hash_ref("ip", "127.0.0.1")
