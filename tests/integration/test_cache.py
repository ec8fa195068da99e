"""The public read cache's tokens: kept by each API process, dropped when a change is heard."""

from __future__ import annotations

import signal
import uuid

import pytest

from services.cache import ReadCache
from tests.conftest import REDIS_URL, free_port, wait_for
from tests.integration.test_faults import _redis_server

pytestmark = pytest.mark.integration


def test_a_replaced_token_is_heard_by_a_reading_process_at_once() -> None:
    slug = f"cache-{uuid.uuid4().hex[:8]}"
    # Kept tokens trusted for a minute: only the announcement can make the reader look again.
    reader = ReadCache(REDIS_URL, heard_token_ttl=60)
    writer = ReadCache(REDIS_URL)  # the worker, recording a decision
    first = reader.generation(slug)
    wait_for(lambda: reader._listening, timeout=5, interval=0.01)
    kept = reader.generation(slug)
    assert kept == first  # nothing changed it
    writer.invalidate(slug)
    replaced = wait_for(lambda: (t := reader.generation(slug)) != kept and t, timeout=2, interval=0.01)
    assert replaced == writer.generation(slug)


def test_after_a_redis_restart_the_reader_hears_changes_again() -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = _redis_server(port)
    try:
        slug = "cache-restart"
        reader = ReadCache(url, heard_token_ttl=60)
        before = reader.generation(slug)
        wait_for(lambda: reader._listening, timeout=5, interval=0.01)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        server = _redis_server(port)  # back, and empty
        writer = ReadCache(url)
        # The reader reconnects, forgets what it kept, and follows the new tokens.
        wait_for(lambda: reader._listening and reader.generation(slug) != before, timeout=20,
                 interval=0.05)
        current = reader.generation(slug)
        writer.invalidate(slug)
        wait_for(lambda: reader.generation(slug) != current, timeout=2, interval=0.01)
    finally:
        server.kill()
        server.wait(10)
