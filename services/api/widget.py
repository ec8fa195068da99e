"""What a site embeds: `/widget.js`, and the demo article page at `/` that embeds it exactly as
a site would (two lines), so `make run` shows the whole product in a browser."""

from __future__ import annotations

import gzip
import hashlib
import json
import secrets
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, render_template, request

from ..config import Settings

HERE = Path(__file__).resolve().parent
WIDGET = HERE / "static" / "widget.js"
# The one value the served script is given: where live updates are (see Settings.events_url).
EVENTS_PLACEHOLDER = '"__TRIAGE_EVENTS__"'

bp = Blueprint("widget", __name__, template_folder="templates")


def install(app: Flask, settings: Settings) -> None:
    app.register_blueprint(bp)


@lru_cache(maxsize=4)
def widget_bytes(events_url: str) -> tuple[bytes, bytes, str]:
    """The script as served (plain and gzipped) and its ETag; read once per process."""
    text = WIDGET.read_text(encoding="utf-8").replace(EVENTS_PLACEHOLDER, json.dumps(events_url))
    plain = text.encode()
    return plain, gzip.compress(plain, 9, mtime=0), '"' + hashlib.sha256(plain).hexdigest()[:20] + '"'


@bp.get("/widget.js")
def widget_js() -> Response:
    settings: Settings = current_app.extensions["triage.settings"]
    plain, packed, etag = widget_bytes(settings.events_url.rstrip("/"))
    if request.if_none_match.contains(etag.strip('"')):
        resp = Response(status=304)
    elif "gzip" in request.headers.get("Accept-Encoding", ""):
        resp = Response(packed, mimetype="application/javascript")
        resp.headers["Content-Encoding"] = "gzip"
    else:
        resp = Response(plain, mimetype="application/javascript")
    resp.headers["ETag"] = etag
    resp.headers["Vary"] = "Accept-Encoding"
    resp.headers["Cache-Control"] = "public, max-age=300, stale-while-revalidate=86400"
    # Any site may load the script; what it may then read is decided by ALLOWED_ORIGINS.
    resp.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return resp


@bp.get("/")
def demo() -> Response:
    """The demo article with the widget and a comment counter, embedded as a site would."""
    settings: Settings = current_app.extensions["triage.settings"]
    nonce = secrets.token_urlsafe(16)
    base = request.url_root.rstrip("/")
    connect = ["'self'"]
    if settings.events_url:
        parts = urlsplit(settings.events_url)
        connect.append(f"{parts.scheme}://{parts.netloc}")
    html = render_template("demo.html", slug=settings.demo_article_slug, base=base, nonce=nonce)
    resp = Response(html, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = "; ".join([
        "default-src 'none'", "script-src 'self'", f"style-src 'self' 'nonce-{nonce}'",
        "connect-src " + " ".join(connect), "img-src 'self'", "base-uri 'none'",
        "form-action 'self'", "frame-ancestors 'none'"])
    resp.headers["Cache-Control"] = "no-cache"
    return resp
