"""Typed settings read from the environment, once, by whoever starts a process.

Nothing here does I/O at import time: `Settings.from_env()` is called by the process factories
(create_app, make_celery, the CLI) and tests build `Settings(...)` directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


# Settings whose variable is not simply the field name upper-cased.
ENV_NAMES = {"bootstrap_token": "TRIAGE_BOOTSTRAP_TOKEN", "environment": "TRIAGE_ENV"}
DEFAULT_AUTHOR_SALT = "change-me-in-production"


class UnsafeSettings(ValueError):
    """A setting that must not be used as it is outside development."""


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Every setting of Triage; env var name is the field name upper-cased."""

    host: str = field(default="127.0.0.1", metadata={"doc": "Address the API binds to."})
    port: int = field(default=8000, metadata={"doc": "Port of the HTTP API."})
    database_url: str = field(
        default=f"sqlite:///{ROOT / 'var' / 'triage.db'}",
        metadata={"doc": "SQLAlchemy URL; `postgresql+psycopg://…` for PostgreSQL."},
    )
    redis_url: str = field(
        default="redis://127.0.0.1:6379/0",
        metadata={"doc": "Redis for the task queue and events (it carries work, never keeps it)."},
    )
    queue_name: str = field(default="moderation", metadata={"doc": "Celery queue for moderation."})
    web_concurrency: int = field(default=2, metadata={"doc": "gunicorn worker processes."})
    worker_concurrency: int = field(default=2, metadata={"doc": "Celery worker processes."})
    log_level: str = field(default="INFO", metadata={"doc": "Log level of every process."})
    max_request_bytes: int = field(
        default=65536, metadata={"doc": "Largest request body accepted (413 above)."}
    )
    visibility_timeout: int = field(
        default=120,
        metadata={"doc": "Seconds before Redis re-delivers a task a dead worker had taken."},
    )
    sweep_interval: int = field(
        default=30, metadata={"doc": "Seconds between sweeps that re-send pending comments."}
    )
    enqueue_delay_ms: int = field(
        default=10, metadata={"doc": "A busy API process hands accepted comments to the queue at "
                                     "most once per this many ms, in one Redis call (0: each "
                                     "request sends its own)."}
    )
    enqueue_busy_per_second: int = field(
        default=400, metadata={"doc": "Comments a second above which an API process is busy and "
                                      "batches them; below it, each is sent at once."}
    )
    task_soft_time_limit: int = field(
        default=30, metadata={"doc": "Seconds a moderation batch may run before it is stopped and "
                                     "its comments retried one by one."}
    )
    task_time_limit: int = field(
        default=60, metadata={"doc": "Seconds after which the worker process running a batch is "
                                     "killed (a comment that hangs the engine)."}
    )
    max_attempts: int = field(
        default=3, metadata={"doc": "Times a comment may stop a worker (crash, time limit) before it "
                                    "is held as `error` for a person."}
    )
    sweep_page: int = field(
        default=1000, metadata={"doc": "Pending comments one sweep re-sends at most; the next sweep "
                                       "takes the next page, oldest first."}
    )
    sweep_grace: int = field(
        default=60, metadata={"doc": "A comment pending this long is sent to the queue again."}
    )
    profanity_mode: str = field(
        default="mask", metadata={"doc": "`mask` publishes profanity masked; `hold` holds it."}
    )
    support_message: str = field(
        default=(
            "You matter, and you are not alone. If you are thinking about ending your life or "
            "harming yourself, please reach out now."
        ),
        metadata={"doc": "Shown to a commenter whose comment was held as self-harm."},
    )
    support_resources: str = field(
        default=(
            "Call or text 988 (US Suicide & Crisis Lifeline)|tel:988;"
            "Samaritans (UK & Ireland): 116 123|tel:116123;"
            "Find a helpline in your country|https://findahelpline.com"
        ),
        metadata={"doc": "Crisis resources, `label|url` pairs separated by `;`."},
    )
    environment: str = field(
        default="production",
        metadata={"doc": "`development` (what `make run` sets) allows the default `AUTHOR_SALT`; "
                         "anything else refuses to start with it."},
    )
    author_salt: str = field(
        default=DEFAULT_AUTHOR_SALT,
        metadata={"doc": "Secret key of the HMACs that stand for authors, IPs and reporters; "
                         "required outside development (e.g. `openssl rand -hex 32`)."},
    )
    bootstrap_token: str = field(
        default="",
        metadata={"doc": "An admin key with this value (32 random bytes or more), created at start only while no "
                       "admin key exists; never restored once revoked."},
    )
    banned_action: str = field(
        default="hold", metadata={"doc": "What happens to a banned author's comments: `hold` or `reject`."}
    )
    trust_min_approved: int = field(
        default=3,
        metadata={"doc": "Approved comments (and none rejected) that make an author trusted."},
    )
    report_threshold: int = field(
        default=3, metadata={"doc": "Distinct reporters that take a comment off the public endpoint (at least 2)."}
    )
    report_threshold_self_harm: int = field(
        default=3, metadata={"doc": "The same counting `self_harm` reports only; one already makes it urgent "
                                    "for moderators, still public."}
    )
    retrain_interval: int = field(
        default=300, metadata={"doc": "Seconds between background rebuilds of the learned model."}
    )
    retrain_max_examples: int = field(
        default=20000, metadata={"doc": "Newest stored examples a rebuild learns from (bounds its cost)."}
    )
    ratelimit_enabled: bool = field(
        default=True, metadata={"doc": "`false` switches every rate limit off (benchmarks, load tests)."}
    )
    ratelimit_storage_url: str = field(
        default="", metadata={"doc": "Where limits are counted; empty means `REDIS_URL`."}
    )
    ratelimit_post_ip: str = field(
        default="10 per minute;100 per hour", metadata={"doc": "Comments per client IP."}
    )
    ratelimit_post_author: str = field(
        default="1 per 3 seconds;30 per hour",
        metadata={"doc": "Comments per author (email, else name), in the spirit of Coral's default."},
    )
    ratelimit_reports: str = field(default="20 per hour", metadata={"doc": "Reports per client IP."})
    ratelimit_auth_failures: str = field(
        default="10 per minute", metadata={"doc": "Failed moderator sign-ins per client IP."}
    )
    redis_request_timeout: float = field(
        default=0.25,
        metadata={"doc": "Seconds a request waits on Redis for rate limits and the read cache before "
                         "going on without it (a hung Redis must not hang every request)."},
    )
    metrics_key: str = field(
        default="",
        metadata={"doc": "Bearer token that opens `/metrics` from anywhere; without it, `/metrics` "
                         "answers only the API's own loopback."},
    )
    proxy_hops: int = field(
        default=0, metadata={"doc": "Trusted reverse proxies in front of the API (for client IPs)."}
    )
    metrics_dir: str = field(
        default=str(ROOT / "var" / "metrics"),
        metadata={"doc": "Folder for multi-process Prometheus metrics (empty: single process)."},
    )
    bench_endpoints: bool = field(
        default=False,
        metadata={"doc": "Serve `/bench/hello` and `/bench/echo`, the baselines `make bench` compares with."},
    )
    demo_article_slug: str = field(
        default="ketamine-new-hope-depression", metadata={"doc": "Slug of the seeded article."}
    )
    coral_signing_secrets: str = field(
        default="", metadata={"doc": "Coral's signing secrets, comma-separated (several while "
                                     "rotating); empty: `/v1/integrations/coral` answers 404."}
    )
    coral_budget_ms: int = field(
        default=150, metadata={"doc": "Time the Coral phase gives the engine before it answers "
                                      "`204` (Coral waits 200 ms by default)."}
    )
    coral_edit_window: int = field(
        default=3600, metadata={"doc": "Seconds within which a Coral `EDIT` is linked to the same "
                                       "author's earlier decision on the same story."}
    )
    webhook_queue: str = field(
        default="webhooks", metadata={"doc": "Celery queue of webhook deliveries (its own worker)."}
    )
    webhook_allow_private_addresses: bool = field(
        default=False, metadata={"doc": "Let webhooks reach loopback, link-local and private "
                                        "addresses (development only)."}
    )
    webhook_timeout: float = field(
        default=5.0, metadata={"doc": "Seconds a receiver has to answer one delivery attempt."}
    )
    webhook_max_attempts: int = field(
        default=8, metadata={"doc": "Attempts per delivery before it is marked failed."}
    )
    webhook_backoff: float = field(
        default=10.0, metadata={"doc": "Seconds before the first retry; doubled each time, with "
                                       "jitter, capped at an hour."}
    )
    webhook_disable_after: int = field(
        default=10, metadata={"doc": "Consecutive failed deliveries that disable an endpoint."}
    )
    webhook_pump_interval: float = field(
        default=1.0, metadata={"doc": "Seconds between turns that turn events into deliveries."}
    )
    allowed_origins: str = field(
        default="", metadata={"doc": "Origins (comma-separated) whose pages may read and post "
                                     "from a browser (CORS); empty: none."}
    )
    events_url: str = field(
        default="", metadata={"doc": "Public base URL of the live-updates process for widgets; "
                                     "empty: the API's own (a proxy routes `/events` there)."}
    )
    stream_port: int = field(default=8001, metadata={"doc": "Port of `triage streams` (live updates)."})
    stream_workers: int = field(
        default=1, metadata={"doc": "Processes of `triage streams`; each holds thousands of streams."}
    )
    stream_heartbeat: int = field(
        default=15, metadata={"doc": "Seconds between heartbeats on an open event stream."}
    )
    stream_lifetime: int = field(
        default=300, metadata={"doc": "Seconds an event stream stays open; browsers reconnect "
                                      "with `Last-Event-ID` and miss nothing."}
    )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from environment variables (field name upper-cased)."""
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_NAMES.get(f.name, f.name.upper()))
            if raw is None or raw == "":
                continue
            if f.type in ("bool", bool):
                values[f.name] = _bool(raw)
            elif f.type in ("int", int):
                values[f.name] = int(raw)
            elif f.type in ("float", float):
                values[f.name] = float(raw)
            else:
                values[f.name] = raw
        values.update(overrides)
        return cls(**values)

    def origins(self) -> list[str]:
        """ALLOWED_ORIGINS as a list (never `*` unless a site writes it)."""
        return [o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()]

    def check(self) -> None:
        """Refuse settings unsafe outside development (called by the API and workers at start)."""
        if self.environment != "development" and self.author_salt == DEFAULT_AUTHOR_SALT:
            raise UnsafeSettings(
                "AUTHOR_SALT is the published default: anyone could recover IPv4 addresses from "
                "author refs. Set a secret AUTHOR_SALT (or TRIAGE_ENV=development on a laptop).")

    def support_links(self) -> list[dict[str, str]]:
        """Crisis resources as a list of {label, url}."""
        out = []
        for part in self.support_resources.split(";"):
            if "|" in part:
                label, url = part.split("|", 1)
                out.append({"label": label.strip(), "url": url.strip()})
        return out


def settings_table() -> str:
    """The README's settings table, generated from the dataclass so it cannot drift."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for f in fields(Settings):
        default = f.default
        if f.name == "database_url":
            default = "sqlite:///<repo>/var/triage.db"
        shown = str(default).replace(str(ROOT), "<repo>").replace("|", "\\|")  # no machine paths
        if len(shown) > 60:
            shown = shown[:57] + "…"
        rows.append(f"| `{ENV_NAMES.get(f.name, f.name.upper())}` | `{shown}` | {f.metadata.get('doc', '')} |")
    return "\n".join(rows)
