"""The OpenAI-compatible endpoint: ``POST /v1/chat/completions`` answers with the assistant's decision on the
last user message (silence is empty content and ``chimein.speak`` false), ``GET /v1/models`` lists the one model.

What one request may cost is bounded, because it shares the model thread with every web room: each address has
a token bucket of requests (a request with a wrong API key counts too); with an API key set
(``serve --api-key-env``) a request must carry it;
the body is refused past ``Limits.max_request_bytes`` before it is parsed, a message past
``max_message_chars``; the request is validated by type (pydantic: ``"name": 7`` or ``"stream": "yes"`` is a
400, not a guess); the decision reads the latest ``api_history_messages`` messages only (a stateless request
has no cache: the model reads all of them); and the model thread serves callers in turn
(:mod:`chimein.rooms.model_thread`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from typing import Annotated, Any, AsyncIterator, Iterator, Literal, Union

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from chimein.assistant.core import Backend, Decision, TwoStage
from chimein.data import Message
from chimein.rooms import ModelBusy
from chimein.server.errors import error_response, rate_limited
from chimein.server.limits import Limits, TokenBucket

log = logging.getLogger("chimein.serve")

NAME_PREFIX = re.compile(r"([^\s:][^:\n]{0,31}):[ \t]+(\S[\s\S]*)")
SKIPPED_ROLES = ("system", "developer", "tool", "function")


MAX_NAME_CHARS = 64  # a speaker's name in a request: OpenAI's own limit


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")  # image parts and the like are accepted and not read
    type: StrictStr
    text: StrictStr | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # tool_calls, refusal, ...: not read
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Union[StrictStr, list[ContentPart], None] = None
    name: Annotated[StrictStr, Field(min_length=1, max_length=MAX_NAME_CHARS)] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens, ...: accepted; the decision is greedy
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    model: StrictStr | None = None
    stream: StrictBool = False


class BadRequest(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def parse_request(body: bytes | str | dict[str, Any]) -> ChatRequest:
    """Validate a request body by type; raises :class:`BadRequest` with one line naming the fields."""
    try:
        if isinstance(body, dict):
            return ChatRequest.model_validate(body)
        return ChatRequest.model_validate_json(body)
    except ValidationError as e:
        if any(err["type"] == "json_invalid" for err in e.errors()):
            raise BadRequest("bad_json", "the body must be a JSON object") from None
        raise BadRequest(
            "invalid_request",
            "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in e.errors()[:5]),
        ) from None


def chat_messages(request: ChatRequest, max_chars: int = Limits().max_message_chars) -> list[Message]:
    """OpenAI ``messages`` -> chimein messages, up to the last user message. System and tool messages are
    skipped; a user message's speaker is its ``name``, else a ``Name: text`` prefix, else "user".
    Raises :class:`BadRequest`."""
    out: list[Message] = []
    for i, m in enumerate(request.messages):
        text = content_text(m.content)
        if len(text) > max_chars:
            raise BadRequest(
                "too_long",
                f"messages.{i}.content: a message is at most {max_chars} characters (this one has {len(text)})",
            )
        if m.role in SKIPPED_ROLES or not text.strip():
            continue
        if m.role == "user":
            name, text = speaker(m.name, text)
            out.append(Message("user", text.strip(), name))
        elif out and out[-1].role == "assistant":
            out[-1] = Message("assistant", out[-1].content + "\n" + text.strip())
        elif out:
            out.append(Message("assistant", text.strip()))
    users = [i for i, m in enumerate(out) if m.role == "user"]
    if not users:
        raise BadRequest("invalid_messages", "messages: no user message with text to decide on")
    return out[: users[-1] + 1]


def latest(messages: list[Message], n: int) -> list[Message]:
    """The last ``n`` messages, starting with a user message. A stateless request is read whole by the model
    (no cache to reuse), so this bounds what one request costs the rooms that share the model thread."""
    out = messages[-n:]
    while out and out[0].role != "user":
        out = out[1:]
    return out


def content_text(content: str | list[ContentPart] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(p.text or "" for p in content if p.type == "text")


def speaker(name: str | None, text: str) -> tuple[str, str]:
    if name is not None and name.strip():
        return name.strip(), text
    match = NAME_PREFIX.fullmatch(text.strip())
    return (match[1].strip(), match[2]) if match else ("user", text)


def chimein_field(decision: Decision) -> dict[str, Any]:
    return {"speak": decision.speak, "p_speak": decision.to_json()["p_speak"]}


def completion(decision: Decision, model: str, cid: str, created: int) -> dict[str, Any]:
    """A ``chat.completion``; silence is empty content, finish_reason "stop" and ``chimein.speak`` false."""
    message = {"role": "assistant", "content": decision.text if decision.speak else ""}
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "chimein": chimein_field(decision),
    }


def completion_chunks(decision: Decision, model: str, cid: str, created: int) -> Iterator[dict[str, Any]]:
    """``chat.completion.chunk`` objects: the role, the reply in pieces (none when silent), the finish."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            "chimein": chimein_field(decision),
        }

    yield chunk({"role": "assistant", "content": ""})
    for piece in re.findall(r"\S+\s*", decision.text if decision.speak else ""):
        yield chunk({"content": piece})
    yield chunk({}, "stop")


