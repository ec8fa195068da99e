"""Live updates for readers: Server-Sent Events from an ASGI process (uvicorn + Starlette),
where an open stream is a coroutine waiting on a queue, not a worker held for its lifetime."""
