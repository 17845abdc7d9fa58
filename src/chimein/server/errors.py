"""Every HTTP error the server sends has one shape: ``{"error": {"message", "type", "code"}}`` (OpenAI's)."""

from __future__ import annotations

import math

from fastapi.responses import JSONResponse

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": ERROR_TYPES.get(status, "server_error"), "code": code}},
        status,
        headers=headers,
    )


def rate_limited(message: str, wait_s: float) -> JSONResponse:
    """A 429 whose ``Retry-After`` header and body say the same whole number of seconds (at least 1)."""
    seconds = max(1, math.ceil(wait_s)) if math.isfinite(wait_s) else 3600
    return error_response(
        429, "rate_limited", f"{message}: retry in {seconds} s", headers={"retry-after": str(seconds)}
    )
