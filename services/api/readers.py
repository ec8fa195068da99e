"""What readers' pages use besides the comment list: counts, the Atom feed, article settings,
and CORS for the origins a site allows. Views stay thin: validate, call one function, shape."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request, url_for
from flask_cors import CORS
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from redis.exceptions import RedisError

from ..cache import ReadCache
from ..comments.articles import Articles, ArticleUpdate
from ..comments.errors import Invalid, NotFound
from ..comments.readers import MAX_COUNT_SLUGS, Readers
from ..comments.service import CommentService
from ..config import Settings
from .moderation import require
from .problems import validation_errors
from .public import CACHE_CONTROL, json_body

bp = Blueprint("readers", __name__)

# Characters XML 1.0 cannot carry at all; the API never stores most of them, but the feed must
# be well-formed whatever an older row holds.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
FEED_ENTRIES = 50


class ArticleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, StringConstraints(strip_whitespace=True), Field(min_length=1, max_length=500)]
    url: Annotated[str, Field(max_length=2000, pattern=r"^https?://[^\s]+$")] | None = None
    open: bool = True


def install(app: Flask, settings: Settings, service: CommentService) -> None:
    """The readers' routes, their services, and CORS for ALLOWED_ORIGINS."""
    app.extensions["triage.readers"] = Readers(service)
    app.extensions["triage.articles"] = Articles(service.db)
    app.register_blueprint(bp)
    origins = settings.origins()
    if origins:
        # Only public routes, only the listed origins: a refused origin gets no CORS header.
        public = {"origins": origins}
        CORS(app, resources={r"/v1/articles/*": public, r"/v1/comments/*": public,
                             r"/v1/counts": public},
             methods=["GET", "POST", "OPTIONS"],
             allow_headers=["Content-Type", "Idempotency-Key"],
             expose_headers=["ETag", "Location", "Retry-After"],
             supports_credentials=False, max_age=600, vary_header=True)


def readers() -> Readers:
    return current_app.extensions["triage.readers"]  # type: ignore[no-any-return]


def _public(resp: Response) -> Response:
    resp.headers["Cache-Control"] = CACHE_CONTROL
    return resp


@bp.get("/v1/articles/<slug>/comments/count")
def count(slug: str) -> Response:
    if not readers().known([slug]):
        raise NotFound(f"No article with slug '{slug}'.")
    return _public(jsonify({"article": slug, "count": _counts([slug])[slug]}))


@bp.get("/v1/counts")
def counts() -> Response:
    raw = request.args.get("articles", "")
    if len(raw) > 100 * 201:
        raise Invalid("The list of articles is too long.",
                      errors=[{"field": "articles", "message": "too long"}])
    slugs = list(dict.fromkeys(s.strip() for s in raw.split(",") if s.strip()))
    if len(slugs) > MAX_COUNT_SLUGS:
        raise Invalid(f"At most {MAX_COUNT_SLUGS} articles per request.",
                      errors=[{"field": "articles", "message": f"more than {MAX_COUNT_SLUGS}"}])
    return _public(jsonify({"counts": _counts(slugs)}))


def _counts(slugs: list[str]) -> dict[str, int]:
    """Counts kept in the read cache under each article's token, so a decision refreshes them
    as it refreshes the pages; only known articles touch the cache (no key per made-up slug)."""
    out = dict.fromkeys(slugs, 0)
    known = readers().known(slugs)
    cache: ReadCache | None = current_app.extensions.get("triage.read_cache")
    tokens: dict[str, str] = {}
    missing = known
    if cache is not None and known:
        try:
            missing = []
            for slug in known:
                tokens[slug] = token = cache.generation(slug)
                body = cache.get_page(slug, token, 0, "count")
                if body is None:
                    missing.append(slug)
                else:
                    out[slug] = int(body)
        except RedisError:
            cache, missing = None, known
    if missing:
        fresh = readers().counts(missing)
        out.update(fresh)
        if cache is not None:
            try:
                for slug, n in fresh.items():
                    cache.put_page(slug, tokens[slug], 0, "count", str(n).encode())
            except RedisError:
                pass
    return out


