"""`chimein serve` as a library: the web app over one backend (group-chat rooms, and the OpenAI-compatible API
of :mod:`chimein.server.openai_api`).

    import uvicorn
    from chimein.assistant import get_backend
    from chimein.server import create_app

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
``{"type": "error", "code", "message"}`` (see :mod:`chimein.server.rooms`).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException

from chimein.assistant.core import Backend, TwoStage
from chimein.assistant.policy import RoomPolicy
from chimein.rooms import REPLIER_WAIT_S, ModelThread, set_up_replier
from chimein.server.errors import error_response, rate_limited
from chimein.server.openai_api import add_openai_api
from chimein.server.limits import Limits, TokenBucket
from chimein.server.peers import peers_for
from chimein.server.rooms import CLOSE_BAD_JOIN, CLOSE_JOIN_TIMEOUT, Connection, Hub, WireError
from chimein.server.store import open_store

STATIC_DIR = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def websocket_max_size(limits: Limits) -> int:
    """What the WebSocket server reads of one frame: well above ``limits.max_frame_bytes``, so an oversized frame
    reaches :func:`read_frame` and gets the ``too_large`` error frame instead of a bare 1009 close; bounded by the
    size of a whole API request."""
    return max(limits.max_request_bytes, 4 * limits.max_frame_bytes)


def create_app(
    backend: Backend,
    *,
    db_path: str | Path = "chimein.db",
    model_name: str = "chimein",
    replier: Any = None,
    eagerness: float | None = None,
    limits: Limits = Limits(),
    assistant_name: str = "assistant",
    api_key: str | None = None,
    policy: RoomPolicy | None = None,
    reply_wait_s: float = REPLIER_WAIT_S,
) -> FastAPI:
    """The whole server over ONE backend: rooms stored in ``db_path``, model calls on one worker thread.
    With ``api_key``, the /v1 API needs ``Authorization: Bearer <api_key>`` (rooms keep their own tokens).
    ``policy``: a new room's settings (mode, cooldown, settle time, ...; each room can change its own);
    ``reply_wait_s``: how long a question's reply may wait for the replier (:data:`chimein.rooms.REPLIER_WAIT_S`).
    With a ``replier`` the backend only decides: the replier writes every reply (:func:`chimein.rooms.set_up_replier`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(db_path)
        executor = ModelThread()
        set_up_replier(backend, replier, executor)
        app.state.hub = Hub(
            store,
            backend,
            executor,
            replier=replier,
            eagerness=eagerness,
            limits=limits,
            assistant_name=assistant_name,
            model_name=model_name,
            policy=policy,
            peers=peers_for(str(db_path)),
            replier_wait_s=reply_wait_s,
        )
        await app.state.hub.start()
        app.state.room_buckets = {}
        try:
            yield
        finally:
            await app.state.hub.close()
            executor.shutdown(wait=False, cancel_futures=True)
            store.close()

    app = FastAPI(title="chimein", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SecurityHeaders)
    add_error_handlers(app)
    _add_pages(app)
    _add_rooms_api(app)
    app.add_api_websocket_route("/ws", room_socket)
    add_openai_api(
        app,
        backend,
        model_name,
        eagerness,
        limits,
        api_key,
        TwoStage(backend, replier) if replier is not None else None,
    )
    return app


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


def add_error_handlers(app: FastAPI) -> None:
    """Every HTTP error as ``{"error": {...}}`` (errors.py); a request that fails validation is a 400 naming the field."""

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
        if wait := bucket.take():
            return rate_limited("too many rooms created from this address", wait)
        room = hub.store.create_room()
        return {"room": room.id, "token": room.token, "link": f"/r/{room.id}#{room.token}"}

    @app.get("/api/rooms/{room_id}/messages")
    async def room_messages(request: Request, room_id: str, after: int = 0, limit: int = 500) -> Any:
        hub: Hub = request.app.state.hub
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        room = hub.store.authorize(room_id, token.strip()) if scheme.lower() == "bearer" else None
        if room is None:
            return error_response(
                401, "unauthorized", "unknown room or wrong token (send Authorization: Bearer <token>)"
            )
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
            raise WireError(
                "join_timeout", f"send a join frame within {hub.limits.join_timeout_s:g} s", CLOSE_JOIN_TIMEOUT
            )
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
        raise WireError("bad_json", 'a frame is a JSON object with a "type"')
    return frame
