"""One wiring for every process: the API, the worker and the CLI get their services from build()."""

from __future__ import annotations

from dataclasses import replace

from services.queue.buffer import SendBuffer
from services.wiring import build


def test_every_role_gets_every_moderation_rule_from_settings(settings):
    s = replace(settings, report_threshold=7, report_threshold_self_harm=2, trust_min_approved=9)
    for role in ("api", "worker", "cli"):
        rules = build(s, role).moderation.rules
        assert (rules.report_threshold, rules.report_threshold_self_harm,
                rules.trust_min_approved) == (7, 2, 9), role


def test_the_api_batches_sends_the_worker_sends_at_once_the_cli_has_no_queue(settings):
    api = build(replace(settings, enqueue_delay_ms=2), "api")
    assert isinstance(api.send_buffer, SendBuffer) and api.comments.dispatch == api.send_buffer.add
    worker = build(replace(settings, enqueue_delay_ms=2), "worker")
    assert worker.send_buffer is None and worker.sender is not None
    assert worker.comments.dispatch == worker.sender.moderate
    assert worker.comments.redispatch_many == worker.sender.moderate_many
    cli = build(settings, "cli")
    assert cli.sender is None and cli.read_cache is None and cli.comments.dispatch is None


def test_the_app_and_the_worker_runtime_use_the_one_wiring(settings, monkeypatch):
    import services.wiring as wiring
    from services.api import create_app
    from workers.runtime import Runtime

    roles: list[str] = []
    real = wiring.build

    def spy(s, role, **kw):  # type: ignore[no-untyped-def]
        roles.append(role)
        return real(s, role, **kw)

    monkeypatch.setattr("services.api.build", spy)
    monkeypatch.setattr("workers.runtime.build", spy)
    app = create_app(settings)
    rt = Runtime(settings)
    assert roles == ["api", "worker"]
    assert app.extensions["triage.services"].settings is settings
    assert rt.moderation.rules.trust_min_approved == settings.trust_min_approved


def test_the_published_default_salt_is_refused_outside_development(settings) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from services.config import DEFAULT_AUTHOR_SALT, Settings, UnsafeSettings

    unsafe = replace(settings, author_salt=DEFAULT_AUTHOR_SALT)
    with pytest.raises(UnsafeSettings):
        build(unsafe, "api")
    with pytest.raises(UnsafeSettings):
        build(unsafe, "worker")
    assert Settings.from_env({}).environment == "production"
    build(replace(unsafe, environment="development"), "api")  # a laptop may


def test_author_refs_are_keyed_hmacs_and_an_email_counts_only_with_its_address() -> None:
    import hashlib
    import hmac

    from services.comments.shapes import author_ref, salted_hash

    assert salted_hash("k", "ip", "10.0.0.1") == hmac.new(b"k", b"ip\x0010.0.0.1", hashlib.sha256).hexdigest()
    assert salted_hash("k", "ip", "10.0.0.1") != hashlib.sha256(b"k\x00ip\x0010.0.0.1").hexdigest()
    victim = author_ref("k", "Victim@Example.org", "10.0.0.1")
    assert author_ref("k", "victim@example.org ", "10.0.0.1") == victim
    assert author_ref("k", "victim@example.org", "10.6.6.6") != victim
