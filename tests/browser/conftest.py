"""Browser fixtures: the real API under gunicorn on a free port, and Debian's Chromium driven by
Selenium through Debian's chromedriver (never a downloaded browser)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from services.comments.moderation import ModerationService
from services.comments.service import CommentService
from services.config import ROOT, Settings
from tests.conftest import settings_env

CHROMIUM = Path(os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver"))
ARTIFACTS = ROOT / "test-artifacts"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveApi:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path


@pytest.fixture
def live_api(queue_settings: Settings, service: CommentService, tmp_path: Path) -> Iterator[LiveApi]:
    """`python -m services api` (gunicorn) on the test database; posts send real tasks to Redis."""
    port = _free_port()
    env = settings_env(queue_settings)
    env.update(HOST="127.0.0.1", PORT=str(port), RATELIMIT_ENABLED="false", WEB_CONCURRENCY="2",
               LOG_LEVEL="WARNING", AUTHOR_SALT=queue_settings.author_salt)
    log_path = tmp_path / "api.log"
    log = open(log_path, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "services", "api"], env=env, cwd=ROOT,
                            stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
            pytest.fail("the API did not start:\n" + log_path.read_text(errors="replace")[-3000:])
        time.sleep(0.2)
    yield LiveApi(url, proc, log_path)
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    log.close()
    tail = log_path.read_text(errors="replace")[-3000:]
    if tail.strip():
        sys.stderr.write(tail)


@pytest.fixture
def moderator_key(service: CommentService) -> str:
    _, key = ModerationService(service).create_key("Ana", "moderator")
    return key


@pytest.fixture
def chrome(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Headless Chromium; the flags keep it off the network it cannot reach here."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER}: run `make browser-deps` as root")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(
        options=opts,
        service=Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log")),
    )
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
