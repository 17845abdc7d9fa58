"""`chimein serve` as a library: group-chat rooms where the assistant chimes in, and an OpenAI-compatible API.

    import uvicorn
    from chimein.assistant import get_backend
    from chimein.interfaces.web import create_app

    app = create_app(get_backend("mention"), db_path="chimein.db", model_name="mention")
    uvicorn.run(app, host="127.0.0.1", port=8000)

Routes (docs/serve.md has the wire formats):

    GET  /                           the page: create a room
    GET  /r/{room}#{token}           the page: a room (the token stays in the URL fragment, never sent in HTTP)
    POST /api/rooms                  create a room -> {"room", "token", "link"}
    GET  /api/rooms/{room}/messages  history, with "Authorization: Bearer <token>"; ?after=SEQ&limit=N
    WS   /ws                         the room protocol: join, then say / eagerness / ping frames
    GET  /v1/models                  the one model, OpenAI style
    POST /v1/chat/completions        the assistant's decision on the last user message, OpenAI style

Every HTTP error is ``{"error": {"message", "type", "code"}}``; every WebSocket error is a frame
``{"type": "error", "code", "message"}`` (see :mod:`chimein.interfaces.rooms`).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException

from chimein.assistant.core import Backend, Decision, TwoStage
from chimein.data import Message
from chimein.interfaces.rooms import CLOSE_BAD_JOIN, CLOSE_JOIN_TIMEOUT, Connection, Hub, Limits, TokenBucket, WireError
from chimein.interfaces.store import Store

STATIC_DIR = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 405: "invalid_request_error",
               413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error"}


def create_app(backend: Backend, *, db_path: str | Path = "chimein.db", model_name: str = "chimein", replier: Any = None,
               eagerness: float | None = None, limits: Limits = Limits(), assistant_name: str = "assistant") -> FastAPI:
    """The whole server over ONE backend: rooms stored in ``db_path``, model calls on one worker thread."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store.open(db_path)
        executor = ThreadPoolExecutor(1, thread_name_prefix="chimein-model")
        app.state.hub = Hub(store, backend, executor, replier=replier, eagerness=eagerness, limits=limits,
                            assistant_name=assistant_name, model_name=model_name)
        app.state.room_buckets = {}
        try:
            yield
        finally:
            await app.state.hub.close()
            executor.shutdown(wait=False, cancel_futures=True)
            store.close()

    app = FastAPI(title="chimein", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SecurityHeaders)
    _add_errors(app)
    _add_pages(app)
    _add_rooms_api(app)
    app.add_api_websocket_route("/ws", room_socket)
    _add_openai_api(app, TwoStage(backend, replier) if replier is not None else backend, model_name, eagerness)
    return app


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": ERROR_TYPES.get(status, "server_error"), "code": code}}, status)


