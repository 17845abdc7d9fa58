"""The labelling page of `chimein label --web`: one turn at a time, least sure first, driven by the keyboard.

    from chimein.server.label_page import create_label_app
    app = create_label_app(session, "mine.labels.jsonl")   # a LabelSession with its proposals
    uvicorn.run(app, host="127.0.0.1", port=8001)

Routes:

    GET  /            the page (static/label.html, label.js: keys y n e s u, Enter saves a reply, Esc cancels)
    GET  /api/turn    {"turn": the current turn or null, "progress", "written", "threshold"}
    POST /api/label   {"conversation", "turn", "action": accept|silence|speak|skip, "text"} -> the same as /api/turn
    POST /api/undo    -> the same as /api/turn

The session does the work (:mod:`chimein.label.session`); every change goes to its progress file and the
dataset is written again at once. One person labels: changes run one at a time under a lock.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict

from chimein.label.session import LabelSession, Proposal
from chimein.server.app import STATIC_DIR, SecurityHeaders, add_error_handlers
from chimein.server.errors import error_response

CONTEXT_MESSAGES = 8  # earlier messages shown above the turn


class LabelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation: int
    turn: int
    action: Literal["accept", "silence", "speak", "skip"]
    text: str = ""


def turn_json(session: LabelSession, turn: Proposal | None) -> dict[str, Any] | None:
    if turn is None:
        return None
    context = session.context(turn)[-CONTEXT_MESSAGES - 1 :]
    return {
        **asdict(turn),
        "context": [m.to_json() for m in context],
        "conversation_id": str(session.conversations[turn.conversation].meta.get("id", turn.conversation)),
    }


def create_label_app(session: LabelSession, output: str | Path, accept_silences: bool = True) -> FastAPI:
    """The page and its API over one labelling session, writing the dataset to ``output`` after every change."""
    lock = threading.Lock()
    written = {"value": session.write(output, accept_silences)}

    def state() -> dict[str, Any]:
        return {
            "turn": turn_json(session, session.current()),
            "progress": session.progress(),
            "written": asdict(written["value"]),
            "threshold": session.threshold,
        }

    def changed() -> dict[str, Any]:
        written["value"] = session.write(output, accept_silences)
        return state()

    app = FastAPI(title="chimein label", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SecurityHeaders)
    add_error_handlers(app)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "label.html", headers={"cache-control": "no-cache"})

    @app.get("/api/turn")
    def current() -> Any:
        with lock:
            return state()

    @app.post("/api/label")
    def label(body: LabelRequest) -> Any:
        with lock:
            key = (body.conversation, body.turn)
            turn = session.proposals.get(key)
            if turn is None:
                return error_response(
                    400, "bad_request", f"conversation {key[0]} has no user turn at message {key[1]}"
                )
            try:
                if body.action == "accept":
                    session.accept(turn)
                elif body.action == "skip":
                    session.skip(turn)
                else:
                    session.label(turn, body.action == "speak", body.text)
            except ValueError as e:
                return error_response(400, "bad_request", str(e))
            return changed()

    @app.post("/api/undo")
    def undo() -> Any:
        with lock:
            session.undo()
            return changed()

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
