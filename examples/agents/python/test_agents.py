"""Tests of the two demo services through FastAPI's TestClient (the real app, in process).

Run: `.venv/bin/python -m pytest -q` in this folder (`cargo test -p agentwire-examples` runs
them too). The AG-UI stream is parsed back with the `ag-ui-protocol` package's own models;
the NDJSON stream is checked against agentwire's event payloads (docs/schema) by hand.
"""

from __future__ import annotations

import json
import time

import jwt
import pytest
from ag_ui.core import (
    EventType,
    RunAgentInput,
    RunFinishedEvent,
    RunStartedEvent,
    TextMessageContentEvent,
    ToolCallArgsEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from ag_ui.core.events import Event
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

import agui_agent
import ndjson_agent

SECRET = "the agent-service secret, 32 bytes or more"
EVENT = TypeAdapter(Event)


def service_token(
    user_id: str = "user-1",
    run_id: str = "run_1",
    *,
    secret: str = SECRET,
    audience: str = "agent-service",
    expires_in: int = 60,
) -> str:
    """A token as agentwire mints it."""
    now = int(time.time())
    claims = {"sub": user_id, "run_id": run_id, "aud": audience, "iat": now, "exp": now + expires_in}
    return jwt.encode(claims, secret, algorithm="HS256")


def ndjson_request(run_id: str = "run_1", user_id: str = "user-1", text: str = "hello agent world") -> dict:
    return {
        "run_id": run_id,
        "thread_id": "t1",
        "user_id": user_id,
        "message_id": "m1",
        "type": "start_agent",
        "payload": {"text": text, "agent_name": "demo", "context": {"locale": "en"}},
    }


def agui_input(run_id: str = "run_1", text: str = "hello agent world") -> dict:
    """A RunAgentInput as JSON (camelCase, as on the wire)."""
    return RunAgentInput(
        thread_id="t1",
        run_id=run_id,
        state={},
        messages=[
            {"id": "m0", "role": "assistant", "content": "Hi, what can I do?"},
            {"id": "m1", "role": "user", "content": text},
        ],
        tools=[],
        context=[],
        forwarded_props={},
    ).model_dump(mode="json", by_alias=True)


def sse_data(body: str) -> list[str]:
    """The `data:` payloads of an SSE stream (one per event; no multi-line data here)."""
    frames = [frame for frame in body.split("\n\n") if frame.strip()]
    payloads = []
    for frame in frames:
        lines = frame.split("\n")
        assert all(line.startswith("data: ") for line in lines), frame
        payloads.append("\n".join(line[len("data: ") :] for line in lines))
    return payloads


# ---------------------------------------------------------------------------------------
# NDJSON


def test_ndjson_streams_the_five_event_types_and_the_assembled_text():
    client = TestClient(ndjson_agent.create_app(secret=None, delay=0))
    response = client.post("/run", json=ndjson_request())
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    assert all(set(line) == {"type", "payload"} for line in lines)
    kinds = [line["type"] for line in lines]
    assert kinds == [
        "agent_started",
        "agent_thinking",
        "tool_executing",
        "tool_completed",
        "agent_response_chunk",
        "agent_response_chunk",
        "agent_response_chunk",
        "agent_response_chunk",
        "agent_completed",
    ]
    started, thinking, executing, completed_tool = (line["payload"] for line in lines[:4])
    assert started == {"agent_name": "demo", "user_request": "hello agent world"}
    assert isinstance(thinking["reasoning"], str)
    assert executing["parameters"] == {"text": "hello agent world"}
    assert completed_tool["tool_call_id"] == executing["tool_call_id"]
    assert completed_tool["tool_name"] == executing["tool_name"] == "word_count"
    assert completed_tool["status"] == "ok"
    assert completed_tool["result"] == {"words": 3}
    chunks = [line["payload"] for line in lines if line["type"] == "agent_response_chunk"]
    assert [chunk["index"] for chunk in chunks] == [0, 1, 2, 3]
    text = "".join(chunk["delta"] for chunk in chunks)
    assert lines[-1]["payload"]["result"] == {"response": text}
    assert "3 words" in text
    assert isinstance(lines[-1]["payload"]["duration_ms"], int)
    assert client.get("/stats").json()["completed"] == 1


def test_ndjson_accepts_a_valid_service_token():
    client = TestClient(ndjson_agent.create_app(secret=SECRET, delay=0))
    response = client.post(
        "/run",
        json=ndjson_request(),
        headers={"Authorization": f"Bearer {service_token()}"},
    )
    assert response.status_code == 200
    assert response.text.splitlines()[0].startswith('{"type": "agent_started"')


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-jwt",
        f"Bearer {service_token(secret='another secret, also 32 bytes long')}",
        f"Bearer {service_token(audience='someone-else')}",
        f"Bearer {service_token(expires_in=-120)}",
        f"Bearer {service_token(user_id='user-2')}",
        f"Bearer {service_token(run_id='run_2')}",
        # The HS256 secret must not be accepted as an "alg: none" token.
        "Bearer " + jwt.encode({"sub": "user-1", "run_id": "run_1", "aud": "agent-service",
                                "exp": int(time.time()) + 60}, None, algorithm="none"),
    ],
)
def test_ndjson_refuses_a_missing_or_wrong_service_token(authorization):
    client = TestClient(ndjson_agent.create_app(secret=SECRET, delay=0))
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.post("/run", json=ndjson_request(), headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    stats = client.get("/stats").json()
    assert stats["unauthorized"] == 1
    assert stats["started"] == 0


def test_ndjson_refuses_a_malformed_request():
    client = TestClient(ndjson_agent.create_app(secret=None, delay=0))
    body = ndjson_request()
    body["type"] = "cancel_agent"
    assert client.post("/run", json=body).status_code == 422
    assert client.post("/run", json={"run_id": "r"}).status_code == 422


# ---------------------------------------------------------------------------------------
# AG-UI


def agui_events(client: TestClient, run_id: str = "run_1", text: str = "hello agent world", headers=None):
    response = client.post(
        "/agui",
        json=agui_input(run_id, text),
        headers={"Accept": "text/event-stream", **(headers or {})},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == "text/event-stream"
    return [EVENT.validate_json(data) for data in sse_data(response.text)]


def test_agui_emits_valid_events_in_protocol_order():
    client = TestClient(agui_agent.create_app(secret=None, delay=0))
    events = agui_events(client)
    assert [event.type for event in events] == [
        EventType.RUN_STARTED,
        EventType.TOOL_CALL_START,
        EventType.TOOL_CALL_ARGS,
        EventType.TOOL_CALL_ARGS,
        EventType.TOOL_CALL_END,
        EventType.TOOL_CALL_RESULT,
        EventType.TEXT_MESSAGE_START,
        EventType.TEXT_MESSAGE_CONTENT,
        EventType.TEXT_MESSAGE_CONTENT,
        EventType.TEXT_MESSAGE_CONTENT,
        EventType.TEXT_MESSAGE_CONTENT,
        EventType.TEXT_MESSAGE_END,
        EventType.RUN_FINISHED,
    ]
    started, finished = events[0], events[-1]
    assert isinstance(started, RunStartedEvent) and isinstance(finished, RunFinishedEvent)
    assert (started.thread_id, started.run_id) == ("t1", "run_1")
    assert (finished.thread_id, finished.run_id) == ("t1", "run_1")

    # The tool call: one id throughout, arguments assembled from the deltas are JSON.
    start = next(e for e in events if isinstance(e, ToolCallStartEvent))
    assert start.tool_call_name == "word_count"
    call_events = [e for e in events if getattr(e, "tool_call_id", None) is not None]
    assert {e.tool_call_id for e in call_events} == {start.tool_call_id}
    arguments = "".join(e.delta for e in events if isinstance(e, ToolCallArgsEvent))
    assert json.loads(arguments) == {"text": "hello agent world"}
    result = next(e for e in events if isinstance(e, ToolCallResultEvent))
    assert json.loads(result.content) == {"words": 3}

    # The text message: one id, and its deltas make the answer.
    message_ids = {e.message_id for e in events[6:12]}
    assert len(message_ids) == 1
    text = "".join(e.delta for e in events if isinstance(e, TextMessageContentEvent))
    assert text.startswith("You wrote 3 words")
    assert client.get("/stats").json()["completed"] == 1


def test_agui_wire_format_is_the_encoders_camel_case_sse():
    client = TestClient(agui_agent.create_app(secret=None, delay=0))
    response = client.post("/agui", json=agui_input(), headers={"Accept": "text/event-stream"})
    first = json.loads(sse_data(response.text)[0])
    assert first == {"type": "RUN_STARTED", "threadId": "t1", "runId": "run_1"}
    assert response.text.startswith("data: ") and response.text.endswith("\n\n")


def test_agui_reads_the_last_user_message_in_text_parts():
    client = TestClient(agui_agent.create_app(secret=None, delay=0))
    body = agui_input()
    body["messages"].append(
        {"id": "m2", "role": "user", "content": [{"type": "text", "text": "one two "},
                                                   {"type": "text", "text": "three four"}]}
    )
    response = client.post("/agui", json=body)
    events = [EVENT.validate_json(data) for data in sse_data(response.text)]
    arguments = "".join(e.delta for e in events if isinstance(e, ToolCallArgsEvent))
    assert json.loads(arguments) == {"text": "one two three four"}


def test_agui_checks_the_service_token_against_the_run():
    client = TestClient(agui_agent.create_app(secret=SECRET, delay=0))
    ok = agui_events(client, headers={"Authorization": f"Bearer {service_token(run_id='run_1')}"})
    assert ok[-1].type == EventType.RUN_FINISHED
    for headers in [
        {},
        {"Authorization": f"Bearer {service_token(run_id='run_2')}"},
        {"Authorization": f"Bearer {service_token(secret='another secret, also 32 bytes long')}"},
    ]:
        response = client.post("/agui", json=agui_input(), headers=headers)
        assert response.status_code == 401, response.text
    assert client.get("/stats").json()["unauthorized"] == 3


def test_agui_refuses_input_that_is_not_a_run_agent_input():
    client = TestClient(agui_agent.create_app(secret=None, delay=0))
    assert client.post("/agui", json={"threadId": "t1"}).status_code == 422
    body = agui_input()
    body["messages"][0]["role"] = "nobody"
    assert client.post("/agui", json=body).status_code == 422
