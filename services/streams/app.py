"""`triage streams`: GET /v1/articles/<slug>/events as Server-Sent Events, under uvicorn.

Each stream sends a heartbeat every STREAM_HEARTBEAT seconds and ends after STREAM_LIFETIME
(with a little jitter, so pages do not all come back at once); the browser reconnects with
`Last-Event-ID` and is sent what it missed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..config import Settings
from .hub import ENTRY_ID, Hub, ReaderEvent, entry_key

SLUG = re.compile(r"^[A-Za-z0-9._~-]{1,200}$")
RETRY_MS = 2000


def _problem(status: int, title: str, detail: str) -> Response:
    body = {"type": f"https://triage.dev/problems/{title.lower().replace(' ', '-')}",
            "title": title, "status": status, "detail": detail}
    return Response(json.dumps(body), status, media_type="application/problem+json")


def _sse(event: ReaderEvent) -> ServerSentEvent:
    return ServerSentEvent(json.dumps(event.data, separators=(",", ":")), event=event.kind,
                           id=event.id)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    from ..comments.readers import Readers
    from ..logs import setup_logging
    from ..wiring import build

    setup_logging(settings.log_level)
    services = build(settings, "streams")
    db = services.db
    readers = Readers(services.comments)
    hub = Hub(settings.redis_url, readers.visibility)

    async def events(request: Request) -> Response:
        slug = request.path_params["slug"]
        if not SLUG.match(slug):
            return _problem(404, "Not found", "No such article.")
        last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        if last is not None and not ENTRY_ID.match(last):
            return _problem(422, "Invalid input", "Last-Event-ID is not an id this stream sent.")
        lifetime = settings.stream_lifetime * random.uniform(0.9, 1.0)

        async def stream() -> AsyncIterator[ServerSentEvent]:
            # Subscribed inside the generator, so its `finally` always lets go; and before the
            # replay, so nothing falls between the two.
            sub = hub.subscribe(slug)
            try:
                yield ServerSentEvent(comment="triage", retry=RETRY_MS)
                upto = None
                if last is not None:
                    missed, upto = await hub.replay(slug, last)
                    for event in missed:
                        yield _sse(event)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + lifetime
                while not sub.overflowed:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        event = await asyncio.wait_for(sub.queue.get(), left)
                    except TimeoutError:
                        break
                    if upto is not None and entry_key(event.id) <= entry_key(upto):
                        continue  # already sent by the replay
                    yield _sse(event)
            finally:
                hub.unsubscribe(sub)

        return EventSourceResponse(
            stream(), ping=settings.stream_heartbeat, send_timeout=30,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def health(_request: Request) -> Response:
        # How many streams this process holds: operators and the tests read it; nothing more.
        return JSONResponse({"status": "ok", "open_streams": hub.open_streams})

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(hub.run(), name="triage-event-hub")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await hub.close()
            db.dispose()

    middleware: list[Middleware] = []
    if settings.origins():
        middleware.append(Middleware(CORSMiddleware, allow_origins=settings.origins(),
                                     allow_methods=["GET"], allow_headers=["Last-Event-ID"],
                                     allow_credentials=False, max_age=600))
    app = Starlette(routes=[Route("/v1/articles/{slug}/events", events),
                            Route("/healthz", health)],
                    middleware=middleware, lifespan=lifespan)
    app.state.hub = hub
    return app


def serve(settings: Settings) -> None:
    """Run uvicorn in the foreground (STREAM_WORKERS processes)."""
    import uvicorn

    options: dict[str, Any] = dict(host=settings.host, port=settings.stream_port,
                                   workers=settings.stream_workers, factory=True,
                                   log_level=settings.log_level.lower(), access_log=False,
                                   timeout_graceful_shutdown=3, proxy_headers=bool(settings.proxy_hops))
    uvicorn.run("services.streams.app:create_app", **options)
