"""The `triage` command: the building blocks `make run`, docker-compose and operators use."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

import click

from .config import ROOT, Settings

DEMO_TITLE = "Ketamine a new hope for people suffering from depression?"


def prepare_metrics(metrics_dir: str, role: str) -> None:
    """Multi-process metrics for a role: must run before anything imports prometheus_client,
    which reads PROMETHEUS_MULTIPROC_DIR once, at import."""
    if not metrics_dir:
        return
    import os
    import shutil

    path = Path(metrics_dir) / role
    shutil.rmtree(path, ignore_errors=True)  # files of processes from an earlier run
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def _settings() -> Settings:
    return Settings.from_env()


def _service(settings: Settings) -> Any:
    from .wiring import build

    return build(settings, "cli").comments


@click.group()
def cli() -> None:
    """Triage: comment moderation for health publishers."""


@cli.command()
def migrate() -> None:
    """Apply database migrations to DATABASE_URL."""
    from .migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    click.echo("database is at the newest migration", err=True)


@cli.command()
def seed() -> None:
    """Register the demo article and store the seed model if none is stored (idempotent)."""
    from workers.runtime import store_seed_model

    settings = _settings()
    service = _service(settings)
    service.add_article(settings.demo_article_slug, DEMO_TITLE)
    click.echo(f"demo article: {settings.demo_article_slug}", err=True)
    model_id = store_seed_model(service)
    if model_id is not None:
        click.echo(f"learned model {model_id} stored, from the shipped seed data", err=True)


@cli.group()
def articles() -> None:
    """Register and list articles."""


@articles.command("add")
@click.argument("slug")
@click.option("--title", required=True, help="The article's title.")
def articles_add(slug: str, title: str) -> None:
    """Register an article so it takes comments."""
    art = _service(_settings()).add_article(slug, title)
    click.echo(f"{art.slug}\t{art.title}")


@articles.command("list")
def articles_list() -> None:
    """List registered articles."""
    for art in _service(_settings()).list_articles():
        click.echo(f"{art.slug}\t{art.title}")


def _moderation(settings: Settings) -> Any:
    from .wiring import build

    return build(settings, "cli").moderation


@cli.group()
def keys() -> None:
    """Moderator and admin API keys (only a hash is stored)."""


@keys.command("create")
@click.option("--role", type=click.Choice(["moderator", "admin"]), required=True)
@click.option("--name", required=True, help="Who holds the key; shown in decision histories.")
def keys_create(role: str, name: str) -> None:
    """Create a key and print it once."""
    row, key = _moderation(_settings()).create_key(name, role)
    click.echo(f"created key #{row.id} for {name} ({role}); it is shown only now:", err=True)
    click.echo(key)


@keys.command("list")
def keys_list() -> None:
    """List keys (id, prefix, role, name, state)."""
    for row in _moderation(_settings()).list_keys():
        state = "revoked" if row.revoked_at else "active"
        click.echo(f"{row.id}\t{row.prefix}…\t{row.role}\t{row.name}\t{state}")


@keys.command("revoke")
@click.argument("key_id", type=int)
def keys_revoke(key_id: int) -> None:
    """Revoke a key by id; it stops working at once."""
    row = _moderation(_settings()).revoke_key(key_id)
    click.echo(f"revoked key #{row.id} ({row.name})", err=True)


@cli.command()
def api() -> None:
    """Serve the HTTP API with gunicorn (PORT, HOST, WEB_CONCURRENCY)."""
    settings = _settings()
    prepare_metrics(settings.metrics_dir, "api")
    from .server import serve

    serve(settings)


@cli.command()
@click.option("--concurrency", "-c", type=int, default=None, help="Worker processes.")
def worker(concurrency: int | None) -> None:
    """Run a Celery worker on the moderation queue."""
    settings = _settings()
    prepare_metrics(settings.metrics_dir, "worker")
    from workers.celery_app import make_celery

    app = make_celery(settings)
    app.worker_main([
        "worker", "-Q", settings.queue_name, "--loglevel", settings.log_level,
        "-c", str(concurrency or settings.worker_concurrency), "--without-gossip",
        "--without-mingle", "-n", "triage@%h-%i",
    ])


@cli.command("webhooks-worker")
@click.option("--concurrency", "-c", type=int, default=8, help="Deliveries at once (threads).")
def webhooks_worker(concurrency: int) -> None:
    """Run a Celery worker on the webhook queue (deliveries wait on receivers: threads)."""
    settings = _settings()
    from workers.celery_app import make_celery

    make_celery(settings).worker_main([
        "worker", "-Q", settings.webhook_queue, "--loglevel", settings.log_level,
        "-P", "threads", "-c", str(concurrency), "--without-gossip", "--without-mingle",
        "-n", "triage-webhooks@%h-%i",
    ])


@cli.command()
def beat() -> None:
    """Run Celery beat (the sweeper that re-sends pending comments)."""
    from workers.celery_app import make_celery

    settings = _settings()
    var = Path("var")
    var.mkdir(exist_ok=True)
    app = make_celery(settings)
    app.start(["beat", "--loglevel", settings.log_level,
               "--schedule", str(var / "celerybeat-schedule")])


@cli.command()
def streams() -> None:
    """Serve live updates (Server-Sent Events) with uvicorn (STREAM_PORT, STREAM_WORKERS)."""
    from .streams.app import serve as serve_streams

    serve_streams(_settings())


@cli.command()
def run() -> None:
    """Start everything for development: Redis if needed, migrations, API, worker, beat."""
    from .devstack import main as devstack_main

    sys.exit(devstack_main(_settings()))


def _read_jsonl(stream: TextIO) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(stream, 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise click.ClickException(f"line {n}: not JSON ({exc.msg})") from exc
    return out


@cli.command()
@click.option("--input", "input_", type=click.File("r", encoding="utf-8"), default="-",
              help="JSONL with id, body, optional author (default: stdin).")
@click.option("--output", type=click.File("w", encoding="utf-8"), default="-")
def classify(input_: TextIO, output: TextIO) -> None:
    """Classify JSONL comments with the same engine the workers use."""
    from workers.engine.evaluation import classify_stream
    from workers.runtime import build_engine

    settings = _settings()
    service = _stored_models_service(settings)
    engine = build_engine(settings, service)
    try:
        classify_stream(engine, input_, output)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


def _stored_models_service(settings: Settings) -> Any:
    """The service if DATABASE_URL holds Triage's tables, else None (classify needs no server)."""
    from sqlalchemy import inspect

    from .migrate import upgrade

    upgrade(settings.database_url)
    svc = _service(settings)
    return svc if inspect(svc.db.engine).has_table("learned_models") else None


