"""A demo agent service in agentwire's `ndjson` protocol (FastAPI).

agentwire POSTs each run (`start_agent`, `user_message` and their aliases) here as JSON:

    {"run_id": "run_...", "thread_id": "t1", "user_id": "user-1", "message_id": "m1",
     "type": "start_agent", "payload": {"text": "...", "agent_name": "...", "context": {...}}}

and relays the response, `application/x-ndjson` with one agentwire event per line
(`{"type": ..., "payload": {...}}`), to the user's WebSocket as the run's events. The demo
agent counts the words of the request with a "tool" and streams its answer:

    agent_started, agent_thinking, tool_executing, tool_completed,
    agent_response_chunk (a few), agent_completed (result: {"response": the whole answer})

Run it (see README.md): `uvicorn ndjson_agent:app --port 8001`, then
`agentwire serve --agent-url http://127.0.0.1:8001/run --agent-protocol ndjson`.

Settings (environment):
- `AGENTWIRE_AGENT_SECRET`: verify agentwire's service token with this secret; requests
  without a valid one are answered 401. Unset: requests are not checked.
- `DEMO_DELAY_SECONDS`: the pause between events (default 0.05), to watch the stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import Depends, FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from demo import answer_chunks, word_count
from service_token import (
    SECRET_ENV,
    ServiceToken,
    secret_from_env,
    service_token_dependency,
    unauthorized,
)
from tracking import install, log, tracked

AGENT_NAME = "python-ndjson-demo"


class RunPayload(BaseModel):
    """The client's request, as agentwire forwards it."""

    text: str
    agent_name: str | None = None
    context: Any = None


class RunRequest(BaseModel):
    """The body agentwire POSTs for each run."""

    run_id: str
    thread_id: str | None = None
    user_id: str
    message_id: str | None = None
    type: Literal["start_agent", "user_message"]
    payload: RunPayload


def line(kind: str, payload: dict[str, Any]) -> str:
    """One event, one line."""
    return json.dumps({"type": kind, "payload": payload}) + "\n"


async def demo_run(request: RunRequest, delay: float) -> AsyncIterator[str]:
    """The demo agent: the events of one run, as NDJSON lines."""
    started = time.monotonic()
    text = request.payload.text
    yield line(
        "agent_started",
        {"agent_name": request.payload.agent_name or AGENT_NAME, "user_request": text},
    )
    await asyncio.sleep(delay)
    yield line(
        "agent_thinking",
        {"reasoning": "Counting the words calls for the word_count tool.", "step": 1},
    )
    await asyncio.sleep(delay)
    call_id = f"call_{request.run_id}_1"
    yield line(
        "tool_executing",
        {"tool_name": "word_count", "tool_call_id": call_id, "parameters": {"text": text}},
    )
    tool_started = time.monotonic()
    await asyncio.sleep(delay)
    result = word_count(text)
    yield line(
        "tool_completed",
        {
            "tool_name": "word_count",
            "tool_call_id": call_id,
            "status": "ok",
            "result": result,
            "duration_ms": round((time.monotonic() - tool_started) * 1000),
        },
    )
    chunks = answer_chunks(text, result["words"])
    for index, delta in enumerate(chunks):
        await asyncio.sleep(delay)
        yield line("agent_response_chunk", {"delta": delta, "index": index})
    # The terminal event, then the end of the response: agentwire's connection goes back to
    # its pool for the next run.
    yield line(
        "agent_completed",
        {
            "result": {"response": "".join(chunks)},
            "duration_ms": round((time.monotonic() - started) * 1000),
        },
    )


def create_app(secret: str | None = None, delay: float = 0.05) -> FastAPI:
    """The service: `POST /run` (a run), `GET /stats` (runs seen), `GET /health`.

    `secret`: verify the service token with it (None: no check); `delay`: the pause between
    events, in seconds.
    """
    app = FastAPI(title="agentwire ndjson demo agent")
    stats = install(app)
    if secret is None:
        log.warning("no %s: requests are not checked for a service token", SECRET_ENV)
    service_token = service_token_dependency(secret)

    @app.post("/run")
    async def run(
        request: RunRequest, token: ServiceToken | None = Depends(service_token)
    ) -> StreamingResponse:
        if token is not None and (
            token.user_id != request.user_id or token.run_id != request.run_id
        ):
            raise unauthorized("the service token names another user or run")
        return StreamingResponse(
            tracked(stats, request.run_id, demo_run(request, delay)),
            media_type="application/x-ndjson",
        )

    return app


app = create_app(secret_from_env(), float(os.environ.get("DEMO_DELAY_SECONDS", "0.05")))
