"""Lua scripts run by SHA1 on a Redis client, shared by the queue, the read cache and workers."""

from __future__ import annotations

import hashlib
from typing import Any

import redis
from redis.exceptions import NoScriptError


class LuaScripts:
    """Named Lua scripts called by SHA1 (EVALSHA), alone or many in a pipeline. redis-py's Script
    objects ask Redis whether a script exists before every pipeline, a second round trip each
    time; here a script is loaded again only when Redis says it has forgotten it (a
    restart)."""

    def __init__(self, client: redis.Redis, src: dict[str, str]) -> None:
        self.client = client
        self.src = dict(src)
        self.sha = {name: hashlib.sha1(text.encode()).hexdigest()
                    for name, text in self.src.items()}

    def run(self, calls: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        """Run (script, args) calls in one round trip; returns their replies. Raises the first
        error."""
        pipe = self.client.pipeline(transaction=False)
        for name, args in calls:
            pipe.evalsha(self.sha[name], *args)
        replies = pipe.execute(raise_on_error=False)
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:
            for name in {calls[i][0] for i in missing}:
                self.client.script_load(self.src[name])
            again = self.client.pipeline(transaction=False)
            for i in missing:
                again.evalsha(self.sha[calls[i][0]], *calls[i][1])
            for i, r in zip(missing, again.execute(raise_on_error=False)):
                replies[i] = r
        for r in replies:
            if isinstance(r, Exception):
                raise r
        return replies

    def call(self, name: str, *args: Any) -> Any:
        """Run one script in one round trip (no pipeline to build); returns its reply."""
        try:
            return self.client.evalsha(self.sha[name], *args)
        except NoScriptError:
            self.client.script_load(self.src[name])
            return self.client.evalsha(self.sha[name], *args)