@cli.command()
@click.option("--input", "input_", type=click.File("r", encoding="utf-8"), required=True,
              help="JSONL with body, optional author, and label (ok or a category).")
def train(input_: TextIO) -> None:
    """Record labelled examples and rebuild the learned model stored in the database."""
    from workers.learning import retrain

    settings = _settings()
    rows = _read_jsonl(input_)
    labels = {"ok", "spam", "profanity", "unsafe_medical", "self_harm", "harassment"}
    bad = [i for i, r in enumerate(rows, 1) if r.get("label") not in labels or not r.get("body")]
    if bad:
        raise click.ClickException(f"rows without body or a known label: {bad[:10]}")
    svc = _stored_models_service(settings)
    n = svc.add_training_examples(
        ((r["body"], r.get("author"), r["label"]) for r in rows), source="train")
    click.echo(f"recorded {n} examples; rebuilding the model…", err=True)
    result = retrain(svc, force=True)
    click.echo(f"model #{result['model_id']} stored: {result['examples']} examples, "
               f"{result['bytes']} bytes; workers pick it up within seconds", err=True)


@cli.group("model")
def model_group() -> None:
    """The model shipped with the engine."""


@model_group.command("build")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Where to write it (default: the shipped file the workers load).")
def model_build(output: str | None) -> None:
    """Calibrate on out-of-sample predictions over the corpus, then train on all of it."""
    from workers.engine.calibration import build
    from workers.engine.model import SHIPPED

    click.echo("encoding the corpus, then one model per left-out source…", err=True)
    blob, cal = build(progress=lambda s: click.echo(f"  {s}", err=True))
    target = Path(output) if output else SHIPPED
    target.write_bytes(blob)
    click.echo("| category | model threshold | caught (rules or model) | rules alone | "
               "ordinary held by the model |\n|---|---|---|---|---|")
    for c, t in cal.thresholds.items():
        click.echo(f"| {c} | {t:.2f} | {cal.recall[c]:.3f} (n={cal.n[c]}) | {cal.recall_rules[c]:.3f} | "
                   f"{cal.ok_flagged[c]:.3f} |")
    click.echo(f"wrote {target} ({len(blob):,} bytes)", err=True)


