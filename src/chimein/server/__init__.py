"""`chimein serve`: web rooms where the assistant chimes in, and an OpenAI-compatible API, over one backend.

app.py         the FastAPI app: pages, the rooms API, the room socket
openai_api.py  POST /v1/chat/completions, GET /v1/models
rooms.py       live rooms: clients, one assistant per room, limits, wire errors
store/         rooms, messages, decisions: SQLite or PostgreSQL, one interface
static/        the page (no build step)
"""

from chimein.server.app import create_app

__all__ = ["create_app"]
