"""A demo agent service in the AG-UI protocol (FastAPI, `ag-ui-protocol`).

agentwire (with `--agent-protocol ag-ui`) POSTs each run here as an AG-UI `RunAgentInput`
(threadId, runId, messages with the user's text, tools, context, state, forwardedProps) and
maps the `text/event-stream` of AG-UI events it gets back onto agentwire events for the
user's WebSocket. This service is built only on the `ag-ui-protocol` package: its models for
the input and the events, and its `EventEncoder` for the SSE framing. The demo agent counts
the words of the user's last message with a "tool" and streams its answer:

    RUN_STARTED
    TOOL_CALL_START, TOOL_CALL_ARGS, TOOL_CALL_ARGS, TOOL_CALL_END, TOOL_CALL_RESULT
    TEXT_MESSAGE_START, TEXT_MESSAGE_CONTENT (a few), TEXT_MESSAGE_END
    RUN_FINISHED

Run it (see README.md): `uvicorn agui_agent:app --port 8002`, then
`agentwire serve --agent-url http://127.0.0.1:8002/agui --agent-protocol ag-ui`.

Settings (environment):
- `AGENTWIRE_AGENT_SECRET`: verify agentwire's service token with this secret; requests
  without a valid one, or whose token names another run, are answered 401. Unset: requests
  are not checked.
- `DEMO_DELAY_SECONDS`: the pause between events (default 0.05), to watch the stream.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator

from ag_ui.core import (
    BaseEvent,
    RunAgentInput,
    RunFinishedEvent,
    RunStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    TextPart,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
    UserMessage,
)
from ag_ui.encoder import EventEncoder
from fastapi import Depends, FastAPI, Request
from fastapi.responses import StreamingResponse

from demo import answer_chunks, word_count
from service_token import (
    SECRET_ENV,
    ServiceToken,
    secret_from_env,
    service_token_dependency,
    unauthorized,
)
from tracking import install, log, tracked


def user_text(run_input: RunAgentInput) -> str:
    """The text of the last user message (text parts joined), or "" if there is none."""
    for message in reversed(run_input.messages):
        if isinstance(message, UserMessage):
            if isinstance(message.content, str):
                return message.content
            return "".join(
                part.text for part in message.content if isinstance(part, TextPart)
            )
    return ""


def demo_events(run_input: RunAgentInput, delay: float) -> AsyncIterator[BaseEvent]:
    """The demo agent: the AG-UI events of one run."""

    async def events() -> AsyncIterator[BaseEvent]:
        thread_id, run_id = run_input.thread_id, run_input.run_id
        text = user_text(run_input)
        yield RunStartedEvent(thread_id=thread_id, run_id=run_id)

        # A tool call whose JSON arguments arrive in two deltas.
        call_id = f"call_{run_id}_1"
        await asyncio.sleep(delay)
        yield ToolCallStartEvent(tool_call_id=call_id, tool_call_name="word_count")
        arguments = json.dumps({"text": text})
        middle = len(arguments) // 2
        for delta in (arguments[:middle], arguments[middle:]):
            await asyncio.sleep(delay)
            yield ToolCallArgsEvent(tool_call_id=call_id, delta=delta)
        yield ToolCallEndEvent(tool_call_id=call_id)
        result = word_count(text)
        await asyncio.sleep(delay)
        yield ToolCallResultEvent(
            message_id=f"msg_{run_id}_tool",
            tool_call_id=call_id,
            content=json.dumps(result),
            role="tool",
        )

        # The answer, streamed.
        message_id = f"msg_{run_id}_answer"
        yield TextMessageStartEvent(message_id=message_id, role="assistant")
        for delta in answer_chunks(text, result["words"]):
            await asyncio.sleep(delay)
            yield TextMessageContentEvent(message_id=message_id, delta=delta)
        yield TextMessageEndEvent(message_id=message_id)
        yield RunFinishedEvent(thread_id=thread_id, run_id=run_id)

    return events()


async def encoded(events: AsyncIterator[BaseEvent], encoder: EventEncoder) -> AsyncIterator[str]:
    """Each event as one SSE frame (`data: {...}` and a blank line)."""
    async for event in events:
        yield encoder.encode(event)


def create_app(secret: str | None = None, delay: float = 0.05) -> FastAPI:
    """The service: `POST /agui` (a run), `GET /stats` (runs seen), `GET /health`.

    `secret`: verify the service token with it (None: no check); `delay`: the pause between
    events, in seconds.
    """
    app = FastAPI(title="agentwire AG-UI demo agent")
    stats = install(app)
    if secret is None:
        log.warning("no %s: requests are not checked for a service token", SECRET_ENV)
    service_token = service_token_dependency(secret)

    @app.post("/agui")
    async def run(
        run_input: RunAgentInput,
        request: Request,
        token: ServiceToken | None = Depends(service_token),
    ) -> StreamingResponse:
        # AG-UI's RunAgentInput has no user id; the token's run id is the input's runId.
        if token is not None and token.run_id != run_input.run_id:
            raise unauthorized("the service token names another run")
        encoder = EventEncoder(accept=request.headers.get("accept"))
        return StreamingResponse(
            tracked(stats, run_input.run_id, encoded(demo_events(run_input, delay), encoder)),
            media_type=encoder.get_content_type(),
        )

    return app


app = create_app(secret_from_env(), float(os.environ.get("DEMO_DELAY_SECONDS", "0.05")))