@bp.get("/v1/articles/<slug>/comments.atom")
def feed(slug: str) -> Response:
    from feedgen.feed import FeedGenerator

    article = readers().article(slug)
    items = readers().newest(slug, FEED_ENTRIES)
    self_url = request.url_root.rstrip("/") + url_for("readers.feed", slug=slug)
    page = article.url or request.url_root.rstrip("/") + url_for("public.list_comments", slug=slug)
    fg = FeedGenerator()
    fg.id(self_url)
    fg.title(_xml(f"Comments on “{article.title}”"))
    fg.link(href=self_url, rel="self", type="application/atom+xml")
    fg.link(href=page, rel="alternate")
    fg.generator("Triage")
    fg.updated(_dt(items[0]["created_at"]) if items else dt.datetime.now(dt.UTC))
    for item in reversed(items):  # feedgen puts the last one added first
        entry = fg.add_entry()
        entry.id(f"{page}#comment-{item['id']}")
        entry.title(_xml(f"{item['author']} on “{article.title}”"))
        entry.author({"name": _xml(item["author"])})
        entry.content(_xml(item["body"]), type="text")
        entry.link(href=f"{page}#comment-{item['id']}", rel="alternate")
        at = _dt(item["created_at"])
        entry.published(at)
        entry.updated(at)
    resp = Response(fg.atom_str(pretty=False), mimetype="application/atom+xml")
    return _public(resp)


@bp.put("/v1/admin/articles/<slug>")
@require("admin")
def put_article(slug: str) -> tuple[Response, int]:
    if not (1 <= len(slug) <= 200) or not re.fullmatch(r"[A-Za-z0-9._~-]+", slug):
        raise Invalid("A slug is 1 to 200 letters, digits, '.', '_', '~' or '-'.",
                      errors=[{"field": "slug", "message": "not a slug"}])
    try:
        data = ArticleIn.model_validate(json_body())
    except ValidationError as exc:
        raise Invalid("The article did not pass validation.", errors=validation_errors(exc)) from exc
    articles: Articles = current_app.extensions["triage.articles"]
    view, created = articles.put(slug, ArticleUpdate(data.title, data.url, data.open))
    return jsonify(_article(view)), 201 if created else 200


@bp.get("/v1/admin/articles/<slug>")
@require("admin")
def get_article(slug: str) -> Response:
    articles: Articles = current_app.extensions["triage.articles"]
    return jsonify(_article(articles.get(slug)))


def _article(view: Any) -> dict[str, Any]:
    return {"slug": view.slug, "title": view.title, "url": view.url, "open": view.open}


def _xml(text: str) -> str:
    return _NOT_XML.sub("", text)


def _dt(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def openapi_paths(errors: dict[str, Any], slug: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI description of these routes (see openapi.document)."""
    problem = {"$ref": "#/components/responses/Problem"}
    obj = {"description": "JSON", "content": {"application/json": {"schema": {"type": "object"}}}}
    sec: list[dict[str, list[str]]] = [{"bearer": []}]
    auth = {"401": problem, "403": problem}
    return {
        "/v1/articles/{slug}/comments/count": {"parameters": [slug], "get": {
            "summary": "How many approved comments an article has", "operationId": "countComments",
            "responses": {"200": obj, **errors}}},
        "/v1/counts": {"get": {
            "summary": "Approved comments of up to 100 articles", "operationId": "counts",
            "parameters": [{"name": "articles", "in": "query", "required": True,
                            "schema": {"type": "string", "maxLength": 100 * 201,
                                       # no control characters: the API refuses them (422)
                                       "pattern": "^[^,\u0000-\u001f\u007f-\u009f]*"
                                                  "(,[^,\u0000-\u001f\u007f-\u009f]*){0,99}$"},
                            "description": "comma-separated slugs, at most 100"}],
            "responses": {"200": obj, **errors}}},
        "/v1/articles/{slug}/comments.atom": {"parameters": [slug], "get": {
            "summary": "Atom feed of the newest approved comments", "operationId": "commentsFeed",
            "responses": {"200": {"description": "Atom 1.0", "content": {
                "application/atom+xml": {"schema": {"type": "string"}}}}, **errors}}},
        "/v1/admin/articles/{slug}": {"parameters": [slug], "get": {
            "summary": "An article's title, URL and whether it takes comments",
            "operationId": "getArticle", "security": sec, "responses": {"200": obj, **errors, **auth}},
            "put": {"summary": "Create or update an article", "operationId": "putArticle",
                    "security": sec, "requestBody": {"required": True, "content": {
                        "application/json": {"schema": ArticleIn.model_json_schema()}}},
                    "responses": {"200": obj, "201": obj, **errors, **auth}}},
    }