def decide_stateless(backend: Backend, messages: list[Message], threshold: float | None) -> Decision:
    return backend.decide(messages, backend.new_state(), threshold)


async def read_body(request: Request, max_bytes: int) -> bytes | None:
    """The body, or None as soon as it is longer than ``max_bytes`` (declared or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            return None
    return bytes(body)


def add_openai_api(
    app: FastAPI,
    decider: Backend,
    model_name: str,
    eagerness: float | None,
    limits: Limits,
    api_key: str | None = None,
    two_stage: TwoStage | None = None,
) -> None:
    """``decider`` decides on the model thread; ``two_stage`` (a replier) rewrites a spoken reply outside it."""
    started = int(time.time())
    buckets: dict[str, TokenBucket] = {}

    def refused(request: Request) -> JSONResponse | None:
        """429 past the address's rate, 401 without the API key. Every request counts against the rate, one
        with a wrong key too: guessing keys is throttled like any other flood."""
        host = request.client.host if request.client else "?"
        if len(buckets) > 10_000:
            buckets.clear()
        bucket = buckets.setdefault(host, TokenBucket(limits.api_burst, limits.api_per_minute / 60))
        wait = bucket.take()
        if wait:
            return rate_limited("too many requests from this address", wait)
        if api_key is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), api_key.encode()):
                return error_response(
                    401, "invalid_api_key", "this server needs its API key: send Authorization: Bearer <key>"
                )
        return None

    @app.get("/v1/models")
    async def models(request: Request) -> Any:
        if (refusal := refused(request)) is not None:
            return refusal
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": started, "owned_by": "chimein"}],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        if (refusal := refused(request)) is not None:
            return refusal
        body = await read_body(request, limits.max_request_bytes)
        if body is None:
            return error_response(413, "too_large", f"a request is at most {limits.max_request_bytes} bytes")
        try:
            chat = parse_request(body)
            messages = latest(chat_messages(chat, limits.max_message_chars), limits.api_history_messages)
        except BadRequest as e:
            return error_response(400, e.code, str(e))
        host = request.client.host if request.client else "?"
        try:
            decision = await asyncio.wrap_future(
                request.app.state.hub.executor.submit_as(f"api:{host}", decide_stateless, decider, messages, eagerness)
            )
        except ModelBusy as e:
            return error_response(503, "busy", f"{e}: try again shortly")
        except Exception as e:
            return error_response(500, "model_error", f"the model failed: {e}")
        log.info(
            "decision %s",
            json.dumps(
                {
                    "api": host,
                    "messages": len(messages),
                    "speak": decision.speak,
                    "p_speak": decision.to_json()["p_speak"],
                    "latency_s": round(decision.latency_s, 3),
                }
            ),
        )
        if two_stage is not None and decision.speak:
            decision = await asyncio.to_thread(two_stage.rewrite, decision, messages)
        cid, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
        if not chat.stream:
            return completion(decision, model_name, cid, created)

        async def events() -> AsyncIterator[str]:
            for chunk in completion_chunks(decision, model_name, cid, created):
                yield f"data: {json.dumps(chunk, ensure_ascii=False, separators=(',', ':'))}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers={"cache-control": "no-cache"})
