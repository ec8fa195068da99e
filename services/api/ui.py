"""The moderators' screen: `/moderate` and its static assets, under a strict CSP.

The page holds no data and no secrets; everything it shows comes from the moderation API with
the key the moderator types in, so the page itself needs no authentication.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, render_template, send_from_directory

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
# Only these files are served under /moderate/assets/, whatever else lands in static/.
ASSETS = {"moderate.js", "moderate.css"}

CSP = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "img-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

bp = Blueprint("ui", __name__, template_folder="templates")


@bp.after_request
def _security_headers(resp: Response) -> Response:
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    # A moderator should always get the current screen; the files are small.
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/moderate")
def moderate() -> str:
    """The moderator screen (static HTML; the key is typed in and kept in sessionStorage)."""
    return render_template("moderate.html")


@bp.get("/moderate/assets/<name>")
def asset(name: str) -> Response:
    """The screen's script and stylesheet."""
    if name not in ASSETS:
        abort(404)
    return send_from_directory(STATIC, name)