@cli.command("eval")
@click.option("--input", "input_", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Labelled JSONL (format of LABELS.md).")
@click.option("--youtube", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of the YouTube Spam Collection CSV files.")
@click.option("--robustness", is_flag=True,
              help="Also classify --input under every obfuscation (the metamorphic check).")
@click.option("--write-docs", "--write-readme", "write_docs", is_flag=True,
              help="Also write the tables into README.md and docs/quality.md (otherwise only var/).")
def eval_(input_: str | None, youtube: str | None, robustness: bool, write_docs: bool) -> None:
    """Dev cross-validation, the cross-source table, the unseen sets' first scores, YouTube MCC,
    and optionally the robustness table."""
    from workers.engine import evaluation

    if not input_ and not youtube:
        raise click.UsageError("give --input FILE, --youtube DIR or both")
    dev = yt = None
    tables: dict[str, str] = {}
    if input_:
        click.echo(f"eval: {input_} (5-fold cross-validation)…", err=True)
        dev = evaluation.evaluate_dev(Path(input_))
        click.echo(evaluation.render_timing(dev), err=True)
    if youtube:
        click.echo(f"eval: YouTube Spam Collection in {youtube}, per video…", err=True)
        yt = evaluation.evaluate_youtube(Path(youtube))
    tables["quality"] = evaluation.render_markdown(dev, yt)
    if dev is not None:
        tables["quality-outcomes"] = evaluation.render_outcomes(dev)
    tables["quality-cross-source"] = evaluation.render_cross_source()
    tables["quality-unseen"] = evaluation.render_unseen_log(ROOT / "docs" / "unseen-sets.jsonl")
    if robustness and input_:
        click.echo("eval: every obfuscation of every labelled comment…", err=True)
        with open(input_, encoding="utf-8") as f:
            items = [json.loads(line) for line in f if line.strip()]
        from workers.runtime import build_engine

        tables["robustness"] = evaluation.render_robustness(
            evaluation.evaluate_robustness(build_engine(_settings(), None), items))
    var = Path("var")
    var.mkdir(exist_ok=True)
    for name, text in tables.items():
        click.echo(f"\n{text.strip()}\n")
        # `make docs` (or --write-docs) copies them into README and docs/; a plain run changes
        # no tracked file.
        (var / f"{name}.md").write_text(text.strip() + "\n", encoding="utf-8")
        if write_docs:
            from .readme import write_table

            for out in write_table(name, text):
                click.echo(f"{out.name}: {name} table updated", err=True)


@cli.command("import")
@click.argument("kind", type=click.Choice(["disqus", "wordpress"]))
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--moderate", is_flag=True, help="Run the engine over what was imported.")
def import_(kind: str, path: Path, moderate: bool) -> None:
    """Import comments from a Disqus export or a WordPress WXR file (idempotent)."""
    from .importers.common import ImportError_
    from .importers.run import import_file
    from .importers.run import moderate as review
    from .migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    service = _service(settings)
    size = path.stat().st_size
    with click.progressbar(length=size, label=f"importing {path.name}", file=sys.stderr,
                           show_pos=False, show_percent=True) as bar:
        try:
            summary = import_file(service, kind, path, progress=bar.update)
        except ImportError_ as exc:
            bar.render_finish()
            lines = exc.summary.lines() if exc.summary else []
            raise click.ClickException(
                f"{path}: {exc}. Before it: {'; '.join(lines)}. Fix the file and run the "
                "import again: what was imported is skipped.") from exc
    for line in summary.lines():
        click.echo(line)
    if moderate and summary.imported:
        click.echo("moderating what was imported…", err=True)
        counts = review(settings, service, summary)
        click.echo(f"engine: checked {counts['checked']}, held {counts['held']}, "
                   f"rejected {counts['rejected']}")


@cli.command("export")
@click.option("--article", default=None, help="One article's comments (default: every article).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("--output", type=click.File("w", encoding="utf-8", lazy=True), default="-")
def export_(article: str | None, fmt: str, output: TextIO) -> None:
    """Export comments with their decisions and history (UTC times)."""
    from .comments.errors import NotFound
    from .importers.export import export

    try:
        n = export(_service(_settings()), output, fmt, article)
    except NotFound as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(f"exported {n} comments", err=True)


@cli.command()
def docs() -> None:
    """Write README's generated tables: settings (from their definition), and the quality and
    performance tables the last `make eval` and `make bench` left in var/."""
    from .config import settings_table
    from .readme import write_table

    write_table("settings", settings_table())
    click.echo("README settings table updated", err=True)
    for path in sorted(Path("var").glob("*.md")):
        if path.stem in ("quality", "robustness") or path.stem.startswith(("performance", "quality-")):
            for out in write_table(path.stem, path.read_text(encoding="utf-8")):
                click.echo(f"{out.name}: {path.stem} table updated from {path}", err=True)


def main() -> None:
    cli(prog_name="triage")