class SecurityHeaders:
    """A strict Content-Security-Policy (scripts and styles from this server only) and friends, on every response."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers.setdefault(key, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _add_errors(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return error_response(400, "bad_request", where)


# -- the page and the rooms API -----------------------------------------------------------------------------

def _add_pages(app: FastAPI) -> None:
    page = STATIC_DIR / "index.html"

    @app.get("/", include_in_schema=False)
    async def home() -> FileResponse:
        return FileResponse(page, headers={"cache-control": "no-cache"})

    @app.get("/r/{room_id}", include_in_schema=False)
    async def room_page(room_id: str) -> FileResponse:
        return FileResponse(page, headers={"cache-control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def _add_rooms_api(app: FastAPI) -> None:
    @app.post("/api/rooms", status_code=201)
    async def create_room(request: Request) -> Any:
        hub: Hub = request.app.state.hub
        buckets: dict[str, TokenBucket] = request.app.state.room_buckets
        host = request.client.host if request.client else "?"
        if len(buckets) > 10_000:
            buckets.clear()
        bucket = buckets.setdefault(host, TokenBucket(hub.limits.rooms_burst, hub.limits.rooms_per_second))
        if bucket.take():
            return error_response(429, "rate_limited", "too many rooms created from this address: try again later")
        room = hub.store.create_room()
        return {"room": room.id, "token": room.token, "link": f"/r/{room.id}#{room.token}"}

    @app.get("/api/rooms/{room_id}/messages")
    async def room_messages(request: Request, room_id: str, after: int = 0, limit: int = 500) -> Any:
        hub: Hub = request.app.state.hub
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        room = hub.store.authorize(room_id, token.strip()) if scheme.lower() == "bearer" else None
        if room is None:
            return error_response(401, "unauthorized", "unknown room or wrong token (send Authorization: Bearer <token>)")
        if after < 0 or not 1 <= limit <= 5000:
            return error_response(400, "bad_request", "after >= 0 and 1 <= limit <= 5000")
        messages = hub.store.messages(room.id, after=after, first=limit)
        return {"room": room.id, "messages": [m.to_json() for m in messages]}

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Any:
        return {"ok": True}


# -- the room socket ----------------------------------------------------------------------------------------

async def room_socket(ws: WebSocket) -> None:
    """One client: the first frame must be a join; then frames until either side closes."""
    hub: Hub = ws.app.state.hub
    await ws.accept()
    conn = Connection(ws.send_text, lambda code: ws.close(code), hub.limits)
    writer = asyncio.create_task(conn.run_writer())
    try:
        try:
            hub.join(conn, await asyncio.wait_for(read_frame(ws, hub.limits), hub.limits.join_timeout_s))
        except asyncio.TimeoutError:
            raise WireError("join_timeout", f"send a join frame within {hub.limits.join_timeout_s:g} s", CLOSE_JOIN_TIMEOUT)
        except WireError as e:
            e.close = e.close or CLOSE_BAD_JOIN
            raise
        while conn.closing is None:
            try:
                hub.handle(conn, await read_frame(ws, hub.limits))
            except WireError as e:
                if e.close:
                    conn.close(e.close, e)
                else:
                    conn.push(e.to_json())
    except WireError as e:
        conn.close(e.close or CLOSE_BAD_JOIN, e)
    except WebSocketDisconnect:
        pass
    finally:
        hub.leave(conn)
        conn.close()
        try:
            await asyncio.wait_for(writer, 5)
        except (asyncio.TimeoutError, Exception):
            writer.cancel()


async def read_frame(ws: WebSocket, limits: Limits) -> dict[str, Any]:
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is None:
        raise WireError("bad_frame", "send JSON text frames, not binary ones")
    if len(text) > limits.max_frame_bytes or len(text.encode()) > limits.max_frame_bytes:
        raise WireError("too_large", f"a frame is at most {limits.max_frame_bytes} bytes")
    try:
        frame = json.loads(text)
    except ValueError:
        frame = None
    if not isinstance(frame, dict):
        raise WireError("bad_json", "a frame is a JSON object with a \"type\"")
    return frame


# -- the OpenAI-compatible API ------------------------------------------------------------------------------

NAME_PREFIX = re.compile(r"([^\s:][^:\n]{0,31}):[ \t]+(\S[\s\S]*)")
SKIPPED_ROLES = ("system", "developer", "tool", "function")


def chat_messages(raw: Any) -> list[Message]:
    """OpenAI ``messages`` -> chimein messages, up to the last user message. System and tool messages are
    skipped; a user message's speaker is its ``name``, else a ``Name: text`` prefix, else "user".
    Raises ValueError("field: problem")."""
    if not isinstance(raw, list) or not raw:
        raise ValueError("messages: must be a non-empty list")
    out: list[Message] = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise ValueError(f"messages[{i}]: must be an object")
        role, text = m.get("role"), content_text(m.get("content"), f"messages[{i}].content")
        if role in SKIPPED_ROLES or not text.strip():
            continue
        if role == "user":
            name, text = speaker(m.get("name"), text)
            out.append(Message("user", text.strip(), name))
        elif role == "assistant":
            if out and out[-1].role == "assistant":
                out[-1] = Message("assistant", out[-1].content + "\n" + text.strip())
            elif out:
                out.append(Message("assistant", text.strip()))
        else:
            raise ValueError(f"messages[{i}].role: must be user, assistant or system, got {role!r}")
    users = [i for i, m in enumerate(out) if m.role == "user"]
    if not users:
        raise ValueError("messages: no user message with text to decide on")
    return out[: users[-1] + 1]


def content_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
                       and isinstance(p.get("text"), str))
    raise ValueError(f"{where}: must be a string or a list of content parts")


def speaker(name: Any, text: str) -> tuple[str, str]:
    if isinstance(name, str) and name.strip():
        return name.strip()[:32], text
    match = NAME_PREFIX.fullmatch(text.strip())
    return (match[1].strip(), match[2]) if match else ("user", text)


def chimein_field(decision: Decision) -> dict[str, Any]:
    return {"speak": decision.speak, "p_speak": decision.to_json()["p_speak"]}


def completion(decision: Decision, model: str, cid: str, created: int) -> dict[str, Any]:
    """A ``chat.completion``; silence is empty content, finish_reason "stop" and ``chimein.speak`` false."""
    message = {"role": "assistant", "content": decision.text if decision.speak else ""}
    return {"id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
            "chimein": chimein_field(decision)}


def completion_chunks(decision: Decision, model: str, cid: str, created: int) -> Iterator[dict[str, Any]]:
    """``chat.completion.chunk`` objects: the role, the reply in pieces (none when silent), the finish."""
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                "chimein": chimein_field(decision)}

    yield chunk({"role": "assistant", "content": ""})
    for piece in re.findall(r"\S+\s*", decision.text if decision.speak else ""):
        yield chunk({"content": piece})
    yield chunk({}, "stop")


def decide_stateless(backend: Backend, messages: list[Message], threshold: float | None) -> Decision:
    return backend.decide(messages, backend.new_state(), threshold)


def _add_openai_api(app: FastAPI, decider: Backend, model_name: str, eagerness: float | None) -> None:
    started = int(time.time())

    @app.get("/v1/models")
    async def models() -> Any:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": started, "owned_by": "chimein"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        try:
            body = await request.json()
        except ValueError:
            return error_response(400, "bad_json", "the body must be a JSON object")
        try:
            if not isinstance(body, dict):
                raise ValueError("body: must be a JSON object")
            messages = chat_messages(body.get("messages"))
        except ValueError as e:
            return error_response(400, "invalid_messages", str(e))
        loop = asyncio.get_running_loop()
        try:
            decision = await loop.run_in_executor(request.app.state.hub.executor, decide_stateless, decider, messages, eagerness)
        except Exception as e:
            return error_response(500, "model_error", f"the model failed: {e}")
        cid, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
        if not body.get("stream"):
            return completion(decision, model_name, cid, created)

        async def events() -> AsyncIterator[str]:
            for chunk in completion_chunks(decision, model_name, cid, created):
                yield f"data: {json.dumps(chunk, ensure_ascii=False, separators=(',', ':'))}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers={"cache-control": "no-cache"})
