"""Counting an agent service's runs and noticing when agentwire goes away mid-run.

agentwire cancels a forwarded run (the client sent `cancel_agent`) by closing the HTTP
connection. Starlette's `StreamingResponse` notices the disconnect and cancels the task that
iterates the response body, so the body generator stops at its current `await` with
`asyncio.CancelledError` (or is closed with `GeneratorExit` at its current `yield`): either
way its `finally` runs, which is where `tracked` records the run as cancelled. A real agent
puts its clean-up there (cancel the model call, release the tool's resources).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler

log = logging.getLogger("agent_service")
if not log.handlers:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


@dataclass
class RunStats:
    """What the service saw, served at `GET /stats`."""

    started: int = 0
    completed: int = 0
    cancelled: int = 0
    unauthorized: int = 0
    #: The ids of the runs whose client went away before the run's end (the last 100).
    cancelled_run_ids: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "started": self.started,
            "completed": self.completed,
            "cancelled": self.cancelled,
            "unauthorized": self.unauthorized,
            "cancelled_run_ids": list(self.cancelled_run_ids),
        }


async def tracked(
    stats: RunStats, run_id: str, body: AsyncIterator[str]
) -> AsyncIterator[str]:
    """Relays `body`, counting the run as completed or, when it stops early, cancelled."""
    stats.started += 1
    finished = False
    try:
        async for chunk in body:
            yield chunk
        finished = True
    finally:
        if finished:
            stats.completed += 1
        else:
            stats.cancelled += 1
            stats.cancelled_run_ids.append(run_id)
            del stats.cancelled_run_ids[:-100]
            log.info("client disconnected: run %s cancelled", run_id)


def install(app: FastAPI) -> RunStats:
    """Adds `GET /stats` and `GET /health` to `app`, and counts its 401 answers."""
    stats = RunStats()

    @app.get("/stats")
    async def get_stats() -> dict:
        return stats.as_json()

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.exception_handler(401)
    async def count_unauthorized(request: Request, exc: HTTPException):
        stats.unauthorized += 1
        log.warning("401 for %s: %s", request.url.path, exc.detail)
        return await http_exception_handler(request, exc)

    return stats
